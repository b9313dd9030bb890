"""Is the kernel the bottleneck on blurred patterns? Reconstructions given the true kernel (issue 15).

On the corpus's ``blur`` condition (intensities convolved with a Gaussian of
0.5-2 px) every method fails (docs/benchmarks.md). This script separates
the two halves of the problem, on the tuning half only:

- ``default``: the tool's default (``--psf compare``);
- ``none``: the coherent model alone;
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

With ``--truth-ml`` a row also gives how far the counts let a likelihood
estimate sit from the truth: the Poisson maximum-likelihood object under the
true kernel, started *from the truth* on its support grown by 1 px
(:func:`ml_from_truth`, L-BFGS). It is not a bound (a prior can do better, and
at low flux an unregularised estimate drifts into the noise), but where it is
far below every reconstruction the gap is the search, not the data.

    python benchmarks/blur_oracle.py --methods hio --threads 1
    python benchmarks/blur_oracle.py --methods dip --models true --threads 1
    python benchmarks/blur_oracle.py --models none --per-family 8 --truth-ml --threads 1
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch
from common import limit_threads, machine_description, score
from corpus_matrix import reconstruct_file

from cdi_dip.corpus import CorpusCase, corpus_cases, write_case
from cdi_dip.deconvolution import blurred_model, wiener_deconvolved
from cdi_dip.io.readers import read_object
from cdi_dip.support import dilate_mask

MODELS = ("default", "none", "auto", "true", "deconvolved")


def envelope_at_largest_lag(sigma_px: float, oversampling: tuple[float, ...]) -> float:
    """The blur's Fourier transform at the object's largest autocorrelation lag (1 = no loss)."""
    return math.exp(-2 * math.pi**2 * sigma_px**2 / min(oversampling) ** 2)


def ml_from_truth(case: CorpusCase, iterations: int = 300) -> float:
    """The symmetry-adjusted error of the Poisson maximum-likelihood object under the case's true kernel,
    started from the truth and held to the truth's support (magnitudes above 5 % of the maximum) grown by
    1 px; L-BFGS on the measured pixels of the file."""
    truth = torch.from_numpy(case.truth).to(torch.complex128)
    counts = torch.from_numpy(case.counts).double()
    valid = torch.from_numpy(case.valid)
    support = dilate_mask(truth.abs() > 0.05 * truth.abs().max(), 1)
    dims = tuple(range(truth.ndim))
    field = torch.nn.Parameter(torch.view_as_real(truth.clone()))
    optimiser = torch.optim.LBFGS([field], max_iter=iterations, history_size=20, line_search_fn="strong_wolfe")

    def model_of(obj: torch.Tensor) -> torch.Tensor:
        coherent = torch.fft.fftshift(torch.fft.fftn(torch.fft.ifftshift(obj, dim=dims), dim=dims, norm="ortho"), dim=dims)
        return blurred_model(coherent.abs().square(), case.settings.psf_sigma_px).double().clamp_min(1e-9)

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        model = model_of(torch.view_as_complex(field) * support)
        loss = (model - counts * torch.log(model))[valid].mean()
        loss.backward()
        return loss

    optimiser.step(closure)
    estimate = (torch.view_as_complex(field) * support).detach().numpy()
    return score(estimate, case.truth)["error"]


def run_model(case: CorpusCase, model: str, method: str, folder: Path, eps: float) -> float:
    """The symmetry-adjusted error of ``method`` on ``case`` under one model of the blur."""
    sigma = case.settings.psf_sigma_px
    psf = {"default": None, "none": "none", "auto": "auto", "true": f"gaussian,{sigma:.3f}", "deconvolved": "none"}[model]
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
    parser.add_argument("--per-family", type=int, default=1, help="seeds per family (default 1)")
    parser.add_argument("--truth-ml", action="store_true",
                        help="add the likelihood estimate started from the truth (ml_from_truth)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    limit_threads(args.threads)
    methods, models = args.methods.split(","), args.models.split(",")
    errors: dict[tuple[str, str], list[float]] = {}
    print(f"machine: {machine_description()}\ntuning half, 2D quick, condition blur, seed 0\n")
    columns = [f"{m} {k}" for m in methods for k in models] + (["ML from the truth"] if args.truth_ml else [])
    print("| family | seed | frame | sigma (px) | min oversampling | envelope | " + " | ".join(columns) + " |")
    print("|---" * (6 + len(columns)) + "|")
    with tempfile.TemporaryDirectory(prefix="cdi-dip-blur-") as tmp:
        for case in corpus_cases("tuning", dims=(2,), quick=True, per_family=args.per_family, conditions=["blur"]):
            cells = []
            for method in methods:
                for model in models:
                    folder = Path(tmp) / f"{case.family}_{case.seed}_{method}_{model}"
                    folder.mkdir()
                    error = run_model(case, model, method, folder, args.wiener)
                    errors.setdefault((method, model), []).append(error)
                    cells.append(f"{error:.3f}")
            if args.truth_ml:
                error = ml_from_truth(case)
                errors.setdefault(("ML", "truth"), []).append(error)
                cells.append(f"{error:.3f}")
            sigma = case.settings.psf_sigma_px
            print(f"| {case.family} | {case.seed} | {'x'.join(map(str, case.shape))} | {sigma:.2f} | {min(case.oversampling):.2f} | "
                  f"{envelope_at_largest_lag(sigma, case.oversampling):.1e} | " + " | ".join(cells) + " |", flush=True)
    keys = [(m, k) for m in methods for k in models] + ([("ML", "truth")] if args.truth_ml else [])
    print("| median | | | | | | " + " | ".join(f"{statistics.median(errors[key]):.3f}" for key in keys) + " |")


if __name__ == "__main__":
    main()
