"""The double DIP's object box: half the frame against the box from the autocorrelation (issue 15).

Crystals whose oversampling is below 2 along one axis (here about 1.8 x 2.5
in a 64^2 frame, as real Bragg data often is along the rocking axis) do not
fit in half the frame. Each case is reconstructed with the default double DIP
twice: with the box from the autocorrelation (the tool's default) and with
the half-frame box of earlier versions, and scored against the truth with the
symmetry-adjusted error.

    python benchmarks/dip_box.py --threads 1 --seeds 100,101,102

Seeds 100-102 are outside the corpus's seed ranges (docs/corpus.md); the
objects are ``simulate.faceted_crystal`` drawn at oversampling 2 and cut to
the frame along one axis.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from common import limit_threads, machine_description, score
from cdi_dip.config import Method, RunConfig
from cdi_dip.reconstruction import reconstruct
from cdi_dip.simulate import faceted_crystal, simulate_scan
from cdi_dip.solvers import dip as dip_module
from cdi_dip.types import Measurement

FRAME = 64
PEAK_COUNTS = 1e5


def undersampled_crystal(seed: int) -> np.ndarray:
    """A 64^2 frame holding a crystal about 36 x 26 px (oversampling about 1.8 x 2.5)."""
    rng = np.random.default_rng(seed)
    big = faceted_crystal((72, 52), rng=rng, size_fraction=0.5, strain_rad=1.0)
    obj = np.zeros((FRAME, FRAME), np.complex64)
    obj[:, 6:58] = big[4:68]
    return obj


def measurement_of(obj: np.ndarray, seed: int) -> Measurement:
    """Poisson counts of ``obj``'s far field (peak ``PEAK_COUNTS``), as if read from disk."""
    intensity = np.abs(np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(obj)))) ** 2
    counts = np.random.default_rng(seed).poisson(intensity * PEAK_COUNTS / intensity.max()).astype(np.float32)
    meta = simulate_scan("crystal", (FRAME, FRAME), rng=np.random.default_rng(0)).meta
    return Measurement(intensity=counts, valid=np.ones(counts.shape, bool), meta=meta, source="box", name="box",
                       roi=[(0, FRAME), (0, FRAME)])


def run(obj: np.ndarray, measurement: Measurement, *, half_box: bool) -> tuple[float, float]:
    """Error and seconds of the default double DIP, with the half-frame box when ``half_box``."""
    estimate = dip_module.object_extent_px
    if half_box:
        dip_module.object_extent_px = lambda counts, valid, physics: tuple(0.0 for _ in physics.shape)
    try:
        start = time.perf_counter()
        result = reconstruct(measurement, RunConfig(method=Method.DIP, seed=0).validate())
        return score(result.obj, obj)["error"], time.perf_counter() - start
    finally:
        dip_module.object_extent_px = estimate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="100,101,102")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    limit_threads(args.threads)
    print(f"machine: {machine_description()}")
    for seed in (int(s) for s in args.seeds.split(",")):
        obj = undersampled_crystal(seed)
        measurement = measurement_of(obj, seed)
        for half_box in (True, False):
            error, seconds = run(obj, measurement, half_box=half_box)
            box = "half frame" if half_box else "autocorrelation"
            print(f"seed {seed} box {box:15s} error {error:.3f} ({seconds:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
