"""Moving a measurement onto a model's frame and the model's object back, without changing the oversampling.

A model is trained on frames of ``S`` pixels per axis. A measured frame of
``N`` pixels is cut (``N > S``) or padded with unmeasured pixels (``N < S``)
around its centre in *detector* space: the pixels keep their reciprocal
positions, so the object keeps its size relative to the field of view (its
oversampling); only the resolution changes (the object's voxel is ``N / S``
times the frame's). The network's object goes back by the same move of its
far field: ``F x`` cut or zero-padded from ``S`` to ``N`` per axis, then
inverted. Frames more than :data:`MAX_RATIO` times larger, or less than
``1 / MIN_RATIO`` times smaller, than the model's are refused.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..errors import InvalidInputError
from ..physics import FarField, crop_centre, pad_to_frame

MAX_RATIO = 4.0
"""Largest frame, per axis, as a multiple of the model's (a larger frame loses too much to the cut)."""

MIN_RATIO = 2.0
"""Smallest frame per axis is the model's divided by this (a smaller one is mostly padding)."""


def check_frame(frame: Sequence[int], model_size: int, dim: int, where: str = "this frame") -> None:
    """Raise InvalidInputError when a frame cannot be moved onto the model's.

    Parameters
    ----------
    frame : sequence of int
    model_size : int
        The model's frame size per axis.
    dim : int
        The model's dimensionality.
    where : str
        Names the frame in the message.
    """
    frame = tuple(int(n) for n in frame)
    if len(frame) != dim:
        raise InvalidInputError(f"{where} is {len(frame)}D but the model is for {dim}D data: "
                                f"give a {len(frame)}D model (--init learned:MODEL.pt)")
    for n in frame:
        if n > MAX_RATIO * model_size or n * MIN_RATIO < model_size:
            raise InvalidInputError(
                f"{where} is {'x'.join(map(str, frame))} but the model was trained on {model_size} px per axis "
                f"and takes {int(model_size / MIN_RATIO)} to {int(MAX_RATIO * model_size)}: "
                "use --max-size, or a model trained on frames of this size (cdi-dip train --size)")


def _fit_axes(array: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Cut or zero-pad (False for a mask) the last ``len(shape)`` axes about the centre to ``shape``."""
    ndim = len(shape)
    cut = tuple(min(a, b) for a, b in zip(array.shape[-ndim:], shape))
    array = crop_centre(array, cut)
    if cut == tuple(shape):
        return array
    if array.dtype == torch.bool:
        return pad_to_frame(array.to(torch.uint8), shape).bool()
    return pad_to_frame(array, shape)


def to_model_frame(counts: torch.Tensor, valid: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Counts and mask moved onto the model's frame (cut, or padded with unmeasured pixels).

    Parameters
    ----------
    counts : torch.Tensor, real, frame shape, centred
    valid : torch.Tensor, bool, frame shape
    size : int
        The model's frame size per axis.

    Returns
    -------
    counts, valid : torch.Tensor, shape ``(size,) * ndim``
    """
    shape = (int(size),) * counts.ndim
    return _fit_axes(counts, shape), _fit_axes(valid, shape)


def object_to_frame(obj: torch.Tensor, frame: Sequence[int]) -> torch.Tensor:
    """The model's object on the measured frame: its far field cut or zero-padded from the model's frame.

    Parameters
    ----------
    obj : torch.Tensor, complex, model frame, centred
    frame : sequence of int
        The measured frame.

    Returns
    -------
    torch.Tensor, complex64, frame shape, centred (same far field on the shared pixels)
    """
    frame = tuple(int(n) for n in frame)
    if tuple(obj.shape) == frame:
        return obj.to(torch.complex64)
    field = FarField(obj.shape).forward(obj.to(torch.complex64))
    return FarField(frame).inverse(_fit_axes(field, frame)).to(torch.complex64)


__all__ = ["MAX_RATIO", "MIN_RATIO", "check_frame", "object_to_frame", "to_model_frame"]
