"""Tuning-half objects under an incoherent background of the tuning side's own shape (issue 15).

The reporting half's ``background`` condition (a Gaussian fall-off with slow
ripples, ``cdi_dip.corpus.detector.smooth_background``) is never tuned on.
This script puts a background of another shape under the tuning half's
objects: a Lorentzian-like fall-off over a floor (air scattering), ``0.4 +
0.6 / (1 + (r / r0)^2)`` with ``r0`` 0.2-0.6 of the half-frame, tilted by a
gradient of up to +-30 % across the frame (stray light), with a mean of
0.5-5 photons per pixel under 1e4-1e6 photons at the peak (log-uniform),
drawn from ``default_rng([seed, 777])``. Each pattern is reconstructed
(``cdi_dip.pipeline.reconstruct_scan``, default configuration, seed 0) as:

- ``raw``: the counts as measured (``--background none``);
- ``oracle``: the counts less the true background (clipped at 0), what a
  perfect background estimate would give (``--background none``);
- ``subtract``: the counts as measured with ``--background subtract``;
- ``compare``: the counts as measured with ``--background compare``.

    python benchmarks/background_tuning.py --per-family 2 --variants raw,oracle,compare --json bg.json
    python benchmarks/background_tuning.py --dims 3 --method hio --per-family 4 --variants raw,compare
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import statistics
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from common import limit_threads, machine_description, score
from cdi_dip.config import load_config
from cdi_dip.corpus import CorpusCase, corpus_cases, write_case
from cdi_dip.io.readers import read_object
from cdi_dip.pipeline import reconstruct_scan
from cdi_dip.simulate import expected_intensity

VARIANTS = ("raw", "oracle", "subtract", "compare")


def tuning_background(shape: Sequence[int], rng: np.random.Generator, mean_counts: float) -> np.ndarray:
    """The tuning side's background (photons per pixel, centred, mean ``mean_counts``); see the module text."""
    grids = np.meshgrid(*[np.arange(n) - n // 2 for n in shape], indexing="ij")
    radius = np.sqrt(sum((g / (n / 2)) ** 2 for g, n in zip(grids, shape)))
    r0 = rng.uniform(0.2, 0.6)
    tilt = 1 + sum(s * g / n for s, g, n in zip(rng.uniform(-0.3, 0.3, len(shape)), grids, shape))
    background = (0.4 + 0.6 / (1 + (radius / r0) ** 2)) * tilt
    return background * mean_counts / background.mean()


def with_background(case: CorpusCase) -> tuple[CorpusCase, np.ndarray]:
    """The case's object re-measured at 1e4-1e6 photons at the peak over a tuning background, and that
    background."""
    rng = np.random.default_rng([case.seed, 777])
    expected = expected_intensity(case.truth)
    scale = 10 ** rng.uniform(4, 6) / expected.max()
    background = tuning_background(case.shape, rng, 10 ** rng.uniform(np.log10(0.5), np.log10(5)))
    counts = rng.poisson(expected * scale + background).astype(np.float32)
    truth = (case.truth * np.sqrt(scale)).astype(np.complex64)
    return dataclasses.replace(case, counts=counts, truth=truth, condition="tuning-background"), background


def run_variant(case: CorpusCase, background: np.ndarray, variant: str, method: str | None = None) -> dict:
    """One reconstruction of ``case`` as ``variant`` names it (``raw`` and ``oracle`` with ``--background none``),
    by ``method`` (default: the default method); its error and what ``--background`` decided."""
    counts = case.counts if variant != "oracle" else np.clip(case.counts - background, 0, None).astype(np.float32)
    work = Path(tempfile.mkdtemp())
    try:
        write_case(work / "scan.cxi", dataclasses.replace(case, counts=counts))
        asked = {"background": variant if variant in ("subtract", "compare") else "none"}
        cfg = load_config(None, {**asked, **({"method": method} if method else {})})
        summary = reconstruct_scan(str(work / "scan.cxi"), cfg, work / "out")
        error = score(read_object(summary["output"]), case.truth)["error"]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    record = (summary.get("method_choice") or {}).get("background") or {}
    return {"family": case.family, "seed": case.seed, "dim": case.dim, "variant": variant, "error": round(error, 4),
            "background_mean": round(float(background.mean()), 3), "peak": round(float(case.counts.max())),
            "estimated_level": record.get("level_photons"),
            "chosen": record.get("chosen"), "margin_z": record.get("margin_z")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-family", type=int, default=2)
    parser.add_argument("--dims", default="2", help="2, 3 or 2,3 (default 2; 3D frames are quick ones)")
    parser.add_argument("--method", default=None, help="reconstruction method (default: the default, auto)")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    limit_threads(args.threads)
    variants = [v for v in args.variants.split(",") if v]
    rows = []
    dims = tuple(int(d) for d in args.dims.split(","))
    for case in corpus_cases("tuning", dims=dims, quick=True, per_family=args.per_family, conditions=["clean"]):
        measured, background = with_background(case)
        for variant in variants:
            rows.append(run_variant(measured, background, variant, args.method))
            print(json.dumps(rows[-1]), flush=True)
    for variant in variants:
        errors = [row["error"] for row in rows if row["variant"] == variant]
        print(f"{variant}: median {statistics.median(errors):.3f}, failures {sum(e > 0.3 for e in errors)} of "
              f"{len(errors)}")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine_description(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
