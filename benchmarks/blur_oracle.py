"""Is the kernel the bottleneck on blurred patterns? Reconstructions given the true kernel (issue 15).

On the corpus's ``blur`` condition (intensities convolved with a Gaussian of
0.5-2 px) every method fails (docs/benchmarks.md). This script separates
the two halves of the problem, on the tuning half only:

- ``none``: the default, coherent model;
- ``auto``: the kernel fitted during the run (``--psf auto``);
- ``true``: the true kernel, held fixed (``--psf gaussian,SIGMA``), so only the
  optimisation is left;
- ``deconvolved``: the counts deconvolved with the true kernel before a
  coherent run (a Wiener filter on the autocorrelation, ``--wiener``;
  :func:`cdi_dip.deconvolution.wiener_deconvolved`), which makes the modulus
  step a projection again (``--psf compare`` now tries it at several widths).

Each row also gives the kernel's information limit: the factor
``exp(-2 pi^2 sigma^2 / s^2)`` by which the blur scales the autocorrelation at
the object's largest lag (``s`` the smallest oversampling of the case). Below
about 0.01 the outer autocorrelation, where the object's outline is coded,
lies under the counting noise of any realistic exposure.

    python benchmarks/blur_oracle.py --methods hio --threads 1
    python benchmarks/blur_oracle.py --methods dip --models true --threads 1
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import tempfile
from pathlib import Path

import numpy as np
from common import limit_threads, machine_description, score
from corpus_matrix import reconstruct_file

from cdi_dip.corpus import CorpusCase, corpus_cases, write_case
from cdi_dip.deconvolution import wiener_deconvolved
from cdi_dip.io.readers import read_object

MODELS = ("none", "auto", "true", "deconvolved")


def envelope_at_largest_lag(sigma_px: float, oversampling: tuple[float, ...]) -> float:
    """The blur's Fourier transform at the object's largest autocorrelation lag (1 = no loss)."""
    return math.exp(-2 * math.pi**2 * sigma_px**2 / min(oversampling) ** 2)


def run_model(case: CorpusCase, model: str, method: str, folder: Path, eps: float) -> float:
    """The symmetry-adjusted error of ``method`` on ``case`` under one model of the blur."""
    sigma = case.settings.psf_sigma_px
    psf = {"none": None, "auto": "auto", "true": f"gaussian,{sigma:.3f}", "deconvolved": None}[model]
    if model == "deconvolved":
        counts = wiener_deconvolved(case.counts, case.valid, np.zeros_like(case.counts), sigma, eps)
        case = dataclasses.replace(case, counts=counts)
    scan = folder / f"{model}.cxi"
    write_case(scan, case)
    summary, _ = reconstruct_file(scan, method, folder / f"{model}_out", iterations=None, device=None, psf=psf)
    return score(read_object(summary["output"]), case.truth)["error"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default="hio", help="comma-separated methods (default hio)")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of {', '.join(MODELS)}")
    parser.add_argument("--wiener", type=float, default=1e-3, help="Wiener constant of 'deconvolved' (default 1e-3)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    limit_threads(args.threads)
    methods, models = args.methods.split(","), args.models.split(",")
    errors: dict[tuple[str, str], list[float]] = {}
    print(f"machine: {machine_description()}\ntuning half, 2D quick, condition blur, seed 0\n")
    print("| family | frame | sigma (px) | min oversampling | envelope | " +
          " | ".join(f"{m} {k}" for m in methods for k in models) + " |")
    print("|---" * (5 + len(methods) * len(models)) + "|")
    with tempfile.TemporaryDirectory(prefix="cdi-dip-blur-") as tmp:
        for case in corpus_cases("tuning", dims=(2,), quick=True, per_family=1, conditions=["blur"]):
            cells = []
            for method in methods:
                for model in models:
                    folder = Path(tmp) / f"{case.family}_{method}_{model}"
                    folder.mkdir()
                    error = run_model(case, model, method, folder, args.wiener)
                    errors.setdefault((method, model), []).append(error)
                    cells.append(f"{error:.3f}")
            sigma = case.settings.psf_sigma_px
            print(f"| {case.family} | {'x'.join(map(str, case.shape))} | {sigma:.2f} | {min(case.oversampling):.2f} | "
                  f"{envelope_at_largest_lag(sigma, case.oversampling):.1e} | " + " | ".join(cells) + " |", flush=True)
    print("| median | | | | | " + " | ".join(f"{statistics.median(errors[(m, k)]):.3f}" for m in methods
                                            for k in models) + " |")


if __name__ == "__main__":
    main()
