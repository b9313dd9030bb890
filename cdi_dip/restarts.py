"""Random starts of a solver, ranked by validation, and combined into one result.

:func:`run_starts` runs a solver ``cfg.runs`` times from seeds ``seed, seed +
1, ...`` and scores every run by its likelihood on the free (held-out)
pixels. :func:`combine_runs` aligns the best run
(:func:`cdi_dip.ensemble.align_object`) and, when more than one run is kept,
matches the others onto it through the trivial symmetries, averages them
and measures their spread and phase-retrieval transfer function
(:mod:`cdi_dip.ensemble`). Runs that disagree with the best one by more than
``cfg.keep_max_error`` (a stagnated start) are left out of the average.
:func:`selection_record` says what became of every start: asked, finished,
kept (the best ``keep``), averaged, and why each one left out was dropped.

The object written is then the ensemble mean, in the aligned frame of the
best run; its fitted intensities and data metrics are computed after moving
it back into the frame of the data (twin undone, phase ramp restored).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from .config import Method, RunConfig
from .config.psf import for_run
from .device import make_generator
from .ensemble import (EnsembleResult, PrtfResult, align_object, apply_ramp, compute_prtf, ensemble_statistics,
                       remove_phase_offset, twin)
from .errors import ReconstructionError
from .interrupts import interrupts_deferred
from .generations import next_generation
from .solvers import Initialiser, IterCallback, Problem, random_phases, solver_entry
from .solvers.projections import ProjectionRun
from .types import AlignInfo, Measurement, SolverOutput

log = logging.getLogger(__name__)

@dataclass
class Run:
    """One random start: its solver output and validation figures."""

    index: int
    seed: int
    output: SolverOutput
    metrics: dict[str, float]
    model: np.ndarray
    score: float

    def record(self) -> dict[str, Any]:
        """The run's line in ``Result.runs``: its figures, with the solver's ``outside_fraction`` and number
        of ``support_restarts`` when it measured them."""
        record = {"run": self.index, "seed": self.seed, "iterations": self.output.iterations,
                  "work_iterations": self.work_iterations, "score": self.score, **self.metrics}
        for key in ("outside_fraction", "support_restarts"):
            if key in self.output.extra:
                value = self.output.extra[key]
                record[key] = len(value) if key == "support_restarts" else value
        return record

    @property
    def work_iterations(self) -> int:
        """Every solver iteration the run made, warm starts and polish included (the solver's
        ``work_iterations`` when it counts them, else its iterations)."""
        return int(self.output.extra.get("work_iterations", self.output.iterations))


def selection_score(metrics: dict[str, float], noise: str) -> float:
    """Lower is better: the free likelihood under the noise model when there are free pixels, else training."""
    score = metrics.get(f"free_llk_{noise}", metrics.get(f"llk_{noise}", metrics["llk_poisson"]))
    return score if math.isfinite(score) else math.inf


def run_starts(problem: Problem, cfg: RunConfig, *, init: Initialiser = random_phases,
               on_iter: IterCallback | None = None,
               failed: list[dict[str, Any]] | None = None,
               starts: Sequence[Initialiser] | None = None, first_index: int = 0,
               total_runs: int | None = None) -> tuple[list[Run], bool]:
    """Run the solver from ``cfg.runs`` seeds; Ctrl-C stops after the current run.

    A signal while a run is being scored is deferred: the run is kept and
    no further run starts.

    A run that fails at run time (NaN or Inf in the iterate) is logged and
    left out; only when every run fails is the failure raised.

    Parameters
    ----------
    problem : Problem
        The data of every run, on its device.
    cfg : RunConfig
        With a concrete method (not ``auto``), ``runs`` and ``seed``.
    init : Initialiser
        The starting object of every run.
    on_iter : callable, optional
        Progress, with ``run`` and ``runs`` added.
    failed : list of dict, optional
        Gets one ``{"run", "seed", "reason": "diverged", "detail"}`` per
        run left out because it failed or its object was not finite.
    starts : sequence of Initialiser, optional
        One starting object per run, in place of ``init`` (a generation bred
        from the previous one: :func:`run_generations`).
    first_index : int
        The index of the first run (run ``k`` uses seed ``cfg.seed + first_index + k``).
    total_runs : int, optional
        The ``runs`` reported to ``on_iter`` (every generation's); default ``cfg.runs``.

    Returns
    -------
    runs : list of Run
        Every run that finished (or was stopped with a usable object), best first.
    interrupted : bool
        True when the user stopped it.

    Raises
    ------
    ReconstructionError
        When every run failed.
    """
    entry = solver_entry(cfg.method)
    options = entry.options(cfg)
    runs: list[Run] = []
    failures: list[str] = []
    failed = failed if failed is not None else []
    interrupted = False
    for index in range(first_index, first_index + cfg.runs):
        seed = cfg.seed + index
        run_init = init if starts is None else starts[index - first_index]
        callback = None
        if on_iter is not None:
            callback = lambda info, index=index: on_iter({**info, "run": index,  # noqa: E731
                                                          "runs": total_runs or cfg.runs})
        try:
            output = entry.solve(problem, options_for_run(options, index), init=run_init,
                                 rng=make_generator(seed, problem.device), on_iter=callback)
        except KeyboardInterrupt:
            interrupted = True
            log.warning("interrupted before run %d produced a result", index)
            break
        except ReconstructionError as exc:  # one diverged start must not cost the others
            log.warning("run %d (seed %d) failed: %s", index, seed, exc)
            failures.append(str(exc))
            failed.append(_diverged(index, seed, str(exc)))
            continue
        with interrupts_deferred(already=output.interrupted) as finishing:  # a finished run is kept whatever comes
            run = _scored_run(index, seed, output, problem)
        if run is not None:
            runs.append(run)
        else:
            failed.append(_diverged(index, seed, "NaN or Inf in the object"))
        if finishing.requested:
            interrupted = True
            break
    if not runs and failures:
        raise ReconstructionError(f"every run failed; the first: {failures[0]}")
    return sorted(runs, key=lambda run: run.score), interrupted


def run_generations(problem: Problem, cfg: RunConfig, *, init: Initialiser = random_phases,
                    on_iter: IterCallback | None = None,
                    failed: list[dict[str, Any]] | None = None) -> tuple[list[Run], bool]:
    """:func:`run_starts`, then ``cfg.generations - 1`` more generations of a projection method's runs, each bred
    from the previous generation's runs and its best one (:mod:`cdi_dip.generations`).

    The runs returned are the last generation's with the best run of all before it (so the best score never
    rises); a stop keeps every run finished so far. Other methods run one generation.

    Returns
    -------
    runs : list of Run
        Best first.
    interrupted : bool
        True when the user stopped it.
    """
    generations, total = bred_generations(cfg), total_runs(cfg)
    runs, interrupted = run_starts(problem, cfg, init=init, on_iter=on_iter, failed=failed, total_runs=total)
    for generation in range(1, generations):
        if interrupted or not runs:
            break
        starts = next_generation([run.output.obj for run in runs[:cfg.runs]], runs[0].output.support)
        log.info("generation %d of %d: %d runs bred with the best (run %d, score %.4g)", generation + 1,
                 generations, len(starts), runs[0].index, runs[0].score)
        try:
            bred_runs, interrupted = run_starts(problem, dataclasses.replace(cfg, runs=len(starts)), on_iter=on_iter,
                                                failed=failed, starts=starts, first_index=generation * cfg.runs,
                                                total_runs=total)
        except ReconstructionError as exc:  # every bred run diverged: the previous generation stands
            log.warning("generation %d: %s; keeping the previous generation", generation + 1, exc)
            break
        survivors = runs if interrupted else runs[:1]  # the best run so far is never lost
        runs = sorted(bred_runs + survivors, key=lambda run: run.score)
    return runs, interrupted


def bred_generations(cfg: RunConfig) -> int:
    """The generations ``cfg``'s method runs: ``cfg.generations`` for a projection method, which breeds them,
    else 1."""
    return cfg.generations if Method(cfg.method) in (Method.HIO, Method.RAAR, Method.ER) else 1


def total_runs(cfg: RunConfig) -> int:
    """Every run ``cfg`` makes: its runs in each of its generations (:func:`bred_generations`)."""
    return cfg.runs * bred_generations(cfg)


def _diverged(index: int, seed: int, detail: str) -> dict[str, Any]:
    """The line of :func:`selection_record`'s ``dropped`` for a run that failed."""
    return {"run": index, "seed": seed, "reason": "diverged", "detail": detail}


def options_for_run(options: Any, index: int) -> Any:
    """A solver's options for run ``index``: under ``--psf select`` a projection run alternates a coherent
    model and a fitted kernel (:func:`cdi_dip.config.psf.for_run`); the double DIP alternates inside its
    warm start instead."""
    psf = getattr(options, "psf", None)
    if psf is None or psf.mode != "select" or not isinstance(options, ProjectionRun):
        return options
    return dataclasses.replace(options, psf=for_run(psf, index))


def _scored_run(index: int, seed: int, output: SolverOutput, problem: Problem) -> Run | None:
    """The run with its validation figures; None (logged) when its object is not finite."""
    if not np.all(np.isfinite(output.obj)):
        log.warning("run %d (seed %d) diverged: NaN or Inf in the object; left out", index, seed)
        return None
    metrics, model = problem.metrics(output.obj, output.psf)
    metrics["support_size"] = int(output.support.sum())
    log.info("run %d (seed %d): %s", index, seed, metrics)
    return Run(index, seed, output, metrics, model, selection_score(metrics, problem.noise))


def kept_count(cfg: RunConfig, available: int) -> int:
    """How many of the best runs go into the ensemble: ``cfg.keep``, else half the runs (at least 1)."""
    wanted = cfg.keep if cfg.keep is not None else max(1, cfg.runs // 2)
    return max(1, min(int(wanted), available))


@dataclass
class Combined:
    """The result of several runs: the object to write and how it was made.

    Attributes
    ----------
    obj : numpy.ndarray, complex64, frame shape
        Aligned object (the ensemble mean, or the best run).
    support : numpy.ndarray, bool, frame shape
    align : AlignInfo
        The alignment of the best run (the frame of ``obj``).
    metrics : dict
        Data metrics of ``obj`` in the frame of the data.
    model : numpy.ndarray, float32, frame shape
        ``|F obj|**2`` in the frame of the data.
    best : Run
    members : list of Run
        The runs averaged (the best first).
    ensemble : EnsembleResult or None
        With two or more members.
    prtf : PrtfResult or None
        With two or more members.
    kept : int
        How many of the best runs were matched to the best one (``cfg.keep``
        of those available).
    disagreed : dict of int to float
        Run index to its error to the best run, for the kept runs left out
        of the average (error above ``cfg.keep_max_error``).
    outside : dict of int to float
        Run index to its outside fraction, for the runs left out of the
        ranking (:func:`screen_outside`).
    """

    obj: np.ndarray
    support: np.ndarray
    align: AlignInfo
    metrics: dict[str, float]
    model: np.ndarray
    best: Run
    members: list[Run] = field(default_factory=list)
    ensemble: EnsembleResult | None = None
    prtf: PrtfResult | None = None
    kept: int = 1
    disagreed: dict[int, float] = field(default_factory=dict)
    outside: dict[int, float] = field(default_factory=dict)


def to_data_frame(obj: np.ndarray, align: AlignInfo) -> np.ndarray:
    """An object in the aligned frame moved back to the frame of the data, up to a shift.

    The twin is undone and the phase ramp restored, so that ``|F x|**2`` is
    comparable with the counts (a real-space shift does not change it).
    """
    moved = twin(obj) if align.twin else np.asarray(obj)
    return apply_ramp(moved, align.ramp_rad_per_px).astype(np.complex64)


def _members(best_obj: np.ndarray, best_support: np.ndarray, candidates: list[Run],
             cfg: RunConfig) -> tuple[EnsembleResult, list[Run], dict[int, float]]:
    """Match the candidates to the aligned best run, dropping those that disagree with it.

    Returns the ensemble, its members and, for every candidate dropped, its
    run index and error to the best run.
    """
    objects = [best_obj] + [run.output.obj for run in candidates[1:]]
    supports = [best_support] + [run.output.support for run in candidates[1:]]
    ensemble = ensemble_statistics(objects, supports, pairwise=len(objects) <= 8)
    agree = [0] + [k for k in range(1, len(objects)) if ensemble.errors_to_reference[k] <= cfg.keep_max_error]
    disagreed = {candidates[k].index: float(ensemble.errors_to_reference[k])
                 for k in range(len(objects)) if k not in agree}
    if disagreed:
        dropped = list(disagreed)
        log.warning("runs %s disagree with the best run (error > %.2f): left out of the ensemble",
                    dropped, cfg.keep_max_error)
        ensemble = ensemble_statistics(objects, supports, keep=agree, pairwise=len(agree) <= 8)
    return ensemble, [candidates[k] for k in agree], disagreed


def run_outside_fraction(run: Run) -> float | None:
    """The solver's ``outside_fraction`` of a run (projection solvers), None when it did not measure one."""
    value = run.output.extra.get("outside_fraction")
    return None if value is None else float(value)


def screen_outside(runs: list[Run], limit: float | None) -> tuple[list[Run], dict[int, float]]:
    """Leave out the runs with more than ``limit`` of their power outside the support, never all of them.

    Parameters
    ----------
    runs : list of Run
        Best first.
    limit : float or None
        ``projection.max_outside_fraction``; None keeps every run.

    Returns
    -------
    kept : list of Run
        The others, best first; when every run is over the limit, the best
        alone (logged).
    outside : dict of int to float
        Run index to its outside fraction, for the runs left out.
    """
    if limit is None:
        return runs, {}
    outside = {run.index: fraction for run in runs
               if (fraction := run_outside_fraction(run)) is not None and fraction > limit}
    if runs and len(outside) == len(runs):
        log.warning("every run has more than %.3g of its power outside the support: keeping the best (run %d)",
                    limit, runs[0].index)
        del outside[runs[0].index]
    if outside:
        log.warning("runs %s have more than %.3g of their power outside the support: left out",
                    sorted(outside), limit)
    return [run for run in runs if run.index not in outside], outside


def combine_runs(runs: list[Run], measurement: Measurement, problem: Problem, cfg: RunConfig) -> Combined:
    """Leave out the runs with too much power outside their support, then combine the others
    (:func:`combine_screened`).

    Parameters
    ----------
    runs : list of Run
        Best first (:func:`run_starts`).
    measurement : Measurement
        The prepared data (for the PRTF and its geometry).
    problem : Problem
        The data the runs fitted (for the ensemble mean's metrics).
    cfg : RunConfig
        ``projection.max_outside_fraction``, ``keep`` and ``keep_max_error``.

    Returns
    -------
    Combined
        With ``outside``: the runs left out by :func:`screen_outside`.
    """
    if not runs:
        raise ReconstructionError("no run produced a finite object: nothing to write; try another --seed or method")
    screened, outside = screen_outside(runs, cfg.projection.max_outside_fraction)
    combined = combine_screened(screened, measurement, problem, cfg)
    combined.outside = outside
    return combined


def combine_screened(runs: list[Run], measurement: Measurement, problem: Problem, cfg: RunConfig) -> Combined:
    """Align the best run and average it with the next best ones that agree with it.

    Parameters
    ----------
    runs : list of Run
        Best first (:func:`run_starts`).
    measurement : Measurement
        The prepared data (for the PRTF and its geometry).
    problem : Problem
        The data the runs fitted (for the ensemble mean's metrics).
    cfg : RunConfig
        ``keep`` and ``keep_max_error``.

    Returns
    -------
    Combined
    """
    if not runs:
        raise ReconstructionError("no run produced a finite object: nothing to write; try another --seed or method")
    best = runs[0]
    obj, support, align = align_object(best.output.obj, best.output.support)
    count = kept_count(cfg, len(runs))
    if count == 1:
        return Combined(obj.astype(np.complex64), support, align, dict(best.metrics), best.model, best, [best])
    start = time.perf_counter()
    ensemble, members, disagreed = _members(obj, support, runs[:count], cfg)
    if ensemble.size == 1:
        return Combined(obj.astype(np.complex64), support, align, dict(best.metrics), best.model, best, [best],
                        ensemble=None, kept=count, disagreed=disagreed)
    mean, _ = remove_phase_offset(ensemble.mean, ensemble.support_majority)
    metrics, model = problem.metrics(to_data_frame(mean, align), best.output.psf)
    metrics["support_size"] = int(ensemble.support_majority.sum())
    in_data_frame = np.stack([to_data_frame(member, align) for member in ensemble.objects])
    prtf = compute_prtf(in_data_frame, measurement.intensity, measurement.valid, meta=measurement.meta)
    log.info("ensemble of %d runs (%.1f s): %s; resolution %s px", ensemble.size, time.perf_counter() - start,
             ensemble.summary(), prtf.resolution_px)
    return Combined(mean.astype(np.complex64), ensemble.support_majority, align, metrics, model, best, members,
                    ensemble, prtf, kept=count, disagreed=disagreed)


def selection_record(cfg: RunConfig, runs: list[Run], combined: Combined, failed: list[dict[str, Any]], *,
                     combine_interrupted: bool = False) -> dict[str, Any]:
    """What became of every random start: the ``selection`` of a result.

    Parameters
    ----------
    cfg : RunConfig
        ``runs``, ``keep`` and ``keep_max_error`` as run.
    runs : list of Run
        Every run that finished, best first.
    combined : Combined
        Their combination.
    failed : list of dict
        The runs left out by :func:`run_starts` (``reason`` ``diverged``).
    combine_interrupted : bool
        The user stopped the combination: only the best run was kept.

    Returns
    -------
    dict
        ``asked`` (runs of a generation), ``generations`` (:func:`run_generations`: the runs ranked are the
        last generation's and the best run before it), ``finished``, ``kept``, ``averaged``, ``keep``,
        ``keep_max_error``, ``max_outside_fraction``, ``not_started`` (runs a stop left unstarted),
        ``solver_iterations`` (every iteration of every finished run, warm
        starts included) and ``dropped``: one
        ``{"run", "seed", "reason", "detail"}`` per run left out, ``reason``
        one of ``diverged``, ``disagreed`` (with ``error`` to the best run),
        ``outside support`` (with ``outside_fraction``), ``not among the best
        K`` (ranked among the runs not left out for their outside fraction)
        or ``interrupted``.
    """
    members = {run.index for run in combined.members}
    dropped = list(failed)
    dropped += [_outside_entry(run, combined.outside[run.index], cfg) for run in runs if run.index in combined.outside]
    for rank, run in enumerate([run for run in runs if run.index not in combined.outside]):
        if run.index not in members:
            dropped.append({"run": run.index, "seed": run.seed,
                            **_why_dropped(run, rank, combined, cfg, combine_interrupted)})
    asked = int(cfg.runs or len(runs) + len(failed))
    return {
        "asked": asked,
        "generations": bred_generations(cfg),
        "finished": len(runs),
        "kept": min(combined.kept, len(runs)),
        "averaged": len(combined.members),
        "keep": cfg.keep,
        "keep_max_error": cfg.keep_max_error,
        "max_outside_fraction": cfg.projection.max_outside_fraction,
        "not_started": max(0, asked - len(runs) - len(failed)),
        "solver_iterations": sum(run.work_iterations for run in runs),
        "dropped": sorted(dropped, key=lambda entry: entry["run"]),
    }


def _outside_entry(run: Run, fraction: float, cfg: RunConfig) -> dict[str, Any]:
    """The line of :func:`selection_record`'s ``dropped`` for a run left out by :func:`screen_outside`."""
    return {"run": run.index, "seed": run.seed, "reason": "outside support", "outside_fraction": fraction,
            "detail": f"{fraction:.3g} of |x|^2 outside the support > max_outside_fraction "
                      f"{cfg.projection.max_outside_fraction:g}"}


def _why_dropped(run: Run, rank: int, combined: Combined, cfg: RunConfig, interrupted: bool) -> dict[str, Any]:
    """``reason`` and ``detail`` (and ``error``) for a finished run that is not in the average."""
    if run.index in combined.disagreed:
        error = combined.disagreed[run.index]
        return {"reason": "disagreed", "error": error,
                "detail": f"error to the best run {error:.3g} > keep_max_error {cfg.keep_max_error:g}"}
    if rank < combined.kept or interrupted:
        return {"reason": "interrupted", "detail": "stopped before the runs were combined"}
    return {"reason": f"not among the best {combined.kept}",
            "detail": f"rank {rank + 1} by score {run.score:.4g} (lower is better)"}
