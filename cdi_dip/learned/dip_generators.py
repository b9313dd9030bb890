"""Pretrained double-DIP generators (``--dip-weights MODEL.pt``): what they are and how a run checks them.

A model file of kind :data:`KIND` (:mod:`.files`) holds the complete state of
one :class:`~cdi_dip.solvers.nets.DoubleDip`: both generators' weights, their
fixed random inputs (the buffers ``g1.z`` and ``g2.z``) and the learned scale,
with the :class:`DipArchitecture` that builds it. A double-DIP run given such
a file builds the same networks and loads that state instead of drawing
random weights and inputs ("educated" DIP, after Barbano et al., *An educated
warm start for deep image prior-based micro CT reconstruction*, IEEE TCI 2022;
seed 003 of ``../shared/seeds``). The file is made by ``cdi-dip train-dip``
(:mod:`.dip_pretraining`).

The networks only fit one object box and one parameterisation: a run whose
box (:func:`cdi_dip.solvers.dip.object_shape`) or ``param`` differs is
refused (:func:`check_for_run`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..config import DipParam
from ..errors import InvalidInputError

KIND = "dip-generators"
"""The model-file kind of pretrained double-DIP generators."""


@dataclass(frozen=True)
class DipArchitecture:
    """What builds a pretrained :class:`~cdi_dip.solvers.nets.DoubleDip`; stored in its model file.

    Attributes
    ----------
    object_shape : tuple of int
        The object box, ``(ny, nx)`` or ``(nz, ny, nx)`` pixels.
    param : str
        ``"mag-phase"`` or ``"real-imag"`` (:class:`~cdi_dip.config.DipParam`).
    channels, depth : int
        Size of each generator (``dip.channels``, ``dip.depth``).
    phase_head : str
        Phase head of ``mag-phase`` (``"unit"`` or ``"tanh"``).
    frame_shape : tuple of int
        The detector frame the generators were pretrained on, pixels (a record:
        the box is what a run must match).
    """

    object_shape: tuple[int, ...]
    param: str
    channels: int = 32
    depth: int = 4
    phase_head: str = "unit"
    frame_shape: tuple[int, ...] = ()

    def validate(self) -> DipArchitecture:
        """Raise ValueError on an architecture that cannot be built; return self."""
        from ..solvers.nets import PHASE_HEADS

        if len(self.object_shape) not in (2, 3) or min(self.object_shape) < 2:
            raise ValueError(f"object shape {self.object_shape}: give 2 or 3 sizes of at least 2 px")
        DipParam(self.param)
        if not 1 <= self.channels <= 1024 or not 1 <= self.depth <= 8:
            raise ValueError(f"channels {self.channels}, depth {self.depth}: give 1-1024 and 1-8")
        if self.phase_head not in PHASE_HEADS:
            raise ValueError(f"phase head {self.phase_head!r}: give one of {', '.join(PHASE_HEADS)}")
        return self

    def describe(self) -> str:
        """E.g. ``"32x32 mag-phase object (channels 32, depth 4)"``."""
        return (f"{'x'.join(map(str, self.object_shape))} {self.param} object "
                f"(channels {self.channels}, depth {self.depth})")

    def to_dict(self) -> dict[str, Any]:
        return {"object_shape": list(self.object_shape), "param": self.param, "channels": self.channels,
                "depth": self.depth, "phase_head": self.phase_head, "frame_shape": list(self.frame_shape)}

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> DipArchitecture:
        """The architecture of a stored record; ValueError or TypeError when it is not one."""
        shape = record.get("object_shape")
        if not isinstance(shape, (list, tuple)) or not all(isinstance(n, int) for n in shape):
            raise ValueError("object_shape is not a list of integers")
        frame = record.get("frame_shape", [])
        return cls(object_shape=tuple(shape), param=str(record.get("param")),
                   channels=int(record.get("channels", 32)), depth=int(record.get("depth", 4)),
                   phase_head=str(record.get("phase_head", "unit")),
                   frame_shape=tuple(int(n) for n in frame)).validate()


def build(arch: DipArchitecture, *, seed: int = 0, device: torch.device | str = "cpu") -> torch.nn.Module:
    """A :class:`~cdi_dip.solvers.nets.DoubleDip` of ``arch`` with random weights and inputs from ``seed``.

    Parameters
    ----------
    arch : DipArchitecture
    seed : int
        Seed of the CPU generator of the weights and the fixed inputs.
    device : torch.device or str

    Returns
    -------
    DoubleDip
    """
    from ..solvers.nets import DoubleDip

    return DoubleDip(arch.object_shape, DipParam(arch.param), channels=arch.channels, depth=arch.depth,
                     generator=torch.Generator().manual_seed(int(seed)), device=device,
                     phase_head=arch.phase_head)


def expected_state(arch: DipArchitecture) -> dict[str, torch.Tensor]:
    """The state dictionary (names and shapes) a model file of ``arch`` must hold."""
    return build(arch).state_dict()


def load_dip_weights(path: Path | str) -> Any:
    """Read a model file of pretrained generators (``weights_only``: no code from it runs).

    Parameters
    ----------
    path : pathlib.Path or str

    Returns
    -------
    ModelFile
        With a :class:`DipArchitecture` and the full ``DoubleDip`` state.

    Raises
    ------
    InvalidInputError
        A missing, foreign, damaged file, or a model of another kind (a learned initialiser).
    """
    from .files import load_model

    model = load_model(Path(path))
    if model.kind != KIND:
        raise InvalidInputError(f"{path} holds a model of kind {model.kind!r}, not pretrained double-DIP "
                                "generators: give a file written by cdi-dip train-dip")
    return model


def check_for_run(arch: DipArchitecture, object_shape: Sequence[int], param: DipParam, path: Any) -> None:
    """Refuse generators that cannot make this run's object.

    Parameters
    ----------
    arch : DipArchitecture
        The file's.
    object_shape : sequence of int
        The run's object box (pixels).
    param : DipParam
        The run's parameterisation.
    path : path-like
        For the message.

    Raises
    ------
    InvalidInputError
        When the box or the parameterisation differs (one line saying what to do).
    """
    shape = tuple(int(n) for n in object_shape)
    if tuple(arch.object_shape) != shape or DipParam(arch.param) is not DipParam(param):
        raise InvalidInputError(
            f"--dip-weights {path}: the generators make a {arch.describe()}, but this run needs a "
            f"{'x'.join(map(str, shape))} {DipParam(param).value} object: pretrain them for this frame "
            f"(cdi-dip train-dip --size, --param) or leave --dip-weights out")


__all__ = ["KIND", "DipArchitecture", "build", "check_for_run", "expected_state", "load_dip_weights"]
