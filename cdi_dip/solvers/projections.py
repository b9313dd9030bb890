"""Projection solvers: error reduction, HIO and RAAR with shrinkwrap.

Each algorithm is one small pure update of the object ``x`` given its masked
modulus projection ``P_M x`` and the support ``S`` (``P_S`` keeps the object
inside ``S`` and zeroes it outside). One outer loop,
:func:`solve_projections`, runs any plan of them (``3*(20*ER+180*HIO)+20*ER``).

The object constraints are chosen once per run from the data
(:func:`choose_constraints`): positivity when the pattern is centrosymmetric
(a real specimen), and, when the zero frequency is hidden (a beamstop), an
initial support of the object's own size (half the autocorrelation) and a
lower shrinkwrap threshold. docs/projections.md has the measurements behind
these choices.

References
----------
J. R. Fienup, "Phase retrieval algorithms: a comparison", Appl. Opt. 21,
2758 (1982) (ER, HIO, positivity).
D. R. Luke, "Relaxed averaged alternating reflections for diffraction
imaging", Inverse Problems 21, 37 (2005) (RAAR).
S. Marchesini et al., Phys. Rev. B 68, 140101 (2003) (shrinkwrap).
"""

from __future__ import annotations

import dataclasses

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..config import ProjectionConfig, RunConfig
from ..errors import InvalidInputError, ReconstructionError
from ..interrupts import interrupts_deferred
from ..metrics import MaskedFigures
from ..physics import FarField
from ..support import (MISSING_CENTRE_MIN_RADIUS_PX, autocorrelation_support, detwin_support, dilate_mask,
                       half_autocorrelation_support, missing_centre_radius_px, shrinkwrap, sigma_schedule)
from ..types import SolverOutput
from ..config.plan import default_plan, parse_plan, plan_length
from .base import Initialiser, IterCallback, Problem
from ..coherence import CoherentModulus, PartialCoherence
from ..config.psf import PsfChoice, for_run, parse_psf
from .friedel import FriedelAsymmetry, friedel_asymmetry
from .hidden_modes import HiddenModeStep
from .fused import ModulusTarget, positivity_mode, select_backend
from .init import measured_amplitude, random_phases
from .loop import run_plan

log = logging.getLogger(__name__)


HALF_SUPPORT_CORE_FRACTION = 1 / 16
"""Core of the autocorrelation left out of the half-autocorrelation support's
reference level, as a fraction of the smallest frame size (8 px for 128^2;
6 to 10 px gave the same cells, 4 px worse: docs/projections.md)."""


def er_update(obj: torch.Tensor, projected: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
    """Error reduction (Fienup 1982): ``x' = P_S P_M x``.

    Parameters
    ----------
    obj : torch.Tensor, complex, shape S
        Current iterate ``x`` (unused: ER forgets it; kept for a common signature).
    projected : torch.Tensor, complex, shape S
        ``P_M x``, the modulus projection in object space.
    support : torch.Tensor, bool, shape S

    Returns
    -------
    torch.Tensor, complex, shape S
    """
    del obj
    return torch.where(support, projected, torch.zeros((), dtype=projected.dtype, device=projected.device))


def hio_update(
    obj: torch.Tensor, projected: torch.Tensor, support: torch.Tensor, *, beta: float
) -> torch.Tensor:
    """Hybrid input-output (Fienup 1982).

    ``x' = P_M x`` inside the support, ``x - beta * P_M x`` outside.

    Parameters
    ----------
    obj : torch.Tensor, complex, shape S
        Current iterate ``x``.
    projected : torch.Tensor, complex, shape S
        ``P_M x``.
    support : torch.Tensor, bool, shape S
    beta : float
        Feedback parameter, typically 0.9.

    Returns
    -------
    torch.Tensor, complex, shape S
    """
    return torch.where(support, projected, obj - beta * projected)


def raar_update(
    obj: torch.Tensor, projected: torch.Tensor, support: torch.Tensor, *, beta: float
) -> torch.Tensor:
    """Relaxed averaged alternating reflections (Luke 2005).

    ``x' = beta/2 (R_S R_M + I) x + (1 - beta) P_M x`` with reflections
    ``R = 2P - I``; equivalently ``P_M x`` inside the support and
    ``beta x + (1 - 2 beta) P_M x`` outside.

    Parameters
    ----------
    obj : torch.Tensor, complex, shape S
        Current iterate ``x``.
    projected : torch.Tensor, complex, shape S
        ``P_M x``.
    support : torch.Tensor, bool, shape S
    beta : float
        Relaxation parameter, typically 0.75-0.9.

    Returns
    -------
    torch.Tensor, complex, shape S
    """
    return torch.where(support, projected, beta * obj + (1.0 - 2.0 * beta) * projected)


def positive_update(algorithm: str, update: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
                    obj: torch.Tensor, projected: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
    """One update with the object constraint ``x in S`` and ``Re x >= 0`` (Fienup 1982, HIO with positivity).

    ER projects onto the constraint: the real part is clipped at 0 inside
    the support, the object zeroed outside. HIO and RAAR treat the pixels
    where ``Re P_M x < 0`` as violating the constraint, like pixels outside
    the support.

    Parameters
    ----------
    algorithm : {"ER", "HIO", "RAAR"}
    update : callable
        The algorithm's update ``(x, P_M x, S) -> x'``.
    obj, projected : torch.Tensor, complex, shape S
        ``x`` and ``P_M x``.
    support : torch.Tensor, bool, shape S

    Returns
    -------
    torch.Tensor, complex, shape S
    """
    if algorithm == "ER":
        clipped = torch.complex(projected.real.clamp_min(0), projected.imag)
        return torch.where(support, clipped, torch.zeros((), dtype=projected.dtype, device=projected.device))
    return update(obj, projected, support & (projected.real >= 0))


@dataclass(frozen=True)
class ObjectConstraints:
    """The object constraints of one reconstruction, chosen from the data and the configuration.

    Attributes
    ----------
    support : torch.Tensor, bool, frame shape, centred
        Initial support.
    positivity : bool
        Whether ``Re x >= 0`` is imposed inside the support.
    missing_centre : bool
        Whether the zero frequency is treated as unmeasured (a beamstop).
    shrinkwrap_threshold : float
        Relative threshold of shrinkwrap for this data.
    friedel_asymmetry : FriedelAsymmetry or None
        The measured asymmetry, when positivity was chosen automatically.
    missing_centre_radius_px : float
        Distance from the zero frequency to the nearest valid pixel.
    """

    support: torch.Tensor
    positivity: bool
    missing_centre: bool
    shrinkwrap_threshold: float
    friedel_asymmetry: FriedelAsymmetry | None
    missing_centre_radius_px: float
    support_origin: str | None = None

    def summary(self) -> dict[str, Any]:
        """Plain facts for the solver's ``extra`` (and the result file)."""
        facts: dict[str, Any] = {
            "positivity": self.positivity,
            "missing_centre": self.missing_centre,
            "missing_centre_radius_px": self.missing_centre_radius_px,
            "initial_support": self.support_origin or ("half-autocorrelation" if self.missing_centre
                                                       else "autocorrelation"),
            "initial_support_px": int(self.support.sum()),
            "shrinkwrap_threshold": self.shrinkwrap_threshold,
        }
        if self.friedel_asymmetry is not None:
            facts["friedel_asymmetry"] = self.friedel_asymmetry.value
            facts["friedel_asymmetry_error"] = self.friedel_asymmetry.standard_error
            if any(self.friedel_asymmetry.centre_offset_px):
                facts["friedel_centre_offset_px"] = list(self.friedel_asymmetry.centre_offset_px)
        return facts


def choose_positivity(counts: torch.Tensor, valid: torch.Tensor,
                       opts: ProjectionConfig) -> tuple[bool, FriedelAsymmetry | None]:
    """``opts.positivity``, or when None: on if the pattern is centrosymmetric beyond two standard errors."""
    if opts.positivity is not None:
        return bool(opts.positivity), None
    asymmetry = friedel_asymmetry(counts, valid)
    symmetric = asymmetry.value + 2 * asymmetry.standard_error <= opts.positivity_max_asymmetry
    return symmetric, asymmetry


def choose_constraints(counts: torch.Tensor, valid: torch.Tensor, physics: FarField,
                       opts: ProjectionConfig, *, measured: torch.Tensor | None = None) -> ObjectConstraints:
    """Initial support, positivity and shrinkwrap threshold for one measurement.

    Parameters
    ----------
    counts : torch.Tensor, float32, frame shape, centred
        Measured photons; 0 where invalid.
    valid : torch.Tensor, bool, frame shape
        Pixels fitted.
    physics : FarField
    opts : ProjectionConfig
        ``positivity`` and ``missing_centre`` (None: automatic), thresholds.
    measured : torch.Tensor, bool, frame shape, optional
        Pixels the positivity test reads (default ``valid``): every measured
        pixel, held-out ones included, so that the test sees what ``auto``
        saw (a binary choice of constraint; nothing is fitted to them), and
        the sub-pixel centre of :func:`~cdi_dip.solvers.friedel.friedel_asymmetry`
        is not cut up by the held-out islands.

    Returns
    -------
    ObjectConstraints

    Notes
    -----
    Automatic choices, each logged: positivity is on when the Friedel
    asymmetry (:func:`friedel_asymmetry`) plus two standard errors is at most
    ``opts.positivity_max_asymmetry``: a real object, never a strained
    crystal. The centre is missing when no valid pixel lies within
    ``MISSING_CENTRE_MIN_RADIUS_PX`` of the zero frequency; then the initial
    support is :func:`~cdi_dip.support.half_autocorrelation_support` and
    shrinkwrap uses ``opts.missing_centre_shrinkwrap_threshold``.
    """
    radius_px = missing_centre_radius_px(valid)
    missing = (radius_px >= MISSING_CENTRE_MIN_RADIUS_PX if opts.missing_centre is None
               else bool(opts.missing_centre))
    if missing:
        core_px = HALF_SUPPORT_CORE_FRACTION * min(physics.shape)
        support = half_autocorrelation_support(counts, valid, physics, threshold=opts.half_support_threshold,
                                               core_radius_px=core_px)
        threshold = opts.missing_centre_shrinkwrap_threshold
    else:
        support = autocorrelation_support(counts, valid, physics, threshold=opts.support_threshold)
        threshold = opts.shrinkwrap_threshold
    positivity, asymmetry = choose_positivity(counts, valid if measured is None else measured, opts)
    constraints = ObjectConstraints(support=support, positivity=positivity, missing_centre=missing,
                                    shrinkwrap_threshold=threshold, friedel_asymmetry=asymmetry,
                                    missing_centre_radius_px=radius_px)
    log.info("object constraints: %s", constraints.summary())
    return constraints


def _held_support_settings(opts: ProjectionConfig, init: Initialiser) -> ProjectionConfig:
    """``opts`` with shrinkwrap off where the initialiser holds its support (``holds_support``: a previous
    result, refined on the support it was written with; shrinkwrap from there cuts a real crystal's soft edge
    further with every update, docs/benchmarks.md)."""
    if not getattr(init, "holds_support", False) or opts.shrinkwrap_period == 0:
        return opts
    log.info("shrinkwrap off: the start's own support is held")
    return dataclasses.replace(opts, shrinkwrap_period=0)


def _with_initialiser_support(constraints: ObjectConstraints, init: Initialiser, problem: Problem) -> ObjectConstraints:
    """The initialiser's own support in place of the autocorrelation's, when it offers one (a learned network, a
    previous result); the record names it (``support_origin``, default ``initialiser``)."""
    offered = getattr(init, "initial_support", None)
    if offered is None:
        return constraints
    support = offered(problem)
    if not bool(support.any()):
        log.warning("the initialiser's support is empty: keeping the autocorrelation's")
        return constraints
    log.info("initial support from the initialiser: %d px", int(support.sum()))
    return dataclasses.replace(constraints, support=support,
                               support_origin=getattr(init, "support_origin", "initialiser"))


def _support_bounds(opts: ProjectionConfig, constraints: ObjectConstraints) -> list[float] | None:
    """``opts.support_fraction_bounds``, or None where they are limited to a missing centre and it is not missing."""
    if opts.support_bounds_missing_centre_only and not constraints.missing_centre:
        return None
    return opts.support_fraction_bounds


def _shrinkwrap_threshold(opts: ProjectionConfig, constraints: ObjectConstraints) -> float:
    """The threshold of the projection solvers' shrinkwrap: the constraints' (relative to the maximum), or under
    ``shrinkwrap_threshold_relative_to = "rms"`` ``opts.shrinkwrap_rms_threshold`` when it is set."""
    if opts.shrinkwrap_threshold_relative_to == "rms" and opts.shrinkwrap_rms_threshold is not None:
        return opts.shrinkwrap_rms_threshold
    return constraints.shrinkwrap_threshold


SHRINKWRAP_SIGMA_MAX_SCALE = 2.0
"""The largest factor :func:`shrinkwrap_sigma_scale` applies: the one measured (sigma 3 -> 1 px on 256-512 px
frames of the tuning half; docs/benchmarks.md, "Full-size frames: shrinkwrap's blur grows with the frame")."""


def shrinkwrap_sigma_scale(shape: tuple[int, ...], frame_px: int) -> float:
    """Factor on shrinkwrap's sigmas for a frame: ``min(n / frame_px, SHRINKWRAP_SIGMA_MAX_SCALE)``, at least 1.

    Parameters
    ----------
    shape : tuple of int
        Frame shape, pixels.
    frame_px : int
        ``ProjectionConfig.shrinkwrap_sigma_frame_px``; 0 gives 1 (no scaling).

    Returns
    -------
    float
        1 for frames of at most ``frame_px`` along their smallest axis ``n``.
    """
    if frame_px <= 0:
        return 1.0
    return min(max(min(shape) / frame_px, 1.0), SHRINKWRAP_SIGMA_MAX_SCALE)


def _shrinkwrap_iterations(steps: list, period: int) -> tuple[int, int]:
    """Iterations (1-based) after which shrinkwrap may run: ``(period, last)``.

    Shrinkwrap stops before the final ER block when the plan has other
    algorithms before it, so the last iterations settle on a fixed support.
    """
    total = plan_length(steps)
    last = total
    if period > 0 and len(steps) > 1 and steps[-1].algorithm == "ER":
        last = total - steps[-1].iterations
    return period, last


def constrained_object(obj: torch.Tensor, support: torch.Tensor, positivity: bool) -> torch.Tensor:
    """The object a run reports from an iterate: ``P_S x``, with ``Re x`` clipped at 0 under positivity.

    Parameters
    ----------
    obj : torch.Tensor, complex, frame shape
        The iterate ``x`` (HIO and RAAR iterates are not zero outside the support).
    support : torch.Tensor, bool, frame shape
    positivity : bool

    Returns
    -------
    torch.Tensor, complex, frame shape
        A new tensor.
    """
    estimate = torch.where(support, obj, torch.zeros((), dtype=obj.dtype, device=obj.device))
    if positivity:
        estimate = torch.complex(estimate.real.clamp_min(0), estimate.imag)
    return estimate


@dataclass
class _Best:
    """The best support-constrained iterate seen at the metric checkpoints (returned after Ctrl-C)."""

    score: float = float("inf")
    obj: torch.Tensor | None = None
    support: torch.Tensor | None = None
    iteration: int = 0

    def offer(self, score: float, estimate: torch.Tensor, support: torch.Tensor, iteration: int) -> None:
        """Keep ``estimate`` (a fresh tensor, kept by reference: no copy) when its score is lower."""
        if score < self.score:
            self.score, self.obj, self.support, self.iteration = score, estimate, support, iteration


FINAL_KERNEL_STEPS = 20
"""Richardson-Lucy steps that fit a run's kernel to its returned object (the loop fitted it to the iterates)."""


def _final_kernel(coherence: PartialCoherence, physics: FarField, obj: torch.Tensor, counts_f: torch.Tensor,
                  valid_f: torch.Tensor, choice: PsfChoice) -> dict[str, Any]:
    """Refit a fitted kernel to the returned (support-constrained) object; its description for the solver facts.

    The loop refines the kernel against the HIO iterates, which carry
    density outside the support; the object returned is constrained, so its
    kernel is refitted to it (Richardson-Lucy never lowers the likelihood of
    a fixed coherent intensity).
    """
    if coherence.fit:
        field = physics.fft(obj)
        coherence.refine(field.real.square() + field.imag.square(), counts_f, valid_f, steps=FINAL_KERNEL_STEPS)
    return {"mode": choice.mode, "width_px": coherence.widths_px()}


class _CheckpointFigures:
    """The data-fit figures of the metric checkpoints (FFT order), the counts' share worked out once.

    Parameters
    ----------
    physics : FarField
    counts_f : torch.Tensor, float32, frame shape, FFT order
    valid_f : torch.Tensor, bool
        Fitted pixels.
    free_f : torch.Tensor, bool, or None
        Held-out pixels.
    """

    def __init__(self, physics: FarField, counts_f: torch.Tensor, valid_f: torch.Tensor,
                 free_f: torch.Tensor | None, coherence: PartialCoherence | None = None):
        self._physics = physics
        self._coherence = coherence
        self._fitted = MaskedFigures(counts_f, valid_f)
        self._free = MaskedFigures(counts_f, free_f) if free_f is not None else None

    def __call__(self, estimate: torch.Tensor) -> dict[str, float]:
        """``loss`` (mean Poisson deviance), ``r_factor`` and ``free_loss`` of a support-constrained estimate."""
        field = self._physics.fft(estimate)
        model = field.real.square() + field.imag.square()
        if self._coherence is not None:
            model = self._coherence.blur(model)
        loss, r = self._fitted(model)
        entry = {"loss": loss, "r_factor": r}
        if self._free is not None:
            entry["free_loss"] = self._free(model)[0]
        return entry


@dataclass(frozen=True)
class ProjectionRun:
    """What a projection run reads of the configuration.

    Attributes
    ----------
    plan : str
        The plan text (:func:`~cdi_dip.config.plan.parse_plan`).
    settings : ProjectionConfig
        Beta, object constraints, support and shrinkwrap settings, metric period.
    psf : PsfChoice
        Partial coherence (``--psf``): none, a fixed or a fitted blurring kernel.
    """

    plan: str
    settings: ProjectionConfig
    psf: PsfChoice = PsfChoice()

    @classmethod
    def from_config(cls, cfg: RunConfig) -> ProjectionRun:
        """``projection.plan``, else the method's default plan of ``cfg.iterations``."""
        opts = cfg.projection
        plan = opts.plan if opts.plan is not None else default_plan(cfg.method.value, cfg.iterations)
        return cls(plan=plan, settings=opts, psf=parse_psf(cfg.psf))


SUPPORT_RESTARTS = 2
"""Restarts of a run whose support left ``ProjectionConfig.support_fraction_bounds``; the last attempt runs
to the end whatever its support does."""

SUPPORT_THRESHOLD_FACTOR = 1.5
"""A restart divides the shrinkwrap threshold by this after a collapse and multiplies it after an explosion."""

MAX_SHRINKWRAP_THRESHOLD = 0.9
"""Highest threshold an explosion restart moves to (1 would keep only the maximum)."""


class SupportOutOfBounds(Exception):
    """Shrinkwrap made the support smaller or larger than ``support_fraction_bounds`` allow (caught: a restart).

    Parameters
    ----------
    iteration : int
        The iteration (1-based) of the shrinkwrap update.
    fraction : float
        The new support's fraction of the frame's voxels.
    collapsed : bool
        True below the lower bound, False above the upper one.
    """

    def __init__(self, iteration: int, fraction: float, collapsed: bool):
        super().__init__(f"support {'collapsed' if collapsed else 'exploded'} to {fraction:.4g} of the frame "
                         f"at iteration {iteration}")
        self.iteration, self.fraction, self.collapsed = iteration, fraction, collapsed


def moved_threshold(threshold: float, collapsed: bool) -> float:
    """The shrinkwrap threshold of the next attempt: lower after a collapse, higher after an explosion.

    Parameters
    ----------
    threshold : float
        The threshold of the attempt that left the bounds (0-1).
    collapsed : bool

    Returns
    -------
    float
        ``threshold / SUPPORT_THRESHOLD_FACTOR`` after a collapse, else
        ``threshold * SUPPORT_THRESHOLD_FACTOR`` capped at ``MAX_SHRINKWRAP_THRESHOLD``.
    """
    if collapsed:
        return threshold / SUPPORT_THRESHOLD_FACTOR
    return min(threshold * SUPPORT_THRESHOLD_FACTOR, MAX_SHRINKWRAP_THRESHOLD)


def support_fraction(support: torch.Tensor) -> float:
    """Fraction (0-1) of the frame's voxels inside ``support`` (one host sync)."""
    return float(support.sum()) / support.numel()


def _detwin_span(steps: list, iterations: int, last: int) -> tuple[int, int] | None:
    """Iterations ``(first, end)`` (1-based, inclusive) of detwinning, or None when off.

    Detwinning starts at the plan's first HIO or RAAR iteration (iteration 1
    when it has none) and lasts ``iterations``, ending no later than ``last``
    (the iteration before the final ER block, see :func:`_shrinkwrap_iterations`).
    """
    if iterations <= 0:
        return None
    done = 0
    for step in steps:
        if step.algorithm in ("HIO", "RAAR"):
            break
        done += step.iterations
    else:
        done = 0
    end = min(done + iterations, max(last, done + 1))
    return done + 1, end


class _Shrinkwrap:
    """The projection solvers' support: shrinkwrap every ``period`` iterations up to ``last`` (FFT order).

    With ``bounds`` (``[low, high]``, fractions of the frame) a shrinkwrap
    update that leaves them raises :class:`SupportOutOfBounds` (one host sync
    per update, only then). With ``opts.detwin_iterations`` the support is cut
    by :func:`~cdi_dip.support.detwin_support` (on its centred view) for those
    iterations (:func:`_detwin_span`), without shrinkwrap, then the support
    held before the cut returns; ``detwin`` then describes what was done.
    ``sigma_px`` is the blur's ``(start, end)`` in pixels for this frame
    (:func:`shrinkwrap_sigma_scale`).
    """

    def __init__(self, support: torch.Tensor, opts: ProjectionConfig, threshold: float, steps: list,
                 bounds: list[float] | None = None, physics: FarField | None = None):
        self.current = support
        self._opts = opts
        self._threshold = threshold
        self._bounds = bounds
        self._physics = physics
        self._period, self._last = _shrinkwrap_iterations(steps, opts.shrinkwrap_period)
        scale = shrinkwrap_sigma_scale(tuple(support.shape), opts.shrinkwrap_sigma_frame_px)
        self.sigma_px = (opts.shrinkwrap_sigma_start * scale, opts.shrinkwrap_sigma_end * scale)
        self._total = plan_length(steps)
        self.outline: torch.Tensor | None = None
        self._span = _detwin_span(steps, opts.detwin_iterations, self._total if self._last <= 0 else self._last)
        self._full: torch.Tensor | None = None
        self.detwin: dict[str, Any] | None = None
        if self._span is not None and self._span[0] == 1:
            self._cut(0)

    def _centred_current(self) -> torch.Tensor:
        """The current support (FFT order) as a centred view."""
        physics = self._physics
        return physics.to_centred(self.current) if physics is not None else torch.fft.fftshift(self.current)

    def _in_fft_order(self, centred: torch.Tensor) -> torch.Tensor:
        """A centred support back in FFT order, contiguous."""
        physics = self._physics
        return (physics.to_fft_order(centred) if physics is not None else torch.fft.ifftshift(centred)).contiguous()

    def _cut(self, iteration: int) -> None:
        """Keep the full support aside and cut the current one (detwinning starts after ``iteration``)."""
        cut = detwin_support(self._centred_current())
        self._full = self.current
        self.current = self._in_fft_order(cut)
        first, end = self._span
        self.detwin = {"first_iteration": first, "last_iteration": end, "iterations": end - first + 1,
                       "full_support_px": int(self._full.sum()), "detwin_support_px": int(self.current.sum())}
        log.info("detwinning: support cut from %d to %d px for iterations %d-%d", self.detwin["full_support_px"],
                 self.detwin["detwin_support_px"], first, end)

    def after(self, iteration: int, x: torch.Tensor) -> None:
        span = self._span
        if span is not None and span[0] <= iteration <= span[1]:
            if iteration == span[1]:  # the cut support's last iteration: the full one returns
                self.current, self._full = self._full, None
            return
        if self._period and iteration % self._period == 0 and iteration <= self._last:
            sigma = sigma_schedule(*self.sigma_px, iteration / max(self._last, 1))
            rms = self._opts.shrinkwrap_threshold_relative_to == "rms"
            self.current = shrinkwrap(x, sigma_px=sigma, threshold=self._threshold,
                                      relative_to="rms" if rms else "max", support=self.current if rms else None)
            if self._bounds is not None:
                self._check(iteration)
        if iteration == self._last and self._last < self._total and self._opts.final_support_margin_px > 0:
            self._grow_for_final_er(self._opts.final_support_margin_px)
        if span is not None and iteration == span[0] - 1:
            self._cut(iteration)

    @property
    def written(self) -> torch.Tensor:
        """The support a run returns: the current one, or the shrinkwrap outline a final margin grew from.

        With ``final_support_margin_px`` the object is fitted on the grown
        support and keeps its faint fall-off in the margin, but the support
        written with it (the crystal's shape, on which the phase offset, the
        strain and the report's extent are taken) is the outline itself.
        """
        return self.outline if self.outline is not None else self.current

    @property
    def final_margin(self) -> dict[str, int] | None:
        """What the final margin did (``pixels``, ``support_px_before``, ``support_px``); None when none grew."""
        if self.outline is None:
            return None
        return {"pixels": self._opts.final_support_margin_px, "support_px_before": int(self.outline.sum()),
                "support_px": int(self.current.sum())}

    def _grow_for_final_er(self, pixels: int) -> None:
        """Dilate the current support by ``pixels`` (on its centred view: the box wraps like the frame)."""
        self.outline = self.current
        self.current = self._in_fft_order(dilate_mask(self._centred_current(), pixels))
        margin = self.final_margin
        log.info("final ER on the support grown by %d px: %d -> %d px", pixels, margin["support_px_before"],
                 margin["support_px"])

    def _check(self, iteration: int) -> None:
        """Raise :class:`SupportOutOfBounds` when the current support is outside ``bounds``."""
        fraction = support_fraction(self.current)
        low, high = self._bounds
        if not low <= fraction <= high:
            raise SupportOutOfBounds(iteration, fraction, collapsed=fraction < low)


def _hidden_mode_step(opts: ProjectionConfig, valid_f: torch.Tensor, physics: FarField, *, positivity: bool,
                      coherence: PartialCoherence | None) -> HiddenModeStep | None:
    """The full step along hidden support modes when the centre is masked, the object complex and the model
    coherent (:mod:`cdi_dip.solvers.hidden_modes`); None otherwise or with ``hidden_mode_floor = 0``."""
    step = HiddenModeStep.for_run(valid_f, physics, opts.hidden_mode_floor, positivity=positivity,
                                  coherence=coherence)
    if step is not None:
        log.info("masked centre (%d px): the modulus step is taken in full along hidden support modes (cap %.0fx)",
                 len(step.frequencies), 1 / step.floor)
    return step


def power_outside(x: torch.Tensor, support: torch.Tensor) -> float:
    """Fraction (0-1) of ``sum |x|^2`` outside ``support``; 0 when ``x`` has no power (one host sync)."""
    power = x.real.square() + x.imag.square()
    total = float(power.sum())
    return float(power[~support].sum()) / total if total > 0 else 0.0


def _before_polish(steps: list) -> int:
    """The last iteration (1-based) before the plan's final ER block, or the last one when it has none."""
    total = plan_length(steps)
    if len(steps) > 1 and steps[-1].algorithm == "ER":
        return total - steps[-1].iterations
    return total


def projection_outside_fraction(x: torch.Tensor, support: torch.Tensor, target: ModulusTarget, physics: FarField,
                                kernels: Any) -> float:
    """Fraction of the power ``|P_M x|^2`` of the modulus projection of ``x`` that lies outside ``support``.

    The object a run returns is support-constrained; its modulus projection
    is not, and the power it puts outside the support says how far the run
    is from a consistent solution (PyNX rejects runs above about 0.1).

    Parameters
    ----------
    x : torch.Tensor, complex64, frame shape, FFT order
        The last iterate.
    support : torch.Tensor, bool, frame shape, FFT order
    target : ModulusTarget
    physics : FarField
    kernels : Backend
        Its coherent modulus projection is used (also under a blurring kernel).

    Returns
    -------
    float
        0-1; 0 when the projection has no power.
    """
    return power_outside(physics.ifft(kernels.project_modulus_(physics.fft(x).contiguous(), target)), support)


def _restart_record(restarts: list[dict[str, Any]], exc: SupportOutOfBounds, threshold: float) -> float:
    """Log and record (in ``restarts``) a support that left its bounds; the threshold of the next attempt."""
    moved = moved_threshold(threshold, exc.collapsed)
    log.warning("%s (shrinkwrap threshold %.3g): starting again with threshold %.3g", exc, threshold, moved)
    restarts.append({"iteration": exc.iteration, "support_fraction": exc.fraction,
                     "cause": "collapsed" if exc.collapsed else "exploded", "threshold": threshold,
                     "next_threshold": moved})
    return moved


def solve_projections(
    problem: Problem,
    options: ProjectionRun,
    *,
    init: Initialiser = random_phases,
    rng: torch.Generator,
    on_iter: IterCallback | None = None,
) -> SolverOutput:
    """Reconstruct with a plan of ER, HIO and RAAR iterations and shrinkwrap.

    Parameters
    ----------
    problem : Problem
        Counts (0 where invalid), fitted pixels (the others are free in the
        modulus projection: their far-field value is left unchanged), the
        held-out pixels (used only for the ``free_loss`` in the history and to
        choose the object returned after Ctrl-C) and the forward model.
    options : ProjectionRun
        The plan and ``projection`` settings (beta, object constraints,
        support and shrinkwrap settings, metric period).
    init : Initialiser
        The starting object inside the initial support (default: random
        phases on the measured amplitudes).
    rng : torch.Generator
        Source of the random starting phases (on the problem's device).
    on_iter : callable, optional
        Called every ``metric_period`` iterations with ``iteration``,
        ``total``, ``loss``, ``algorithm`` (and the rest of the history
        entry). May raise :class:`KeyboardInterrupt` to stop.

    Returns
    -------
    SolverOutput
        Centred complex64 object: :func:`constrained_object` of the iterate at
        the metric checkpoint that fits best (by ``free_loss``, else
        ``loss``), which is the last iterate unless the run went astray
        after a better fit (on full-size frames HIO can diverge late in the
        plan: tuning half, 2D clean, median error 0.81 with the last iterate,
        0.20 with the best checkpoint; docs/benchmarks.md) or Ctrl-C stopped
        it; centred bool support (that of the
        returned object; with ``final_support_margin_px``, the shrinkwrap
        outline the margin grew from, while the object keeps its values in
        the margin), history entries ``iteration``, ``algorithm``,
        ``loss`` (mean Poisson deviance on the valid pixels of
        :func:`constrained_object` of the iterate), ``r_factor``,
        ``support_size`` and ``free_loss`` (with free pixels), ``interrupted``
        after Ctrl-C, and ``extra``: ``plan``, ``shrinkwrap_sigma_px`` (the blur's start and end for
        this frame, :func:`shrinkwrap_sigma_scale`), ``kernels`` (the fused steps used and where
        they come from, :attr:`cdi_dip.solvers.fused.Backend.description`), ``best_iteration``
        when an earlier checkpoint is returned, the constraints chosen
        (:meth:`ObjectConstraints.summary`: ``positivity``,
        ``missing_centre``, ``initial_support``, ``shrinkwrap_threshold``...),
        ``outside_fraction`` (:func:`power_outside` of the iterate at the end
        of the last HIO/RAAR block, before the final ER block; for an earlier
        checkpoint returned, its ``outside_fraction_projection``; of
        ``P_M x`` when the run stopped earlier), ``outside_fraction_projection``
        (:func:`projection_outside_fraction` of the last iterate, or of the earlier
        checkpoint returned) and, with ``support_fraction_bounds``,
        ``support_fraction`` (of the final support), ``support_restarts`` (one
        entry per restart: ``iteration``, ``support_fraction``, ``cause``
        collapsed or exploded, ``threshold``, ``next_threshold``) and
        ``shrinkwrap_thresholds`` (every threshold tried, the last one kept); under
        ``shrinkwrap_threshold_relative_to = "rms"`` that setting and the threshold used
        (``shrinkwrap_threshold``); with ``detwin_iterations``, ``detwin``
        (``first_iteration``, ``last_iteration``, ``iterations``, ``full_support_px``,
        ``detwin_support_px``).

    Raises
    ------
    InvalidInputError
        For a bad plan or no fitted pixel with counts.
    ReconstructionError
        When the iterate becomes NaN or Inf.

    Notes
    -----
    The iterations are :func:`cdi_dip.solvers.loop.run_plan`: two FFTs and two
    fused elementwise passes each; nothing inside the loop waits for the
    device except the metric checkpoints (every ``metric_period``
    iterations: one more FFT, the float64 figures and one reference to the
    support-constrained estimate kept while it is the best).
    """
    opts, physics = _held_support_settings(options.settings, init), problem.physics
    steps = parse_plan(options.plan)
    total = plan_length(steps)
    if not bool((problem.counts[problem.fit] > 0).any()):
        raise InvalidInputError("no valid pixel has positive counts: check the mask and the data (nothing to fit)")
    log.info("projection plan %s (%d iterations)", options.plan, total)

    constraints = _with_initialiser_support(choose_constraints(problem.counts, problem.fit, physics, opts,
                                                               measured=problem.fit | problem.free), init, problem)
    positivity = constraints.positivity
    # Everything in FFT order from here on: no shifts inside the loop.
    counts_f = physics.to_fft_order(problem.counts)
    valid_f = physics.to_fft_order(problem.fit)
    free_f = physics.to_fft_order(problem.held_out) if problem.held_out is not None else None
    amplitude = physics.to_fft_order(measured_amplitude(problem))
    initial_support = physics.to_fft_order(constraints.support).contiguous()
    target = ModulusTarget.build(amplitude, valid_f)
    device = initial_support.device
    backend = select_backend(device)
    log.debug("fused steps: %s", backend.description)

    psf = for_run(options.psf, 0)  # under "select" the random starts alternate (cdi_dip.restarts)
    coherence = PartialCoherence(physics.shape, psf, device) if psf.enabled else None
    modulus = CoherentModulus(coherence, counts_f, valid_f, total) if coherence is not None else None
    figures = _CheckpointFigures(physics, counts_f, valid_f, free_f, coherence)
    hidden_modes = _hidden_mode_step(opts, valid_f, physics, positivity=positivity, coherence=coherence)
    constrained_mode = positivity_mode("ER", positivity)

    def constrained(obj: torch.Tensor) -> torch.Tensor:
        """:func:`constrained_object` of ``obj`` on the current support, as a new tensor, by the fused ER step."""
        return backend.update_(obj.clone(), obj, support.current, (0.0, 0.0), constrained_mode)

    history: list[dict[str, Any]] = []

    before_polish = _before_polish(steps)
    outside: dict[str, float] = {}

    def record(iteration: int, algorithm: str, x: torch.Tensor) -> None:
        if iteration == before_polish:
            outside["iterate"] = power_outside(x, support.written)
        if iteration % opts.metric_period and iteration != total:
            return
        estimate = constrained(x)
        entry: dict[str, Any] = {"iteration": iteration, "algorithm": algorithm, **figures(estimate),
                                 "support_size": int(support.current.sum())}
        if not math.isfinite(entry["loss"]):
            raise ReconstructionError(
                f"the {algorithm} iterate became NaN or Inf at iteration {iteration}: "
                "the data may hold NaN/Inf counts, or try a smaller projection.beta"
            )
        history.append(entry)
        best.offer(entry.get("free_loss", entry["loss"]), estimate, support.written, iteration)
        if on_iter is not None:
            on_iter({**entry, "total": total})

    threshold = _shrinkwrap_threshold(opts, constraints)
    restarts: list[dict[str, Any]] = []
    wanted_bounds = _support_bounds(opts, constraints)
    while True:  # one attempt, and a new one with a moved threshold when the support leaves its bounds
        bounds = wanted_bounds if len(restarts) < SUPPORT_RESTARTS else None
        support = _Shrinkwrap(initial_support, opts, threshold, steps, bounds, physics)
        x = physics.to_fft_order(init(problem, constraints.support, rng=rng)).to(torch.complex64).contiguous()
        history.clear()
        outside.clear()
        best = _Best()
        if modulus is not None:
            modulus.iteration = 0
        try:
            state = run_plan(x, steps, target, physics, support, kernels=backend, beta=opts.beta,
                             positivity=positivity, on_iteration=record, coherence=modulus,
                             hidden_modes=hidden_modes)
            break
        except SupportOutOfBounds as exc:
            threshold = _restart_record(restarts, exc, threshold)
    interrupted, iteration, x = state.interrupted, state.iterations, state.x

    with interrupts_deferred(already=interrupted) as finishing:  # an iterate exists: finish it whatever comes
        extra: dict[str, Any] = {"plan": options.plan, "kernels": backend.description, **constraints.summary(),
                                 "shrinkwrap_sigma_px": [round(sigma, 3) for sigma in support.sigma_px]}
        if opts.shrinkwrap_period == 0:
            extra["shrinkwrap"] = "off"
        if opts.shrinkwrap_threshold_relative_to != "max":
            extra["shrinkwrap_threshold"] = _shrinkwrap_threshold(opts, constraints)
            extra["shrinkwrap_threshold_relative_to"] = opts.shrinkwrap_threshold_relative_to
        if support.detwin is not None:
            extra["detwin"] = support.detwin
        if hidden_modes is not None:
            extra["hidden_mode_step"] = {"floor": hidden_modes.floor, "modes_last_support": hidden_modes.modes_used}
        margin = support.final_margin
        if margin is not None:
            extra["final_support_margin"] = margin
        if wanted_bounds is not None:
            extra["support_fraction"] = support_fraction(support.current)
            extra["support_restarts"] = restarts
            extra["shrinkwrap_thresholds"] = [entry["threshold"] for entry in restarts] + [threshold]
        if best.obj is not None and (interrupted or best.iteration < iteration):
            if interrupted:
                log.warning("interrupted at iteration %d of %d; returning the best iterate so far (iteration %d)",
                            iteration, total, best.iteration)
            else:
                log.info("returning the checkpoint of iteration %d of %d: it fits the %s pixels better than the "
                         "last one", best.iteration, total, "held-out" if free_f is not None else "fitted")
            obj, final_support = best.obj, best.support
            extra["best_iteration"] = best.iteration
            extra["outside_fraction_projection"] = projection_outside_fraction(obj, final_support, target,
                                                                               physics, backend)
            extra["outside_fraction"] = extra["outside_fraction_projection"]
        else:
            extra["outside_fraction_projection"] = projection_outside_fraction(x, support.current, target,
                                                                               physics, backend)
            extra["outside_fraction"] = outside.get("iterate", extra["outside_fraction_projection"])
            if interrupted:
                log.warning("interrupted at iteration %d of %d, before the first metric checkpoint; "
                            "returning the current object", iteration, total)
            obj, final_support = constrained(x), support.written
        if not bool(torch.isfinite(torch.view_as_real(obj)).all()):
            raise ReconstructionError(
                f"the iterate became NaN or Inf by iteration {iteration}: "
                "the data may hold NaN/Inf counts, or try a smaller projection.beta"
            )
        if coherence is not None:
            extra["psf"] = _final_kernel(coherence, physics, obj, counts_f, valid_f, psf)
        return SolverOutput(
            obj=physics.to_centred(obj).to(torch.complex64).cpu().numpy(),
            support=physics.to_centred(final_support).cpu().numpy(),
            history=history,
            iterations=iteration,
            interrupted=interrupted or finishing.requested,
            extra=extra,
            psf=coherence.compact() if coherence is not None else None,
        )


__all__ = [
    "FriedelAsymmetry",
    "ObjectConstraints",
    "choose_constraints",
    "constrained_object",
    "er_update",
    "friedel_asymmetry",
    "hio_update",
    "positive_update",
    "raar_update",
    "ProjectionRun",
    "SupportOutOfBounds",
    "moved_threshold",
    "power_outside",
    "projection_outside_fraction",
    "solve_projections",
    "support_fraction",
    "shrinkwrap_sigma_scale",
]
