"""Projection warm start of the double DIP: HIO with shrinkwrap inside the DIP's object box.

The double DIP fitted by gradient descent from a random start stagnates on
most hard cases (a dislocation's phase vortex, a beamstop hiding the lowest
frequencies): on simulated 2D crystals fewer than one random start in five
succeeded there, even with the true support. Hybrid input-output escapes such
stagnation, and once it has found the basin the double DIP removes most of
the noise it fits (docs/dip.md). This module finds that basin: several HIO
starts, each beginning with the DIP's object box (half the frame along every
axis) as the support and tightening it by shrinkwrap, the support always kept
inside the box; the start with the lowest free-pixel Poisson deviance (else
training) is kept.

References
----------
J. R. Fienup, Appl. Opt. 21, 2758 (1982) (ER, HIO).
S. Marchesini et al., Phys. Rev. B 68, 140101 (2003) (shrinkwrap).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..coherence import CoherentModulus, PartialCoherence
from ..config.plan import ER, HIO
from ..config.psf import PsfChoice, for_run
from ..metrics import poisson_deviance
from ..physics import pad_to_frame
from ..support import shrinkwrap, sigma_schedule
from .base import Initialiser, Problem
from .fused import ModulusTarget, TorchBackend
from .init import measured_amplitude, random_phases
from .hidden_modes import HiddenModeStep
from .loop import run_plan
from .projections import ObjectConstraints

CYCLES = 4
"""ER/HIO cycles of one warm-start run."""

ER_ITERATIONS = 20
"""ER iterations opening each cycle."""

HIO_ITERATIONS = 180
"""HIO iterations of each cycle."""

FINAL_ER_ITERATIONS = 50
"""ER iterations on the final support, closing the run."""

BETA = 0.9
"""HIO feedback parameter."""

SHRINKWRAP_PERIOD = 20
"""Iterations between shrinkwrap updates."""

SHRINKWRAP_SIGMA_PX = (1.5, 0.5)
"""Gaussian sigma of shrinkwrap at the start and at the end of the cycles, pixels."""

ITERATIONS_PER_RUN = CYCLES * (ER_ITERATIONS + HIO_ITERATIONS) + FINAL_ER_ITERATIONS
"""Projection iterations of one warm-start run."""



@dataclass
class WarmStart:
    """The kept warm-start run.

    Attributes
    ----------
    obj : torch.Tensor, complex64, frame shape, centred
        Object (zero outside ``support``).
    support : torch.Tensor, bool, frame shape, centred
        Final shrinkwrap support (inside the object box).
    score : float
        Free-pixel (else training) mean Poisson deviance of ``obj``.
    run : int
        Index of the kept run.
    scores : list of float
        Score of every run, in order.
    interrupted : bool
        True when Ctrl-C stopped the runs: the object is then the best of the
        finished runs and the interrupted one.
    coherence : PartialCoherence or None
        The kept run's partial-coherence kernel (``--psf``), None for a coherent model.
    """

    obj: torch.Tensor
    support: torch.Tensor
    score: float
    run: int
    scores: list[float]
    interrupted: bool = False
    coherence: PartialCoherence | None = None


def object_box(frame_shape: tuple[int, ...], object_shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """Bool mask (frame shape, centred) of the box the DIP object is padded into."""
    return pad_to_frame(torch.ones(object_shape, dtype=torch.bool, device=device), frame_shape)


WARM_START_PLAN = CYCLES * (ER_ITERATIONS * ER + HIO_ITERATIONS * HIO) + FINAL_ER_ITERATIONS * ER
"""One warm-start run: ``4*(20*ER+180*HIO)+50*ER``."""


class _BoxedShrinkwrap:
    """Shrinkwrap of the support-masked object every :data:`SHRINKWRAP_PERIOD` iterations, inside the box."""

    def __init__(self, support: torch.Tensor, box: torch.Tensor, threshold: float):
        self.current = support
        self._box = box
        self._threshold = threshold
        self._until = CYCLES * (ER_ITERATIONS + HIO_ITERATIONS)

    def after(self, iteration: int, x: torch.Tensor) -> None:
        if iteration <= self._until and iteration % SHRINKWRAP_PERIOD == 0:
            sigma = sigma_schedule(*SHRINKWRAP_SIGMA_PX, iteration / self._until)
            self.current = shrinkwrap(_inside(x, self.current), sigma_px=sigma, threshold=self._threshold) & self._box


def _inside(obj: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
    return torch.where(support, obj, torch.zeros((), dtype=obj.dtype, device=obj.device))


def hio_in_box(problem: Problem, box: torch.Tensor, *, threshold: float, rng: torch.Generator,
               init: Initialiser = random_phases, first_support: torch.Tensor | None = None,
               positivity: bool = False, coherence: PartialCoherence | None = None,
               on_step: Callable[[], None] | None = None,
               hidden_mode_floor: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """One warm-start run: :data:`WARM_START_PLAN` with shrinkwrap bounded by the box.

    Parameters
    ----------
    problem : Problem
        Counts and fitted pixels (the others float in the modulus projection).
    box : torch.Tensor, bool, frame shape, centred
        The DIP object box: the first support and a bound on every later one.
    threshold : float
        Shrinkwrap threshold, relative to the maximum of the blurred amplitude.
    rng : torch.Generator
        Draws the random starting phases (through ``init``).
    init : Initialiser
        The starting object inside the first support.
    first_support : torch.Tensor, bool, frame shape, centred, optional
        First support (cut to the box); default: the box.
    positivity : bool
        Impose ``Re x >= 0`` inside the support.
    coherence : PartialCoherence, optional
        Partial coherence (``--psf``): the run fits the blurred modulus (and
        refines this kernel, in place, when it is fitted).
    on_step : callable, optional
        Called after every iteration (progress, Ctrl-C).
    hidden_mode_floor : float
        Behind a masked centre, without positivity and with the coherent
        model: the modulus step taken in full along the support's hidden
        modes, capped at ``1 / hidden_mode_floor``
        (:mod:`cdi_dip.solvers.hidden_modes`); 0: the plain step.

    Returns
    -------
    obj, support : torch.Tensor
        Complex object (zero outside the support) and bool support, FFT order.
    interrupted : bool
        Ctrl-C stopped the run: the object is its last iterate.

    Notes
    -----
    The iterations are :func:`cdi_dip.solvers.loop.run_plan` on the torch
    kernels, which round as the reference updates do (so that a seed gives
    the double DIP the same warm start as before the loop was shared; the C
    kernels round ``|x|`` in single precision).
    """
    physics = problem.physics
    support = box if first_support is None else first_support & box
    box_f = physics.to_fft_order(box)
    x = physics.to_fft_order(init(problem, support, rng=rng)).contiguous()
    valid_f = physics.to_fft_order(problem.fit)
    target = ModulusTarget.build(physics.to_fft_order(measured_amplitude(problem)), valid_f)
    rule = _BoxedShrinkwrap(physics.to_fft_order(support), box_f, threshold)
    step_callback = None if on_step is None else (lambda iteration, algorithm, obj: on_step())
    modulus = None
    if coherence is not None:
        modulus = CoherentModulus(coherence, physics.to_fft_order(problem.counts), valid_f, ITERATIONS_PER_RUN)
    hidden = HiddenModeStep.for_run(valid_f, physics, hidden_mode_floor, positivity=positivity,
                                    coherence=coherence)
    state = run_plan(x, WARM_START_PLAN, target, physics, rule, kernels=TorchBackend(), beta=BETA,
                     positivity=positivity, on_iteration=step_callback, coherence=modulus, hidden_modes=hidden)
    return _inside(state.x, rule.current), rule.current, state.interrupted


def warm_start(problem: Problem, object_shape: tuple[int, ...], *, runs: int, threshold: float,
               rng: torch.Generator, init: Initialiser = random_phases, specimen: ObjectConstraints | None = None,
               on_step: Callable[[], None] | None = None,
               on_run: Callable[[float], None] | None = None, psf: PsfChoice = PsfChoice(),
               hidden_mode_floor: float = 0.0) -> WarmStart:
    """Best of ``runs`` box-bounded HIO runs by free-pixel (else training) Poisson deviance.

    Parameters
    ----------
    problem : Problem
        Counts (finite, non-negative on the fitted and free pixels), fitted
        pixels, and the held-out pixels that score the runs.
    object_shape : tuple of int
        The DIP object box (half the frame per axis).
    runs : int
        Random starts.
    threshold : float
        Shrinkwrap threshold (0-1).
    rng : torch.Generator
        Source of every run's random phases.
    init : Initialiser
        The starting object of every run (default: random phases).
    specimen : ObjectConstraints, optional
        For a specimen (a centrosymmetric pattern): its positivity and first
        support as the projection solvers choose them (:func:`choose_constraints`;
        their shrinkwrap threshold is not used: behind a beamstop 0.15 shrank
        the box-bounded support to a third of a cell's, 0.08 kept it).
        None: a crystal, no positivity, the box as first support.
    on_step : callable, optional
        Called after every projection iteration.
    on_run : callable, optional
        Called with the score of every finished run.
    psf : PsfChoice
        Partial coherence (``--psf``): every run starts its own kernel from
        this choice; the kept run's kernel comes back with it.
    hidden_mode_floor : float
        The full step along hidden support modes behind a masked centre
        (:func:`hio_in_box`); 0: the plain step.

    Returns
    -------
    WarmStart
        Centred object and support of the kept run. Ctrl-C ends the runs
        early: the result is then the best so far, with ``interrupted``.
    """
    physics = problem.physics
    box = object_box(physics.shape, object_shape, problem.device)
    counts_f = physics.to_fft_order(problem.counts)
    held_out = problem.held_out
    score_mask = physics.to_fft_order(held_out if held_out is not None else problem.fit)
    first_support = None if specimen is None else specimen.support
    positivity = specimen is not None and specimen.positivity
    best: tuple[float, torch.Tensor, torch.Tensor, int, PartialCoherence | None] | None = None
    scores: list[float] = []
    interrupted = False

    def score_of(obj: torch.Tensor, coherence: PartialCoherence | None) -> float:
        field = physics.fft(obj)
        model = field.real.square() + field.imag.square()
        score = poisson_deviance(model if coherence is None else coherence.blur(model), counts_f, score_mask)
        return score if math.isfinite(score) else math.inf

    for run in range(runs):
        choice = for_run(psf, run)
        coherence = PartialCoherence(physics.shape, choice, problem.device) if choice.enabled else None
        obj, support, interrupted = hio_in_box(problem, box, threshold=threshold, rng=rng, init=init,
                                               first_support=first_support, positivity=positivity,
                                               coherence=coherence, on_step=on_step,
                                               hidden_mode_floor=hidden_mode_floor)
        score = score_of(obj, coherence)
        scores.append(score)
        if on_run is not None:
            on_run(score)
        if best is None or score < best[0]:
            best = (score, obj, support, run, coherence)
        if interrupted:
            break
    assert best is not None
    score, obj, support, run, coherence = best
    return WarmStart(obj=physics.to_centred(obj), support=physics.to_centred(support), score=score, run=run,
                     scores=scores, interrupted=interrupted, coherence=coherence)


__all__ = ["ITERATIONS_PER_RUN", "WARM_START_PLAN", "WarmStart", "hio_in_box", "object_box", "warm_start"]
