"""Does a coherent Poisson maximum-likelihood refinement bring faint-pattern results closer to the truth? (issue 15)

At a few photons per pixel the default reconstructions of the corpus's
low-flux patterns fit their *fitted* pixels at up to several times what a
model as good as the counts allow would score
(:func:`cdi_dip.metrics.expected_poisson_deviance`): the projection steps
impose the noisy square roots of the counts, not their likelihood. PyNX
ends its reconstructions with a maximum-likelihood refinement; this measures
what one does here. Each case is reconstructed as ``cdi-dip reconstruct``
does by default (``corpus_matrix.reconstruct_file``), its written object is
moved back onto its pattern (:func:`cdi_dip.ensemble.restart_object`), and
the values on its support grown by ``--margin`` pixels are fitted to the
fitted pixels' counts by :func:`cdi_dip.polish.polish` with a coherent
model (L-BFGS on ``sum(m - n log m)``, ``m = |F x|^2``, stopped when the
held-out pixels' deviance has not fallen for two checks of 25 iterations;
the state where it was lowest is kept). Printed per case: the error against the truth before and
after, and the fitted and held-out pixels' deviance over its expectation
before and after (1 is the counting noise).

    python benchmarks/likelihood_refinement.py --half tuning --quick --conditions low-flux --per-family 3

Measured (docs/benchmarks.md, "What the counts allow", nineteenth session):
the refinement fits the fitted pixels below the counting noise and makes the
objects worse, so it is not a tool option.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from common import add_corpus_arguments, limit_threads, machine_description, score, selected_corpus_cases
from corpus_matrix import reconstruct_file

from cdi_dip.corpus import write_case
from cdi_dip.ensemble.align import restart_object
from cdi_dip.io.result_cxi import read_result_cxi
from cdi_dip.metrics import expected_poisson_deviance, poisson_deviance
from cdi_dip.physics import FarField
from cdi_dip.polish import polish
from cdi_dip.support import dilate_mask


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_corpus_arguments(parser, half="tuning")
    parser.add_argument("--iterations", type=int, default=600, help="most L-BFGS iterations (default 600)")
    parser.add_argument("--margin", type=int, default=1, help="growth of the support before the fit, pixels")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads")
    return parser.parse_args(argv)


def excess(model: torch.Tensor, counts: torch.Tensor, pixels: torch.Tensor) -> float:
    """Poisson deviance per pixel over its expectation under ``model`` (1: the counting noise)."""
    return poisson_deviance(model, counts, pixels) / expected_poisson_deviance(model, pixels)


def refine(result_path: Path, args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """The written object moved back onto its pattern and cut to its support grown by ``args.margin`` (where the
    refinement starts), and the same refined by :func:`cdi_dip.polish.polish` with a coherent model (itself
    where the refinement did not lower the held-out pixels' deviance); the fitted and held-out pixels' excess
    before and after."""
    result = read_result_cxi(result_path).result
    start = restart_object(result.obj, result.support, result.align)
    counts = np.asarray(result.measurement.intensity, dtype=np.float64)
    free = np.asarray(result.free, dtype=bool)
    fitted = np.asarray(result.measurement.valid, dtype=bool) & ~free
    held = dilate_mask(torch.from_numpy(np.asarray(result.support, dtype=bool)), args.margin).numpy()
    start = (start * held).astype(np.complex64)
    polished = polish(start, result.support, counts, fitted, None, free=free, iterations=args.iterations,
                      margin_px=args.margin)
    refined = start if polished is None else polished.obj
    physics = FarField(start.shape)
    as_tensors = [torch.from_numpy(a) for a in (counts, fitted, free)]

    def excesses(obj: np.ndarray) -> tuple[float, float]:
        model = physics.intensity(torch.from_numpy(obj)).double()
        return excess(model, as_tensors[0], as_tensors[1]), excess(model, as_tensors[0], as_tensors[2])

    (fitted_before, free_before), (fitted_after, free_after) = excesses(start), excesses(refined)
    return start, refined, {"fitted_before": fitted_before, "free_before": free_before,
                            "fitted_after": fitted_after, "free_after": free_after}


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    limit_threads(args.threads)
    print(machine_description())
    cases = selected_corpus_cases(args)
    before, after = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            folder = Path(tmp) / case.label.replace("/", "_")
            folder.mkdir()
            write_case(folder / "scan.cxi", case)
            summary, _ = reconstruct_file(folder / "scan.cxi", "auto", folder / "out", iterations=None, device=None)
            start, refined, figures = refine(Path(summary["output"]), args)
            before.append(score(start, case.truth)["error"])
            after.append(score(refined, case.truth)["error"])
            print(f"{case.label} ({summary['method']}): error {before[-1]:.3f} -> {after[-1]:.3f}; excess over the "
                  f"counting noise, fitted {figures['fitted_before']:.2f} -> {figures['fitted_after']:.2f}, "
                  f"held out {figures['free_before']:.2f} -> {figures['free_after']:.2f}", flush=True)
    if before:
        print(f"\n{len(before)} cases: median error {statistics.median(before):.3f} -> {statistics.median(after):.3f}; "
              f"better by 0.05 {sum(a < b - 0.05 for b, a in zip(before, after))}, "
              f"worse by 0.05 {sum(a > b + 0.05 for b, a in zip(before, after))}")


if __name__ == "__main__":
    main()
