"""The educated double DIP: a run's generators start from pretrained weights (``dip.weights``).

:mod:`cdi_dip.solvers.dip` calls :func:`for_run` once per run and, where it
builds a :class:`~cdi_dip.solvers.nets.DoubleDip`, :meth:`Educated.networks`
instead of drawing random weights and inputs. Everything else about the run
(loss, early stop, polish) is unchanged; what the warm start does is decided
by :func:`warm_start_runs` (docs/dip.md, "Educated double DIP").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..config import DipParam

EDUCATED_WARM_START_RUNS: int | None = None
"""Warm-start runs of an educated run when ``dip.warm_start_runs`` is None; None: the random-weight
default (HIO warm start and pre-fit as usual). Measured by ``benchmarks/educated_dip.py`` (docs/dip.md,
"Educated double DIP"): fitted straight from the pretrained weights on the whole box (0 here), the
generators stagnated far from the truth on every tuning case tried (error 0.27-0.55 where the
random-weight run reached 0.003-0.08); with the warm start they reach about the same error."""


@dataclass
class Educated:
    """Pretrained generators checked against one run.

    Attributes
    ----------
    path : str
        The model file.
    arch : DipArchitecture
        What builds the networks (box, param, channels, depth, phase head).
    state : dict of str to torch.Tensor
        The full ``DoubleDip`` state: weights, fixed inputs ``g*.z``, ``log_scale``.
    training : dict
        The file's training record (for the run's ``extra``).
    """

    path: str
    arch: Any
    state: dict[str, torch.Tensor]
    training: dict[str, Any]

    def networks(self, device: torch.device, autocast: bool = False) -> torch.nn.Module:
        """A ``DoubleDip`` on ``device`` holding exactly the stored weights and inputs."""
        from ..learned.dip_generators import build

        model = build(self.arch, device=device)
        model.autocast = bool(autocast)
        model.load_state_dict(self.state)
        return model

    def record(self, warm_start_runs: int, prefit_iterations: int) -> dict[str, Any]:
        """What the run's ``extra["dip_weights"]`` says: the file, its networks, and the stages that ran."""
        return {"path": self.path, "architecture": self.arch.to_dict(),
                "pretraining": {k: self.training.get(k) for k in ("samples", "seconds", "config")
                                if k in self.training},
                "warm_start_runs": int(warm_start_runs),
                "prefit_iterations": int(prefit_iterations) if warm_start_runs > 0 else 0}


def for_run(weights: str | None, object_shape: Sequence[int], param: DipParam) -> Educated | None:
    """The pretrained generators of ``dip.weights`` checked for this run; None without a file.

    Parameters
    ----------
    weights : str or None
        ``dip.weights``.
    object_shape : sequence of int
        The run's object box (pixels).
    param : DipParam
        The run's parameterisation.

    Raises
    ------
    InvalidInputError
        A missing, foreign or damaged file, or generators for another box or param.
    """
    if weights is None:
        return None
    from ..learned.dip_generators import check_for_run, load_dip_weights

    model = load_dip_weights(weights)
    check_for_run(model.architecture, object_shape, param, weights)
    return Educated(path=str(weights), arch=model.architecture, state=model.state_dict, training=model.training)


def warm_start_runs(educated: Educated | None, configured: int | None) -> int | None:
    """``dip.warm_start_runs`` as the run uses it: :data:`EDUCATED_WARM_START_RUNS` for an educated run
    left at None, else unchanged (None: the random-weight default)."""
    if educated is not None and configured is None:
        return EDUCATED_WARM_START_RUNS
    return configured


__all__ = ["EDUCATED_WARM_START_RUNS", "Educated", "for_run", "warm_start_runs"]
