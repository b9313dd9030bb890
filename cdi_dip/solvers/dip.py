"""Double deep image prior (double DIP) phase retrieval, 2D and 3D.

Reference: Z. Zhuang, D. Yang, F. Hofmann, D. Barmherzig and J. Sun,
*Practical phase retrieval using double deep image priors*, Electronic Imaging
(2023), arXiv:2211.00799.

The object ``X`` has half the detector frame size along every axis and is the
output of two untrained generators (:class:`~cdi_dip.solvers.nets.DoubleDip`),
zero-padded into the frame. Adam fits the networks' weights to the measured
counts ``n`` through a masked loss on the valid pixels only:

- ``amplitude``: ``mean (sqrt(n) - |F pad X|)**2``;
- ``poisson``: ``mean (m - n log m)`` with ``m = |F pad X|**2 + eps``.

A run (docs/dip.md explains and measures every step):

1. *Warm start* (``dip.warm_start_runs > 0``, the default): that many HIO runs
   inside the object box with shrinkwrap bounded by the box
   (:mod:`~cdi_dip.solvers.dip_warmstart`); the run with the lowest free-pixel
   Poisson deviance is kept. Gradient descent on the DIP from a random start
   stagnates on most hard cases (dislocations, beamstop); HIO finds the basin.
2. *Pre-fit*: ``dip.prefit_iterations`` Adam steps fit the networks to the
   warm-start object (complex L2).
3. *Fit*: the data loss, on the object masked by the warm-start support
   dilated by ``dip.support_margin_px`` (None: the whole box), with the
   learning rate ramped up over ``dip.warmup_iterations``; ``iterations``
   (``RunConfig.iterations``, else :data:`DEFAULT_ITERATIONS`) in total, keeping
   the best iterate by the loss on the held-out *free* pixels (by the
   training loss without them) and stopping once it has not improved for
   ``dip.patience`` iterations (``dip.early_stop = "free"``, the default);
   or by the windowed moving variance of the iterates
   (:mod:`~cdi_dip.solvers.early_stop`, ``"variance"``), or by the first of
   the two (``"both"``).
4. An optional error-reduction polish of ``dip.polish_iterations`` iterations
   with the support ``|X| > 0.15 max |X|`` (dilated by one pixel), kept only
   where it lowers the free (else training) loss.

Without a warm start (``dip.warm_start_runs = 0``, the plain recipe of the
seed documents) step 1-2 are replaced by ``dip.probes`` short probes from
random starts, the one with the lowest training loss continued, on the whole
box.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..coherence import CoherentModulus, PartialCoherence
from ..config import DipConfig, DipLoss, DipParam, EarlyStop, ProjectionConfig, RunConfig
from ..config.plan import ER
from ..config.psf import PsfChoice, for_run, parse_psf
from ..errors import InvalidInputError, ReconstructionError
from ..interrupts import interrupts_deferred
from ..physics import FarField, crop_centre, pad_to_frame
from ..support import dilate_mask, object_extent_px
from ..time_budget import count_work
from ..types import SolverOutput
from . import dip_educated, dip_warmstart
from .base import Initialiser, IterCallback, Problem
from .early_stop import WindowedVariance
from .fused import ModulusTarget, TorchBackend
from .init import random_phases
from .loop import FixedSupport, run_plan
from .projections import ObjectConstraints, choose_constraints, choose_positivity
from .nets import DoubleDip, level_shapes

log = logging.getLogger(__name__)

DEFAULT_ITERATIONS: dict[int, int] = {2: 1000, 3: 1500}
"""Iterations of the data fit (the kept trajectory: probe or pre-fit not
included) when ``RunConfig.iterations`` is None, by number of dimensions.
Chosen by measurement (docs/dip.md)."""

DEFAULT_WARM_START_RUNS: dict[int, int] = {2: 16, 3: 8}
"""Warm-start runs when ``dip.warm_start_runs`` is None, by number of dimensions (docs/dip.md),
for the default budget; a smaller ``RunConfig.iterations`` asks for proportionally fewer (at least 1)."""

DEFAULT_PREFIT_ITERATIONS = 300
"""Pre-fit iterations when ``dip.prefit_iterations`` is None, for the default budget; a smaller
``RunConfig.iterations`` asks for proportionally fewer."""

PHASE_HEAD = "unit"
"""Phase head of the ``mag-phase`` parameterisation: ``"unit"`` (normalised
two-channel phasor, represents phase vortices) or ``"tanh"`` (``pi*tanh``)."""

CHECK_PERIOD = 10
"""Iterations between checks (best iterate, early stop, callback, history)."""

NETWORK_STEP_WORK = {2: 150.0, 3: 60.0}
"""A step of the networks (forward and backward, and Adam's update), as work for the relative time budget
(:func:`cdi_dip.time_budget.count_work`): this many transforms of the frame, besides the forward model's own, by
the frame's dimensions. Measured on one CPU thread (2026-12-08, whole reconstructions with the default networks,
the seconds of a step over those of a transform in a projection run of the same frame): 214, 190 and 127 for
32x32, 64x64 and 128x128 frames, 64 for 24^3. A proxy for time that a seed fixes, not a clock."""

SUPPORT_THRESHOLD = 0.1
"""Relative amplitude threshold of the returned support."""

POLISH_THRESHOLD = 0.15
"""Relative amplitude threshold of the error-reduction polish's support."""

_POISSON_EPS = 1e-4  # photons: floor of the model intensity in the Poisson loss
_AMPLITUDE_EPS = 1e-12  # photons: keeps sqrt differentiable at zero intensity
_PROBE_SCORE_WINDOW = 0.1  # fraction of a probe's last iterations averaged for its score
_BYTES_FLOAT = 4
_BYTES_COMPLEX = 8



BOX_MARGIN_PX = 2
"""Pixels added to the object's estimated extent for the DIP box."""

BOX_MAX_FRACTION = 0.75
"""Largest DIP box per axis, as a fraction of the frame (an oversampling of 4/3)."""


def object_shape(frame_shape: Sequence[int], extent_px: Sequence[float] | None = None) -> tuple[int, ...]:
    """Shape of the DIP object box: half the frame, or more where the object needs it.

    Parameters
    ----------
    frame_shape : sequence of int
        Detector frame (pixels).
    extent_px : sequence of float, optional
        The object's estimated extent per axis
        (:func:`cdi_dip.support.object_extent_px`). Where it plus
        :data:`BOX_MARGIN_PX` exceeds half the frame (an oversampling below
        about 2, common along some axis of real Bragg data), the box grows to
        hold it, rounded up to even and capped at :data:`BOX_MAX_FRACTION` of
        the frame. None: half the frame, ``n // 2``.
    """
    half = [int(n) // 2 for n in frame_shape]
    if extent_px is None:
        return tuple(half)
    box = []
    for n, h, extent in zip(frame_shape, half, extent_px):
        needed = math.ceil(extent) + BOX_MARGIN_PX
        needed += needed % 2
        box.append(h if needed <= h else min(needed, int(BOX_MAX_FRACTION * n)))
    return tuple(box)


def loss_map(model_intensity: torch.Tensor, counts: torch.Tensor, kind: DipLoss) -> torch.Tensor:
    """Per-pixel data loss.

    Parameters
    ----------
    model_intensity : torch.Tensor, float32, frame shape
        ``|F pad X|**2`` in photons.
    counts : torch.Tensor, float32, frame shape
        Measured photons (non-negative and finite: see :func:`data_loss`).
    kind : DipLoss
        ``amplitude``: ``(sqrt(n) - sqrt(m))**2``; ``poisson``: ``m - n log m``;
        ``gaussian``: ``(m - n)**2 / max(n, 1)``.

    Returns
    -------
    torch.Tensor, float32, frame shape
    """
    kind = DipLoss(kind)
    if kind is DipLoss.AMPLITUDE:
        return (counts.sqrt() - (model_intensity + _AMPLITUDE_EPS).sqrt()).square()
    if kind is DipLoss.GAUSSIAN:
        return (model_intensity - counts).square() / counts.clamp_min(1.0)
    model = model_intensity + _POISSON_EPS
    return model - counts * model.log()


def loss_kind(cfg: RunConfig) -> DipLoss:
    """The DIP's data loss: the one named by ``cfg.noise`` when set, else ``cfg.dip.loss``."""
    return DipLoss(cfg.noise.value) if cfg.noise is not None else DipLoss(cfg.dip.loss)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over ``mask`` (True = use); other pixels contribute nothing, not even NaN."""
    return torch.where(mask, values, torch.zeros((), dtype=values.dtype, device=values.device)).sum() / mask.sum()


def data_loss(model_intensity: torch.Tensor, counts: torch.Tensor, mask: torch.Tensor, kind: DipLoss) -> torch.Tensor:
    """Mean data loss over ``mask`` (True = use); other pixels affect neither the loss nor its gradient.

    Counts outside ``mask`` (which may be anything, NaN included) are replaced
    by zero before the loss is formed, so that no NaN can reach the gradient
    through the unused branch.

    Parameters
    ----------
    model_intensity, counts : torch.Tensor, float32, frame shape
    mask : torch.Tensor, bool, frame shape
    kind : DipLoss

    Returns
    -------
    torch.Tensor, scalar
    """
    safe_counts = torch.where(mask, counts, torch.zeros((), dtype=counts.dtype, device=counts.device))
    return masked_mean(loss_map(model_intensity, safe_counts, kind), mask)


# -- memory -----------------------------------------------------------------------
def estimate_dip_memory_bytes(frame_shape: Sequence[int], cfg: RunConfig) -> int:
    """Peak memory of one double-DIP run, in bytes (an upper estimate).

    Counts what autograd keeps for the backward pass of both generators
    (per upsampling block: the convolution input, the normalised and the
    activated maps at the block's resolution and the upsampled map, all
    float32 with ``channels`` channels; then the head's maps at full
    resolution), the parameters with their gradients and two Adam moments,
    the complex64 far-field arrays of the loss and the warm start, and adds
    half again for convolution workspaces and allocator rounding. Measured
    against the peak resident memory of CPU runs in docs/dip.md. The
    variance early stop (``dip.early_stop`` not ``free``) adds its window,
    ``dip.variance_window + 4`` copies of the object box.

    Parameters
    ----------
    frame_shape : sequence of int
        Detector frame shape (pixels).
    cfg : RunConfig

    Returns
    -------
    int
    """
    shape = object_shape(frame_shape)
    channels, depth = cfg.dip.channels, cfg.dip.depth
    levels = [math.prod(level) for level in level_shapes(shape, depth)]
    ndim = len(shape)
    saved_values = 0
    for voxels, upsampled in zip(levels[:-1], levels[1:]):
        saved_values += 3 * channels * voxels + channels * upsampled  # conv in, norm, act; upsampled
    saved_values += 3 * channels * levels[-1]  # head: conv in, norm, act (the 1x1 conv reads the last)
    kernel = 3**ndim
    params = depth * (channels * channels * kernel + 3 * channels) + channels * channels * kernel + 5 * channels
    per_net = _BYTES_FLOAT * (saved_values + 4 * params)  # activations; weights, grads, two Adam moments
    frame = math.prod(int(n) for n in frame_shape)
    object_voxels = math.prod(shape)
    far_field = _BYTES_COMPLEX * frame * 6 + _BYTES_FLOAT * frame * 8  # padded object, fields; counts, masks, loss
    objects = _BYTES_COMPLEX * object_voxels * 8  # phasor, magnitude, product, best iterate, warm start, target
    if EarlyStop(cfg.dip.early_stop) is not EarlyStop.FREE:
        objects += _BYTES_COMPLEX * object_voxels * (cfg.dip.variance_window + 4)  # the variance criterion's window
    return int(1.5 * (2 * per_net + far_field + objects))


def _cuda_free_bytes(device: torch.device) -> int:
    """Free memory on a CUDA device, bytes (a function of its own so tests can replace it)."""
    free, _total = torch.cuda.mem_get_info(device)
    return int(free)


def check_device_memory(frame_shape: Sequence[int], cfg: RunConfig, device: torch.device) -> None:
    """Refuse at once a double-DIP run that cannot fit in the GPU's free memory.

    Parameters
    ----------
    frame_shape : sequence of int
    cfg : RunConfig
    device : torch.device
        Only CUDA devices are checked.

    Raises
    ------
    InvalidInputError
        When :func:`estimate_dip_memory_bytes` exceeds the free memory, with a
        line that says what is needed, what is free and how to fix it.
    """
    if torch.device(device).type != "cuda":
        return
    needed = estimate_dip_memory_bytes(frame_shape, cfg)
    free = _cuda_free_bytes(torch.device(device))
    if needed > free:
        gib = 2**30
        raise InvalidInputError(
            f"the double DIP needs about {needed / gib:.1f} GiB of GPU memory for a {tuple(frame_shape)} frame "
            f"with dip.channels = {cfg.dip.channels}, but {device} has {free / gib:.1f} GiB free: use a smaller "
            "--max-size, fewer dip.channels, or --device cpu"
        )


# -- one run ----------------------------------------------------------------------
@dataclass
class _Best:
    """Best iterate of a trajectory by its score (free loss, else training loss)."""

    score: float = math.inf
    obj: torch.Tensor | None = None
    iteration: int = -1
    loss: float = math.nan
    free_loss: float = math.nan


@dataclass
class _Trajectory:
    """One set of networks being fitted, with what the fit needs around it."""

    model: DoubleDip
    optimizer: torch.optim.Optimizer
    seed: int
    support: torch.Tensor | None = None  # bool, object shape; None = the whole box
    warmup: int = 0
    iteration: int = 0
    best: _Best = field(default_factory=_Best)
    history: list[dict[str, float]] = field(default_factory=list)
    recent_losses: list[torch.Tensor] = field(default_factory=list)

    def object(self) -> torch.Tensor:
        """The current object (object shape, complex64), masked by the support."""
        obj = self.model()
        if self.support is None:
            return obj
        return torch.where(self.support, obj, torch.zeros((), dtype=obj.dtype, device=obj.device))


class _Problem:
    """The measured data on the device and the loss of a complex object in the frame."""

    def __init__(self, counts: torch.Tensor, valid: torch.Tensor, free: torch.Tensor | None,
                 physics: FarField, kind: DipLoss):
        self.physics = physics
        self.kind = DipLoss(kind)
        self.valid = valid
        self.free = free if free is not None and bool(free.any()) else None
        self.measured = valid if self.free is None else valid | self.free
        """Every measured pixel, fitted or held out."""
        zero = torch.zeros((), dtype=torch.float32, device=counts.device)
        self.counts = torch.where(self.measured, counts.float().nan_to_num(0.0).clamp_min(0.0), zero)
        self.amplitude = self.counts.sqrt()
        self.coherence: PartialCoherence | None = None
        """The partial-coherence kernel the model intensity is blurred with (fixed here); None: coherent."""

    def as_problem(self) -> Problem:
        """The cleaned counts as a :class:`Problem` (for the warm start)."""
        return Problem.build(self.counts, self.valid, self.physics, free=self.free)

    def losses(self, frame_obj: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Training loss (with graph) and free loss (detached, or None)."""
        intensity = self.physics.intensity(frame_obj)
        if self.coherence is not None:
            intensity = self.coherence.blur(intensity)
        per_pixel = loss_map(intensity, self.counts, self.kind)
        train = masked_mean(per_pixel, self.valid)
        free = None if self.free is None else masked_mean(per_pixel.detach(), self.free)
        return train, free


def choose_parameterisation(counts: torch.Tensor, valid: torch.Tensor, physics: FarField,
                            cfg: RunConfig, *, measured: torch.Tensor | None = None
                            ) -> tuple[DipParam, ObjectConstraints | None]:
    """The object parameterisation, and for a specimen the constraints of its warm start.

    Parameters
    ----------
    counts : torch.Tensor, float32, frame shape, centred
    valid : torch.Tensor, bool, frame shape
    physics : FarField
    cfg : RunConfig
        ``dip.param`` (None: automatic) and ``projection`` (positivity test).
    measured : torch.Tensor, bool, frame shape, optional
        Pixels the positivity test reads (default ``valid``): every measured
        pixel, held-out ones included, as
        :func:`~cdi_dip.solvers.projections.choose_constraints` takes them.

    Returns
    -------
    param : DipParam
        ``cfg.dip.param``, or when None: ``real-imag`` for a centrosymmetric
        pattern (a specimen, positivity chosen as the projection solvers
        choose it), ``mag-phase`` otherwise (a crystal).
    specimen : ObjectConstraints or None
        For ``real-imag``: positivity and first support of the warm start (:func:`~cdi_dip.solvers.projections.choose_constraints`);
        None for ``mag-phase`` (the warm start starts from the object box).
    """
    chosen = None if cfg.dip.param is None else DipParam(cfg.dip.param)
    if chosen is DipParam.MAG_PHASE:
        return DipParam.MAG_PHASE, None
    measured = valid if measured is None else measured
    if chosen is None and not choose_positivity(counts, measured, cfg.projection)[0]:
        return DipParam.MAG_PHASE, None  # a crystal: no need for the autocorrelation support
    constraints = choose_constraints(counts, valid, physics, cfg.projection, measured=measured)
    log.info("double DIP: real-imag object, warm start with positivity %s and a %s initial support",
             constraints.positivity, "half-autocorrelation" if constraints.missing_centre else "autocorrelation")
    return DipParam.REAL_IMAG, constraints


class _Runner:
    """One double-DIP run: warm start or probes, pre-fit, fit, polish; keeps the best iterate for interrupts."""

    def __init__(self, problem: _Problem, cfg: DipRun, generator: torch.Generator,
                 on_iter: IterCallback | None, init: Initialiser = random_phases):
        self.problem = problem
        self.cfg = cfg
        self.init = init
        self.dip = cfg.dip
        self.param, self.specimen = choose_parameterisation(problem.counts, problem.valid, problem.physics, cfg,
                                                            measured=problem.measured)
        self.generator = generator
        self.on_iter = on_iter
        self.device = problem.counts.device
        self.frame_shape = problem.physics.shape
        start = for_run(cfg.psf, 0)  # the starting kernel, until a warm start fits its own (or picks none)
        if start.enabled:
            problem.coherence = _held_fixed(PartialCoherence(problem.physics.shape, start, problem.counts.device))
        extent = object_extent_px(problem.counts, problem.valid, problem.physics)
        self.object_shape = object_shape(self.frame_shape, extent)
        if self.object_shape != object_shape(self.frame_shape):
            log.info("double DIP: object box %s, not half the frame: the autocorrelation puts the object's "
                     "extent at %s px", "x".join(map(str, self.object_shape)), ", ".join(f"{e:.0f}" for e in extent))
        ndim = len(self.frame_shape)
        self.total = int(cfg.iterations) if cfg.iterations is not None else DEFAULT_ITERATIONS[ndim]
        share = min(1.0, self.total / DEFAULT_ITERATIONS[ndim])  # a shorter budget shortens the default stages too
        self.educated = dip_educated.for_run(self.dip.weights, self.object_shape, self.param)
        configured_runs = dip_educated.warm_start_runs(self.educated, self.dip.warm_start_runs)
        self.warm_runs = (configured_runs if configured_runs is not None
                          else max(1, math.ceil(DEFAULT_WARM_START_RUNS[ndim] * share)))
        self.prefit_iterations = (self.dip.prefit_iterations if self.dip.prefit_iterations is not None
                                  else math.ceil(DEFAULT_PREFIT_ITERATIONS * share))
        self.probe_count = 1 if self.warm_runs > 0 or self.educated is not None else self.dip.probes
        self.probe_iterations = min(self.dip.probe_iterations, self.total) if self.probe_count > 1 else 0
        self.work_total = (self.warm_runs * dip_warmstart.ITERATIONS_PER_RUN
                           + (self.prefit_iterations if self.warm_runs > 0 else 0)
                           + self.probe_count * self.probe_iterations + self.total - self.probe_iterations
                           + self.dip.polish_iterations)
        self.work_done = 0
        # Drawn first, so that the networks do not depend on how many warm-start runs consumed the generator.
        self.network_seeds = self._network_seeds()
        self.probes: list[_Trajectory] = []
        self.kept: _Trajectory | None = None
        self.warm: dip_warmstart.WarmStart | None = None
        self.stage = "probe"
        self.extra: dict[str, Any] = {}
        self.early_stop = EarlyStop(self.dip.early_stop)
        checks = math.ceil(self.dip.variance_patience / CHECK_PERIOD)
        self.variance = (None if self.early_stop is EarlyStop.FREE
                         else WindowedVariance(self.dip.variance_window, checks))
        self.variance_best: _Best | None = None
        """The losses of the iterate at the variance minimum (its object is ``self.variance.min_object``)."""
        self.stops: dict[str, int] = {}
        """Iteration at which each criterion first said stop (whether or not it was the one obeyed)."""
        if self.educated is not None:
            self.extra["dip_weights"] = self.educated.record(self.warm_runs, self.prefit_iterations)

    # -- building -----------------------------------------------------------
    def _network_seeds(self) -> list[int]:
        seeds = torch.randint(0, 2**62, (self.probe_count,), generator=self.generator, device=self.generator.device)
        return [int(s) for s in seeds.tolist()]

    def _new_trajectory(self, seed: int, *, support: torch.Tensor | None = None, warmup: int = 0) -> _Trajectory:
        autocast = self.dip.mixed_precision and self.device.type == "cuda"
        if self.educated is not None:  # pretrained weights and inputs (--dip-weights) instead of random ones
            model = self.educated.networks(self.device, autocast)
        else:
            model = DoubleDip(self.object_shape, self.param, channels=self.dip.channels, depth=self.dip.depth,
                              generator=torch.Generator().manual_seed(seed), device=self.device,
                              phase_head=PHASE_HEAD, autocast=autocast)
        optimizer = torch.optim.Adam(model.parameters(), lr=self.dip.learning_rate)
        return _Trajectory(model=model, optimizer=optimizer, seed=seed, support=support, warmup=warmup)

    @torch.no_grad()
    def _match_power(self, model: DoubleDip) -> None:
        """Set the learned scale so that the initial power on valid pixels equals the measured one."""
        frame = pad_to_frame(model(), self.frame_shape)
        model_power = masked_mean(self.problem.physics.intensity(frame), self.problem.valid)
        measured = masked_mean(self.problem.counts, self.problem.valid)
        if float(model_power) > 0 and float(measured) > 0:
            model.log_scale.fill_(0.5 * math.log(float(measured) / float(model_power)))

    # -- progress -----------------------------------------------------------
    def _report(self, loss: float, free_loss: float | None) -> None:
        if self.on_iter is None:
            return
        info: dict[str, Any] = {"iteration": self.work_done, "total": self.work_total, "loss": loss,
                                "stage": self.stage}
        if free_loss is not None:
            info["free_loss"] = free_loss
        if self.stage == "probe":
            info["probe"] = len(self.probes) - 1
        self.on_iter(info)

    # -- warm start and pre-fit ---------------------------------------------
    def run_warm_start(self) -> None:
        """HIO runs inside the box; keeps the best as the start of the networks."""
        self.stage = "warm-start"
        scores: list[float] = []

        def on_step() -> None:
            self.work_done += 1
            if self.work_done % CHECK_PERIOD == 0:
                self._report(min(scores) if scores else math.nan, None)

        def on_run(score: float) -> None:
            scores.append(score)

        self.warm = dip_warmstart.warm_start(
            self.problem.as_problem(), self.object_shape, runs=self.warm_runs,
            threshold=self.dip.warm_start_threshold, rng=self.generator, init=self.init,
            specimen=self.specimen, on_step=on_step, on_run=on_run, psf=self.cfg.psf,
            hidden_mode_floor=self.cfg.projection.hidden_mode_floor)
        self.problem.coherence = _held_fixed(self.warm.coherence)
        self.extra["warm_start_scores"] = self.warm.scores
        self.extra["warm_start_kept"] = self.warm.run
        self.extra["warm_start_support_size"] = int(self.warm.support.sum())
        if self.warm.interrupted:
            raise KeyboardInterrupt

    def _fit_support(self) -> torch.Tensor | None:
        """The warm-start support dilated by ``dip.support_margin_px``, object shape; None: the whole box."""
        if self.dip.support_margin_px is None or self.warm is None:
            return None
        return crop_centre(dilate_mask(self.warm.support, self.dip.support_margin_px), self.object_shape)

    def run_prefit(self) -> None:
        """Fit the networks to the warm-start object (complex L2), then hand them to the data fit."""
        self.stage = "prefit"
        assert self.warm is not None
        seed = self.network_seeds[0]
        traj = self._new_trajectory(seed, support=self._fit_support(), warmup=self.dip.warmup_iterations)
        target = _global_phase_removed(crop_centre(self.warm.obj, self.object_shape))
        with torch.no_grad():
            traj.model.log_scale.fill_(math.log(max(float(target.abs().max()), 1e-12)))
        power = target.abs().square().mean().clamp_min(1e-30)
        optimizer = torch.optim.Adam(traj.model.parameters(), lr=self.dip.learning_rate)
        self.kept = traj
        for step in range(self.prefit_iterations):
            misfit = (traj.model() - target).abs().square().mean() / power
            optimizer.zero_grad(set_to_none=True)
            misfit.backward()
            optimizer.step()
            self.work_done += 1
            self._count_network_step()
            if step % CHECK_PERIOD == 0:
                self._report(float(misfit.detach()), None)
        self.extra["prefit_misfit"] = float(misfit.detach()) if self.prefit_iterations else math.nan
        self.stage = "fit"

    # -- iterating ----------------------------------------------------------
    def _count_network_step(self) -> None:
        """One step of the networks, counted as :data:`NETWORK_STEP_WORK` transforms of the frame."""
        count_work(NETWORK_STEP_WORK[len(self.frame_shape)] * math.prod(self.frame_shape))

    def _evaluate(self, traj: _Trajectory) -> tuple[torch.Tensor, float, float | None]:
        with torch.no_grad():
            obj = traj.object()
            train, free = self.problem.losses(pad_to_frame(obj, self.frame_shape))
        return obj, float(train), None if free is None else float(free)

    def _set_learning_rate(self, traj: _Trajectory) -> None:
        if traj.warmup > 0:
            scale = min(1.0, (traj.iteration + 1) / traj.warmup)
            for group in traj.optimizer.param_groups:
                group["lr"] = self.dip.learning_rate * scale

    def _step(self, traj: _Trajectory) -> None:
        """One Adam step; every CHECK_PERIOD iterations: best iterate, history, callback."""
        check = traj.iteration % CHECK_PERIOD == 0
        obj = traj.object()
        train, free = self.problem.losses(pad_to_frame(obj, self.frame_shape))
        traj.recent_losses.append(train.detach())
        if check:
            self._check(traj, obj.detach(), float(train.detach()), None if free is None else float(free))
        self._set_learning_rate(traj)
        traj.optimizer.zero_grad(set_to_none=True)
        train.backward()
        traj.optimizer.step()
        traj.iteration += 1
        self.work_done += 1
        self._count_network_step()

    def _check(self, traj: _Trajectory, obj: torch.Tensor, loss: float, free_loss: float | None,
               *, feed_variance: bool = True) -> None:
        if not math.isfinite(loss) or (free_loss is not None and not math.isfinite(free_loss)):
            raise _NonFinite(traj.iteration)
        score = loss if free_loss is None else free_loss
        if score < traj.best.score:
            traj.best = _Best(score=score, obj=obj.clone(), iteration=traj.iteration, loss=loss,
                              free_loss=math.nan if free_loss is None else free_loss)
        if feed_variance and self.variance is not None and self.stage == "fit" and traj.iteration >= traj.warmup:
            self._feed_variance(traj, obj, loss, free_loss)
        entry = {"iteration": float(traj.iteration), "loss": loss}
        if free_loss is not None:
            entry["free_loss"] = free_loss
        traj.history.append(entry)
        self._report(loss, free_loss)

    def _feed_variance(self, traj: _Trajectory, obj: torch.Tensor, loss: float, free_loss: float | None) -> None:
        """One iterate of the fit (after the learning-rate warm-up) to the variance criterion."""
        assert self.variance is not None
        if self.variance.update(obj, traj.iteration):
            free = math.nan if free_loss is None else free_loss
            self.variance_best = _Best(score=loss if free_loss is None else free_loss, iteration=traj.iteration,
                                       loss=loss, free_loss=free)

    def _probe_score(self, traj: _Trajectory) -> float:
        window = max(1, int(round(_PROBE_SCORE_WINDOW * len(traj.recent_losses))))
        score = float(torch.stack(traj.recent_losses[-window:]).mean())
        traj.recent_losses.clear()
        return score if math.isfinite(score) else math.inf

    def run_probes(self) -> None:
        """Random starts on the whole box; the one with the lowest training loss is kept."""
        self.stage = "probe"
        seeds = self.network_seeds
        if self.probe_iterations == 0:
            self.kept = self._new_trajectory(seeds[0])
            self._match_power(self.kept.model)
            self.stage = "fit"
            return
        scores: list[float] = []
        best_index = -1
        for seed in seeds:
            traj = self._new_trajectory(seed)
            self._match_power(traj.model)
            self.probes.append(traj)
            try:
                while traj.iteration < self.probe_iterations:
                    self._step(traj)
                score = self._probe_score(traj)
            except _NonFinite:
                score = math.inf
            scores.append(score)
            if best_index < 0 or score < scores[best_index]:
                best_index = len(scores) - 1
            # Keep only the leading probe's networks (and every probe's best iterate) in memory.
            for index, other in enumerate(self.probes):
                if index != best_index and other.best.obj is not None:
                    other.model = other.optimizer = None  # type: ignore[assignment]
        self.extra["probe_losses"] = scores
        self.extra["probe_seeds"] = seeds
        if not math.isfinite(scores[best_index]):
            raise ReconstructionError("every double-DIP probe diverged (NaN or Inf loss); "
                                      "try a smaller dip.learning_rate")
        self.kept = self.probes[best_index]
        self.extra["kept_probe"] = best_index
        self.stage = "fit"

    def _stop_signals(self, traj: _Trajectory) -> list[str]:
        """The criteria that say stop now, obeyed or not; the first time each does is kept in :attr:`stops`."""
        signals = []
        if traj.iteration - traj.best.iteration > self.dip.patience and traj.best.obj is not None:
            signals.append(EarlyStop.FREE.value)
        if self.variance is not None and self.variance.stop:
            signals.append(EarlyStop.VARIANCE.value)
        for name in signals:
            self.stops.setdefault(name, traj.iteration)
        return signals

    def _obeyed(self, signals: list[str]) -> str | None:
        """The criterion among ``signals`` that ends the run under ``dip.early_stop``, or None."""
        for name in signals:
            if self.early_stop is EarlyStop.BOTH or self.early_stop.value == name:
                return name
        return None

    def _keep_variance_minimum(self, traj: _Trajectory) -> None:
        """Under ``variance`` (or ``both`` without free pixels) the kept iterate is the one at the variance minimum."""
        by_variance = self.early_stop is EarlyStop.VARIANCE or (
            self.early_stop is EarlyStop.BOTH and self.problem.free is None)
        if by_variance and self.variance is not None and self.variance_best is not None:
            self.variance_best.obj = self.variance.min_object
            traj.best = self.variance_best

    def run_fit(self) -> None:
        self.stage = "fit"
        traj = self.kept
        assert traj is not None
        stopped_by = None
        try:
            while traj.iteration < self.total:
                self._step(traj)
                stopped_by = self._obeyed(self._stop_signals(traj))
                if stopped_by is not None:
                    self.extra["early_stop"] = True
                    self.extra["stopped_by"] = stopped_by
                    break
            # The last iterate too (not for the variance once it has stopped: its minimum is settled).
            self._check(traj, *self._evaluate(traj), feed_variance=stopped_by is None)
        except _NonFinite as exc:
            self.extra["non_finite_at"] = exc.iteration
            log.warning("double DIP: non-finite loss at iteration %d; keeping the best iterate (%d)",
                        exc.iteration, traj.best.iteration)
        finally:
            self._keep_variance_minimum(traj)

    def stop_record(self) -> dict[str, Any]:
        """What the early stop did, for ``extra``: the criterion, which one stopped the run, and when each fired.

        Returns
        -------
        dict
            ``early_stop_criterion`` (``dip.early_stop``), ``stopped_by``
            (``"free"``, ``"variance"`` or None: the budget ran out),
            ``free_stop_iteration`` and, unless the criterion is ``free``,
            ``variance_stop_iteration`` (the fit iteration at which each
            first said stop, obeyed or not; None: never), with
            ``variance_min_iteration`` and ``variance_min`` (the windowed
            moving variance's minimum, relative to the object's power).
        """
        record: dict[str, Any] = {"early_stop_criterion": self.early_stop.value,
                                  "stopped_by": self.extra.pop("stopped_by", None),
                                  "free_stop_iteration": self.stops.get(EarlyStop.FREE.value)}
        if self.variance is not None:
            record["variance_stop_iteration"] = self.stops.get(EarlyStop.VARIANCE.value)
            record["variance_min_iteration"] = self.variance.min_iteration
            record["variance_min"] = self.variance.min_value if math.isfinite(self.variance.min_value) else None
        return record

    # -- results ------------------------------------------------------------
    def best_frame(self) -> tuple[torch.Tensor, _Best, list[dict[str, float]], int]:
        """Best iterate so far (frame shape), its record, history and iterations."""
        candidates = [self.kept] if self.kept is not None and self.kept.best.obj is not None else \
            [t for t in self.probes if t.best.obj is not None]
        if candidates:
            traj = min(candidates, key=lambda t: t.best.score)
            return pad_to_frame(traj.best.obj, self.frame_shape), traj.best, traj.history, traj.iteration
        if self.warm is not None:
            # Interrupted during the pre-fit: the warm start is the best there is.
            frame = self.warm.obj
            train, free = self.problem.losses(frame)
            best = _Best(score=self.warm.score, obj=frame, iteration=0, loss=float(train),
                         free_loss=math.nan if free is None else float(free))
            return frame, best, [], 0
        raise ReconstructionError("the double DIP produced no finite iterate; try a smaller dip.learning_rate")

    @torch.no_grad()
    def polish(self, frame: torch.Tensor, best: _Best, history: list[dict[str, float]],
               start: int) -> torch.Tensor:
        """Error reduction with the support of the DIP amplitude; kept only if it lowers the score.

        The iterations are :func:`cdi_dip.solvers.loop.run_plan` (``N*ER`` on a fixed support, torch kernels).
        """
        self.stage = "polish"
        problem, physics = self.problem, self.problem.physics
        box = dip_warmstart.object_box(self.frame_shape, self.object_shape, frame.device)
        support = dilate_mask(_threshold_support(frame, POLISH_THRESHOLD)) & box
        total = self.dip.polish_iterations
        target = ModulusTarget.build(physics.to_fft_order(problem.amplitude), physics.to_fft_order(problem.valid))

        def watch(iteration: int, algorithm: str, x: torch.Tensor) -> None:
            self.work_done += 1
            if iteration % CHECK_PERIOD == 0 or iteration == total:
                train, free = problem.losses(physics.to_centred(x))
                loss, free_loss = float(train), None if free is None else float(free)
                entry = {"iteration": float(start + iteration), "loss": loss}
                if free_loss is not None:
                    entry["free_loss"] = free_loss
                history.append(entry)
                self._report(loss, free_loss)

        modulus = None
        if problem.coherence is not None:
            modulus = CoherentModulus(problem.coherence, physics.to_fft_order(problem.counts),
                                      physics.to_fft_order(problem.valid), total)
        state = run_plan(physics.to_fft_order(frame * support).contiguous(), total * ER, target, physics,
                         FixedSupport(physics.to_fft_order(support)), kernels=TorchBackend(), beta=0.0,
                         on_iteration=watch, coherence=modulus)
        if state.interrupted:
            raise KeyboardInterrupt
        obj = physics.to_centred(state.x)
        train, free = problem.losses(obj)
        score = float(train) if free is None else float(free)
        self.extra["polish_score"] = score
        self.extra["polish_kept"] = bool(math.isfinite(score) and score < best.score)
        return obj if self.extra["polish_kept"] else frame


def _held_fixed(coherence: PartialCoherence | None) -> PartialCoherence | None:
    """The warm start's kernel, no longer refined (the networks and the polish fit the object alone)."""
    if coherence is not None:
        coherence.fit = False
    return coherence


class _NonFinite(Exception):
    def __init__(self, iteration: int):
        super().__init__(f"non-finite loss at iteration {iteration}")
        self.iteration = iteration


def _global_phase_removed(obj: torch.Tensor) -> torch.Tensor:
    """``obj * exp(-i arg sum obj)``: the same object with a real, positive mean (Re >= 0 friendly)."""
    total = obj.sum()
    if float(total.abs()) == 0.0:
        return obj
    return obj * (total.abs() / total).conj()


def _threshold_support(frame: torch.Tensor, threshold: float) -> torch.Tensor:
    amplitude = frame.abs()
    return amplitude > threshold * amplitude.max()


def _check_inputs(counts: torch.Tensor, valid: torch.Tensor, free: torch.Tensor | None) -> None:
    """What the double DIP needs of the counts beyond the frame's shapes (:meth:`Problem.build`)."""
    if not bool(valid.any()):
        raise InvalidInputError("no valid pixel to fit: check the mask (True = valid in memory)")
    used = valid if free is None else valid | free
    used_counts = counts[used]
    if not bool(torch.isfinite(used_counts).all()) or bool((used_counts < 0).any()):
        raise InvalidInputError("counts must be finite and non-negative on valid pixels: mark NaN, Inf and "
                                "negative pixels as excluded (cdi_dip.prepare.stages does)")


@dataclass(frozen=True)
class DipRun:
    """What a double-DIP run reads of the configuration.

    Attributes
    ----------
    dip : DipConfig
        Every knob of the networks, the warm start, the fit and the polish.
    projection : ProjectionConfig
        The specimen test and object constraints of the warm start.
    loss : DipLoss
        The data loss (:func:`loss_kind`).
    iterations : int or None
        The data-fit budget (None: :data:`DEFAULT_ITERATIONS`).
    psf : PsfChoice
        Partial coherence (``--psf``): a fitted kernel is fitted in the warm
        start and then held fixed in the networks' fit and the polish.
    """

    dip: DipConfig
    projection: ProjectionConfig
    loss: DipLoss
    iterations: int | None = None
    psf: PsfChoice = PsfChoice()

    @classmethod
    def from_config(cls, cfg: RunConfig) -> DipRun:
        return cls(dip=cfg.dip, projection=cfg.projection, loss=loss_kind(cfg), iterations=cfg.iterations,
                   psf=parse_psf(cfg.psf))


def solve_dip(
    problem: Problem,
    options: DipRun,
    *,
    init: Initialiser = random_phases,
    rng: torch.Generator,
    on_iter: IterCallback | None = None,
) -> SolverOutput:
    """Reconstruct a complex object with the double deep image prior.

    Parameters
    ----------
    problem : Problem
        Measured photons, centred (zero frequency at ``n // 2``), frame shape
        ``(ny, nx)`` or ``(nz, ny, nx)``; the fitted pixels; the held-out
        pixels for choosing the warm start and for early stopping (never in
        the training loss); the far-field model.
    options : DipRun
        ``options.dip`` holds every knob; ``options.iterations`` the budget of
        the data fit (None: :data:`DEFAULT_ITERATIONS`).
    init : Initialiser
        The starting object of every warm-start run (default: random phases).
    rng : torch.Generator
        Source of every random number (network seeds, hence inputs and
        weights; the warm start's random phases).
    on_iter : callable, optional
        Called every :data:`CHECK_PERIOD` iterations with ``iteration`` and
        ``total`` (work done / planned over all stages), ``loss``,
        ``free_loss`` (with ``free``, in the fit), ``stage`` (``warm-start``,
        ``prefit``, ``probe``, ``fit``, ``polish``) and ``probe`` (during probes).

    Returns
    -------
    SolverOutput
        ``obj`` complex64 of the frame shape (the half-size object padded,
        centred), ``support`` where ``|obj| > 0.1 max``, ``history`` of the kept
        run, and ``extra`` with ``stop_iteration``, ``best_free_loss``,
        ``best_loss``, ``warm_start_scores``, ``probe_losses``, ``parameters``,
        ``param``, ``loss``...

    Raises
    ------
    InvalidInputError
        Inputs that do not match the frame, or a CUDA run that cannot fit in
        the free GPU memory (checked before anything is allocated).
    ReconstructionError
        When no finite iterate was ever reached.

    Notes
    -----
    Ctrl-C (``KeyboardInterrupt``, also from ``on_iter``) stops the run and
    returns the best iterate so far with ``interrupted=True`` (during the
    warm start: the best projection iterate). A non-finite loss stops the
    run with the best iterate (``extra["non_finite_at"]``).
    """
    counts, valid, free, physics = problem.counts, problem.fit, problem.held_out, problem.physics
    _check_inputs(counts, valid, free)
    check_device_memory(physics.shape, options, counts.device)
    start = time.perf_counter()
    runner = _Runner(_Problem(counts, valid, free, physics, options.loss), options, rng, on_iter, init)
    interrupted = False
    try:
        if runner.warm_runs > 0:
            runner.run_warm_start()
            runner.run_prefit()
        else:
            runner.run_probes()
        runner.run_fit()
    except KeyboardInterrupt:
        interrupted = True
        log.warning("double DIP interrupted at stage %s; returning the best iterate so far", runner.stage)
    with interrupts_deferred(already=interrupted) as finishing:  # an iterate exists: finish it whatever comes
        frame, best, history, iterations = runner.best_frame()
    interrupted = interrupted or finishing.requested
    if not interrupted and options.dip.polish_iterations > 0:
        try:
            frame = runner.polish(frame, best, history, iterations)
        except KeyboardInterrupt:
            interrupted = True
    with interrupts_deferred(already=interrupted) as finishing:
        return _output(runner, frame, best, history, iterations, interrupted or finishing.requested, start)


def _output(runner: _Runner, frame: torch.Tensor, best: _Best, history: list[dict[str, float]], iterations: int,
            interrupted: bool, start: float) -> SolverOutput:
    """The run's :class:`SolverOutput`: its object, support, history and what it did (``extra``)."""
    cfg, physics = runner.cfg, runner.problem.physics
    model = runner.kept.model if runner.kept is not None and runner.kept.model is not None else None
    extra: dict[str, Any] = {
        "stop_iteration": best.iteration,
        "best_loss": best.loss,
        "best_free_loss": best.free_loss,
        "probe_losses": runner.extra.pop("probe_losses", []),
        "parameters": model.parameter_counts() if model is not None else {},
        "param": runner.param.value,
        "loss": cfg.loss.value,
        "phase_head": PHASE_HEAD if runner.param is DipParam.MAG_PHASE else None,
        "object_shape": list(runner.object_shape),
        "iterations_budget": runner.total,
        "work_iterations": runner.work_done,
        "memory_estimate_bytes": estimate_dip_memory_bytes(physics.shape, cfg),
        "wall_s": time.perf_counter() - start,
        "kernels": "torch (double DIP)",
        **runner.stop_record(),
        **runner.extra,
    }
    obj = frame.detach().to(torch.complex64).cpu().numpy()
    support = _threshold_support(frame.detach(), SUPPORT_THRESHOLD).cpu().numpy()
    coherence = runner.problem.coherence
    if coherence is not None:
        extra["psf"] = {"mode": cfg.psf.mode, "width_px": coherence.widths_px()}
    return SolverOutput(obj=obj.astype(np.complex64), support=support, history=history,
                        iterations=iterations, interrupted=interrupted, extra=extra,
                        psf=None if coherence is None else coherence.compact(), obj_std=_window_std(runner))


def _window_std(runner: _Runner) -> np.ndarray | None:
    """The variance criterion's per-voxel standard deviation at its minimum, frame shape, float32; None without it."""
    if runner.variance is None or runner.variance.min_std is None:
        return None
    return pad_to_frame(runner.variance.min_std, runner.frame_shape).float().cpu().numpy()


__all__ = ["DEFAULT_ITERATIONS", "DipRun", "check_device_memory", "data_loss", "estimate_dip_memory_bytes", "loss_map",
           "object_shape", "solve_dip"]
