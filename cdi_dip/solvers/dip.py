"""Double deep image prior (double DIP) phase retrieval, 2D and 3D.

Reference: Z. Zhuang, D. Yang, F. Hofmann, D. Barmherzig and J. Sun,
*Practical phase retrieval using double deep image priors*, Electronic Imaging
(2023), arXiv:2211.00799.

The object ``X`` has half the detector frame size along every axis and is the
output of two untrained generators (:class:`~cdi_dip.solvers.nets.DoubleDip`),
zero-padded into the frame: no support and no shrinkwrap. Adam fits the
networks' weights to the measured counts ``n`` through a masked loss on the
valid pixels only:

- ``amplitude``: ``mean (sqrt(n) - |F pad X|)**2``;
- ``poisson``: ``mean (m - n log m)`` with ``m = |F pad X|**2 + eps``.

A run is:

1. ``dip.probes`` short *probes* of ``dip.probe_iterations`` iterations from
   different random starts; the probe with the lowest training loss (mean of
   its last iterations) is kept. A start succeeds or fails within its first
   few hundred iterations and the training loss tells which.
2. The kept probe continues up to ``iterations`` in total (``RunConfig
   .iterations``, else :data:`DEFAULT_ITERATIONS`), keeping the best iterate by
   the loss on the held-out *free* pixels (by the training loss without them)
   and stopping once it has not improved for ``dip.patience`` iterations.
3. An optional error-reduction polish of ``dip.polish_iterations``
   iterations with the support ``|X| > 0.15 max |X|`` (dilated by one pixel),
   kept only where it lowers the free (else training) loss.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..config import DipLoss, DipParam, RunConfig
from ..errors import InvalidInputError, ReconstructionError
from ..physics import FarField, pad_to_frame, project_modulus
from ..types import SolverOutput
from .nets import DoubleDip, input_grid

log = logging.getLogger(__name__)

DEFAULT_ITERATIONS: dict[int, int] = {2: 2000, 3: 1500}
"""Iterations of the kept run (its probe included) when ``RunConfig.iterations``
is None, by number of dimensions. Chosen by measurement (see
``docs/``/the benchmark notes): on simulated 128**2 crystals the free loss
stops improving after about 1000-2000 iterations at learning rate 1e-2."""

PHASE_HEAD = "unit"
"""Phase head of the ``mag-phase`` parameterisation: ``"unit"`` (normalised
two-channel phasor, represents phase vortices) or ``"tanh"`` (``pi*tanh``)."""

CHECK_PERIOD = 10
"""Iterations between checks (best iterate, early stop, callback, history)."""

SUPPORT_THRESHOLD = 0.1
"""Relative amplitude threshold of the returned support."""

POLISH_THRESHOLD = 0.15
"""Relative amplitude threshold of the error-reduction polish's support."""

_POISSON_EPS = 1e-4  # photons: floor of the model intensity in the Poisson loss
_AMPLITUDE_EPS = 1e-12  # photons: keeps sqrt differentiable at zero intensity
_PROBE_SCORE_WINDOW = 0.1  # fraction of a probe's last iterations averaged for its score

IterCallback = Callable[[dict[str, Any]], None]


def object_shape(frame_shape: Sequence[int]) -> tuple[int, ...]:
    """Shape of the DIP object: half the frame, ``n // 2``, along every axis."""
    return tuple(int(n) // 2 for n in frame_shape)


def loss_map(model_intensity: torch.Tensor, counts: torch.Tensor, kind: DipLoss) -> torch.Tensor:
    """Per-pixel data loss.

    Parameters
    ----------
    model_intensity : torch.Tensor, float32, frame shape
        ``|F pad X|**2`` in photons.
    counts : torch.Tensor, float32, frame shape
        Measured photons (non-negative and finite: see :func:`data_loss`).
    kind : DipLoss
        ``amplitude``: ``(sqrt(n) - sqrt(m))**2``; ``poisson``: ``m - n log m``.

    Returns
    -------
    torch.Tensor, float32, frame shape
    """
    if DipLoss(kind) is DipLoss.AMPLITUDE:
        return (counts.sqrt() - (model_intensity + _AMPLITUDE_EPS).sqrt()).square()
    model = model_intensity + _POISSON_EPS
    return model - counts * model.log()


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


def estimate_dip_memory_bytes(frame_shape: Sequence[int], cfg: RunConfig) -> int:
    """Rough peak memory of one double-DIP run, in bytes.

    Counts the activations that autograd keeps (about four float32 tensors of
    ``channels`` per generator block, plus the full-resolution head), the
    parameters with their gradients and Adam moments, and the complex64
    far-field arrays; then doubles it for workspaces and allocator slack.

    Parameters
    ----------
    frame_shape : sequence of int
        Detector frame shape.
    cfg : RunConfig

    Returns
    -------
    int
    """
    shape = object_shape(frame_shape)
    channels, depth = cfg.dip.channels, cfg.dip.depth
    grid = input_grid(shape, depth)
    ndim = len(shape)
    activations = 0
    for level in range(depth + 1):
        voxels = math.prod(n * 2**level for n in grid)
        activations += 4 * channels * voxels
    kernel = 3**ndim
    params = (depth + 1) * (channels * channels * kernel + 3 * channels) + 2 * channels
    frame = math.prod(int(n) for n in frame_shape)
    per_net = 4 * activations + 16 * params
    total = 2 * per_net + 8 * frame * 10 + 4 * frame * 6
    return int(2 * total)


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
    model: DoubleDip
    optimizer: torch.optim.Optimizer
    seed: int
    iteration: int = 0
    best: _Best = field(default_factory=_Best)
    history: list[dict[str, float]] = field(default_factory=list)
    recent_losses: list[torch.Tensor] = field(default_factory=list)


class _Problem:
    """The measured data on the device and the loss of a complex object in the frame."""

    def __init__(self, counts: torch.Tensor, valid: torch.Tensor, free: torch.Tensor | None,
                 physics: FarField, kind: DipLoss):
        self.physics = physics
        self.kind = DipLoss(kind)
        self.valid = valid
        self.free = free if free is not None and bool(free.any()) else None
        used = valid if self.free is None else valid | self.free
        zero = torch.zeros((), dtype=torch.float32, device=counts.device)
        self.counts = torch.where(used, counts.float().nan_to_num(0.0).clamp_min(0.0), zero)
        self.amplitude = self.counts.sqrt()

    def losses(self, frame_obj: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Training loss (with graph) and free loss (detached, or None)."""
        intensity = self.physics.intensity(frame_obj)
        per_pixel = loss_map(intensity, self.counts, self.kind)
        train = masked_mean(per_pixel, self.valid)
        free = None if self.free is None else masked_mean(per_pixel.detach(), self.free)
        return train, free


class _Runner:
    """One double-DIP run: probes, fit, polish; keeps the best iterate for interrupts."""

    def __init__(self, problem: _Problem, cfg: RunConfig, generator: torch.Generator,
                 on_iter: IterCallback | None):
        self.problem = problem
        self.cfg = cfg
        self.dip = cfg.dip
        self.generator = generator
        self.on_iter = on_iter
        self.device = problem.counts.device
        self.frame_shape = problem.physics.shape
        self.object_shape = object_shape(self.frame_shape)
        ndim = len(self.frame_shape)
        self.total = int(cfg.iterations) if cfg.iterations is not None else DEFAULT_ITERATIONS[ndim]
        self.probe_iterations = min(self.dip.probe_iterations, self.total) if self.dip.probes > 1 else 0
        self.work_total = (self.dip.probes * self.probe_iterations + self.total - self.probe_iterations
                           + self.dip.polish_iterations)
        self.work_done = 0
        self.probes: list[_Trajectory] = []
        self.kept: _Trajectory | None = None
        self.stage = "probe"
        self.extra: dict[str, Any] = {}

    # -- building -----------------------------------------------------------
    def _probe_seeds(self) -> list[int]:
        count = max(1, self.dip.probes)
        seeds = torch.randint(0, 2**62, (count,), generator=self.generator, device=self.generator.device)
        return [int(s) for s in seeds.tolist()]

    def _new_trajectory(self, seed: int) -> _Trajectory:
        init = torch.Generator().manual_seed(seed)
        model = DoubleDip(self.object_shape, self.dip.param, channels=self.dip.channels, depth=self.dip.depth,
                          generator=init, device=self.device, phase_head=PHASE_HEAD,
                          autocast=self.device.type == "cuda")
        self._match_power(model)
        optimizer = torch.optim.Adam(model.parameters(), lr=self.dip.learning_rate)
        return _Trajectory(model=model, optimizer=optimizer, seed=seed)

    @torch.no_grad()
    def _match_power(self, model: DoubleDip) -> None:
        """Set the learned scale so that the initial power on valid pixels equals the measured one."""
        frame = pad_to_frame(model(), self.frame_shape)
        model_power = masked_mean(self.problem.physics.intensity(frame), self.problem.valid)
        measured = masked_mean(self.problem.counts, self.problem.valid)
        if float(model_power) > 0 and float(measured) > 0:
            model.log_scale.fill_(0.5 * math.log(float(measured) / float(model_power)))

    # -- iterating ----------------------------------------------------------
    def _step(self, traj: _Trajectory) -> None:
        """One Adam step; every CHECK_PERIOD iterations: best iterate, history, callback."""
        check = traj.iteration % CHECK_PERIOD == 0
        obj = traj.model()
        train, free = self.problem.losses(pad_to_frame(obj, self.frame_shape))
        traj.recent_losses.append(train.detach())
        if check:
            self._check(traj, obj.detach(), float(train.detach()), None if free is None else float(free))
        traj.optimizer.zero_grad(set_to_none=True)
        train.backward()
        traj.optimizer.step()
        traj.iteration += 1
        self.work_done += 1

    def _check(self, traj: _Trajectory, obj: torch.Tensor, loss: float, free_loss: float | None) -> None:
        if not math.isfinite(loss) or (free_loss is not None and not math.isfinite(free_loss)):
            raise _NonFinite(traj.iteration)
        score = loss if free_loss is None else free_loss
        if score < traj.best.score:
            traj.best = _Best(score=score, obj=obj.clone(), iteration=traj.iteration, loss=loss,
                              free_loss=math.nan if free_loss is None else free_loss)
        entry = {"iteration": float(traj.iteration), "loss": loss}
        if free_loss is not None:
            entry["free_loss"] = free_loss
        traj.history.append(entry)
        self._report(loss, free_loss)

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

    def _probe_score(self, traj: _Trajectory) -> float:
        window = max(1, int(round(_PROBE_SCORE_WINDOW * len(traj.recent_losses))))
        score = float(torch.stack(traj.recent_losses[-window:]).mean())
        traj.recent_losses.clear()
        return score if math.isfinite(score) else math.inf

    def run_probes(self) -> None:
        seeds = self._probe_seeds()
        if self.probe_iterations == 0:
            self.kept = self._new_trajectory(seeds[0])
            return
        scores: list[float] = []
        best_index = -1
        for seed in seeds:
            traj = self._new_trajectory(seed)
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

    def run_fit(self) -> None:
        self.stage = "fit"
        traj = self.kept
        assert traj is not None
        try:
            while traj.iteration < self.total:
                self._step(traj)
                if traj.iteration - traj.best.iteration > self.dip.patience and traj.best.obj is not None:
                    self.extra["early_stop"] = True
                    break
            # Check the last iterate too.
            with torch.no_grad():
                obj = traj.model()
                train, free = self.problem.losses(pad_to_frame(obj, self.frame_shape))
            self._check(traj, obj, float(train), None if free is None else float(free))
        except _NonFinite as exc:
            self.extra["non_finite_at"] = exc.iteration
            log.warning("double DIP: non-finite loss at iteration %d; keeping the best iterate (%d)",
                        exc.iteration, traj.best.iteration)

    def best_frame(self) -> tuple[torch.Tensor, _Best, list[dict[str, float]], int]:
        """Best iterate so far (frame shape), its record, history and iterations."""
        candidates = [self.kept] if self.kept is not None and self.kept.best.obj is not None else \
            [t for t in self.probes if t.best.obj is not None]
        if not candidates:
            raise ReconstructionError("the double DIP produced no finite iterate; try a smaller dip.learning_rate")
        traj = min(candidates, key=lambda t: t.best.score)
        return pad_to_frame(traj.best.obj, self.frame_shape), traj.best, traj.history, traj.iteration

    @torch.no_grad()
    def polish(self, frame: torch.Tensor, best: _Best, history: list[dict[str, float]],
               start: int) -> torch.Tensor:
        """Error reduction with the support of the DIP amplitude; kept only if it lowers the score."""
        self.stage = "polish"
        problem = self.problem
        box = pad_to_frame(torch.ones(self.object_shape, dtype=torch.bool, device=frame.device), self.frame_shape)
        support = _dilate(_threshold_support(frame, POLISH_THRESHOLD)) & box
        obj = frame * support
        for step in range(self.dip.polish_iterations):
            projected = project_modulus(problem.physics.forward(obj), problem.amplitude, problem.valid)
            obj = problem.physics.inverse(projected) * support
            self.work_done += 1
            if (step + 1) % CHECK_PERIOD == 0 or step + 1 == self.dip.polish_iterations:
                train, free = problem.losses(obj)
                loss, free_loss = float(train), None if free is None else float(free)
                entry = {"iteration": float(start + step + 1), "loss": loss}
                if free_loss is not None:
                    entry["free_loss"] = free_loss
                history.append(entry)
                self._report(loss, free_loss)
        train, free = problem.losses(obj)
        score = float(train) if free is None else float(free)
        self.extra["polish_score"] = score
        self.extra["polish_kept"] = bool(math.isfinite(score) and score < best.score)
        return obj if self.extra["polish_kept"] else frame


class _NonFinite(Exception):
    def __init__(self, iteration: int):
        super().__init__(f"non-finite loss at iteration {iteration}")
        self.iteration = iteration


def _threshold_support(frame: torch.Tensor, threshold: float) -> torch.Tensor:
    amplitude = frame.abs()
    return amplitude > threshold * amplitude.max()


def _dilate(mask: torch.Tensor) -> torch.Tensor:
    """Dilate a bool mask by one pixel along every axis (3**ndim neighbourhood)."""
    pool = torch.nn.functional.max_pool2d if mask.ndim == 2 else torch.nn.functional.max_pool3d
    return pool(mask[None, None].float(), kernel_size=3, stride=1, padding=1)[0, 0] > 0


def _check_inputs(counts: torch.Tensor, valid: torch.Tensor, free: torch.Tensor | None, physics: FarField) -> None:
    if tuple(counts.shape) != physics.shape:
        raise InvalidInputError(f"counts shape {tuple(counts.shape)} does not match the frame shape {physics.shape}")
    if tuple(valid.shape) != physics.shape or valid.dtype != torch.bool:
        raise InvalidInputError(f"valid must be a bool tensor of shape {physics.shape}, got "
                                f"{valid.dtype} {tuple(valid.shape)}")
    if free is not None and (tuple(free.shape) != physics.shape or free.dtype != torch.bool):
        raise InvalidInputError(f"free must be a bool tensor of shape {physics.shape}, got "
                                f"{free.dtype} {tuple(free.shape)}")
    if not bool(valid.any()):
        raise InvalidInputError("no valid pixel to fit: check the mask (True = valid in memory)")


def solve_dip(
    counts: torch.Tensor,
    valid: torch.Tensor,
    physics: FarField,
    cfg: RunConfig,
    *,
    generator: torch.Generator,
    free: torch.Tensor | None = None,
    on_iter: IterCallback | None = None,
) -> SolverOutput:
    """Reconstruct a complex object with the double deep image prior.

    Parameters
    ----------
    counts : torch.Tensor, float32, frame shape ``(ny, nx)`` or ``(nz, ny, nx)``
        Measured photons, centred (zero frequency at ``n // 2``); 0 where invalid.
    valid : torch.Tensor, bool, frame shape
        Pixels to fit (free pixels already removed).
    physics : FarField
        Far-field model of the frame.
    cfg : RunConfig
        ``cfg.dip`` holds every knob; ``cfg.iterations`` the iteration budget of
        the kept run (None: :data:`DEFAULT_ITERATIONS`).
    generator : torch.Generator
        Source of every random number (probe seeds, hence network inputs and
        weights).
    free : torch.Tensor, bool, frame shape, optional
        Held-out pixels for early stopping; never in the training loss.
    on_iter : callable, optional
        Called every :data:`CHECK_PERIOD` iterations with ``iteration`` and
        ``total`` (work done / planned over all stages), ``loss``,
        ``free_loss`` (with ``free``), ``stage`` (``probe``, ``fit``,
        ``polish``) and ``probe`` (during probes).

    Returns
    -------
    SolverOutput
        ``obj`` complex64 of the frame shape (the half-size object padded,
        centred), ``support`` where ``|obj| > 0.1 max``, ``history`` of the kept
        run, and ``extra`` with ``stop_iteration``, ``best_free_loss``,
        ``best_loss``, ``probe_losses``, ``parameters``, ``param``, ``loss``...

    Raises
    ------
    ReconstructionError
        When no finite iterate was ever reached.

    Notes
    -----
    Ctrl-C (``KeyboardInterrupt``, also from ``on_iter``) stops the run and
    returns the best iterate so far with ``interrupted=True``. A non-finite
    loss stops the run with the best iterate (``extra["non_finite_at"]``).
    """
    _check_inputs(counts, valid, free, physics)
    start = time.perf_counter()
    problem = _Problem(counts, valid, free, physics, cfg.dip.loss)
    runner = _Runner(problem, cfg, generator, on_iter)
    interrupted = False
    try:
        runner.run_probes()
        runner.run_fit()
    except KeyboardInterrupt:
        interrupted = True
        log.warning("double DIP interrupted at stage %s; returning the best iterate so far", runner.stage)
    frame, best, history, iterations = runner.best_frame()
    if not interrupted and cfg.dip.polish_iterations > 0:
        try:
            frame = runner.polish(frame, best, history, iterations)
        except KeyboardInterrupt:
            interrupted = True
    model = runner.kept.model if runner.kept is not None and runner.kept.model is not None else None
    extra: dict[str, Any] = {
        "stop_iteration": best.iteration,
        "best_loss": best.loss,
        "best_free_loss": best.free_loss,
        "probe_losses": runner.extra.pop("probe_losses", []),
        "parameters": model.parameter_counts() if model is not None else {},
        "param": DipParam(cfg.dip.param).value,
        "loss": DipLoss(cfg.dip.loss).value,
        "phase_head": PHASE_HEAD if DipParam(cfg.dip.param) is DipParam.MAG_PHASE else None,
        "object_shape": list(runner.object_shape),
        "iterations_budget": runner.total,
        "work_iterations": runner.work_done,
        "wall_s": time.perf_counter() - start,
        **runner.extra,
    }
    obj = frame.detach().to(torch.complex64).cpu().numpy()
    support = _threshold_support(frame.detach(), SUPPORT_THRESHOLD).cpu().numpy()
    return SolverOutput(obj=obj.astype(np.complex64), support=support, history=history,
                        iterations=iterations, interrupted=interrupted, extra=extra)


__all__ = ["DEFAULT_ITERATIONS", "data_loss", "estimate_dip_memory_bytes", "loss_map", "object_shape", "solve_dip"]
