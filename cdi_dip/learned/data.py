"""Training samples of the learned initialiser: simulated scans (with ground truth) or measured ones.

A simulated sample is one corpus object (:mod:`cdi_dip.corpus`) drawn on the
model's frame and recorded under one detector condition, from one seed of
:data:`~cdi_dip.corpus.split.TRAINING_SEEDS` (validation:
:data:`~cdi_dip.corpus.split.VALIDATION_SEEDS`). Sample ``k`` of a set uses
seed ``seeds[k]`` and ``default_rng([seed, dim])`` picks its family and
condition, so a set is the same on every machine and a resumed training
continues where it stopped.

Measured scans (prepared by the tool's own preparation) are moved onto the
model's frame by :func:`~.resample.to_model_frame`; they have no ground truth
and train with the passive loss only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..corpus.catalogue import CONDITIONS, FAMILIES
from ..corpus.detector import detect
from ..errors import InvalidInputError
from ..simulate import expected_intensity

log = logging.getLogger(__name__)


@dataclass
class Batch:
    """Samples stacked for the network, on one device.

    Attributes
    ----------
    counts : torch.Tensor, float32, shape (batch, *frame), centred, photons
    valid : torch.Tensor, bool, shape (batch, *frame)
    truth : torch.Tensor, complex64, shape (batch, *frame), or None for measured scans
    """

    counts: torch.Tensor
    valid: torch.Tensor
    truth: torch.Tensor | None

    def __len__(self) -> int:
        return int(self.counts.shape[0])

    def take(self, index: torch.Tensor | Sequence[int]) -> Batch:
        """The samples at ``index``."""
        index = torch.as_tensor(index, dtype=torch.long, device=self.counts.device)
        return Batch(self.counts[index], self.valid[index], None if self.truth is None else self.truth[index])

    def to(self, device: torch.device | str) -> Batch:
        return Batch(self.counts.to(device), self.valid.to(device),
                     None if self.truth is None else self.truth.to(device))


def check_names(families: Sequence[str], conditions: Sequence[str], dim: int) -> None:
    """Raise InvalidInputError for unknown names or a family that does not exist in ``dim`` dimensions."""
    unknown = [n for n in families if n not in FAMILIES] + [n for n in conditions if n not in CONDITIONS]
    if unknown:
        raise InvalidInputError(f"unknown families or conditions {', '.join(unknown)}: choose from "
                                f"{', '.join(FAMILIES)} and {', '.join(CONDITIONS)}")
    usable = [n for n in families if dim in FAMILIES[n].dims]
    if not usable:
        raise InvalidInputError(f"none of the families {', '.join(families)} exists in {dim}D")


def simulated_sample(seed: int, frame: Sequence[int], families: Sequence[str],
                     conditions: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One simulated scan on ``frame``: counts, valid mask, and the truth on the counts' scale.

    Parameters
    ----------
    seed : int
    frame : sequence of int
        ``(n, n)`` or ``(n, n, n)``.
    families, conditions : sequence of str
        Drawn from uniformly (families that do not exist in this
        dimensionality are skipped).

    Returns
    -------
    counts : numpy.ndarray, float32, frame shape, photons
    valid : numpy.ndarray, bool, frame shape
    truth : numpy.ndarray, complex64, frame shape (``|F truth|**2`` = expected counts)
    """
    dim = len(frame)
    rng = np.random.default_rng([int(seed), dim])
    usable = [n for n in families if dim in FAMILIES[n].dims]
    family = FAMILIES[usable[int(rng.integers(len(usable)))]]
    condition = conditions[int(rng.integers(len(conditions)))]
    obj = family.make(tuple(frame), rng, **family.draw(rng, dim))
    expected = expected_intensity(obj)
    settings = CONDITIONS[condition](rng)
    detection = detect(expected, settings, rng)
    scale = settings.peak_counts / expected.max()
    truth = (obj.astype(np.complex128) * np.sqrt(scale)).astype(np.complex64)
    return detection.counts.astype(np.float32), detection.valid, truth


def simulated_batch(seeds: Sequence[int], frame: Sequence[int], families: Sequence[str],
                    conditions: Sequence[str]) -> Batch:
    """:func:`simulated_sample` of every seed, stacked (on the CPU)."""
    samples = [simulated_sample(seed, frame, families, conditions) for seed in seeds]
    return Batch(torch.from_numpy(np.stack([s[0] for s in samples])),
                 torch.from_numpy(np.stack([s[1] for s in samples])),
                 torch.from_numpy(np.stack([s[2] for s in samples])))


def measured_batch(counts: Sequence[np.ndarray], valid: Sequence[np.ndarray]) -> Batch:
    """Measured scans already on the model's frame, stacked (no truth)."""
    return Batch(torch.from_numpy(np.stack([np.asarray(c, dtype=np.float32) for c in counts])),
                 torch.from_numpy(np.stack([np.asarray(v, dtype=bool) for v in valid])), None)


__all__ = ["Batch", "check_names", "measured_batch", "simulated_batch", "simulated_sample"]
