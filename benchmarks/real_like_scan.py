"""A simulated Bragg scan shaped like the real 34-ID-C one, reconstructed as a user runs it (issue 15).

The real scan's signal fills a 200x256x240 region; on a CPU the automatic
frame cuts it to about 90x112x98 around the peak, so the object is seen at
coarser pixels, band-limited. The corpus's ``truncated`` condition does the
same on small frames; this script does it at the real scan's size and
exposure, to tell what the real scan's response to a setting owes to the
cut frame, to partial coherence, or to neither:

- a faceted, strained crystal (12 facets, 1 rad of strain) on a 168x224x200
  frame, at the real scan's oversampling per axis (8, 4.8, 3.6: its
  autocorrelation's), 1.6e5 photons at the peak (the real scan: 1.65e5);
- optionally the intensity blurred by a Gaussian PSF of ``--psf-sigma`` px
  (partial coherence) before the counting noise;
- ``cdi-dip reconstruct`` with the defaults, seed 0, and at most ``--config
  FILE`` and ``--psf P`` changed;
- the error against the truth band-limited to the frame the run chose (its
  ``roi``), with shift, global phase, twin and ramp removed (``error``), and
  against the whole truth (``error_full``: the result seen on the truth's
  frame, nothing beyond its frame's reach), which tells a frame that reaches
  further (binned, ``--bin``) from one that is cut.

    python benchmarks/real_like_scan.py --seed 0 --psf-sigma 0.7 --psf auto

Prints one JSON line (with what the default `--psf compare` decided). Takes 3-6 minutes on one CPU core,
about twice that when the blur test lets the fitted-kernel challenger run.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from common import limit_threads, machine_description, score

from cdi_dip.cli.common import build_config
from cdi_dip.cli.options import overrides
from cdi_dip.corpus.crystals import faceted_particle
from cdi_dip.corpus.detector import blur_intensity
from cdi_dip.io.readers import read_object
from cdi_dip.pipeline import reconstruct_scan
from cdi_dip.simulate import far_field

FRAME = (168, 224, 200)
OVERSAMPLING = (8.0, 4.8, 3.6)
PEAK_COUNTS = 1.6e5


def real_like_scan(seed: int, psf_sigma_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Counts (float32, :data:`FRAME`) and the object (complex64) of one real-like scan."""
    rng = np.random.default_rng(seed)
    obj = faceted_particle(FRAME, rng, oversampling=OVERSAMPLING, facets=12, strain_rad=1.0)
    intensity = np.abs(far_field(obj)) ** 2
    rate = blur_intensity(intensity * (PEAK_COUNTS / intensity.max()), psf_sigma_px)
    noise = np.random.default_rng(1000 + seed)
    return noise.poisson(rate).astype(np.float32), obj


def band_limited_truth(obj: np.ndarray, roi: list[list[int]]) -> np.ndarray:
    """The object as the frame ``roi`` (detector pixels, ``[start, stop)`` per axis) of its pattern sees it."""
    kept = far_field(obj)[tuple(slice(a, b) for a, b in roi)]
    return np.fft.fftshift(np.fft.ifftn(np.fft.ifftshift(kept), norm="ortho"))


def on_detector_pixels(obj: np.ndarray, roi: list[list[int]]) -> np.ndarray:
    """A result on binned array pixels (``roi`` spans ``b`` detector pixels per array pixel) with the same voxels
    on ``b`` times its frame: zero-padded in real space, so that its far field has one pixel per detector pixel."""
    shape = tuple(b - a for a, b in roi)
    if shape == obj.shape:
        return obj
    padded = np.zeros(shape, dtype=obj.dtype)
    start = [(n - m) // 2 for n, m in zip(shape, obj.shape)]
    padded[tuple(slice(a, a + m) for a, m in zip(start, obj.shape))] = obj
    return padded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--psf-sigma", type=float, default=0.0, help="Gaussian PSF on the intensity, px (0: none)")
    parser.add_argument("--config", type=Path, default=None, help="a TOML configuration for the run")
    parser.add_argument("--psf", default=None, help="the run's --psf")
    parser.add_argument("--bin", default=None, help="the run's --bin (e.g. 2 or 2,1,1)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    limit_threads(args.threads)
    counts, obj = real_like_scan(args.seed, args.psf_sigma)
    cfg = build_config(args.config, overrides({"seed": 0, "psf": args.psf, "bin": args.bin}))
    with tempfile.TemporaryDirectory(prefix="cdi-dip-real-like-") as tmp:
        scan = Path(tmp) / f"real_like_{args.seed}.npy"
        np.save(scan, counts)
        start = time.perf_counter()
        summary = reconstruct_scan(str(scan), cfg, Path(tmp) / "out")
        seconds = time.perf_counter() - start
        result = on_detector_pixels(read_object(summary["output"]), summary["roi"])
        error = score(result, band_limited_truth(obj, summary["roi"]))["error"]
        error_full = score(result, obj)["error"]
    row = {"machine": machine_description(), "seed": args.seed, "psf_sigma_px": args.psf_sigma,
           "config": str(args.config) if args.config else None, "psf": args.psf, "bin": args.bin,
           "frame": summary["shape"], "roi": summary["roi"], "error": round(error, 4), "error_full": round(error_full, 4), "free_llk": round(summary["metrics"]["free_llk_poisson"], 3),
           "r_factor": round(summary["metrics"]["r_factor"], 3), "seconds": round(seconds, 1),
           "fit_warning": bool(summary.get("fit_warning")),
           "coherence": (summary.get("method_choice") or {}).get("coherence")}
    print(json.dumps(row))


if __name__ == "__main__":
    main()
