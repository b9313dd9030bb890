"""The ``summary.json`` contract of one scan (DESIGN.md).

Besides the figures, the summary says what was done: ``selection`` (runs
asked, finished, kept and averaged, and why each one left out was
dropped), ``dip`` for the double DIP (where it stopped early, whether the
polish was kept, every solver iteration including the warm starts and, with
the variance early stop, the median relative iterate spread
``iterate_spread_median_relative``: :func:`iterate_spread`), and
``fit_warning`` when the fit sits far above the noise level, and
``missing_modes`` (with ``missing_modes_warning`` when it hides any) when
the centre of the pattern is masked (:mod:`cdi_dip.missing_modes`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..geometry import voxel_size_m
from ..metrics import deviance_excess, recorded_expectation
from ..missing_modes import missing_modes, missing_modes_warning
from ..types import Result

FIT_WARNING_DEVIANCE = 2.0
"""How many times what a model as good as the counts allow would score (:func:`cdi_dip.metrics.deviance_excess`)
a fit's Poisson deviance per pixel may be before it is flagged: such a model scores about 1 per pixel where
counts are a few photons or more, less where they are fainter."""

TIGHT_SUPPORT_OUTSIDE_FRACTION = 0.3
"""Fraction of ``|P_M x|^2`` outside the support, in the best kept projection run, above which a fit
warning adds that the support may be too tight. The real 34-ID-C scan's default runs leave 0.40-0.50
outside, and a 2 px margin around their final support lowers its free deviance from 4.05 to 2.23
(docs/benchmarks.md, "A margin around the final support")."""


def make_summary(result: Result, folder: Path, files: Sequence[Path]) -> dict[str, Any]:
    """The ``summary.json`` of one scan whose files are (or will be) in ``folder``."""
    name = result.measurement.name
    metrics = {k: v for k, v in result.metrics.items() if k not in ("iterations", "seconds_per_iteration")}
    summary = {
        "input": result.measurement.source,
        "output": str(folder / f"{name}.cxi"),
        "files": [str(f) for f in files],
        "method": result.method,
        "status": "ok",
        "interrupted": result.interrupted,
        "device": result.device,
        "shape": list(result.measurement.shape),
        "roi": [list(r) for r in result.measurement.roi],
        "excluded": dict(result.measurement.excluded),
        "preparation": dict(result.measurement.notes),
        "iterations": result.iterations,
        "runs": len(result.runs),
        "wall_s": round(result.wall_s, 3),
        "seconds_per_iteration": result.metrics.get("seconds_per_iteration"),
        "metrics": metrics,
        "seed": result.seed,
        "version": __version__,
        "versions": result.versions,
        "alignment": {"shift_px": list(result.align.shift_px), "ramp_rad_per_px": list(result.align.ramp_rad_per_px),
                      "phase_offset_rad": result.align.phase_offset_rad, "twin": result.align.twin},
        "config": result.config,
    }
    voxel = voxel_size_m(result.measurement.meta, np.shape(result.obj))
    if voxel is not None:
        summary["voxel_size_nm"] = [v * 1e9 for v in voxel]
    if result.beamstop_rim is not None:
        summary["beamstop_rim"] = result.beamstop_rim.summary()
    if result.ensemble is not None:
        summary["ensemble"] = result.ensemble.summary()
    if result.prtf is not None:
        summary["resolution"] = result.prtf.summary()
    if result.selection:
        summary["selection"] = result.selection
    if result.method_choice:
        summary["method_choice"] = result.method_choice
    if "likelihood_polish" in result.solver:
        summary["likelihood_polish"] = result.solver["likelihood_polish"]
    dip = dip_summary(result.solver) if result.method == "dip" else None
    spread = iterate_spread(result.obj_std, result.obj, result.support)
    if spread is not None:
        dip = {**(dip or {}), "iterate_spread_median_relative": spread}
    if dip:
        summary["dip"] = dip
    warning = fit_warning(result.metrics, tight_support_hint(result.runs, result.config))
    if warning:
        summary["fit_warning"] = warning
    modes = missing_modes(result.measurement.valid, result.support)
    if modes is not None:
        summary["missing_modes"] = modes.summary()
        hidden = missing_modes_warning(modes)
        if hidden:
            summary["missing_modes_warning"] = hidden
    return summary


EARLY_STOP_KEYS = ("early_stop_criterion", "stopped_by", "free_stop_iteration", "variance_stop_iteration",
                   "variance_min_iteration")
"""The double DIP's early-stop record (:meth:`cdi_dip.solvers.dip._Runner.stop_record`) copied into the summary."""


def dip_summary(solver: dict[str, Any]) -> dict[str, Any]:
    """What the double DIP of the kept run did, from its solver record (``Result.solver``).

    Returns
    -------
    dict
        ``stop_iteration`` (the fit iteration whose iterate was kept: the
        early stop), ``iterations_budget``, ``polish`` (``"kept"``,
        ``"discarded"`` or ``"not run"``) and ``work_iterations`` (every
        solver iteration, warm starts, prefit and polish included), and
        ``early_stop``: the record's :data:`EARLY_STOP_KEYS` (the criterion,
        which one stopped the run, the iteration at which each said stop),
        and ``loss``: the data loss it fitted (``amplitude``, ``poisson``
        or ``gaussian``); only the keys the record holds. Empty when it
        holds none.
    """
    out = {key: solver[key] for key in ("stop_iteration", "iterations_budget", "work_iterations", "loss")
           if key in solver}
    stop = {key: solver[key] for key in EARLY_STOP_KEYS if key in solver}
    if stop:
        out["early_stop"] = stop
    if "polish_kept" in solver:
        out["polish"] = "kept" if solver["polish_kept"] else "discarded"
    elif out:
        out["polish"] = "not run"
    return out


def iterate_spread(obj_std: np.ndarray | None, obj: np.ndarray, support: np.ndarray) -> float | None:
    """The median relative iterate spread inside the support: ``median(obj_std / |obj|)``.

    Parameters
    ----------
    obj_std : numpy.ndarray, real, shape S, or None
        The double DIP's iterate spread (``Result.obj_std``), photon
        amplitude, aligned with ``obj``.
    obj : numpy.ndarray, complex, shape S
        The written object, photon amplitude.
    support : numpy.ndarray, bool, shape S
        Its support.

    Returns
    -------
    float or None
        Dimensionless, over the support's voxels where ``|obj| > 0`` (NaN
        when there are none); None without a map.
    """
    if obj_std is None:
        return None
    amplitude = np.abs(np.asarray(obj))
    inside = np.asarray(support, dtype=bool) & (amplitude > 0)
    if not inside.any():
        return float("nan")
    return float(np.median(np.asarray(obj_std, dtype=np.float64)[inside] / amplitude[inside]))


def tight_support_hint(runs: Sequence[dict[str, Any]], config: dict[str, Any]) -> str | None:
    """A hint for the fit warning when the best kept projection run left much of its power outside the support.

    Parameters
    ----------
    runs : sequence of dict
        ``Result.runs``: each run's ``score`` (lower is better), ``kept`` and,
        for the projection solvers, ``outside_fraction``.
    config : dict
        The run's configuration (``Result.config``): no hint when
        ``projection.final_support_margin_px`` is already set.

    Returns
    -------
    str or None
        None below :data:`TIGHT_SUPPORT_OUTSIDE_FRACTION` or without a projection run.
    """
    if (config.get("projection") or {}).get("final_support_margin_px"):
        return None
    kept = [run for run in runs if run.get("kept") and isinstance(run.get("outside_fraction"), (int, float))]
    if not kept:
        return None
    best = min(kept, key=lambda run: run.get("score", math.inf))
    fraction = float(best["outside_fraction"])
    if not fraction > TIGHT_SUPPORT_OUTSIDE_FRACTION:
        return None
    return (f"the best run leaves {fraction:.0%} of its modulus projection's power outside the support: the "
            "support may be too tight, or the pattern blurred (partial coherence, an uncorrected flat field); "
            "projection.final_support_margin_px = 2 in a --config file lets the object fall off beyond the "
            "support, which lowers the deviance but does not always give a better object")


def fit_warning(metrics: dict[str, Any], hint: str | None = None) -> str | None:
    """A warning when the Poisson deviance per pixel exceeds :data:`FIT_WARNING_DEVIANCE` times what a model as
    good as the counts allow would score (:func:`cdi_dip.metrics.deviance_excess`), else None.

    The free (held-out) pixels' deviance is used when known, else the fitted
    pixels'. Where counts are high a good model scores about 1 per pixel;
    where most pixels expect a fraction of a photon, much less (0.3-0.6 on
    low-flux patterns), and a deviance near 1 there is a poor fit. ``hint``
    (e.g. :func:`tight_support_hint`) is appended to a warning.
    """
    for key, pixels in (("free_llk_poisson", "free"), ("llk_poisson", "fitted")):
        excess = deviance_excess(metrics, pixels)
        if excess is None:
            continue
        if excess <= FIT_WARNING_DEVIANCE:
            return None
        value, expected = metrics[key], recorded_expectation(metrics, key)
        allowed = (f"{excess:.2g} times the {expected:.2g} a model as good as the counts allow would score"
                   if expected is not None else "about 1 for a model as good as the counts allow")
        warning = (f"the fit sits far above the noise level: Poisson deviance per {pixels} pixel {value:.3g}, "
                   f"{allowed} (warned above {FIT_WARNING_DEVIANCE:g} times); the object may "
                   "be wrong or unconverged: try more iterations, another method or more runs, and check the "
                   "excluded pixels and the detector corrections (--dark, --flat)")
        return f"{warning}; {hint}" if hint else warning
    return None

