"""A prepared measurement to an aligned :class:`~cdi_dip.types.Result`: the runs, their combination,
and the two passes of a found beamstop's rim.

Ctrl-C and SIGTERM: the solvers stop and return their best iterate; from
then on the result is finished, marked interrupted (a signal while the runs
are combined falls back to the best run alone, aligned in seconds). A signal
before any iterate exists raises ``KeyboardInterrupt``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from .config import DEFAULT_CHALLENGE_TIME_FACTOR, DEFAULT_POOR_FIT_DIP_STARTS, DEFAULT_RUNS, Method, RunConfig
from .background import background_from_counts, subtracted
from .challenge_rules import CHALLENGE_DIP_EXCESS, CHALLENGE_FREE_DEVIANCE, CHALLENGE_SIGNIFICANCE
from .config.init_choice import parse_init
from .coherence import BLUR_TEST_RATIO, BLUR_TEST_SIGMAS_PX, PIXEL_TEST_RATIO, blur_test, pixel_test
from .config.psf import PsfChoice, deconvolved_label, parse_challengers, parse_psf
from .deconvolution import COARSE_WIDTHS_PX, WIENER_CONSTANT, blurred_model, refined_widths, wiener_deconvolved
from .device import resolve_device
from .ensemble import align_map, restart_object
from .errors import InvalidInputError, ReconstructionError
from .hot_screen import HOT_PASS_LABELS, HotPixelsFound, check_first_pass
from .interrupts import interrupts_deferred
from .learned.initialiser import learned_initialiser
from .margin_result import on_measured_frame
from .memory import check_memory
from .metrics import challenge_margin, data_metrics, deviance_excess, poisson_deviance_map
from .physics import FarField
from .polish import Polished
from .poor_fit_polish import polish_of, polished_poor_fit, polished_result
from .prepare.free_pixels import select_free_islands
from .prepare.margin import measured_part, with_unmeasured_margin
from .prepare.rim import RimTest, check_rim, with_rim, without_rim
from .provenance import software_versions
from .previous_result import ResultStart, result_start
from .restarts import Combined, Run, combine_runs, run_generations, selection_record, total_runs
from .solvers import Initialiser, IterCallback, Problem, decide_method, estimate_memory_bytes, random_phases
from .solvers.init import StartFrom
from .time_budget import (ChallengeStart, budget_spent, challenge_running, challenge_started, challenge_timing,
                          first_pass_goes_on, not_tried, time_budget)
from .types import Measurement, Result

log = logging.getLogger(__name__)


def noise_model(cfg: RunConfig) -> str:
    """The noise model's name used for validation and selection (Poisson unless ``cfg.noise`` says)."""
    return "poisson" if cfg.noise is None else cfg.noise.value


def hold_out_free_pixels(valid: np.ndarray, cfg: RunConfig) -> np.ndarray:
    """The free (held-out) pixels of a run: islands among the valid pixels, from ``cfg.seed``."""
    return select_free_islands(valid, cfg.prep.free_fraction, rng=np.random.default_rng(cfg.seed))


def fit_data(measurement: Measurement, cfg: RunConfig, device: torch.device) -> tuple[Problem, np.ndarray]:
    """The problem every run of a prepared measurement fits, on the device, and its free pixels (host): the
    measurement's ``fixed_free`` pixels where it has them, else drawn among the valid pixels that are not
    ``never_free``."""
    if measurement.fixed_free is not None:
        free = measurement.fixed_free & measurement.valid
    else:
        candidates = measurement.valid if measurement.never_free is None else measurement.valid & ~measurement.never_free
        free = hold_out_free_pixels(candidates, cfg)
    problem = Problem.build(
        torch.from_numpy(measurement.intensity.astype(np.float32)).to(device),
        torch.from_numpy(measurement.valid & ~free).to(device),
        FarField(measurement.shape),
        free=torch.from_numpy(free).to(device),
        noise=noise_model(cfg),
    )
    return problem, free


def reconstruct(
    measurement: Measurement,
    cfg: RunConfig,
    *,
    init: Initialiser | None = None,
    on_iter: IterCallback | None = None,
) -> Result:
    """Reconstruct a prepared measurement with ``cfg.runs`` random starts.

    Provisional pixels (the rim of a beamstop shadow the tool found) are left
    out of a first pass. When that pass predicts their counts
    (:func:`cdi_dip.prepare.rim.check_rim`), the rim is lit and a second pass
    fits it with the rest: the double DIP from the start again, a projection
    method's result refined from where it stands (:func:`rim_refinement_config`).
    Where a projection method's first pass missed the centre, so that its
    prediction cannot judge the rim, a fresh reconstruction with the rim
    challenges it on the held-out pixels (:func:`_rim_challenge`). Otherwise
    the rim stays excluded (``beamstop_rim``). Either way
    ``Result.beamstop_rim`` says what was measured and done.

    Where the first pass's model shows hot pixels that the preparation left
    in (``cfg.detector.find_hot_by_model``, :mod:`cdi_dip.hot_screen`), they
    are excluded and the frame is reconstructed again on the same held-out
    pixels less them, before any challenger runs (:func:`_without_hot_pixels`).

    Where the result then fits its held-out pixels far worse than the counts
    allow, more random starts of its method challenge it
    (:func:`_more_starts_challenge`, ``cfg.poor_fit_starts``, the double DIP's
    ``cfg.poor_fit_dip_starts``), and then the
    frame embedded in a larger one with an unmeasured margin
    (:func:`_margin_challenge`, ``cfg.frame_margin``); the result kept is
    written on the measured frame either way.

    Parameters
    ----------
    measurement : Measurement
        Centred, framed data (see :func:`cdi_dip.prepare.stages.prepare`).
    cfg : RunConfig
        Validated configuration.
    init : Initialiser, optional
        The starting object of every run (:mod:`cdi_dip.solvers.init`);
        default: the one ``cfg.init`` names (:func:`initialiser_for`).
    on_iter : callable, optional
        Called with progress dictionaries (``run``, ``runs``, ``iteration``,
        ``total``, ``loss``...).

    Returns
    -------
    Result
        Aligned: the mean of the best ``cfg.keep`` runs by free-pixel
        likelihood that agree with the best one (``Result.ensemble``,
        ``Result.prtf``), or the best run alone.

    Raises
    ------
    InvalidInputError
        At once, when the run's estimated memory exceeds what the device has
        free (:func:`cdi_dip.memory.check_memory`).
    """
    requested = cfg.to_dict()  # as asked (``auto`` included): what --resume compares
    if init is None:
        init = initialiser_for(cfg, measurement)
    with time_budget(cfg.time_budget_s, challenge_time_factor(cfg, len(measurement.shape))):
        result, measurement = _screened_frame(measurement, cfg, requested, init, on_iter)
        result = _more_starts_challenge(result, measurement, cfg, requested, init, on_iter)
        return _margin_challenge(result, measurement, cfg, requested, init, on_iter)


def challenge_time_factor(cfg: RunConfig, ndim: int) -> float | None:
    """The relative time budget of a ``ndim``-dimensional frame's reconstruction: ``cfg.challenge_time_factor``,
    or where it is None :data:`~cdi_dip.config.DEFAULT_CHALLENGE_TIME_FACTOR` by dimensions; None for none
    (0 asked)."""
    factor = cfg.challenge_time_factor
    if factor is None:
        factor = DEFAULT_CHALLENGE_TIME_FACTOR.get(ndim)
    return factor or None


def _screened_frame(measurement: Measurement, cfg: RunConfig, requested: dict[str, Any], init: Initialiser,
                    on_iter: IterCallback | None) -> tuple[Result, Measurement]:
    """The frame's reconstruction and the measurement it fitted: where the first pass's model shows hot pixels
    the preparation left in (``cfg.detector.find_hot_by_model``, :mod:`cdi_dip.hot_screen`), the frame
    reconstructed again without them (:func:`_without_hot_pixels`)."""
    screen = cfg.detector.find_hot and cfg.detector.find_hot_by_model
    try:
        return _reconstruct_frame(measurement, cfg, requested, init, on_iter, screen=screen), measurement
    except HotPixelsFound as found:
        return _without_hot_pixels(found, measurement, cfg, requested, init, on_iter)


def _without_hot_pixels(found: HotPixelsFound, measurement: Measurement, cfg: RunConfig, requested: dict[str, Any],
                        init: Initialiser, on_iter: IterCallback | None) -> tuple[Result, Measurement]:
    """The frame reconstructed again from the start with the hot pixels ``found`` excluded, on the first pass's
    held-out pixels less them; the first pass, scored on the same pixels, is kept instead only where it fits
    them better by a normal score of :data:`CHALLENGE_SIGNIFICANCE` (:func:`free_deviance_margin`), or where a
    signal stops the second before it has an iterate. Returns the result and the measurement without them.

    A hot pixel among the held-out ones misleads every choice made on them (the double DIP's best iterate, the
    runs' ranking), and the second pass, fitting the same pixels, only gains; one among the fitted pixels
    sends a projection method's second pass elsewhere, as any change of the data does, and there the first
    pass may have been the better (tuning half: 4 of 5 second passes better, one worse from 13.9 to 175 per
    held-out pixel).
    """
    cleaned = measurement.exclude("hot", found.mask)
    if found.first.free is not None:
        cleaned = dataclasses.replace(cleaned, fixed_free=found.first.free & cleaned.valid)
    background = found.background if found.background is not None else np.zeros(cleaned.shape, np.float32)
    first = _with_background(found.first, without_rim(cleaned), cfg, background, resolve_device(cfg.device))
    record = dict(found.record)
    first_pass_goes_on()
    try:
        second = _reconstruct_frame(cleaned, cfg, requested, init, on_iter)
    except KeyboardInterrupt:
        log.warning("interrupted before the reconstruction without the hot pixels had an iterate: keeping the "
                    "first pass")
        first.interrupted = True
        first.method_choice = {**first.method_choice, "hot_by_model": {**record, "chosen": HOT_PASS_LABELS[0]}}
        return first, cleaned
    margin, kept_first = significantly_better(second, first)
    winner, loser = (first, second) if kept_first else (second, first)
    winner.wall_s += loser.wall_s
    record.update(chosen=HOT_PASS_LABELS[0] if kept_first else HOT_PASS_LABELS[1], margin_z=margin,
                  free_llk_poisson={HOT_PASS_LABELS[0]: first.metrics.get("free_llk_poisson"),
                                    HOT_PASS_LABELS[1]: second.metrics.get("free_llk_poisson")})
    log.info("hot pixels: %s kept (free Poisson LLK %s)", record["chosen"], record["free_llk_poisson"])
    winner.method_choice = {**winner.method_choice, "hot_by_model": record}
    return winner, cleaned


def _reconstruct_frame(measurement: Measurement, cfg: RunConfig, requested: dict[str, Any], init: Initialiser,
                       on_iter: IterCallback | None, *, screen: bool = False) -> Result:
    """The reconstruction of one frame: a first pass without the provisional rim, then the rim tested, fitted
    or challenged (see :func:`reconstruct`). ``screen``: the first pass raises
    :class:`~cdi_dip.hot_screen.HotPixelsFound` where its model shows hot pixels."""
    first = _reconstruct_pass(without_rim(measurement), cfg, requested, init, on_iter, screen=screen)
    if measurement.provisional is None:
        return first
    with interrupts_deferred(already=first.interrupted) as finishing:
        rim = check_rim(measurement, first.model_intensity)
    first.interrupted = finishing.requested
    if first.interrupted:
        first.beamstop_rim = rim.outcome(readmitted=False)
        return first
    projection = first.method in RIM_PROJECTION_METHODS
    if rim.lit and (projection or first.method == Method.DIP.value):
        return _with_lit_rim(first, measurement, rim, cfg, requested, init, on_iter)
    if not rim.conclusive and projection:
        return _rim_challenge(first, measurement, rim, cfg, requested, init, on_iter)
    first.beamstop_rim = rim.outcome(readmitted=False)
    return first


MORE_STARTS_METHODS = (Method.HIO.value, Method.RAAR.value, Method.ER.value, Method.DIP.value)
"""The methods whose poor fits more random starts challenge: ``cfg.poor_fit_starts`` of a projection method's,
``cfg.poor_fit_dip_starts`` of the double DIP's (:func:`more_starts_count`)."""


def more_starts_count(result: Result, cfg: RunConfig) -> int:
    """How many more starts challenge a poor fit of ``result``'s method: ``cfg.poor_fit_dip_starts`` for the
    double DIP (a run costs hundreds of network steps; None: :data:`~cdi_dip.config.DEFAULT_POOR_FIT_DIP_STARTS`
    for the frame's dimensions), ``cfg.poor_fit_starts`` for a projection method."""
    if result.method != Method.DIP.value:
        return cfg.poor_fit_starts
    if cfg.poor_fit_dip_starts is not None:
        return cfg.poor_fit_dip_starts
    return DEFAULT_POOR_FIT_DIP_STARTS.get(len(result.measurement.shape), 0)


def more_starts_config(result: Result, cfg: RunConfig) -> RunConfig | None:
    """The more-starts challenger's configuration: ``result``'s method (``auto`` resolved),
    :func:`more_starts_count` runs from the seeds after those the first runs used (run ``k`` uses ``seed + k``).
    None where the first runs were not the method's default number (:data:`~cdi_dip.config.DEFAULT_RUNS`): any
    other number of starts asked for (``--runs``) is what runs (``--runs 4`` is the default's number and is
    challenged)."""
    first = cfg.with_method(Method(result.method)) if Method(cfg.method) is Method.AUTO else cfg
    if first.runs != DEFAULT_RUNS[Method(result.method)]:
        return None
    count = more_starts_count(result, cfg)
    generations = cfg.poor_fit_generations if result.method != Method.DIP.value else 1
    runs = max(1, count // generations)
    keep = first.keep if first.keep is not None and first.keep <= runs else None
    return dataclasses.replace(first, runs=runs, generations=generations, keep=keep, seed=first.seed + first.runs)


def poor_fit_for_more_starts(result: Result) -> bool:
    """Whether more starts challenge ``result``: a free deviance per pixel above :data:`CHALLENGE_FREE_DEVIANCE`, or
    for the double DIP above :data:`CHALLENGE_DIP_EXCESS` times what the counts allow."""
    free_deviance = result.metrics.get("free_llk_poisson")
    if free_deviance is None:
        return False
    if free_deviance > CHALLENGE_FREE_DEVIANCE:
        return True
    excess = deviance_excess(result.metrics)
    return result.method == Method.DIP.value and excess is not None and excess > CHALLENGE_DIP_EXCESS


def _more_starts_challenge(result: Result, measurement: Measurement, cfg: RunConfig, requested: dict[str, Any],
                           init: Initialiser, on_iter: IterCallback | None) -> Result:
    """Where ``result`` fits its held-out pixels far worse than the counts allow (:func:`poor_fit_for_more_starts`:
    free deviance per pixel above :data:`CHALLENGE_FREE_DEVIANCE`, or a double DIP's above
    :data:`CHALLENGE_DIP_EXCESS` times what the counts allow), more random starts of its method
    (:func:`more_starts_count`, :func:`more_starts_config`) reconstruct the frame again on the same held-out
    pixels; their result is kept where it fits them better by :data:`CHALLENGE_SIGNIFICANCE`
    (:func:`free_deviance_margin`).
    ``method_choice["starts"]`` records what was done.

    A projection method lands in the truth's basin from some random starts and not others, and a double DIP
    run from some seeds and not others (its warm start and its networks' weights); a poor fit says the first
    starts all missed it.
    """
    free_deviance = result.metrics.get("free_llk_poisson")
    if (result.method not in MORE_STARTS_METHODS or more_starts_count(result, cfg) < 1
            or result.interrupted or result.free is None or free_deviance is None
            or not poor_fit_for_more_starts(result)):
        return result
    challenger_cfg = more_starts_config(result, cfg)
    if challenger_cfg is None:
        return result
    more = total_runs(challenger_cfg)
    log.info("more starts: the fit is poor (%s); %d more starts (seeds %d-%d, %d generation(s)) challenge it",
             poor_fit_description(result, free_deviance), more, challenger_cfg.seed, challenger_cfg.seed + more - 1,
             challenger_cfg.generations)
    same_free = dataclasses.replace(measurement, fixed_free=result.free)
    started = challenge_started()
    challenger = _challenger_of(
        result, lambda: _reconstruct_frame(same_free, challenger_cfg, requested, init, on_iter),
        key="starts", incumbent="first starts", errors=(ReconstructionError,))  # every run diverged
    if challenger is None:
        return result
    return _more_starts_winner(result, challenger, cfg, challenger_cfg, free_deviance, started)


def _challenger_of(result: Result, run: Callable[[], Result], *, key: str, incumbent: str,
                   errors: tuple[type[Exception], ...]) -> Result | None:
    """The challenger ``run()`` makes, or None where ``result`` stands as it is: a challenger that could not run
    (one of ``errors``) is recorded as ``method_choice[key]`` with ``incumbent`` chosen, and a signal before
    or during it marks ``result`` interrupted. Where the time budget is spent (:mod:`cdi_dip.time_budget`) the
    challenger does not start, and the record says so."""
    if budget_spent():
        result.method_choice = {**result.method_choice, key: {
            "compared": False, "chosen": incumbent, "reason": not_tried(f"the {key} challenger")}}
        return None
    try:
        with challenge_running():
            challenger = run()
    except KeyboardInterrupt:  # before the challenger had an iterate
        challenger = None
    except errors as exc:
        log.warning("%s: the challenger could not run (%s): keeping the %s result", key, exc, incumbent)
        result.method_choice = {**result.method_choice, key: {
            "compared": False, "chosen": incumbent, "reason": f"the challenger could not run ({exc})"}}
        return None
    if challenger is None or challenger.interrupted:
        log.warning("%s: interrupted while challenging: keeping the %s result", key, incumbent)
        result.interrupted = True
        return None
    return challenger


def _more_starts_winner(result: Result, challenger: Result, cfg: RunConfig, challenger_cfg: RunConfig,
                        free_deviance: float, started: ChallengeStart | None) -> Result:
    """The better of the first starts' ``result`` and the ``challenger`` (``started``: when, into the
    reconstruction) by the significance rule; its ``method_choice["starts"]`` records both deviances, the starts
    and the challenge's time (:func:`~cdi_dip.time_budget.challenge_timing`), its ``wall_s`` both times."""
    more = total_runs(challenger_cfg)
    bred = f" in {challenger_cfg.generations} generations" if challenger_cfg.generations > 1 else ""
    margin, kept, reason = _poor_fit_verdict(result, challenger, free_deviance, f"{more} more starts{bred} fit")
    first_runs = challenger_cfg.seed - cfg.seed
    record = {"compared": True, "chosen": "more starts" if kept else "first starts",
              "runs": {"first starts": first_runs, "more starts": more},
              "seeds": {"first starts": [cfg.seed, challenger_cfg.seed - 1],
                        "more starts": [challenger_cfg.seed, challenger_cfg.seed + more - 1]},
              "free_llk_poisson": {"first starts": free_deviance,
                                   "more starts": challenger.metrics.get("free_llk_poisson")},
              "margin_z": margin, "reason": reason, **challenge_timing(started)}
    if challenger_cfg.generations > 1:
        record["generations"] = challenger_cfg.generations
    log.info("more starts: %s", record["reason"])
    if kept:  # the first pass's choices (auto's reading, the DIP-vs-HIO comparison, hot pixels) chose its method
        challenger.method_choice = {**result.method_choice, **challenger.method_choice}
    return _recorded_winner(challenger if kept else result, result if kept else challenger, "starts", record)


def _margin_challenge(result: Result, measurement: Measurement, cfg: RunConfig, requested: dict[str, Any],
                      init: Initialiser, on_iter: IterCallback | None) -> Result:
    """Where ``result`` fits its held-out pixels far worse than the counts allow (free deviance per pixel above
    :data:`CHALLENGE_FREE_DEVIANCE`), the measurement in a frame ``cfg.frame_margin`` times larger, its margin
    unmeasured (:func:`~cdi_dip.prepare.margin.with_unmeasured_margin`), reconstructed again; kept where it fits
    the same held-out pixels better by a normal score of :data:`CHALLENGE_SIGNIFICANCE`
    (:func:`free_deviance_margin`), and then seen on the measured frame, so that every result of a scan has
    its frame and voxels. ``method_choice["margin"]`` records what was done. A start from a previous result
    (``init``) is seen on the larger frame; a learned model's is made again for it.

    On a frame cut inside its pattern the object is band-limited on the frame's pixels and no compact support
    fits it; on finer pixels it is compact again (the corpus's truncated tuning patterns: 2D median error
    0.117 -> 0.080, 3D with HIO 0.187 -> 0.094, none worse). A start from a learned model is made again for
    the larger frame.
    """
    free_deviance = result.metrics.get("free_llk_poisson")
    if cfg.frame_margin <= 1 or result.interrupted or result.free is None or free_deviance is None:
        return result
    if free_deviance <= CHALLENGE_FREE_DEVIANCE:
        result.method_choice = {**result.method_choice, "margin": {
            "compared": False, "chosen": "measured frame",
            "reason": f"not tried: the measured frame's free deviance, {free_deviance:.3g} per pixel, is not above "
                      f"the challenge's trigger ({CHALLENGE_FREE_DEVIANCE:g})"}}
        return result
    wider = with_unmeasured_margin(measurement, result.free, cfg.frame_margin)
    log.info("frame margin: the fit is poor (free deviance %.3g per pixel); the %s frame challenged by a %s frame "
             "with an unmeasured margin", free_deviance, "x".join(map(str, measurement.shape)),
             "x".join(map(str, wider.shape)))
    started = challenge_started()
    challenger = _challenger_of(  # memory, a learned model's frame, every run diverged: the result stands
        result, lambda: _reconstruct_frame(wider, cfg, requested, _initialiser_on(wider, init, cfg), on_iter),
        key="margin", incumbent="measured frame", errors=(InvalidInputError, ReconstructionError))
    if challenger is None:
        return result
    return _margin_winner(result, challenger, measurement, free_deviance, started)


def _initialiser_on(wider: Measurement, init: Initialiser, cfg: RunConfig) -> Initialiser:
    """The start of the frame-margin challenger: a previous result seen on the larger frame, else ``cfg.init``'s
    for it (random phases, or a learned model run on that frame)."""
    if isinstance(init, ResultStart):
        return init.on_frame(tuple(wider.shape))
    return initialiser_for(cfg, wider)


def _margin_winner(result: Result, challenger: Result, measurement: Measurement, free_deviance: float,
                   started: ChallengeStart | None) -> Result:
    """The better of the measured frame's ``result`` and the ``challenger`` with a margin (``started``: when,
    into the reconstruction), by the significance rule, on the measured frame
    (:func:`~cdi_dip.margin_result.on_measured_frame`); its ``method_choice["margin"]`` records both deviances,
    the margin and the challenge's time, its ``wall_s`` both times."""
    margin, kept, reason = _poor_fit_verdict(result, challenger, free_deviance, "the frame with a margin fits")
    record = {"compared": True, "chosen": "with a margin" if kept else "measured frame",
              "measured_shape": list(result.obj.shape), "shape": list(challenger.obj.shape), "free_llk_poisson": {
                  "measured frame": free_deviance, "with a margin": challenger.metrics.get("free_llk_poisson")},
              "margin_z": margin, "reason": reason, **challenge_timing(started)}
    log.info("frame margin: %s", record["reason"])
    return _recorded_winner(on_measured_frame(challenger, measurement) if kept else result,
                            result if kept else challenger, "margin", record)


def _poor_fit_verdict(result: Result, challenger: Result, free_deviance: float,
                      challenger_fits: str) -> tuple[float | None, bool, str]:
    """The significance rule on a poor fit's challenger: the margin of their free deviances (a normal score,
    :func:`free_deviance_margin`; None where it cannot be measured), whether the challenger is kept (above
    :data:`CHALLENGE_SIGNIFICANCE`) and the reason, naming the challenger as ``challenger_fits`` (e.g. "the
    frame with a margin fits")."""
    margin, kept = significantly_better(result, challenger)
    reason = (f"a poor fit ({poor_fit_description(result, free_deviance)}); "
              f"{challenger_fits} the held-out pixels {'better' if kept else 'no better'} at z "
              f"{CHALLENGE_SIGNIFICANCE:g} (z {'none' if margin is None else f'{margin:.2f}'})")
    return margin, kept, reason


def poor_fit_description(result: Result, free_deviance: float) -> str:
    """Why ``result`` is a poor fit, for a challenge's reason: its free deviance against
    :data:`CHALLENGE_FREE_DEVIANCE`, or against what the counts allow (:data:`CHALLENGE_DIP_EXCESS`)."""
    if free_deviance > CHALLENGE_FREE_DEVIANCE:
        return f"free deviance {free_deviance:.3g} > {CHALLENGE_FREE_DEVIANCE:g} per pixel"
    return (f"free deviance {free_deviance:.3g} per pixel, {deviance_excess(result.metrics):.3g} times what the "
            f"counts allow > {CHALLENGE_DIP_EXCESS:g}")


def _recorded_winner(winner: Result, loser: Result, key: str, record: dict[str, Any]) -> Result:
    """``winner`` of a challenge, with both results' times in its ``wall_s`` and ``record`` as its
    ``method_choice[key]``."""
    winner.wall_s += loser.wall_s
    winner.method_choice = {**winner.method_choice, key: record}
    return winner


RIM_PROJECTION_METHODS = (Method.HIO.value, Method.ER.value, Method.RAAR.value)
"""The projection methods whose first pass, rim left out, is refined with a lit rim or challenged by a
reconstruction with it (``net``, the learned network's object alone, keeps the rim excluded)."""


def _with_lit_rim(first: Result, measurement: Measurement, rim: RimTest, cfg: RunConfig, requested: dict[str, Any],
                  init: Initialiser, on_iter: IterCallback | None) -> Result:
    """The second pass over ``measurement`` with its lit rim: the double DIP from the start again, a projection
    result refined from where it stands (:func:`rim_refinement_config`); ``first`` again where that cannot be
    (a blur of unequal widths to refine under) or is interrupted."""
    if first.method == Method.DIP.value:
        second_cfg, second_init = cfg, init
        log.info("beamstop rim lit: reconstructing again with its %d pixels", rim.pixels)
    else:
        second_cfg = rim_refinement_config(first, cfg)
        second_init = StartFrom(restart_object(first.obj, first.support, first.align), first.support)
        if second_cfg is None:
            log.info("beamstop rim lit, but the first pass's blur (unequal widths per axis) is no model to refine "
                     "under: the rim stays excluded")
            first.beamstop_rim = rim.outcome(readmitted=False)
            return first
        log.info("beamstop rim lit: the %s result refined with its %d pixels (%s, support held)", first.method,
                 rim.pixels, REFINE_PLAN)
    second = _second_pass(with_rim(measurement), second_cfg, requested, second_init, on_iter)
    if second is None:
        return _first_after_interrupt(first, rim)
    if first.method != Method.DIP.value:
        second = _as_refinement_of(second, first)
    second.beamstop_rim = rim.outcome(readmitted=True)
    second.wall_s += first.wall_s
    return second


def _rim_challenge(first: Result, measurement: Measurement, rim: RimTest, cfg: RunConfig, requested: dict[str, Any],
                   init: Initialiser, on_iter: IterCallback | None) -> Result:
    """Where a projection method's first pass missed the centre (its prediction has not the rim's shape, so the
    test has no verdict), a fresh reconstruction with the rim; kept where it fits the held-out pixels (the same
    in both passes: the rim is ``never_free``) better by a normal score of :data:`CHALLENGE_SIGNIFICANCE`
    (:func:`free_deviance_margin`), else ``first``.

    Both outcomes of a rim the test cannot judge are then covered: lit, the rim's counts are what the
    reconstruction lacked (3D tuning half: 0.820 -> 0.004); half covered, the challenger is kept only where it
    still fits the rest better (there: 0.820 -> 0.149; elsewhere the first pass stayed).
    """
    log.info("beamstop rim: the first %s pass missed the centre; a reconstruction with the rim's %d pixels "
             "challenges it", first.method, rim.pixels)
    challenger = _second_pass(with_rim(measurement), cfg, requested, init, on_iter)
    if challenger is None:
        return _first_after_interrupt(first, rim)
    margin, kept = significantly_better(first, challenger)
    log.info("beamstop rim: the reconstruction with it fits the %d held-out pixels %s (margin %s): %s",
             0 if first.free is None else int(np.count_nonzero(first.free)), "better" if kept else "no better",
             "none" if margin is None else f"z {margin:.2f}", "kept" if kept else "the first kept")
    winner, loser = (challenger, first) if kept else (first, challenger)
    winner.beamstop_rim = rim.outcome(readmitted=kept, challenge_margin_z=margin)
    winner.wall_s += loser.wall_s
    return winner


def _second_pass(measurement: Measurement, cfg: RunConfig, requested: dict[str, Any], init: Initialiser,
                 on_iter: IterCallback | None) -> Result | None:
    """A pass after the first; None where a signal stopped it (the finished first pass is better then)."""
    try:
        second = _reconstruct_pass(measurement, cfg, requested, init, on_iter)
    except KeyboardInterrupt:  # before the second pass had an iterate
        return None
    return None if second.interrupted else second


def _first_after_interrupt(first: Result, rim: RimTest) -> Result:
    """``first``, marked interrupted, the rim excluded: a signal stopped the pass that would have fitted it."""
    log.warning("interrupted while fitting the beamstop rim: keeping the first pass, without it")
    first.beamstop_rim = rim.outcome(readmitted=False)
    first.interrupted = True
    return first


def _as_refinement_of(refined: Result, first: Result) -> Result:
    """``refined`` (one run started from ``first``) keeping ``first``'s record of how that start was made: its
    decisions (``method_choice``), runs, selection, ensemble and PRTF."""
    return dataclasses.replace(refined, method_choice=first.method_choice, runs=first.runs,
                               selection=first.selection, ensemble=first.ensemble, prtf=first.prtf,
                               solver={**refined.solver, "rim_refinement": {"plan": REFINE_PLAN}})


def rim_refinement_config(first: Result, cfg: RunConfig) -> RunConfig | None:
    """``cfg`` made to refine a projection result with its rim: the method it used, :data:`REFINE_PLAN` with
    the support held, one run, under the model it was kept with (its Gaussian blur, the background taken off
    the counts where it was); None for a blur of unequal widths per axis.

    A fresh reconstruction with the rim is not asked for: HIO started again lands elsewhere as often as not
    (3D tuning half, behind an unmasked beamstop: 0.079 -> 0.246 on one case), while the first pass, which
    predicted the rim's counts, is already the object near which the rim's extra counts belong.
    """
    widths = set((first.solver.get("psf") or {}).get("width_px") or [0.0])
    if len(widths) > 1:
        return None
    kept_background = (first.method_choice.get("background") or {}).get("chosen") == BACKGROUND_LABELS[1]
    return dataclasses.replace(refinement_config(cfg, float(widths.pop())), method=Method(first.method),
                               background="subtract" if kept_background else "none")


def initialiser_for(cfg: RunConfig, measurement: Measurement) -> Initialiser:
    """The starting objects ``cfg.init`` asks for: random phases, a learned model, or a previous result
    (:func:`~cdi_dip.previous_result.result_start`), loaded and checked now.

    ``--method net`` always needs a model (the shipped one when ``init`` is ``random``).

    Raises
    ------
    InvalidInputError
        A model file that is missing, foreign or damaged, for other data than
        this measurement's dimensionality, or unable to take its frame; a
        result file that is missing, not a result, or of another
        dimensionality; a previous result with ``--method net``.
    """
    kind, path = parse_init(cfg.init)
    if kind == "random" and Method(cfg.method) is not Method.NET:
        return random_phases
    if kind == "result":
        if Method(cfg.method) is Method.NET:
            raise InvalidInputError("--method net writes a learned network's object: give --init learned or "
                                    "learned:MODEL.pt, or another method to start from a previous result")
        return result_start(path, measurement)
    learned = learned_initialiser(path, len(measurement.shape))
    learned.check(tuple(measurement.shape))
    return learned


def _reconstruct_pass(measurement: Measurement, cfg: RunConfig, requested: dict[str, Any], init: Initialiser,
                      on_iter: IterCallback | None, *, screen: bool = False) -> Result:
    """One reconstruction of every pixel the measurement has valid; see :func:`reconstruct`.

    ``auto`` on a crystal runs the double DIP and, with ``cfg.auto_compare``,
    HIO after it; the result with the lower free Poisson deviance is kept
    (:func:`_better_by_free_likelihood`) and ``Result.method_choice`` says why.
    Under ``--psf compare`` that is a coherent reconstruction,
    and a projection reconstruction with a fitted kernel challenges it
    (:func:`_coherence_challenge`).
    With ``cfg.background`` ``subtract`` or ``compare`` a radial background
    estimated from the counts is taken off them first (:func:`_background_stage`);
    where it is kept, the partial-coherence challengers fit the counts less the
    background, and the result is scored with the background added back.
    With ``screen`` the method's result is first checked for hot pixels that
    its model shows (:func:`cdi_dip.hot_screen.check_first_pass`, which raises
    where it finds any), before a challenger runs on its free deviance.
    """
    device = resolve_device(cfg.device)
    coherence = parse_psf(cfg.psf)
    result, background = _background_stage(measurement, cfg, requested, init, on_iter, device)
    if screen:
        check_first_pass(result, background)
    if coherence.mode == "compare":
        fitted = measurement if background is None else result.measurement  # the counts less the background
        result = _coherence_challenge(result, fitted, cfg, coherence, requested, init, on_iter, device)
    return result if background is None else _with_background(result, measurement, cfg, background, device)


def _method_pass(measurement: Measurement, cfg: RunConfig, requested: dict[str, Any], init: Initialiser,
                 on_iter: IterCallback | None, device: torch.device) -> Result:
    """The method ``cfg`` asks for (``auto`` chosen, and compared with HIO on a crystal), combined; ``auto``'s
    reading of the data is kept as ``method_choice["auto"]``."""
    method, decision = decide_method(measurement, cfg, device)
    return _with_auto_decision(_auto_pass(measurement, cfg, method, requested, init, on_iter, device), decision)


def _with_auto_decision(result: Result, decision: dict[str, Any]) -> Result:
    """``result`` with ``auto``'s reading of the data (:func:`~cdi_dip.solvers.decide_method`) in its record."""
    if decision:
        result.method_choice = {**result.method_choice, "auto": decision}
    return result


def _auto_pass(measurement: Measurement, cfg: RunConfig, method: Method, requested: dict[str, Any],
               init: Initialiser, on_iter: IterCallback | None, device: torch.device) -> Result:
    """``method``, and on ``auto``'s crystals HIO after the double DIP, the lower free deviance kept."""
    result = _run_method(measurement, cfg.with_method(method), requested, init, on_iter, device)
    if Method(cfg.method) is not Method.AUTO or method is not Method.DIP or not cfg.auto_compare:
        return result
    if result.interrupted:
        return result
    try:
        challenger = _run_method(measurement, cfg.with_method(Method.HIO), requested, init, on_iter, device)
    except KeyboardInterrupt:  # before HIO had an iterate: the finished DIP result stands
        challenger = None
    except ReconstructionError as exc:  # the double DIP's finished result stands
        log.warning("the HIO comparison failed (%s): keeping the double DIP's result", exc)
        result.method_choice = {"compared": False, "reason": f"the HIO comparison failed ({exc})"}
        return result
    if challenger is None or challenger.interrupted:
        log.warning("interrupted while comparing with HIO: keeping the double DIP's result")
        result.interrupted = True
        result.method_choice = {"compared": False, "reason": "interrupted during the HIO comparison"}
        return result
    return _better_by_free_likelihood(result, challenger)


COHERENCE_CHALLENGER_RUNS = 0.5
"""The fitted-kernel challenger of ``--psf compare`` makes this fraction of the coherent pass's runs (at least
one): its runs cost about twice as much (a kernel blur in every modulus step, Richardson-Lucy updates)."""

COHERENCE_LABELS = ("coherent", "fitted kernel", "integrating pixels")


def coherence_challenger_config(cfg: RunConfig, method: Method, coherence: PsfChoice) -> RunConfig | None:
    """The configuration of ``--psf compare``'s challenger, or None where there is none.

    The challenger is the projection method that ran (HIO in place of the
    double DIP) with a kernel fitted from a Gaussian of ``coherence.sigma_px``,
    on :data:`COHERENCE_CHALLENGER_RUNS` of the runs. There is none when the
    user chose the double DIP (``--method dip``: a different method would be a
    surprise), gave a ``projection.plan`` (that exact plan was asked for) or
    asked for the network's object alone (``--method net`` fits nothing).
    """
    if Method(cfg.method) in (Method.DIP, Method.NET) or cfg.projection.plan is not None:
        return None
    concrete = cfg.with_method(Method.HIO if Method(method) is Method.DIP else Method(method))
    runs = max(1, int(round(concrete.runs * COHERENCE_CHALLENGER_RUNS)))
    keep = None if concrete.keep is None else min(concrete.keep, runs)
    return dataclasses.replace(concrete, psf=f"auto,{coherence.sigma_px:g}", runs=runs, keep=keep)


DECONVOLVED_RUNS = 0.5
"""Each deconvolved challenger of ``--psf compare`` makes this fraction of the coherent pass's runs (at least one)."""


def deconvolved_challenger_config(kernel_cfg: RunConfig, cfg: RunConfig) -> RunConfig:
    """The configuration of each deconvolved challenger: the kernel challenger's method (``kernel_cfg``, from
    :func:`coherence_challenger_config`) with a coherent model, on :data:`DECONVOLVED_RUNS` of ``cfg``'s runs."""
    full = cfg.with_method(kernel_cfg.method).runs
    runs = max(1, int(round(full * DECONVOLVED_RUNS)))
    keep = None if kernel_cfg.keep is None else min(kernel_cfg.keep, runs)
    return dataclasses.replace(kernel_cfg, psf="none", runs=runs, keep=keep)


def _coherence_challenge(result: Result, measurement: Measurement, cfg: RunConfig, coherence: PsfChoice,
                         requested: dict[str, Any], init: Initialiser, on_iter: IterCallback | None,
                         device: torch.device) -> Result:
    """``--psf compare``: the coherent ``result`` against the challengers of ``cfg.psf_challengers``; the lowest
    free Poisson deviance is kept where it is significantly lower than the coherent result's
    (:func:`_choose_coherence`), and ``method_choice["coherence"]`` records every one.

    The challengers run only where the coherent result shows a sign of blur
    (:func:`cdi_dip.coherence.blur_test`: a blurred copy of its model fits
    the held-out pixels better) or fits them far worse than the counts allow
    (free deviance per pixel above :data:`CHALLENGE_FREE_DEVIANCE`: a
    coherent reconstruction that failed on blurred data shows no sign of
    blur, 7 of the 24 blurred tuning patterns); otherwise the coherent result
    stands and the record says why. ``kernel``: a projection reconstruction fitting a
    kernel (on the tuning half it won on 9 of 12 blurred patterns and 2 of 12
    clean ones, without making any clean one worse). ``deconvolved``:
    coherent reconstructions of the counts deconvolved by Gaussians of
    several widths (:func:`_deconvolved_challengers`). ``refined``: the best
    of those refined against the measured counts under its width's blur
    (:func:`_refined_challenger`). ``pixel``: a projection reconstruction
    whose model integrates the intensity over the detector's pixels
    (``--psf pixel``); it runs where the coherent model integrated over the
    pixels fits the held-out pixels 5 % better
    (:func:`cdi_dip.coherence.pixel_test`) or on a poor fit, and the others
    then only on their own signs. A signal during a challenger keeps the
    best finished candidate, marked interrupted.
    """
    challenger_cfg = coherence_challenger_config(cfg, Method(result.method), coherence)
    if challenger_cfg is None or result.interrupted:
        return result
    evidence = _blur_evidence(result)
    if evidence is None:
        return _coherent_unchallenged(result, "no held-out pixels to test for blur or to choose by")
    challengers = parse_challengers(cfg.psf_challengers)
    free_deviance = result.metrics.get("free_llk_poisson")
    poor_fit = free_deviance is not None and free_deviance > CHALLENGE_FREE_DEVIANCE
    if "pixel" in challengers:
        evidence = {**evidence, "pixel_test": pixel_test(result.model_intensity, result.measurement.intensity,
                                                          result.free)}
    blur_challenge = evidence["blurred"] or poor_fit
    pixel_challenge = "pixel" in challengers and (evidence["pixel_test"]["integrating"] or poor_fit)
    if not blur_challenge and not pixel_challenge:
        return _coherent_unchallenged(result, _why_unchallenged(evidence, free_deviance), blur_test=evidence)
    evidence = {**evidence, "challenged_because": _why_challenged(evidence, free_deviance, poor_fit)}
    candidates: list[tuple[str, Result]] = [(COHERENCE_LABELS[0], result)]
    notes: list[str] = []
    deconvolved_cfg = deconvolved_challenger_config(challenger_cfg, cfg)
    started = challenge_started()
    if _budget_noted(notes, f"the {', '.join(challengers)} challenger(s)"):
        challengers = []
    try:
        with challenge_running():  # started: a relative budget lets it finish (a budget in seconds may not)
            for index, name in enumerate(challengers):
                if index > 0 and _budget_noted(notes, f"the {', '.join(challengers[index:])} challenger(s)"):
                    break
                if name == "pixel":
                    if pixel_challenge:
                        _pixel_challenger(candidates, notes, measurement, challenger_cfg, requested, init, on_iter,
                                          device)
                elif not blur_challenge:
                    continue
                elif name == "kernel":
                    _kernel_challenger(candidates, notes, measurement, challenger_cfg, requested, init, on_iter,
                                       device)
                elif name == "refined":
                    _refined_challenger(candidates, notes, measurement, deconvolved_cfg, requested, on_iter, device)
                elif name == "polished":
                    _polished_challenger(candidates, measurement, cfg, evidence, device)
                else:
                    _deconvolved_challengers(candidates, notes, measurement, deconvolved_cfg, requested, init,
                                             on_iter, device)
    except (_ChallengeInterrupted, KeyboardInterrupt):  # also between two challengers (a deconvolution, a score)
        log.warning("interrupted while challenging the coherent result: keeping the best finished candidate")
        winner = _timed(_choose_coherence(candidates, evidence, notes, interrupted=True), "coherence", started)
        winner.interrupted = True
        return winner
    return _timed(_choose_coherence(candidates, evidence, notes, interrupted=False), "coherence", started)


def _timed(result: Result, key: str, started: ChallengeStart | None) -> Result:
    """``result`` with the time of the challenge recorded as ``method_choice[key]`` added to its record
    (:func:`~cdi_dip.time_budget.challenge_timing`)."""
    result.method_choice = {**result.method_choice, key: {**result.method_choice[key], **challenge_timing(started)}}
    return result


def _why_unchallenged(evidence: dict[str, Any], free_deviance: float | None) -> str:
    """Why ``--psf compare`` ran no challenger: the blur test's and the pixel test's findings (``evidence``) and
    the free deviance per pixel below the poor-fit trigger."""
    best = ("no width lowers it" if evidence["best_sigma_px"] == 0
            else f"best {evidence['ratio']:.3f} of it, at {evidence['best_sigma_px']:g} px")
    why = (f"blurring its model by {BLUR_TEST_SIGMAS_PX[0]:g}-{BLUR_TEST_SIGMAS_PX[-1]:g} px does not lower the "
           f"free deviance by {1 - BLUR_TEST_RATIO:.0%} ({best}), ")
    pixels = evidence.get("pixel_test")
    if pixels is not None:
        why += (f"integrating it over the pixels does not lower it by {1 - PIXEL_TEST_RATIO:.0%} "
                f"({pixels['ratio']:.3f} of it), ")
    return (why + f"and the free deviance, {free_deviance:.3g} per pixel, is not above the challengers' trigger "
            f"({CHALLENGE_FREE_DEVIANCE:g})")


def _why_challenged(evidence: dict[str, Any], free_deviance: float | None, poor_fit: bool) -> str:
    """What set ``--psf compare``'s challengers off: the blur test, the pixel test or a poor fit."""
    if poor_fit:
        return f"a poor fit (free deviance {free_deviance:.3g} > {CHALLENGE_FREE_DEVIANCE:g} per pixel)"
    found = ["the blur test"] if evidence["blurred"] else []
    if (evidence.get("pixel_test") or {}).get("integrating"):
        found.append("the pixel test")
    return " and ".join(found)


def _budget_noted(notes: list[str], what: str) -> bool:
    """Whether the time budget is spent (:func:`~cdi_dip.time_budget.budget_spent`); if so ``what`` did not start,
    and a note in ``notes`` says so."""
    if not budget_spent():
        return False
    notes.append(f"{what} {not_tried(what)}")
    return True


class _ChallengeInterrupted(Exception):
    """A signal during a ``--psf compare`` challenger: stop challenging, keep the best finished candidate."""


def _challenger(measurement: Measurement, cfg: RunConfig, requested: dict[str, Any], init: Initialiser,
                on_iter: IterCallback | None, device: torch.device, what: str, notes: list[str]) -> Result | None:
    """One challenger's reconstruction; None (and a note) when it fails; :class:`_ChallengeInterrupted` on a signal."""
    try:
        challenger = _run_method(measurement, cfg, requested, init, on_iter, device)
    except KeyboardInterrupt:  # before the challenger had an iterate
        raise _ChallengeInterrupted from None
    except ReconstructionError as exc:  # a challenger that fails costs nothing but its time
        log.warning("the %s reconstruction failed (%s): left out of the comparison", what, exc)
        notes.append(f"the {what} challenger failed ({exc})")
        return None
    if challenger.interrupted:
        raise _ChallengeInterrupted
    return challenger


def _kernel_challenger(candidates: list[tuple[str, Result]], notes: list[str], measurement: Measurement,
                       cfg: RunConfig, requested: dict[str, Any], init: Initialiser, on_iter: IterCallback | None,
                       device: torch.device) -> None:
    """Append the fitted-kernel reconstruction (``cfg``: a fitted ``psf``) to ``candidates``."""
    log.info("psf compare: a %s reconstruction with a fitted kernel (%d runs) challenges the coherent one",
             cfg.method.value, cfg.runs)
    challenger = _challenger(measurement, cfg, requested, init, on_iter, device, "fitted-kernel", notes)
    if challenger is not None:
        candidates.append((COHERENCE_LABELS[1], challenger))


def _pixel_challenger(candidates: list[tuple[str, Result]], notes: list[str], measurement: Measurement,
                      cfg: RunConfig, requested: dict[str, Any], init: Initialiser, on_iter: IterCallback | None,
                      device: torch.device) -> None:
    """Append a reconstruction (``cfg``'s method and runs) whose model integrates the intensity over the
    detector's pixels (``--psf pixel``) to ``candidates``."""
    pixel_cfg = dataclasses.replace(cfg, psf="pixel")
    log.info("psf compare: a %s reconstruction integrating over the pixels (%d runs) challenges the coherent one",
             pixel_cfg.method.value, pixel_cfg.runs)
    challenger = _challenger(measurement, pixel_cfg, requested, init, on_iter, device, "integrating-pixel", notes)
    if challenger is not None:
        candidates.append((COHERENCE_LABELS[2], challenger))


def _deconvolved_challengers(candidates: list[tuple[str, Result]], notes: list[str], measurement: Measurement,
                             cfg: RunConfig, requested: dict[str, Any], init: Initialiser,
                             on_iter: IterCallback | None, device: torch.device) -> None:
    """Append coherent reconstructions (``cfg``) of the counts deconvolved by each width of the coarse grid,
    then by the two widths around the best of it (:mod:`cdi_dip.deconvolution`), each scored as a model of the
    measured counts: its intensity blurred by its width."""
    fill = candidates[0][1].model_intensity  # the coherent model stands in for unmeasured pixels
    problem, _ = fit_data(measurement, cfg, device)
    # deconvolved counts are an estimate, not counts: a likelihood polish would fit the estimate's noise
    unpolished = dataclasses.replace(cfg, polish_poor_fits=False)
    scored: dict[float, float] = {}

    def try_width(sigma_px: float) -> None:
        deconvolved = dataclasses.replace(measurement, intensity=wiener_deconvolved(
            measurement.intensity, measurement.valid, fill, sigma_px))
        log.info("psf compare: a coherent %s reconstruction of the counts deconvolved by %g px",
                 cfg.method.value, sigma_px)
        challenger = _challenger(deconvolved, unpolished, requested, init, on_iter, device,
                                 f"deconvolved ({sigma_px:g} px)", notes)
        if challenger is None:
            return
        rescored = _as_blurred_model(challenger, measurement, problem, sigma_px)
        scored[sigma_px] = rescored.metrics.get("free_llk_poisson", float("inf"))
        candidates.append((deconvolved_label(sigma_px), rescored))

    for sigma_px in COARSE_WIDTHS_PX:
        if _budget_noted(notes, f"the deconvolved challengers from {sigma_px:g} px on"):
            return
        try_width(sigma_px)
    finite = {sigma: value for sigma, value in scored.items() if np.isfinite(value)}
    if finite:
        for sigma_px in refined_widths(min(finite, key=finite.get)):
            if _budget_noted(notes, f"the deconvolved challengers from {sigma_px:g} px on"):
                return
            try_width(sigma_px)


REFINE_PLAN = "200*ER"
"""The plan that refines the best deconvolved challenger against the measured counts (support held)."""


def refinement_config(cfg: RunConfig, sigma_px: float) -> RunConfig:
    """``cfg`` made to refine one object: a fixed Gaussian of ``sigma_px`` (0: the coherent model),
    :data:`REFINE_PLAN` with the support held (no shrinkwrap), one run."""
    projection = dataclasses.replace(cfg.projection, plan=REFINE_PLAN, shrinkwrap_period=0)
    psf = f"gaussian,{sigma_px:g}" if sigma_px > 0 else "none"
    return dataclasses.replace(cfg, psf=psf, runs=1, keep=None, projection=projection)


def _best_deconvolved(candidates: list[tuple[str, Result]]) -> Result | None:
    """The deconvolved candidate (coherent, of deconvolved counts, rescored blurred) with the lowest free
    deviance; None when there is none with a finite one."""
    deconvolved = [result for _, result in candidates if result.solver.get("psf", {}).get("mode") == "deconvolved"
                   and np.isfinite(result.metrics.get("free_llk_poisson", float("inf")))]
    return min(deconvolved, key=lambda result: result.metrics["free_llk_poisson"]) if deconvolved else None


def _refined_challenger(candidates: list[tuple[str, Result]], notes: list[str], measurement: Measurement,
                        cfg: RunConfig, requested: dict[str, Any], on_iter: IterCallback | None,
                        device: torch.device) -> None:
    """Append the best deconvolved candidate refined against the measured counts under the blur of its width
    (:func:`refinement_config`), started from its object moved back to fit its pattern
    (:func:`~cdi_dip.ensemble.restart_object`) on its support."""
    best = _best_deconvolved(candidates)
    if best is None:
        return
    sigma_px = best.solver["psf"]["width_px"][0]
    start = StartFrom(restart_object(best.obj, best.support, best.align), best.support)
    log.info("psf compare: the deconvolved result of %g px refined against the measured counts", sigma_px)
    refined = _challenger(measurement, refinement_config(cfg, sigma_px), requested, start, on_iter, device,
                          f"refined ({sigma_px:g} px)", notes)
    if refined is not None:
        candidates.append((f"refined {sigma_px:g} px", refined))


def _polished_challenger(candidates: list[tuple[str, Result]], measurement: Measurement, cfg: RunConfig,
                         evidence: dict[str, Any], device: torch.device) -> None:
    """Append the candidate with the lowest free deviance so far, polished with a Gaussian width per axis by
    maximum likelihood against the measured counts (:func:`cdi_dip.polish.polish`) on its support grown by
    a pixel, stopped on the held-out pixels; nothing where the polish does not lower their deviance. The
    start width is the candidate's (a coherent one's: the blur test's best width, at least 0.3 px)."""
    scored = [(label, result) for label, result in candidates
              if np.isfinite(result.metrics.get("free_llk_poisson", float("inf")))]
    if not scored:
        return
    label, base = min(scored, key=lambda item: item[1].metrics["free_llk_poisson"])
    widths = (base.solver.get("psf") or {}).get("width_px") or [max(evidence.get("best_sigma_px") or 0.0, 0.3)]
    problem, _ = fit_data(measurement, cfg, device)
    start = time.perf_counter()
    with interrupts_deferred() as finishing:
        polished = polish_of(base, measurement, problem, widths)
    if polished is not None:
        candidates.append(_as_polished(polished, label, base, measurement, problem, time.perf_counter() - start))
    if finishing.requested:
        raise _ChallengeInterrupted


def _as_polished(polished: Polished, label: str, base: Result, measurement: Measurement, problem: Problem,
                 seconds: float) -> tuple[str, Result]:
    """The candidate ``(name, Result)`` of a polish of ``base`` (candidate ``label``): aligned, scored against
    the measured counts, the fitted widths in its solver facts (``psf``)."""
    log.info("psf compare: the %s candidate polished by maximum likelihood (width %s px)", label,
             ", ".join(f"{w:.3g}" for w in polished.widths_px))
    return f"polished {label}", polished_result(
        base, polished, problem, measurement=measurement, ensemble=None, prtf=None, wall_s=seconds,
        solver={**base.solver, "psf": {"mode": "polished", "width_px": list(polished.widths_px), "from": label,
                                       "fit_deviance": [round(v, 6) for v in polished.fit_deviance]}})


def _as_blurred_model(result: Result, measurement: Measurement, problem: Problem, sigma_px: float) -> Result:
    """A coherent reconstruction of deconvolved counts, turned into a model of the measured ``measurement``:
    its intensity blurred by ``sigma_px``, its data metrics against the measured counts (``problem``), the
    width in its solver facts (``psf``)."""
    model = blurred_model(torch.from_numpy(np.ascontiguousarray(result.model_intensity)).to(problem.device),
                          sigma_px)
    figures = data_metrics(model, problem.counts, problem.fit, problem.free, noise=problem.noise)
    width = [float(sigma_px)] * len(measurement.shape)
    return dataclasses.replace(
        result, measurement=measurement, model_intensity=model.cpu().numpy(), metrics={**result.metrics, **figures},
        solver={**result.solver, "psf": {"mode": "deconvolved", "width_px": width, "wiener": WIENER_CONSTANT}})


def _choose_coherence(candidates: list[tuple[str, Result]], evidence: dict[str, Any], notes: list[str], *,
                      interrupted: bool) -> Result:
    """The candidate with the lowest free Poisson deviance (the coherent one, first, when none has one), where
    that is significantly lower than the coherent result's (:data:`CHALLENGE_SIGNIFICANCE`)
    (:func:`free_deviance_margin`; otherwise the coherent result). On the tuning half, without that margin, a
    smoothed model of a poorly fitted, unblurred pattern often won with a worse object. Its
    ``method_choice["coherence"]`` records them all, the margin and the blur test; its ``wall_s`` includes
    theirs."""
    winner, record = _significantly_lowest(candidates, first="the coherent result")
    coherent = candidates[0][1]
    winner.wall_s += sum(candidate.wall_s for _, candidate in candidates if candidate is not winner)
    record = {**record, "compared": len(candidates) > 1, "blur_test": evidence}
    if len(candidates) == 1:  # every challenger failed
        record["reason"] = "coherent kept: " + "; ".join(notes or ["no challenger finished"])
    elif notes:
        record["notes"] = notes
    if interrupted:
        record["interrupted"] = True
    winner.method_choice = {**coherent.method_choice, "coherence": record}
    return winner


BACKGROUND_FLOOR_PHOTONS = 0.5
"""A background estimated from the counts is taken off them (``background`` ``subtract`` or ``compare``) only
where it averages at least this many photons per measured pixel. On the tuning half's backgrounds no case
whose estimate was below it gained from taking it off; without a background it was reached by 4 of 84 2D
quick tuning patterns and 6 of 90 3D ones, blur aside (docs/benchmarks.md)."""

BACKGROUND_LABELS = ("no background", "background")
"""The two candidates of ``background`` in ``method_choice["background"]``: the counts as measured, and less
the background estimated from them."""


def _background_stage(measurement: Measurement, cfg: RunConfig, requested: dict[str, Any], init: Initialiser,
                      on_iter: IterCallback | None, device: torch.device) -> tuple[Result, np.ndarray | None]:
    """The method's result with or without a background taken off the counts, as ``cfg.background`` says.

    The background is estimated from the counts alone
    (:func:`cdi_dip.background.background_from_counts`). Where it averages less than
    :data:`BACKGROUND_FLOOR_PHOTONS` per measured pixel, or with ``background = "none"``, the counts are
    reconstructed as they are. With ``subtract`` the method reconstructs the counts less the background. With
    ``compare`` it reconstructs both, and the result of the counts less the background, scored with it added
    back, is kept where its free Poisson deviance is significantly lower (:data:`CHALLENGE_SIGNIFICANCE`).

    Returns
    -------
    (Result, numpy.ndarray or None)
        The result kept, its ``method_choice["background"]`` recording the estimate and the choice, and the
        background where that result fitted the counts less it (its model does not yet include it), else None.
    """
    if cfg.background == "none":
        return _method_pass(measurement, cfg, requested, init, on_iter, device), None
    background = background_from_counts(measurement.intensity, measurement.valid)
    level = float(background[measurement.valid].mean()) if measurement.valid.any() else 0.0
    record: dict[str, Any] = {"level_photons": level, "compared": False, "chosen": BACKGROUND_LABELS[0]}
    if level < BACKGROUND_FLOOR_PHOTONS:
        result = _method_pass(measurement, cfg, requested, init, on_iter, device)
        record["reason"] = (f"no background: the counts show {level:.3g} photons per pixel, below "
                            f"{BACKGROUND_FLOOR_PHOTONS:g}")
        result.method_choice = {**result.method_choice, "background": record}
        return result, None
    lessened = dataclasses.replace(measurement, intensity=subtracted(measurement.intensity, background))
    if cfg.background == "subtract":
        log.info("background: the counts show %.3g photons per pixel; reconstructing the counts less it", level)
        result = _method_pass(lessened, cfg, requested, init, on_iter, device)
        record = {**record, "chosen": BACKGROUND_LABELS[1],
                  "reason": f"background taken off: {level:.3g} photons per pixel, estimated from the counts"}
        result.method_choice = {**result.method_choice, "background": record}
        return result, background
    result = _method_pass(measurement, cfg, requested, init, on_iter, device)
    return _background_challenge(result, measurement, lessened, background, record, cfg, requested, init,
                                 on_iter, device)


def _background_challenge(result: Result, measurement: Measurement, lessened: Measurement, background: np.ndarray,
                          record: dict[str, Any], cfg: RunConfig, requested: dict[str, Any], init: Initialiser,
                          on_iter: IterCallback | None, device: torch.device) -> tuple[Result, np.ndarray | None]:
    """``background = "compare"``: the method's reconstruction of the ``lessened`` counts (``measurement``'s
    less ``background``) challenges ``result``, scored with the background added back; see
    :func:`_background_stage`."""
    if result.interrupted or result.free is None:
        record["reason"] = "no background: " + ("interrupted" if result.interrupted else "no held-out pixels to "
                                                "compare on")
        result.method_choice = {**result.method_choice, "background": record}
        return result, None
    guard = _blur_guard(result, background) if cfg.background_blur_guard else None
    if guard is not None:
        record["blur_test"] = guard
        if guard["blur_explains_better"]:
            record["reason"] = (f"no background: the pattern shows blur (the model blurred by "
                                f"{guard['best_sigma_px']:g} px fits the held-out pixels to "
                                f"{guard['free_llk_poisson_blurred']:.4g} per pixel, the model plus the background "
                                f"to {guard['free_llk_poisson_with_background']:.4g}), and blur lifts the speckle's "
                                f"minima as a background would")
            result.method_choice = {**result.method_choice, "background": record}
            return result, None
    if budget_spent():
        record["reason"] = "no background: " + not_tried("the background challenger")
        result.method_choice = {**result.method_choice, "background": record}
        return result, None
    log.info("background compare: the counts show %.3g photons per pixel of background; reconstructing the "
             "counts less it", record["level_photons"])
    notes: list[str] = []
    started = challenge_started()
    try:
        with challenge_running():
            challenger = _method_pass(lessened, cfg, requested, init, on_iter, device)
        if challenger.interrupted:
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        log.warning("interrupted while reconstructing the counts less a background: keeping the result without")
        result.interrupted = record["interrupted"] = True
        challenger = None
    except ReconstructionError as exc:
        log.warning("the reconstruction of the counts less a background failed (%s): left out", exc)
        notes.append(f"the reconstruction of the counts less it failed ({exc})")
        challenger = None
    record.update(challenge_timing(started))
    if challenger is None:
        record["reason"] = "no background: " + "; ".join(notes or ["the challenger was interrupted"])
        result.method_choice = {**result.method_choice, "background": record}
        return result, None
    scored = _with_background(challenger, measurement, cfg, background, device)
    winner, choice = _significantly_lowest(list(zip(BACKGROUND_LABELS, (result, scored))),
                                           first="the result without one")
    record = {**record, **choice}
    if winner is result:
        result.wall_s += challenger.wall_s
        result.method_choice = {**result.method_choice, "background": record}
        return result, None
    challenger.wall_s += result.wall_s
    challenger.method_choice = {**challenger.method_choice, "background": record}
    return challenger, background


def _blur_guard(result: Result, background: np.ndarray) -> dict[str, Any] | None:
    """``background_blur_guard``: the blur test of the first ``result`` where it shows blur (None otherwise),
    with the held-out pixels' deviance of its best blurred model and of its model plus ``background``;
    ``blur_explains_better`` where the first is lower. Both explanations lift the speckle's minima."""
    evidence = _blur_evidence(result)
    if evidence is None or not evidence["blurred"]:
        return None
    blurred = min(evidence["free_llk_poisson_by_sigma_px"].values())
    lifted = float(poisson_deviance_map(result.model_intensity + background,
                                        result.measurement.intensity)[result.free].mean())
    return {**evidence, "free_llk_poisson_blurred": blurred, "free_llk_poisson_with_background": lifted,
            "blur_explains_better": blurred < lifted}


def _with_background(result: Result, measurement: Measurement, cfg: RunConfig, background: np.ndarray,
                     device: torch.device) -> Result:
    """A result fitted to the counts less ``background``, made a model of the measured ``measurement``: its
    intensity plus the background, its data metrics against the measured counts."""
    problem, _ = fit_data(measurement, cfg, device)
    model = result.model_intensity + background
    figures = data_metrics(torch.from_numpy(np.ascontiguousarray(model)).to(problem.device), problem.counts,
                           problem.fit, problem.free, noise=problem.noise)
    return dataclasses.replace(result, measurement=measurement, model_intensity=model,
                               metrics={**result.metrics, **figures})


def free_deviance_margin(incumbent: Result, challenger: Result) -> float | None:
    """How much better the challenger fits the incumbent's held-out pixels, a normal score ``z`` (positive: the
    challenger fits them better; :func:`~cdi_dip.metrics.challenge_margin`: the paired mean's, or where the
    challenger's deviance is lower the signed ranks' where larger); a challenger on a frame with an unmeasured
    margin is read on the measured frame's pixels. None without models or held-out pixels, or where the two
    models fit every held-out pixel alike."""
    free = incumbent.free
    if free is None or incumbent.model_intensity is None or challenger.model_intensity is None:
        return None
    challenger_model = measured_part(challenger.model_intensity, incumbent.model_intensity.shape)
    return challenge_margin(incumbent.measurement.intensity, incumbent.model_intensity, challenger_model, free)


def significantly_better(incumbent: Result, challenger: Result) -> tuple[float | None, bool]:
    """:func:`free_deviance_margin` of ``challenger`` over ``incumbent``, and whether it is above
    :data:`CHALLENGE_SIGNIFICANCE` (the challenger is kept; never where the margin cannot be measured)."""
    margin = free_deviance_margin(incumbent, challenger)
    return margin, margin is not None and margin > CHALLENGE_SIGNIFICANCE


def _coherent_unchallenged(result: Result, why: str, **record: Any) -> Result:
    """``result`` kept by ``--psf compare`` without running a challenger, ``why`` in its coherence record."""
    reason = f"coherent kept without a challenger: {why}"
    log.info("psf compare: %s", reason)
    result.method_choice = {**result.method_choice, "coherence": {
        "compared": False, "chosen": COHERENCE_LABELS[0], "reason": reason, **record}}
    return result


def _blur_evidence(result: Result) -> dict[str, Any] | None:
    """:func:`cdi_dip.coherence.blur_test` of a coherent result, or None without a model or held-out pixels
    (then nothing could choose between the coherent result and a challenger)."""
    if result.model_intensity is None or result.free is None or not bool(np.any(result.free)):
        return None
    return blur_test(result.model_intensity, result.measurement.intensity, result.free)


def _lowest_free_deviance(results: Sequence[Result], labels: Sequence[str], *,
                          first: str) -> tuple[Result, dict[str, Any]]:
    """Of results of the same data and free pixels, the one with the lowest free Poisson deviance, and the
    record of the choice (``compared``, ``chosen``, ``free_llk_poisson`` by label, ``reason``). Without a
    deviance for the first (no free pixels) the first stands, and the reason says so naming it ``first``; a
    later result without one is passed over."""
    scores = {label: result.metrics.get("free_llk_poisson") for label, result in zip(labels, results)}
    finite = [i for i, label in enumerate(labels) if scores[label] is not None and np.isfinite(scores[label])]
    if 0 not in finite:
        chosen, reason = 0, f"no free-pixel deviance to compare: {first} stands"
    else:
        chosen = min(finite, key=lambda i: scores[labels[i]])
        reason = f"{'lower' if len(results) == 2 else 'lowest'} free Poisson deviance per pixel (held-out pixels)"
    log.info("%s kept (free deviance %s)", labels[chosen],
             ", ".join(f"{name} {score:.4g}" for name, score in scores.items() if score is not None))
    return results[chosen], {"compared": True, "chosen": labels[chosen], "free_llk_poisson": scores, "reason": reason}


def _significantly_lowest(candidates: Sequence[tuple[str, Result]], *, first: str) -> tuple[Result, dict[str, Any]]:
    """Of labelled results of the same data and free pixels, the one with the lowest free Poisson deviance where
    that is significantly lower than the first's (the incumbent's; :data:`CHALLENGE_SIGNIFICANCE`)
    (:func:`free_deviance_margin`), otherwise the first; and the record of the choice
    (:func:`_lowest_free_deviance`'s, with ``margin_z`` where a challenger was lowest)."""
    labels = [label for label, _ in candidates]
    incumbent = candidates[0][1]
    winner, record = _lowest_free_deviance([result for _, result in candidates], labels, first=first)
    if winner is incumbent:
        return winner, record
    margin = free_deviance_margin(incumbent, winner)
    record = {**record, "margin_z": margin}
    if margin is not None and margin < CHALLENGE_SIGNIFICANCE:
        log.info("%s is not significantly better (z %.2f < %g): %s stays", record["chosen"], margin,
                 CHALLENGE_SIGNIFICANCE, labels[0])
        record = {**record, "chosen": labels[0], "reason": (
            f"{record['chosen']} had the lowest free Poisson deviance, but not significantly lower than "
            f"{first}'s (paired over the held-out pixels: z {margin:.2f} < {CHALLENGE_SIGNIFICANCE:g})")}
        winner = incumbent
    return winner, record


def _better_by_free_likelihood(first: Result, second: Result) -> Result:
    """Of two results of the same data and free pixels, the one with the lower free Poisson deviance.

    The winner's ``method_choice`` records both deviances and its ``wall_s``
    includes the loser's time. Without free pixels (no deviance) the first stands.
    """
    winner, record = _lowest_free_deviance((first, second), (first.method, second.method),
                                          first="the first method's result")
    loser = second if winner is first else first
    winner.wall_s += loser.wall_s
    winner.method_choice = record
    return winner


def _run_method(measurement: Measurement, cfg: RunConfig, requested: dict[str, Any], init: Initialiser,
                on_iter: IterCallback | None, device: torch.device) -> Result:
    """Every run of one concrete method (``cfg.with_method`` applied), combined into one result."""
    check_memory(estimate_memory_bytes(cfg, measurement.shape), device,
                 f"{cfg.method.value} on a {'x'.join(map(str, measurement.shape))} frame")
    problem, free = fit_data(measurement, cfg, device)
    start = time.perf_counter()
    failed: list[dict[str, Any]] = []
    runs, interrupted = run_generations(problem, cfg, init=init, on_iter=on_iter, failed=failed)
    if not runs:
        if interrupted:
            raise KeyboardInterrupt
        raise ReconstructionError("every run diverged (NaN or Inf in the object): nothing written; "
                                  "try --method er or another --seed")
    solve_s = time.perf_counter() - start
    combined, stopped = _combine(runs, measurement, problem, cfg)
    with interrupts_deferred(already=interrupted or stopped) as finishing:
        result = _result(combined, runs, measurement, cfg, requested, problem, free, device,
                         solve_s=solve_s, wall_s=time.perf_counter() - start, interrupted=finishing.requested)
        result.selection = selection_record(cfg, runs, combined, failed, combine_interrupted=stopped)
        _mark_dropped(result.runs, result.selection["dropped"])
    return polished_poor_fit(result, measurement, problem, cfg)


def _mark_dropped(records: list[dict[str, Any]], dropped: list[dict[str, Any]]) -> None:
    """Add ``dropped`` (the reason) to the line in ``Result.runs`` of every finished run left out of the average."""
    reasons = {entry["run"]: entry["reason"] for entry in dropped}
    for record in records:
        if record["run"] in reasons:
            record["dropped"] = reasons[record["run"]]


def _combine(runs: list[Run], measurement: Measurement, problem: Problem, cfg: RunConfig) -> tuple[Combined, bool]:
    """:func:`combine_runs`; a signal meanwhile falls back to the best run alone (aligned in seconds).

    Returns the combination and whether it was interrupted; a further signal
    during the fallback raises ``KeyboardInterrupt``.
    """
    try:
        return combine_runs(runs, measurement, problem, cfg), False
    except KeyboardInterrupt:
        log.warning("interrupted while combining the runs: keeping the best run alone")
        with interrupts_deferred(already=True):
            return combine_runs(runs[:1], measurement, problem, cfg), True


def _result(combined: Combined, runs: list[Run], measurement: Measurement, cfg: RunConfig,
            requested: dict[str, Any], problem: Problem, free: np.ndarray, device: torch.device, *,
            solve_s: float, wall_s: float, interrupted: bool) -> Result:
    """The :class:`Result` of one pass: the combined object with its runs, metrics and masks."""
    member_indices = {run.index for run in combined.members}
    records = [{**run.record(), "kept": run.index == combined.best.index, "averaged": run.index in member_indices}
               for run in sorted(runs, key=lambda r: r.index)]
    total_iterations = sum(r["iterations"] for r in records)
    metrics = dict(combined.metrics)
    metrics["iterations"] = combined.best.output.iterations
    metrics["seconds_per_iteration"] = solve_s / max(total_iterations, 1)
    masks = {"valid": measurement.valid, "free": free,
             **{f"excluded/{reason}": mask for reason, mask in measurement.masks.items()}}
    return Result(
        obj=combined.obj,
        support=combined.support,
        measurement=measurement,
        method=cfg.method.value,
        metrics=metrics,
        history=combined.best.output.history,
        iterations=combined.best.output.iterations,
        wall_s=wall_s,
        device=str(device),
        seed=cfg.seed,
        interrupted=interrupted,
        align=combined.align,
        config=requested,
        runs=records,
        model_intensity=combined.model,
        free=free,
        masks=masks,
        solver=combined.best.output.extra,
        noise=problem.noise,
        versions=software_versions(device, kernels=combined.best.output.extra.get("kernels")),
        ensemble=combined.ensemble,
        prtf=combined.prtf if combined.ensemble is not None else None,
        obj_std=aligned_std(combined),
    )


def aligned_std(combined: Combined) -> np.ndarray | None:
    """The best run's iterate spread moved into the frame of the written object; None when it has none.

    Parameters
    ----------
    combined : Combined
        Its ``obj`` lies in the aligned frame of its best run
        (``combined.align``), averaged or not.

    Returns
    -------
    numpy.ndarray, float32, frame shape, or None
        :attr:`cdi_dip.types.SolverOutput.obj_std` of ``combined.best``
        (photon amplitude, like ``|obj|``), shifted and flipped as the best
        run's object was (:func:`cdi_dip.ensemble.align_map`).
    """
    std = combined.best.output.obj_std
    return None if std is None else align_map(std, combined.align)


__all__ = ["aligned_std", "fit_data", "initialiser_for", "reconstruct"]
