"""A likelihood polish of a projection method's poor fit, before anything challenges it.

HIO, RAAR and ER fit the measured amplitudes by projections; on a bright
pattern a result in the truth's basin can still sit far above the counting
noise on the held-out pixels, because near a bright peak a relative misfit of
1 % is a deviance of tens per pixel. Such a fit sets off every challenger of
a poor fit in turn (more starts, the partial-coherence models, the frame
margin), each a whole reconstruction, and none wins: a 3D tuning crystal
with a saturated peak (error 0.022, free deviance 5.19 per pixel) took 41
minutes on a CPU core for the result its first 22 s had found.

:func:`polished_poor_fit` refines such a result by Poisson maximum likelihood
under the coherent model (:func:`cdi_dip.polish.polish`, the object on its
support grown by a pixel, stopped where the held-out pixels' deviance stops
falling), and keeps the refinement only where it resolves the poor fit (its
free deviance at most
:data:`cdi_dip.challenge_rules.CHALLENGE_FREE_DEVIANCE`) and fits the held-out
pixels significantly better by the challengers' paired test
(:func:`cdi_dip.metrics.challenge_margin`, z above 2). A polish that leaves
the fit poor says the misfit is the model's or the basin's, not the
convergence's, and there it fitted the counts at the object's expense (2D
tuning patterns cut by the frame: 0.057 -> 0.116 at a free deviance still of
11.7). The result it returns
is what the challengers then judge: where the polish brings the fit within
what the counts allow, none runs. Every reconstruction of the frame
(``cfg.polish_poor_fits``) is polished alike, challengers' included, so
they compare like with like.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import numpy as np
import torch

from .challenge_rules import CHALLENGE_FREE_DEVIANCE, CHALLENGE_SIGNIFICANCE
from .config import Method, RunConfig
from .config.psf import parse_psf
from .ensemble import align_object, restart_object
from .interrupts import interrupts_deferred
from .metrics import challenge_margin, data_metrics
from .polish import Polished, polish
from .solvers import Problem
from .types import Measurement, Result

log = logging.getLogger(__name__)

POLISHED_METHODS = (Method.HIO.value, Method.RAAR.value, Method.ER.value)
"""The methods whose poor fits are polished (the double DIP ends with its own polish)."""


def polish_asked(cfg: RunConfig, dimensions: int) -> bool:
    """``cfg.polish_poor_fits``, or where it is None (the default) whether the frame is 3D."""
    return cfg.polish_poor_fits if cfg.polish_poor_fits is not None else dimensions == 3


def wants_polish(result: Result, cfg: RunConfig) -> bool:
    """Whether ``result`` is polished: :func:`polish_asked`, a projection method's coherent result (no
    partial-coherence kernel in its model) with held-out pixels, not interrupted, whose free deviance per pixel
    is above :data:`~cdi_dip.challenge_rules.CHALLENGE_FREE_DEVIANCE`."""
    free_deviance = result.metrics.get("free_llk_poisson")
    return (polish_asked(cfg, len(result.measurement.shape)) and result.method in POLISHED_METHODS
            and not result.interrupted
            and result.free is not None and result.model_intensity is not None
            and parse_psf(cfg.psf).mode in ("none", "compare")
            and free_deviance is not None and free_deviance > CHALLENGE_FREE_DEVIANCE)


def polished_poor_fit(result: Result, measurement: Measurement, problem: Problem, cfg: RunConfig) -> Result:
    """``result``, or its likelihood polish where :func:`wants_polish` and the polish brings the free deviance to
    at most :data:`~cdi_dip.challenge_rules.CHALLENGE_FREE_DEVIANCE` and fits the held-out pixels significantly better;
    ``result.solver["likelihood_polish"]`` records what was done.

    Parameters
    ----------
    result : Result
        A method's combined result on ``measurement``.
    measurement : Measurement
        The counts it fitted (centred, photons).
    problem : Problem
        The same fit's pixels (``fit``, ``free``) and noise model, on the device the polish runs on.
    cfg : RunConfig

    Returns
    -------
    Result
        The polished result (object, support, alignment, model and data metrics new; the runs' spread
        ``obj_std`` dropped, the runs' ensemble and resolution kept) or ``result``; either marked
        interrupted where a signal came during the polish.
    """
    if not wants_polish(result, cfg):
        return result
    start = time.perf_counter()
    with interrupts_deferred() as finishing:
        polished = polish_of(result, measurement, problem, None)
    seconds = time.perf_counter() - start
    before = result.metrics["free_llk_poisson"]
    if polished is None:
        kept, record = result, {"kept": False, "reason": "the polish did not lower the held-out pixels' deviance"}
    else:
        candidate = polished_result(result, polished, problem, wall_s=result.wall_s + seconds)
        margin = challenge_margin(measurement.intensity, result.model_intensity, candidate.model_intensity,
                                  result.free)
        after = candidate.metrics.get("free_llk_poisson")
        resolved = after is not None and after <= CHALLENGE_FREE_DEVIANCE
        better = resolved and margin is not None and margin > CHALLENGE_SIGNIFICANCE
        kept = candidate if better else result
        record = {"kept": better, "margin_z": margin, "resolved": resolved,
                  "free_llk_poisson": {"as solved": before, "polished": after}}
    if kept is result:
        result.wall_s += seconds
    record["seconds"] = round(seconds, 3)
    log.info("likelihood polish of a poor fit (free Poisson LLK %.4g): %s", before, _describe(record))
    kept.solver = {**kept.solver, "likelihood_polish": record}
    kept.interrupted = kept.interrupted or finishing.requested
    return kept


def polish_of(base: Result, measurement: Measurement, problem: Problem,
              widths_px: list[float] | None) -> Polished | None:
    """The likelihood polish of ``base`` (:func:`cdi_dip.polish.polish`): its object restarted on its support, fitted
    to ``measurement``'s counts on ``problem``'s pixels and device, coherent (``widths_px`` None) or with a
    Gaussian blur of those start widths, real part kept non-negative where ``base`` imposed positivity; None
    where the held-out pixels' deviance did not fall."""
    return polish(restart_object(base.obj, base.support, base.align), base.support, measurement.intensity,
                  problem.fit.cpu().numpy(), widths_px, free=problem.free.cpu().numpy(),
                  positivity=bool(base.solver.get("positivity")), device=problem.device)


def polished_result(base: Result, polished: Polished, problem: Problem, **changes: Any) -> Result:
    """``base`` with the object of its polish: aligned anew, its model scored against the counts.

    Parameters
    ----------
    base : Result
        The result the polish started from.
    polished : Polished
        The polish (object, support and model intensity on ``base``'s frame).
    problem : Problem
        The counts, fitted and held-out pixels and noise model the model is scored on.
    **changes
        Further fields of the returned result (``dataclasses.replace``).

    Returns
    -------
    Result
        Object, support, alignment, model intensity and data metrics new; the runs' spread ``obj_std`` dropped.
    """
    aligned, support, align = align_object(polished.obj, polished.support)
    model = torch.from_numpy(np.ascontiguousarray(polished.model_intensity)).to(problem.device)
    figures = data_metrics(model, problem.counts, problem.fit, problem.free, noise=problem.noise)
    return dataclasses.replace(
        base, obj=aligned.astype(np.complex64), support=support, align=align,
        model_intensity=polished.model_intensity,
        metrics={**base.metrics, **figures, "support_size": int(support.sum())}, obj_std=None, **changes)


def _describe(record: dict[str, Any]) -> str:
    """A log line's account of a polish record."""
    if "free_llk_poisson" not in record:
        return f"not kept: {record['reason']}"
    after = record["free_llk_poisson"]["polished"]
    margin = record["margin_z"]
    z = f"z {margin:.2f}" if margin is not None else "z not measurable"
    return f"{'kept' if record['kept'] else 'not kept'} ({after:.4g} polished, {z})"
