"""Pretraining the double-DIP generators on simulated scans (``cdi-dip train-dip``), Reptile-style.

The generators of a double-DIP run are fitted, from their fixed random
inputs, to one scan's counts. Pretraining looks for weights from which that
fit is short (Nichol, Achiam and Schulman, *On first-order meta-learning
algorithms*, arXiv:1803.02999, "Reptile"; applied to the deep image prior as
the educated DIP of seed 003): for every simulated scan ``k`` of
:data:`~cdi_dip.corpus.split.TRAINING_SEEDS`, in turn,

1. copy the meta-weights ``theta`` into the run's networks, set their scale
   to the scan's measured power (as a run does),
2. take ``inner_steps`` Adam steps of the run's data loss (whole object box,
   valid pixels, counts normalised to unit mean so that every scan weighs
   the same), giving ``theta_k``,
3. move ``theta <- theta + eps_k (theta_k - theta)``, with ``eps_k`` decaying
   linearly from ``meta_step`` to a tenth of it over the scans.

The fixed inputs are drawn once (from ``seed``) and never change; they are
stored with the weights, so that a run rebuilds exactly the pretrained
networks. Each scan is seen once: there is no batch and no epoch.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import DipLoss, DipParam
from ..corpus.catalogue import FAMILIES
from ..corpus.split import TRAINING_CONDITIONS, TRAINING_FAMILIES, TRAINING_SEEDS
from ..errors import InvalidInputError
from ..physics import FarField, pad_to_frame
from .data import check_names, simulated_sample
from .dip_generators import KIND, DipArchitecture, build
from .files import ModelFile, save_model

log = logging.getLogger(__name__)

ProgressCallback = Callable[[dict[str, Any]], None]

CRYSTAL_FAMILIES = tuple(name for name in TRAINING_FAMILIES if FAMILIES[name].kind == "crystal")
"""The tuning half's crystal families: the default scans of ``mag-phase`` generators."""

SPECIMEN_FAMILIES = tuple(name for name in TRAINING_FAMILIES if FAMILIES[name].kind != "crystal")
"""The tuning half's specimen families: the default scans of ``real-imag`` generators."""


@dataclass
class PretrainConfig:
    """How the generators are pretrained; stored in the model file (``training.config``).

    Attributes
    ----------
    dim, size : int
        Dimensionality and frame size per axis of the scans, pixels; the object box is half the frame
        (:func:`cdi_dip.solvers.dip.object_shape` without an extent).
    param : str
        ``mag-phase`` or ``real-imag``.
    channels, depth : int
        Size of each generator (the run's ``dip.channels``, ``dip.depth``).
    samples : int
        Simulated scans, each adapted to once.
    inner_steps : int
        Adam steps of the data loss per scan.
    inner_learning_rate : float
        Adam's rate in those steps (the run's ``dip.learning_rate``).
    meta_step : float
        Fraction of the way towards the adapted weights the meta-weights move on the first scan (0-1];
        decays linearly to a tenth of it by the last.
    loss : str
        The data loss (``amplitude``, ``poisson`` or ``gaussian``).
    families, conditions : list of str
        What the scans are drawn from (None families: the crystal or specimen families of the tuning
        half, by ``param``).
    seed : int
        The fixed inputs and initial weights; the first training seed used is ``TRAINING_SEEDS[seed * samples]``.
    """

    dim: int = 2
    size: int = 64
    param: str = DipParam.MAG_PHASE.value
    channels: int = 32
    depth: int = 4
    samples: int = 200
    inner_steps: int = 20
    inner_learning_rate: float = 0.01
    meta_step: float = 0.5
    loss: str = DipLoss.AMPLITUDE.value
    families: list[str] | None = None
    conditions: list[str] = field(default_factory=lambda: list(TRAINING_CONDITIONS))
    seed: int = 0

    @property
    def frame(self) -> tuple[int, ...]:
        return (self.size,) * self.dim

    @property
    def architecture(self) -> DipArchitecture:
        from ..solvers.dip import PHASE_HEAD, object_shape

        return DipArchitecture(object_shape=object_shape(self.frame), param=DipParam(self.param).value,
                               channels=self.channels, depth=self.depth, phase_head=PHASE_HEAD,
                               frame_shape=self.frame)

    def family_names(self) -> list[str]:
        if self.families is not None:
            return list(self.families)
        return list(CRYSTAL_FAMILIES if DipParam(self.param) is DipParam.MAG_PHASE else SPECIMEN_FAMILIES)

    def validate(self) -> PretrainConfig:
        """Raise InvalidInputError on a setting that cannot train; return self."""
        try:
            DipParam(self.param)
            DipLoss(self.loss)
            if self.dim not in (2, 3) or self.size < 8:
                raise ValueError(f"dim {self.dim}, size {self.size}: give 2 or 3 and at least 8 px")
            self.architecture.validate()
        except ValueError as exc:
            raise InvalidInputError(f"train-dip: {exc}") from None
        if self.samples < 1 or self.inner_steps < 1:
            raise InvalidInputError("train-dip: give at least 1 sample and 1 inner step")
        if not 0 < self.meta_step <= 1 or not 0 < self.inner_learning_rate < 1:
            raise InvalidInputError("train-dip: the meta step must be in (0, 1] and the learning rate in (0, 1)")
        check_names(self.family_names(), self.conditions, self.dim)
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PretrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


@dataclass
class Scan:
    """One scan as the data loss sees it, on one device.

    Attributes
    ----------
    counts : torch.Tensor, float32, frame shape, centred
        Normalised to unit mean over the valid pixels (0 elsewhere).
    valid : torch.Tensor, bool, frame shape
    truth : numpy.ndarray or None, complex64, frame shape
        On the normalised counts' scale (simulated scans only).
    """

    counts: torch.Tensor
    valid: torch.Tensor
    truth: np.ndarray | None = None


def scan_from_counts(counts: np.ndarray, valid: np.ndarray, truth: np.ndarray | None = None,
                     device: torch.device | str = "cpu") -> Scan:
    """A :class:`Scan`: counts (photons) normalised to unit mean on ``valid``, excluded pixels zeroed."""
    valid_t = torch.as_tensor(np.asarray(valid, dtype=bool), device=device)
    counts_t = torch.as_tensor(np.asarray(counts, dtype=np.float32), device=device).nan_to_num(0.0).clamp_min(0.0)
    counts_t = torch.where(valid_t, counts_t, torch.zeros((), device=device))
    mean = float(counts_t[valid_t].mean()) if bool(valid_t.any()) else 0.0
    scale = 1.0 / mean if mean > 0 else 1.0
    scaled_truth = None if truth is None else (np.asarray(truth) * np.sqrt(scale)).astype(np.complex64)
    return Scan(counts=counts_t * scale, valid=valid_t, truth=scaled_truth)


def simulated_scans(seeds: Sequence[int], cfg: PretrainConfig, device: torch.device | str = "cpu") -> list[Scan]:
    """The simulated scans of ``seeds`` (:func:`~.data.simulated_sample`) on ``cfg.frame``."""
    scans = []
    for seed in seeds:
        counts, valid, truth = simulated_sample(seed, cfg.frame, cfg.family_names(), cfg.conditions)
        scans.append(scan_from_counts(counts, valid, truth, device))
    return scans


def training_seeds(cfg: PretrainConfig) -> list[int]:
    """The training seeds of ``cfg`` (disjoint from both corpus halves and the validation seeds)."""
    first = cfg.seed * cfg.samples
    return [TRAINING_SEEDS[(first + k) % len(TRAINING_SEEDS)] for k in range(cfg.samples)]


def scan_loss(model: torch.nn.Module, scan: Scan, kind: DipLoss) -> torch.Tensor:
    """The run's data loss of the networks' object on ``scan`` (whole box, valid pixels), with graph."""
    from ..solvers.dip import data_loss

    physics = FarField(scan.counts.shape)
    intensity = physics.intensity(pad_to_frame(model(), physics.shape))
    return data_loss(intensity, scan.counts, scan.valid, kind)


@torch.no_grad()
def match_power(model: torch.nn.Module, scan: Scan) -> None:
    """Set the networks' scale so that their power on the valid pixels is the scan's (as a run does)."""
    physics = FarField(scan.counts.shape)
    power = physics.intensity(pad_to_frame(model(), physics.shape))[scan.valid].mean()
    measured = scan.counts[scan.valid].mean()
    if float(power) > 0 and float(measured) > 0:
        model.log_scale.fill_(0.5 * math.log(float(measured) / float(power)))


def adapt(model: torch.nn.Module, scan: Scan, steps: int, learning_rate: float,
          kind: DipLoss) -> tuple[float, float]:
    """Fit ``model`` in place to ``scan`` for ``steps`` Adam steps (after matching its power).

    Returns
    -------
    before, after : float
        The data loss at the start and after the last step.
    """
    match_power(model, scan)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    before = math.nan
    for step in range(steps):
        loss = scan_loss(model, scan, kind)
        if step == 0:
            before = float(loss.detach())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        after = float(scan_loss(model, scan, kind))
    return before, after


@torch.no_grad()
def reptile_update(meta: torch.nn.Module, adapted: torch.nn.Module, fraction: float) -> None:
    """``theta <- theta + fraction * (theta_adapted - theta)`` for every weight but the scale
    (set anew for every scan); the fixed inputs are buffers and never move."""
    adapted_params = dict(adapted.named_parameters())
    for name, param in meta.named_parameters():
        if name != "log_scale":
            param.add_(adapted_params[name] - param, alpha=fraction)


def mean_start_loss(model: torch.nn.Module, scans: Sequence[Scan], kind: DipLoss | str = DipLoss.AMPLITUDE) -> float:
    """Mean data loss of the networks on ``scans``, each after matching the power (no fitting)."""
    probe = copy.deepcopy(model)
    losses = []
    for scan in scans:
        match_power(probe, scan)
        with torch.no_grad():
            losses.append(float(scan_loss(probe, scan, DipLoss(kind))))
    return float(np.mean(losses))


def meta_fraction(index: int, cfg: PretrainConfig) -> float:
    """The Reptile step of scan ``index``: linear from ``cfg.meta_step`` to a tenth of it."""
    progress = index / max(cfg.samples - 1, 1)
    return cfg.meta_step * (1.0 - 0.9 * progress)


def pretrain(cfg: PretrainConfig, *, scans: Sequence[Scan] | None = None, device: torch.device | str = "cpu",
             on_progress: ProgressCallback | None = None) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Pretrain the generators of ``cfg`` (Reptile over the scans, in turn).

    Parameters
    ----------
    cfg : PretrainConfig
    scans : sequence of Scan, optional
        The scans to adapt to (default: ``cfg.samples`` simulated scans of :func:`training_seeds`, made
        one at a time); with more than ``cfg.samples`` only the first are used, with fewer they repeat.
    device : torch.device or str
    on_progress : callable, optional
        Called after every scan with ``sample``, ``samples``, ``loss_before``, ``loss_after``, ``seconds``.

    Returns
    -------
    model : DoubleDip
        The meta-weights (on ``device``).
    record : dict
        ``config``, ``samples``, ``seconds``, ``interrupted`` and ``history`` (per scan: seed, losses
        before and after adaptation).
    """
    cfg.validate()
    kind = DipLoss(cfg.loss)
    meta = build(cfg.architecture, seed=cfg.seed, device=device)
    seeds = training_seeds(cfg)
    history: list[dict[str, float]] = []
    started = time.perf_counter()
    interrupted = False
    try:
        for index in range(cfg.samples):
            scan = scans[index % len(scans)] if scans else simulated_scans([seeds[index]], cfg, device)[0]
            task = copy.deepcopy(meta)
            before, after = adapt(task, scan, cfg.inner_steps, cfg.inner_learning_rate, kind)
            if not (math.isfinite(before) and math.isfinite(after)):
                log.warning("train-dip: scan %d gave a non-finite loss; skipped", index)
                continue
            reptile_update(meta, task, meta_fraction(index, cfg))
            entry = {"sample": index, "seed": -1 if scans else seeds[index], "loss_before": before,
                     "loss_after": after}
            history.append(entry)
            if on_progress is not None:
                on_progress({**entry, "samples": cfg.samples, "seconds": time.perf_counter() - started})
    except KeyboardInterrupt:
        interrupted = True
        log.warning("train-dip interrupted after %d scans: keeping those", len(history))
    record = {"config": cfg.to_dict(), "samples": len(history), "seconds": time.perf_counter() - started,
              "interrupted": interrupted, "method": "reptile", "history": history,
              "source": "given scans" if scans else "simulated"}
    return meta, record


def save_generators(path: Path, model: torch.nn.Module, cfg: PretrainConfig, record: dict[str, Any]) -> Path:
    """Write pretrained generators as a model file of kind ``dip-generators`` (atomically)."""
    return save_model(Path(path), ModelFile(path=Path(path), architecture=cfg.architecture,
                                            state_dict=model.state_dict(), training=record, kind=KIND))


__all__ = ["CRYSTAL_FAMILIES", "PretrainConfig", "Scan", "adapt", "mean_start_loss", "meta_fraction", "pretrain",
           "reptile_update", "save_generators", "scan_from_counts", "scan_loss", "simulated_scans",
           "training_seeds"]
