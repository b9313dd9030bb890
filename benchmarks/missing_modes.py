"""Support modes hidden by a masked beamstop, and what they do to the reconstructions (issue 15).

For every ``beamstop-masked`` case of one half of the corpus: the hidden
modes (:mod:`cdi_dip.missing_modes`) of the true support (|truth| above 5 %
of its maximum) and of the support the tool wrote, the error of the default
reconstruction (``cdi-dip reconstruct`` as a user runs it, seed 0), and
whether the summary carries ``missing_modes_warning``. With ``--oracle``,
also HIO given the true support (dilated by one pixel), held fixed (no
shrinkwrap), with the default plan and with ten times its iterations: the
best of two starts. That says whether a better support would rescue the
failures. With ``--information`` (no reconstruction): how much the counts
say about the hidden modes of the true support, from the singular values of
the masked Fourier map ``A``: the least power any support mode leaks into
measured pixels, and the truth's error the counting noise alone allows on
its components along the modes (a Fisher estimate: a mode leaking ``leak``
of its power is measured to ``1 / (2 sqrt(leak))`` in photon amplitude; the
part of the truth below that is lost), relative to the truth's norm.

    python benchmarks/missing_modes.py --half tuning --dims 2 --threads 1
    python benchmarks/missing_modes.py --half tuning --dims 2 --oracle --methods hio --threads 1
    python benchmarks/missing_modes.py --half tuning --dims 2 --information
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import statistics
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common import limit_threads, machine_description, score
from corpus_matrix import FAILURE_ERROR, reconstruct_file

from cdi_dip.config import Method, RunConfig
from cdi_dip.corpus import CorpusCase, corpus_cases, write_case
from cdi_dip.ensemble import symmetry_adjusted_error
from cdi_dip.io.readers import read_object
from cdi_dip.missing_modes import HIDDEN_FRACTION, masked_centre_frequencies, missing_modes
from cdi_dip.physics import FarField
from cdi_dip.solvers.base import Problem
from cdi_dip.solvers.init import random_phases
from cdi_dip.solvers.projections import ProjectionRun, solve_projections
from cdi_dip.support import dilate_mask

TRUE_SUPPORT_LEVEL = 0.05
"""The true support: |truth| above this fraction of its maximum."""

ORACLE_PLANS = {"600": "3*(20*ER+180*HIO)+20*ER", "6000": "30*(20*ER+180*HIO)+200*ER"}
"""HIO plans of the fixed-support oracle: the default's length and ten times it."""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--half", default="reporting", choices=("tuning", "reporting"))
    parser.add_argument("--dims", default="2", help="2, 3 or 2,3")
    parser.add_argument("--families", default=None, help="comma-separated; default all of the half's")
    parser.add_argument("--per-family", type=int, default=2, help="seeds per family")
    parser.add_argument("--methods", default="auto", help="comma-separated methods run as a user runs them")
    parser.add_argument("--oracle", action="store_true", help="also HIO with the true support held fixed")
    parser.add_argument("--information", action="store_true",
                        help="only what the counts say about the true support's hidden modes (no reconstruction)")
    parser.add_argument("--threads", type=int, default=None)
    return parser.parse_args(argv)


def true_support(case: CorpusCase) -> np.ndarray:
    amplitude = np.abs(case.truth)
    return amplitude > TRUE_SUPPORT_LEVEL * amplitude.max()


class _FixedSupport:
    """Random phases inside a given support, which it also offers as the initial support."""

    def __init__(self, support: torch.Tensor):
        self.support = support

    def __call__(self, problem: Problem, support: torch.Tensor, *, rng: torch.Generator) -> torch.Tensor:
        return random_phases(problem, support, rng=rng)

    def initial_support(self, problem: Problem) -> torch.Tensor:
        return self.support


def oracle_errors(case: CorpusCase) -> dict[str, float]:
    """HIO with the true support (dilated 1 px) held fixed: the best of two starts per plan length."""
    counts = torch.from_numpy(np.where(case.valid, case.counts, 0).astype(np.float32))
    problem = Problem.build(counts, torch.from_numpy(case.valid), FarField(case.truth.shape))
    init = _FixedSupport(dilate_mask(torch.from_numpy(true_support(case)), 1))
    cfg = RunConfig()
    errors = {}
    for name, plan in ORACLE_PLANS.items():
        settings = dataclasses.replace(cfg.projection, shrinkwrap_period=0, plan=plan)
        run = ProjectionRun.from_config(dataclasses.replace(cfg, method=Method.HIO, projection=settings))
        found = [symmetry_adjusted_error(np.asarray(solve_projections(problem, run, init=init, rng=torch.Generator().manual_seed(s)).obj), case.truth)
                 for s in range(2)]
        errors[f"oracle_{name}"] = min(found)
    return errors


def information_row(case: CorpusCase) -> dict[str, Any]:
    """The weakest leak of a true-support mode into measured pixels and the truth's noise-limited loss."""
    support = true_support(case)
    frequencies, _ = masked_centre_frequencies(case.valid)
    points = np.argwhere(support)
    phase = sum(np.outer(frequencies[:, a], points[:, a]) / n for a, n in enumerate(support.shape))
    _, singular, modes = np.linalg.svd(np.exp(-2j * np.pi * phase) / np.sqrt(support.size), full_matrices=False)
    leak = np.clip(1 - singular ** 2, 1e-16, 1.0)
    truth = case.truth[support]
    photons = float(np.sum(np.abs(truth) ** 2))
    coefficients = np.abs(modes.conj() @ truth)
    noise = 1 / (2 * np.sqrt(leak))  # photon amplitude
    lost = float(np.sqrt(np.sum(np.minimum(coefficients, noise) ** 2) / photons))
    return {"label": case.label, "photons": photons, "hidden": int(np.count_nonzero(singular ** 2 > HIDDEN_FRACTION)),
            "weakest_leak": float(leak.min()), "noise_limited_error": lost}


def case_row(case: CorpusCase, method: str, folder: Path) -> dict[str, Any]:
    scan = folder / f"{case.label.replace('/', '_')}.cxi"
    write_case(scan, case)
    summary, seconds = reconstruct_file(scan, method, folder / f"{scan.stem}_{method}", iterations=None, device=None)
    modes = missing_modes(case.valid, true_support(case))
    return {"label": case.label, "method": method, "used": summary["method"], "radius_px": case.settings.beamstop_px,
            "true_hidden": modes.hidden if modes else 0,
            "written_hidden": summary.get("missing_modes", {}).get("hidden", 0),
            "warned": "missing_modes_warning" in summary,
            "error": score(read_object(summary["output"]), case.truth)["error"], "seconds": seconds}


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    limit_threads(args.threads)
    dims = tuple(int(d) for d in args.dims.split(","))
    families = args.families.split(",") if args.families else None
    cases = corpus_cases(args.half, dims=dims, quick=True, per_family=args.per_family, families=families,
                         conditions=("beamstop-masked",))
    if args.information:
        print("| case | photons | hidden modes, true support | weakest leak | noise-limited error |\n|---|---|---|---|---|")
        for case in cases:
            row = information_row(case)
            print(f"| {row['label']} | {row['photons']:.2g} | {row['hidden']} | {row['weakest_leak']:.1e} | "
                  f"{row['noise_limited_error']:.3f} |", flush=True)
        return
    rows = []
    print("| case | method (used) | beamstop radius (px) | hidden modes, true support | hidden modes, written "
          "support | warned | error |" + (" HIO, true support fixed, 600 / 6000 it |" if args.oracle else ""))
    print("|---|---|---|---|---|---|---|" + ("---|" if args.oracle else ""))
    with tempfile.TemporaryDirectory(prefix="cdi-dip-modes-") as tmp:
        for case in cases:
            for method in args.methods.split(","):
                row = case_row(case, method, Path(tmp))
                if args.oracle:
                    row.update(oracle_errors(case))
                rows.append(row)
                oracle = f" {row['oracle_600']:.3f} / {row['oracle_6000']:.3f} |" if args.oracle else ""
                print(f"| {row['label']} | {method} ({row['used']}) | {row['radius_px']:.0f} | {row['true_hidden']} | "
                      f"{row['written_hidden']} | {'yes' if row['warned'] else 'no'} | {row['error']:.3f} |{oracle}",
                      flush=True)
    print(f"\nmachine: {machine_description()}; half {args.half}, quick frames, seed 0; failure: error > {FAILURE_ERROR}")
    for warned in (True, False):
        group = [r["error"] for r in rows if r["warned"] == warned]
        if group:
            failures = sum(e > FAILURE_ERROR for e in group)
            print(f"{'warned' if warned else 'not warned'}: {len(group)} cases, median error "
                  f"{statistics.median(group):.3f}, failures {failures}/{len(group)}")


if __name__ == "__main__":
    main()
