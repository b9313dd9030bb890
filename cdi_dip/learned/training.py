"""Training the learned initialiser: ``cdi-dip train OUT.pt`` as a library call.

Adam fits a :class:`~.network.PhaseNet` on batches drawn from a *pool* of
samples (:mod:`.data`): simulated scans, regenerated with fresh seeds every
``reuse`` passes through the pool, or the user's measured scans (the pool
never changes, the loss is passive). Every ``checkpoint_every`` steps the
model is validated on samples of fresh seeds and written to ``OUT.pt`` with
the optimiser state, so that ``resume`` continues the same run; Ctrl-C
writes the last completed step and returns. The learning rate follows a
cosine from ``learning_rate`` to a tenth of it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..corpus.split import TRAINING_CONDITIONS, TRAINING_FAMILIES, TRAINING_SEEDS, VALIDATION_SEEDS
from ..ensemble import symmetry_adjusted_error
from ..errors import InvalidInputError
from .data import Batch, check_names, simulated_batch
from .files import ModelFile, load_model, save_model
from .losses import LOSSES, active_loss, passive_loss
from .network import Architecture, PhaseNet, autocorrelation_features, count_parameters, scale_to_counts

log = logging.getLogger(__name__)

ProgressCallback = Callable[[dict[str, Any]], None]


@dataclass
class TrainConfig:
    """How a model is trained; stored in the model file (``training.config``).

    Attributes
    ----------
    dim, size, width, depth, box_fraction
        The network (:class:`~.network.Architecture`).
    loss : str
        ``passive`` (measurement only) or ``active`` (canonical ground truth), :mod:`.losses`.
    steps : int
        Optimiser steps in all (a resumed run continues up to this).
    batch : int
        Samples per step.
    learning_rate : float
        Adam's initial rate; a cosine takes it to a tenth by the last step.
    families, conditions : list of str
        What the simulated samples are drawn from (:mod:`cdi_dip.corpus`).
    pool : int
        Simulated samples made at once.
    reuse : int
        Passes through a pool before it is made again with fresh seeds.
    validation : int
        Validation samples (fresh seeds, never trained on).
    checkpoint_every : int
        Steps between validation and writing the file.
    seed : int
        Network weights and batch order.
    """

    dim: int = 2
    size: int = 128
    width: int = 16
    depth: int = 4
    box_fraction: float = 0.5
    loss: str = "passive"
    steps: int = 2000
    batch: int = 16
    learning_rate: float = 2e-3
    families: list[str] = field(default_factory=lambda: list(TRAINING_FAMILIES))
    conditions: list[str] = field(default_factory=lambda: list(TRAINING_CONDITIONS))
    pool: int = 256
    reuse: int = 2
    validation: int = 32
    checkpoint_every: int = 100
    seed: int = 0

    @property
    def architecture(self) -> Architecture:
        return Architecture(dim=self.dim, size=self.size, width=self.width, depth=self.depth,
                            box_fraction=self.box_fraction)

    def validate(self, *, measured: bool = False) -> TrainConfig:
        """Raise InvalidInputError on a setting that cannot train; return self."""
        try:
            self.architecture.validate()
        except ValueError as exc:
            raise InvalidInputError(f"network: {exc}") from None
        if self.loss not in LOSSES:
            raise InvalidInputError(f"--loss {self.loss}: choose {' or '.join(LOSSES)}")
        if measured and self.loss != "passive":
            raise InvalidInputError("measured scans have no ground truth: train on them with --loss passive")
        for name in ("steps", "batch", "pool", "reuse", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise InvalidInputError(f"{name} = {getattr(self, name)}: give at least 1")
        if self.validation < 0 or not 0 < self.learning_rate < 1:
            raise InvalidInputError("validation must be >= 0 and the learning rate in (0, 1)")
        if not measured:
            check_names(self.families, self.conditions, self.dim)
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def learning_rate_at(step: int, cfg: TrainConfig) -> float:
    """Cosine from ``cfg.learning_rate`` at step 0 to a tenth of it at ``cfg.steps``."""
    progress = min(1.0, step / max(cfg.steps, 1))
    return cfg.learning_rate * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))


class _Pool:
    """The samples batches are drawn from: simulated (renewed every ``reuse`` passes) or measured (fixed)."""

    def __init__(self, cfg: TrainConfig, measured: Batch | None):
        self.cfg, self.measured = cfg, measured
        self.epoch = -1
        self.samples: Batch | None = None
        self.order = torch.empty(0, dtype=torch.long)

    def _steps_per_epoch(self) -> int:
        size = len(self.measured) if self.measured is not None else self.cfg.pool
        return max(1, math.ceil(size / self.cfg.batch)) * self.cfg.reuse

    def batch(self, step: int) -> Batch:
        """The batch of optimiser step ``step`` (the same whenever it is asked: resumable)."""
        epoch, position = divmod(step, self._steps_per_epoch())
        if epoch != self.epoch:
            self._renew(epoch)
        start = (position * self.cfg.batch) % len(self.order)
        index = self.order[start:start + self.cfg.batch]
        if len(index) < self.cfg.batch:
            index = torch.cat([index, self.order[:self.cfg.batch - len(index)]])
        return self.samples.take(index)

    def _renew(self, epoch: int) -> None:
        cfg = self.cfg
        if self.measured is not None:
            self.samples = self.measured
        else:
            first = epoch * cfg.pool
            seeds = [TRAINING_SEEDS[(first + k) % len(TRAINING_SEEDS)] for k in range(cfg.pool)]
            started = time.perf_counter()
            self.samples = simulated_batch(seeds, (cfg.size,) * cfg.dim, cfg.families, cfg.conditions)
            log.info("training pool %d: %d simulated samples in %.1f s", epoch, cfg.pool,
                     time.perf_counter() - started)
        generator = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
        passes = [torch.randperm(len(self.samples), generator=generator) for _ in range(cfg.reuse)]
        self.order = torch.cat(passes)
        self.epoch = epoch


def _loss(net: PhaseNet, batch: Batch, loss: str) -> torch.Tensor:
    obj = net(autocorrelation_features(batch.counts, batch.valid))
    if loss == "active":
        return active_loss(obj, batch.truth, batch.counts, batch.valid)
    return passive_loss(obj, batch.counts, batch.valid)


@torch.no_grad()
def validate_model(net: PhaseNet, samples: Batch) -> dict[str, float]:
    """Passive loss and (with ground truth) the median symmetry-adjusted error of the network's objects.

    Parameters
    ----------
    net : PhaseNet
    samples : Batch
        On the network's device.

    Returns
    -------
    dict
        ``passive_loss``; ``median_error`` and ``errors`` (per sample) when the samples have a truth.
    """
    net.eval()
    obj = net(autocorrelation_features(samples.counts, samples.valid))
    record: dict[str, Any] = {"passive_loss": float(passive_loss(obj, samples.counts, samples.valid))}
    if samples.truth is not None:
        scaled = scale_to_counts(obj, samples.counts, samples.valid).cpu().numpy()
        truth = samples.truth.cpu().numpy()
        errors = [float(symmetry_adjusted_error(o, t)) for o, t in zip(scaled, truth)]
        record["median_error"] = float(np.median(errors))
    net.train()
    return record


@dataclass
class _State:
    """A training run in progress."""

    net: PhaseNet
    optimizer: torch.optim.Optimizer
    step: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def _new_state(cfg: TrainConfig, device: torch.device) -> _State:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        net = PhaseNet(cfg.architecture)
    net = net.to(device).train()
    return _State(net=net, optimizer=torch.optim.Adam(net.parameters(), lr=cfg.learning_rate))


def _resumed_state(path: Path, cfg: TrainConfig, device: torch.device) -> _State:
    """The state stored in ``path``; InvalidInputError when it cannot continue with ``cfg``."""
    model = load_model(path)
    if model.checkpoint is None:
        raise InvalidInputError(f"{path} holds no training state to resume (it was exported without one)")
    stored = TrainConfig.from_dict(model.training.get("config", {}))
    differs = [name for name in ("dim", "size", "width", "depth", "box_fraction", "loss")
               if getattr(stored, name) != getattr(cfg, name)]
    if differs:
        raise InvalidInputError(f"{path} was trained with other {', '.join(differs)}: resume with the same "
                                "settings, or train a new file")
    state = _new_state(cfg, device)
    state.net.load_state_dict(model.state_dict)
    state.optimizer.load_state_dict(model.checkpoint["optimizer"])
    state.step = int(model.checkpoint.get("step", 0))
    state.history = list(model.training.get("history", []))
    state.seconds = float(model.training.get("seconds", 0.0))
    return state


def _write(path: Path, state: _State, cfg: TrainConfig, record: dict[str, Any]) -> None:
    training = {"config": cfg.to_dict(), "history": state.history, "seconds": state.seconds, "step": state.step,
                "parameters": count_parameters(state.net), **record}
    save_model(path, ModelFile(path=path, architecture=cfg.architecture, state_dict=state.net.state_dict(),
                               training=training,
                               checkpoint={"step": state.step, "optimizer": state.optimizer.state_dict()}))


def train(path: Path, cfg: TrainConfig, *, measured: Batch | None = None, resume: bool = False,
          device: torch.device | str = "cpu", on_progress: ProgressCallback | None = None,
          source: str = "simulated") -> dict[str, Any]:
    """Train (or resume training) a model and write it to ``path``.

    Parameters
    ----------
    path : pathlib.Path
        The model file, written every ``cfg.checkpoint_every`` steps and at the end (atomically).
    cfg : TrainConfig
    measured : Batch, optional
        The user's scans on the model's frame (passive loss; no simulation).
    resume : bool
        Continue the run stored in ``path`` up to ``cfg.steps``.
    device : torch.device or str
    on_progress : callable, optional
        Called after every step with ``step``, ``steps``, ``loss`` (and the
        validation figures at a checkpoint).
    source : str
        What the samples are, for the record (``simulated`` or the scans' folder).

    Returns
    -------
    dict
        ``path``, ``step``, ``seconds``, ``interrupted``, ``parameters`` and the last validation.
    """
    cfg.validate(measured=measured is not None)
    device = torch.device(device)
    state = _resumed_state(path, cfg, device) if resume else _new_state(cfg, device)
    pool = _Pool(cfg, measured)
    validation = _validation_set(cfg, measured).to(device)
    record: dict[str, Any] = {"source": source, "train_samples": _train_samples(cfg, measured)}
    interrupted = False
    last: dict[str, float] = {}
    try:
        while state.step < cfg.steps:
            started = time.perf_counter()
            batch = pool.batch(state.step).to(device)
            for group in state.optimizer.param_groups:
                group["lr"] = learning_rate_at(state.step, cfg)
            loss = _loss(state.net, batch, cfg.loss)
            if not torch.isfinite(loss):
                raise InvalidInputError(f"training diverged at step {state.step} (loss {float(loss)}): "
                                        "try a smaller --learning-rate")
            state.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            state.optimizer.step()
            state.step += 1
            state.seconds += time.perf_counter() - started
            progress = {"step": state.step, "steps": cfg.steps, "loss": float(loss.detach())}
            if state.step % cfg.checkpoint_every == 0 or state.step == cfg.steps:
                last = validate_model(state.net, validation)
                state.history.append({"step": state.step, "loss": progress["loss"], "seconds": state.seconds,
                                      **{k: v for k, v in last.items() if isinstance(v, float)}})
                _write(path, state, cfg, {**record, "validation": last})
                progress.update(last)
            if on_progress is not None:
                on_progress(progress)
    except KeyboardInterrupt:
        interrupted = True
        log.warning("training interrupted at step %d: writing it", state.step)
        _write(path, state, cfg, {**record, "validation": last, "interrupted": True})
    return {"path": str(path), "step": state.step, "steps": cfg.steps, "seconds": state.seconds,
            "interrupted": interrupted, "parameters": count_parameters(state.net), "validation": last}


def _train_samples(cfg: TrainConfig, measured: Batch | None) -> int:
    """Distinct samples the run draws (simulated: pools made up to ``cfg.steps``)."""
    if measured is not None:
        return len(measured)
    steps_per_pool = max(1, math.ceil(cfg.pool / cfg.batch)) * cfg.reuse
    return cfg.pool * math.ceil(cfg.steps / steps_per_pool)


def _validation_set(cfg: TrainConfig, measured: Batch | None) -> Batch:
    """Fresh simulated seeds (or, for measured scans, the scans themselves: there is nothing else)."""
    if measured is not None:
        return measured
    seeds = [VALIDATION_SEEDS[k] for k in range(max(cfg.validation, 1))]
    return simulated_batch(seeds, (cfg.size,) * cfg.dim, cfg.families, cfg.conditions)


__all__ = ["TrainConfig", "learning_rate_at", "train", "validate_model"]
