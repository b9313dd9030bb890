"""Data preparation on real and planted defects (issue 4's benchmark).

Two parts:

``planted``
    Simulates 2D crystals (128^2, 1e5 photons at the peak, off-centre peak)
    and plants unmasked defects into the counts: a beamstop shadow (zeros), a
    detector gap (lines of zeros), hot pixels and two saturated (clipped)
    regions. The defect finders' mask is compared with the planted one
    (recall and precision, overall and by reason), and each case is
    reconstructed twice with the default method: with the mask the tool
    found, and with the true planted mask (defect finding switched off).

``real``
    The APS 34-ID-C scan 54 (``../shared/data/aps34idc_scan54``): what the
    preparation finds with the beamline's dark and white field (against the
    beamline's own rule: ``dark > 1`` or ``whitefield < mean - 3 std``), where
    the alien is, and the reconstruction (default method, ``--max-size``)
    of the raw and of the corrected frames, with their R-factor and
    free-pixel likelihood.

    python benchmarks/data_preparation.py planted --count 10 --threads 2
    python benchmarks/data_preparation.py planted --count 10 --threads 2 --rim-transmission 0.5
    python benchmarks/data_preparation.py real --max-size 128 --threads 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from common import limit_threads, machine_description, score

from cdi_dip.config import AlienHandling, DetectorConfig, RunConfig
from cdi_dip.io.readers import read_array, read_measurement
from cdi_dip.pipeline import reconstruct
from cdi_dip.prepare.stages import condition_detector, prepare
from cdi_dip._ndimage import dilate
from cdi_dip.simulate import PlantedDefects, plant_defects, simulate_scan
from cdi_dip.types import Measurement

REAL_SCAN = Path(__file__).resolve().parents[2] / "shared" / "data" / "aps34idc_scan54"
NO_DETECTION = DetectorConfig(find_beamstop=False, find_gaps=False, find_hot=False, find_dead=False, aliens=AlienHandling.OFF)


def _union(masks: dict[str, np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    union = np.zeros(shape, dtype=bool)
    for mask in masks.values():
        union |= mask
    return union


def _recall_precision(found: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    hits = float(np.count_nonzero(found & truth))
    return hits / max(np.count_nonzero(truth), 1), hits / max(np.count_nonzero(found), 1)


def _dim_beamstop_rim(defects: PlantedDefects, transmission: float, rng: np.random.Generator) -> PlantedDefects:
    """A penumbra: the counts of the one-pixel ring around the planted shadow thinned to ``transmission``.

    The ring becomes part of the planted beamstop (its counts are wrong, so a right mask excludes it).
    """
    shadow = defects.truth["beamstop"]
    taken = _union(defects.truth, shadow.shape)
    ring = dilate(shadow, 1) & ~taken
    counts = defects.counts.copy()
    counts[ring] = rng.binomial(counts[ring].astype(np.int64), transmission)
    return replace(defects, counts=counts, truth={**defects.truth, "beamstop": shadow | ring})


def planted(args: argparse.Namespace) -> None:
    cfg = RunConfig(device="cpu").validate()
    true_mask_cfg = replace(cfg, detector=replace(NO_DETECTION, saturation=None)).validate()
    rng = np.random.default_rng(args.seed)
    rows, found_errors, true_errors = [], [], []
    per_reason: dict[str, list[tuple[float, float]]] = {}
    totals = []
    for index in range(args.count):
        offset = tuple(int(v) for v in rng.integers(-5, 6, size=2))
        scan = simulate_scan("crystal", (128, 128), rng=rng, peak_counts=1e5, offset_px=offset,
                             dislocation=index % 3 == 2)
        defects = plant_defects(scan.counts, rng=rng, beamstop_radius_px=3, gap_px=3, hot=5, saturated_regions=2)
        if args.rim_transmission < 1.0:
            defects = _dim_beamstop_rim(defects, args.rim_transmission, np.random.default_rng(index))
        raw = Measurement(intensity=defects.counts, valid=np.ones(scan.counts.shape, bool), meta=scan.meta,
                          source=f"planted-{index}", name=f"planted-{index}")
        conditioned = condition_detector(raw, cfg.detector)
        truth = _union(defects.truth, raw.shape)
        start = time.perf_counter()
        with_found = reconstruct(prepare(conditioned, cfg.prep), cfg)
        elapsed = time.perf_counter() - start
        # The rim of the found shadow is valid (provisional) after conditioning; a first pass decides
        # whether it is fitted (cdi_dip.prepare.rim). The mask scored is the one the final fit used.
        rim = with_found.beamstop_rim.summary() if with_found.beamstop_rim is not None else {}
        rim_excluded = conditioned.provisional if conditioned.provisional is not None and not rim.get("readmitted") \
            else np.zeros(raw.shape, dtype=bool)
        found = ~conditioned.valid | rim_excluded
        recall, precision = _recall_precision(found, truth)
        totals.append((recall, precision))
        shadow = conditioned.masks.get("beamstop", rim_excluded)
        found_by_reason = {**conditioned.masks, "beamstop": shadow | rim_excluded}
        for reason, mask in defects.truth.items():
            per_reason.setdefault(reason, []).append(
                _recall_precision(found_by_reason.get(reason, np.zeros_like(mask)), mask))
        with_truth = reconstruct(prepare(raw.exclude("planted", truth), true_mask_cfg.prep), true_mask_cfg)
        error_found = score(with_found.obj, scan.ground_truth)["error"]
        error_true = score(with_truth.obj, scan.ground_truth)["error"]
        found_errors.append(error_found)
        true_errors.append(error_true)
        extra = {k: v for k, v in conditioned.excluded.items() if k not in defects.truth}
        rim_text = (f"{rim.get('ratio', float('nan')):.3f}, {rim.get('agreeing_fraction', float('nan')):.2f}: "
                    f"{'fitted' if rim.get('readmitted') else 'excluded'}") if rim else "-"
        rows.append(f"| {index}: offset {offset} | {recall:.3f} | {precision:.3f} | {extra or '-'} | {rim_text} | "
                    f"{error_found:.3f} | {error_true:.3f} | {elapsed:.1f} |")
        print(rows[-1], flush=True)
    print(f"\nmachine: {machine_description()}")
    print("planted per case: beamstop r = 3 px, gap 3 lines, 5 hot pixels, 2 saturated regions; default method")
    print("| case | recall | precision | other reasons | beamstop rim (ratio, agreeing: decision) | "
          "error, found mask | error, true mask | time (s) |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print("\n| reason | median recall | median precision |\n|---|---|---|")
    for reason, values in per_reason.items():
        print(f"| {reason} | {statistics.median(v[0] for v in values):.3f} | "
              f"{statistics.median(v[1] for v in values):.3f} |")
    print(f"| all | {statistics.median(v[0] for v in totals):.3f} | {statistics.median(v[1] for v in totals):.3f} |")
    found_median, true_median = statistics.median(found_errors), statistics.median(true_errors)
    print(f"\nmedian error with the found mask {found_median:.4f}, with the true mask {true_median:.4f} "
          f"(ratio {found_median / true_median:.3f}; n = {len(found_errors)})")


def _beamline_rule(dark: np.ndarray, flat: np.ndarray, roi: tuple[slice, slice]) -> np.ndarray:
    """The 34-ID-C software's bad pixels: ``dark > 1`` or ``whitefield < mean - 3 std`` (whole detector)."""
    good = np.isfinite(flat) & (flat > 0)
    level = flat[good].mean() - 3 * flat[good].std()
    return (dark[roi] > 1) | (flat[roi] < level)


def _reconstruct_real(measurement: Measurement, cfg: RunConfig) -> dict[str, float]:
    start = time.perf_counter()
    result = reconstruct(prepare(measurement, cfg.prep), cfg)
    metrics = {key: float(result.metrics[key]) for key in ("r_factor", "llk_poisson", "free_llk_poisson", "free_r_factor")}
    metrics["support_size"] = int(result.support.sum())
    metrics["wall_s"] = round(time.perf_counter() - start, 1)
    return metrics


def real(args: argparse.Namespace) -> None:
    if not REAL_SCAN.exists():
        raise SystemExit(f"{REAL_SCAN} is not there: this part needs the shared real data")
    frames = read_measurement(str(REAL_SCAN / "frames"))
    dark = read_array(str(REAL_SCAN / "dark.tif")).astype(np.float64)
    flat = read_array(str(REAL_SCAN / "whitefield.tif")).astype(np.float64)
    cfg = RunConfig(device="cpu", prep=replace(RunConfig().prep, max_size=args.max_size),
                    detector=DetectorConfig(roi=[0, 256, 0, 256])).validate()
    start = time.perf_counter()
    corrected = condition_detector(frames, cfg.detector, dark=dark, flat=flat)
    prep_s = time.perf_counter() - start
    rule = _beamline_rule(dark, flat, (slice(0, 256), slice(0, 256)))
    found = corrected.masks.get("dark", np.zeros(frames.shape, bool)) | corrected.masks.get("flat", False)
    found_pixels = found.any(axis=0)
    alien = corrected.masks.get("alien")
    report = {
        "machine": machine_description(),
        "preparation_s": round(prep_s, 1),
        "excluded": corrected.excluded,
        "beamline_rule_pixels": int(rule.sum()),
        "found_dark_or_flat_pixels": int(found_pixels.sum()),
        "identical_to_rule": bool(np.array_equal(found_pixels, rule)),
    }
    if alien is not None:
        where = np.argwhere(alien)
        report["alien_box_frames_rows_cols"] = [[int(lo), int(hi) + 1] for lo, hi in zip(where.min(0), where.max(0))]
        report["alien_centre"] = [round(float(c), 1) for c in where.mean(0)]
    print(json.dumps(report, indent=1), flush=True)
    uncorrected_cfg = replace(cfg, detector=DetectorConfig(aliens=AlienHandling.OFF)).validate()
    raw_prepared = condition_detector(frames, uncorrected_cfg.detector)
    results = {"raw": _reconstruct_real(raw_prepared, uncorrected_cfg)}
    print("raw:", results["raw"], flush=True)
    results["dark+flat+alien mask"] = _reconstruct_real(corrected, cfg)
    print("corrected:", results["dark+flat+alien mask"], flush=True)
    print(f"\nmachine: {machine_description()}; frame cap {args.max_size}")
    print("| data | R-factor | Poisson LLK | free Poisson LLK | free R | support (voxels) | time (s) |")
    print("|---|---|---|---|---|---|---|")
    for name, m in results.items():
        print(f"| {name} | {m['r_factor']:.4f} | {m['llk_poisson']:.4f} | {m['free_llk_poisson']:.4f} | "
              f"{m['free_r_factor']:.4f} | {m['support_size']} | {m['wall_s']} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["planted", "real"])
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--max-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rim-transmission", type=float, default=1.0,
                        help="planted: thin the counts of the ring around the beamstop to this fraction (a penumbra)")
    args = parser.parse_args()
    limit_threads(args.threads)
    {"planted": planted, "real": real}[args.part](args)


if __name__ == "__main__":
    main()
