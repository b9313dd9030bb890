"""Model files: data, not code.

A model file is a ``torch.save`` of one dictionary of plain values and
tensors, read back with ``torch.load(weights_only=True)``: loading a file
never runs code from it. The dictionary holds:

- ``format`` (:data:`MODEL_FORMAT`) and ``format_version``;
- ``kind``: ``"phasenet"`` (the learned initialiser, :mod:`.network`) or
  ``"dip-generators"`` (pretrained double-DIP generators with their fixed
  inputs, :mod:`.dip_generators`, for ``--dip-weights``);
- ``architecture``: what builds the network (:class:`~.network.Architecture`,
  or :class:`~.dip_generators.DipArchitecture` for ``dip-generators``);
- ``state_dict``: its weights;
- ``training``: the training configuration and its record (set sizes, time,
  losses), so that anyone can see and redo how it was made;
- ``checkpoint`` (optional): the optimiser state and step, to resume training;
- ``software``: the cdi-dip version that wrote it.

Anything else (a pickle of objects, another program's checkpoint, a newer
format, weights that do not fit the architecture) is refused with an
:class:`~cdi_dip.errors.InvalidInputError` naming the problem.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..errors import InvalidInputError
from ..io._atomic import atomic_write
from . import dip_generators
from .network import Architecture, PhaseNet

log = logging.getLogger(__name__)

MODEL_FORMAT = "cdi-dip-model"
MODEL_FORMAT_VERSION = 1
KINDS = ("phasenet", dip_generators.KIND)


@dataclass
class ModelFile:
    """A model file's contents, checked.

    Attributes
    ----------
    path : pathlib.Path or None
    architecture : Architecture or DipArchitecture
        The kind's architecture record.
    state_dict : dict of str to torch.Tensor
    training : dict
        Configuration and record of the training.
    checkpoint : dict or None
        ``{"step": int, "optimizer": state dict, ...}`` when training can resume from it.
    kind : str
    """

    path: Path | None
    architecture: Architecture | dip_generators.DipArchitecture
    state_dict: dict[str, torch.Tensor]
    training: dict[str, Any] = field(default_factory=dict)
    checkpoint: dict[str, Any] | None = None
    kind: str = "phasenet"

    def network(self, device: torch.device | str = "cpu") -> PhaseNet:
        """The network with its weights, in evaluation mode, on ``device`` (kind ``phasenet`` only)."""
        if self.kind != "phasenet":
            raise InvalidInputError(f"{self.path} holds {self.kind}, not a learned initialiser: give a file "
                                    "written by cdi-dip train")
        net = PhaseNet(self.architecture)
        net.load_state_dict(self.state_dict)
        return net.to(device).eval()


def save_model(path: Path, model: ModelFile) -> Path:
    """Write a model file atomically (a reader never sees half a file).

    Parameters
    ----------
    path : pathlib.Path
    model : ModelFile

    Returns
    -------
    pathlib.Path
    """
    payload = {
        "format": MODEL_FORMAT,
        "format_version": MODEL_FORMAT_VERSION,
        "kind": model.kind,
        "architecture": model.architecture.to_dict(),
        "state_dict": {key: value.detach().cpu() for key, value in model.state_dict.items()},
        "training": model.training,
        "software": {"cdi_dip": str(__version__), "torch": str(torch.__version__)},
    }
    if model.checkpoint is not None:
        payload["checkpoint"] = model.checkpoint
    path = Path(path)
    with atomic_write(path) as tmp:
        torch.save(payload, tmp)
    return path


def _load_failure(exc: BaseException) -> str:
    """One line saying why ``torch.load`` refused a file (the unpickler's own line when it gave one)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:
        if line.startswith("WeightsUnpickler error:"):
            return line.removeprefix("WeightsUnpickler error:").strip().split(". ")[0]
    return lines[0] if lines else type(exc).__name__


def _read_payload(path: Path) -> dict:
    """``torch.load(weights_only=True)`` of ``path``, every failure an InvalidInputError."""
    if not path.is_file():
        raise InvalidInputError(f"model file {path} does not exist: give the path of a file "
                                "written by cdi-dip train")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - garbage makes torch.load raise nearly anything (KeyError, ...)
        reason = _load_failure(exc)
        raise InvalidInputError(f"{path} is not a cdi-dip model file (it cannot be read as plain weights: "
                                f"{reason[:160]}); give a file written by cdi-dip train") from None
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise InvalidInputError(f"{path} is not a cdi-dip model file (no '{MODEL_FORMAT}' format mark); "
                                "give a file written by cdi-dip train")
    return payload


def _check_header(payload: dict, path: Path) -> None:
    version = payload.get("format_version")
    if not isinstance(version, int) or version > MODEL_FORMAT_VERSION or version < 1:
        raise InvalidInputError(f"{path} has model format version {version!r}; this cdi-dip reads version "
                                f"{MODEL_FORMAT_VERSION}: update cdi-dip or retrain the model")
    if payload.get("kind") not in KINDS:
        raise InvalidInputError(f"{path} holds a model of kind {payload.get('kind')!r}; cdi-dip knows "
                                f"{', '.join(KINDS)}")


def _architecture(payload: dict, path: Path) -> Architecture | dip_generators.DipArchitecture:
    """The architecture record of the file's kind (checked by :func:`_check_header` first)."""
    record = payload.get("architecture")
    if not isinstance(record, dict):
        raise InvalidInputError(f"{path}: the model file has no architecture record; retrain the model")
    try:
        if payload["kind"] == dip_generators.KIND:
            return dip_generators.DipArchitecture.from_dict(record)
        return Architecture.from_dict(record)
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(f"{path}: the model's architecture is not one cdi-dip builds ({exc})") from None


def _expected_state(arch: Architecture | dip_generators.DipArchitecture) -> dict[str, torch.Tensor]:
    """The state dictionary a freshly built network of ``arch`` has (names and shapes are what count)."""
    if isinstance(arch, dip_generators.DipArchitecture):
        return dip_generators.expected_state(arch)
    return PhaseNet(arch).state_dict()


def _check_weights(state: Any, arch: Architecture | dip_generators.DipArchitecture,
                   path: Path) -> dict[str, torch.Tensor]:
    """The weights, or an InvalidInputError when they do not fit the architecture exactly."""
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InvalidInputError(f"{path}: the model file's weights are not a dictionary of tensors")
    expected = _expected_state(arch)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if tuple(expected[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        detail = "; ".join(part for part in (
            f"missing {', '.join(missing[:3])}" if missing else "",
            f"unexpected {', '.join(unexpected[:3])}" if unexpected else "",
            f"wrong shape {', '.join(wrong[:3])}" if wrong else "") if part)
        raise InvalidInputError(f"{path}: the weights do not fit the stored architecture ({detail}); "
                                "the file is damaged or from another program")
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise InvalidInputError(f"{path}: the weights hold NaN or Inf ({', '.join(bad[:3])}); retrain the model")
    return state


def load_model(path: Path) -> ModelFile:
    """Read and check a model file (``weights_only=True``: no code from the file runs).

    Parameters
    ----------
    path : pathlib.Path

    Returns
    -------
    ModelFile

    Raises
    ------
    InvalidInputError
        A missing, unreadable, foreign, newer or damaged file (the message says which).
    """
    path = Path(path)
    payload = _read_payload(path)
    _check_header(payload, path)
    arch = _architecture(payload, path)
    state = _check_weights(payload.get("state_dict"), arch, path)
    training = payload.get("training") if isinstance(payload.get("training"), dict) else {}
    checkpoint = payload.get("checkpoint") if isinstance(payload.get("checkpoint"), dict) else None
    return ModelFile(path=path, architecture=arch, state_dict=state, training=training, checkpoint=checkpoint,
                     kind=payload["kind"])


def without_training_state(path: Path, out: Path | None = None) -> Path:
    """Rewrite a model file without its optimiser state (a third of the size; it can no longer be resumed).

    Parameters
    ----------
    path : pathlib.Path
        A model file.
    out : pathlib.Path, optional
        Where to write (default: over ``path``, atomically).

    Returns
    -------
    pathlib.Path
    """
    model = load_model(path)
    model.checkpoint = None
    model.training = {**model.training, "resumable": False}
    return save_model(out or path, model)


__all__ = ["MODEL_FORMAT", "MODEL_FORMAT_VERSION", "ModelFile", "load_model", "save_model", "without_training_state"]
