"""The PRTF of an ensemble, and an independent check of the resolution it gives (issue 5).

1. Reconstructs a simulated 2D crystal (128^2, 1e5 photons at the peak, known
   geometry) with ``--runs 20 --keep 10`` and reports the ensemble's PRTF
   resolution (pixels and nm).
2. Checks it against the ground truth, which the PRTF never sees: the Fourier
   ring correlation (FRC) between the ensemble mean and the registered truth,
   and where it falls below 0.5.
3. Checks the PRTF code itself on a constructed ensemble: ten copies of the
   truth whose Fourier phases are randomised above a chosen cut-off; the PRTF
   must fall through ``1/e`` at that cut-off.

    python benchmarks/ensemble_prtf.py --threads 2
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from common import add_method_argument, limit_threads, machine_description

from cdi_dip.config import Method, RunConfig
from cdi_dip.ensemble import (centred_fft, centred_ifft, compare_objects, compute_prtf, match_to_reference,
                              object_pixel_size_m)
from cdi_dip.pipeline import reconstruct
from cdi_dip.prepare.stages import condition_detector, prepare
from cdi_dip.restarts import to_data_frame
from cdi_dip.simulate import simulate_scan


def ring_correlation(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fourier ring correlation of two 2D objects of one frame, rings one frequency bin wide."""
    fa, fb = centred_fft(a), centred_fft(b)
    grids = np.indices(a.shape)
    radius = np.sqrt(sum(((g - n // 2) / n) ** 2 for g, n in zip(grids, a.shape)))
    width = 1.0 / max(a.shape)
    index = np.floor(radius / width).astype(int)
    count = int(0.5 / width)
    keep = index < count
    cross = np.bincount(index[keep], (fa * np.conj(fb)).real[keep], minlength=count)
    power_a = np.bincount(index[keep], (np.abs(fa) ** 2)[keep], minlength=count)
    power_b = np.bincount(index[keep], (np.abs(fb) ** 2)[keep], minlength=count)
    return (np.arange(count) + 0.5) * width, cross / np.sqrt(power_a * power_b + 1e-300)


def first_below(freq: np.ndarray, values: np.ndarray, level: float) -> float | None:
    """Half-period resolution (px) where ``values`` first fall below ``level``, interpolated."""
    below = np.flatnonzero(values < level)
    if below.size == 0:
        return None
    j = int(below[0])
    crossing = freq[0] if j == 0 else freq[j - 1] + (values[j - 1] - level) * (freq[j] - freq[j - 1]) / (
        values[j - 1] - values[j])
    return 1.0 / (2.0 * crossing)


def constructed_check(truth: np.ndarray, counts: np.ndarray, valid: np.ndarray, cutoff: float,
                      rng: np.random.Generator) -> float | None:
    """PRTF resolution of 10 copies of the truth with random Fourier phases above ``cutoff`` cycles/px."""
    spectrum = centred_fft(truth)
    grids = np.indices(truth.shape)
    radius = np.sqrt(sum(((g - n // 2) / n) ** 2 for g, n in zip(grids, truth.shape)))
    members = [centred_ifft(np.where(radius > cutoff, spectrum * np.exp(2j * np.pi * rng.random(truth.shape)),
                                      spectrum)) for _ in range(10)]
    return compute_prtf(np.stack(members), counts, valid).resolution_px


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--keep", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    add_method_argument(parser)
    args = parser.parse_args()
    limit_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    scan = simulate_scan("crystal", (128, 128), rng=rng, peak_counts=1e5, offset_px=(3, -2))
    cfg = RunConfig(method=Method(args.method), device="cpu", runs=args.runs, keep=args.keep).validate()
    start = time.perf_counter()
    result = reconstruct(prepare(condition_detector(scan.to_measurement("prtf"), cfg.detector), cfg.prep), cfg)
    elapsed = time.perf_counter() - start
    prtf = result.prtf
    ensemble = result.ensemble
    print(f"machine: {machine_description()}")
    print(f"{args.runs} runs, {ensemble.size if ensemble else 1} averaged, {elapsed:.0f} s; "
          f"ensemble: {ensemble.summary() if ensemble else None}")
    pixel = object_pixel_size_m(result.measurement.meta, result.measurement.shape)
    if prtf is not None:
        print(f"PRTF resolution: {prtf.resolution_px} px = {prtf.resolution_m and prtf.resolution_m * 1e9} nm "
              f"(object pixel {pixel[0] * 1e9:.1f} nm); values at 0.1/0.25/0.4 cycles/px: "
              + ", ".join(f"{np.interp(q, prtf.frequency_per_px, prtf.values):.3f}" for q in (0.1, 0.25, 0.4)))
    error = compare_objects(result.obj, scan.ground_truth).error
    truth_matched = match_to_reference(scan.ground_truth, result.obj)
    freq, frc = ring_correlation(result.obj, truth_matched)
    print(f"error of the mean against the truth {error:.4f}; FRC(mean, truth) < 0.5 at "
          f"{first_below(freq, frc, 0.5)} px, < 1/e at {first_below(freq, frc, np.exp(-1))} px")
    truth_in_data_frame = to_data_frame(match_to_reference(scan.ground_truth, result.obj), result.align)
    counts, valid = result.measurement.intensity, result.measurement.valid
    for cutoff in (0.1, 0.2, 0.3):
        found = constructed_check(truth_in_data_frame, counts, valid, cutoff, np.random.default_rng(1))
        print(f"constructed ensemble, phases random above {cutoff} cycles/px (expect {1 / (2 * cutoff):.2f} px): "
              f"PRTF resolution {found if found is None else round(found, 2)} px")


if __name__ == "__main__":
    main()
