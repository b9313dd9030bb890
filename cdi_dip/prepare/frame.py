"""The frame size chosen from the data: where the signal is, within a voxel budget.

A detector stack as measured is often far larger than the object needs: a
34-ID-C rocking scan is 201x256x256 (13 million voxels), and HIO on it takes
over 20 minutes on two CPU cores. When the full frame around the peak holds
more voxels than the budget, the frame is cut to the region of the pattern
that carries signal (:func:`signal_half_widths`) and, if that is still too
large, shrunk by the same factor on every axis (:func:`fit_to_budget`).

Cutting the frame in reciprocal space keeps the oversampling (the object
shrinks in pixels with the frame) and coarsens the real-space pixel: the
reconstruction loses its finest detail, never its support. Frames that fit
the budget are left as they are.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .._ndimage import label

MIN_FRAME = 8
"""Smallest frame (pixels per axis) that can be reconstructed."""


def is_fft_friendly(n: int) -> bool:
    """True when ``n`` is even and has no prime factor above 7."""
    if n < 2 or n % 2:
        return False
    for prime in (2, 3, 5, 7):
        while n % prime == 0:
            n //= prime
    return n == 1


def fft_friendly_below(n: int) -> int:
    """Largest FFT-friendly even size ``<= n`` (at least 2)."""
    for size in range(max(int(n), 2), 1, -1):
        if is_fft_friendly(size):
            return size
    return 2


def fft_friendly_above(n: int) -> int:
    """Smallest FFT-friendly even size ``>= n``."""
    size = max(int(n), 2)
    while not is_fft_friendly(size):
        size += 1
    return size


CPU_VOXEL_BUDGET = 2**20
"""Largest frame (voxels) framed automatically on a CPU: about a million voxels
(e.g. 96x104x104) runs the default HIO plan in minutes on two cores."""

GPU_VOXEL_BUDGET = 2**24
"""Largest frame (voxels) framed automatically on a GPU (e.g. 256^3)."""

SIGNAL_BLOCK_PX = 4
"""Side (pixels) of the blocks whose mean counts decide where the signal is."""

SIGNAL_MEAN_COUNTS = 1.0
"""A block carries signal when its mean is at least this many counts per pixel."""


@dataclass(frozen=True)
class FrameChoice:
    """The frame size chosen for a measurement, and why."""

    sizes: tuple[int, ...]
    """Frame size per axis (pixels)."""
    signal_half_widths: tuple[int, ...]
    """Half-width per axis (pixels from the centre) of the region with signal."""
    budget_voxels: int
    """The voxel budget the frame had to fit."""
    reason: str
    """One sentence for the summary: what was chosen and why."""

    def as_note(self) -> dict:
        """Plain data for ``Measurement.notes`` and the summary."""
        return {
            "frame_px": list(self.sizes),
            "signal_half_width_px": list(self.signal_half_widths),
            "budget_voxels": self.budget_voxels,
            "why": self.reason,
        }


def voxel_budget(device_type: str) -> int:
    """The automatic frame budget (voxels) for a device type (``"cpu"`` or ``"cuda"``)."""
    return GPU_VOXEL_BUDGET if device_type == "cuda" else CPU_VOXEL_BUDGET


def _block_means(intensity: np.ndarray, valid: np.ndarray, block: int) -> np.ndarray:
    """Mean counts over the valid pixels of each ``block``-sided block (trailing pixels dropped)."""
    shape = [n // block for n in intensity.shape]
    cut = tuple(slice(0, s * block) for s in shape)
    blocked = [x for s in shape for x in (s, block)]
    sum_axes = tuple(range(1, 2 * intensity.ndim, 2))
    counts = np.where(valid, intensity, 0)[cut].astype(np.float64).reshape(blocked).sum(axis=sum_axes)
    pixels = valid[cut].reshape(blocked).sum(axis=sum_axes)
    return counts / np.maximum(pixels, 1)


def signal_half_widths(intensity: np.ndarray, valid: np.ndarray, centre: Sequence[int]) -> tuple[int, ...]:
    """Half-width per axis (pixels) of the signal connected to the zero frequency.

    The pattern is averaged in blocks of :data:`SIGNAL_BLOCK_PX` pixels; the
    blocks with at least :data:`SIGNAL_MEAN_COUNTS` counts per pixel that are
    connected to the block of ``centre`` are the signal (isolated hot pixels,
    aliens and background far from the peak are not). The half-width is the
    farthest such block from the centre along each axis, plus one block.

    Parameters
    ----------
    intensity : numpy.ndarray, shape (ny, nx) or (nz, ny, nx)
        Counts.
    valid : numpy.ndarray, bool, same shape
    centre : sequence of int
        The zero frequency (pixels).

    Returns
    -------
    tuple of int
        Half-widths, at least one block, at most the array's extent.
    """
    block = SIGNAL_BLOCK_PX
    if min(intensity.shape) < 2 * block:
        return tuple(max(c, n - c) for c, n in zip(centre, intensity.shape))
    means = _block_means(intensity, valid, block)
    centre_block = tuple(min(int(c) // block, s - 1) for c, s in zip(centre, means.shape))
    labels, _ = label(means >= SIGNAL_MEAN_COUNTS)
    if labels[centre_block] == 0:
        return tuple(block for _ in centre)
    where = np.argwhere(labels == labels[centre_block]) * block + block // 2
    reach = np.abs(where - np.asarray(centre)).max(axis=0) + block
    return tuple(int(min(r, max(c, n - c))) for r, c, n in zip(reach, centre, intensity.shape))


def fit_to_budget(sizes: Sequence[int], budget: int) -> tuple[int, ...]:
    """Sizes shrunk by one factor on every axis until their product fits ``budget``.

    Parameters
    ----------
    sizes : sequence of int
        Frame size per axis (pixels), FFT-friendly.
    budget : int
        Largest product allowed (voxels).

    Returns
    -------
    tuple of int
        FFT-friendly sizes (:func:`fft_friendly_below`), none below :data:`MIN_FRAME`.
    """
    sizes = list(sizes)
    if math.prod(sizes) <= budget:
        return tuple(sizes)
    factor = (budget / math.prod(sizes)) ** (1 / len(sizes))
    sizes = [max(fft_friendly_below(int(n * factor)), MIN_FRAME) for n in sizes]
    while math.prod(sizes) > budget and max(sizes) > MIN_FRAME:
        largest = int(np.argmax(sizes))
        sizes[largest] = max(fft_friendly_below(sizes[largest] - 1), MIN_FRAME)
    return tuple(sizes)


def oversampled_binning(sizes: Sequence[int], oversampling: Sequence[float], budget: int,
                        min_oversampling: float) -> tuple[int, ...]:
    """Binning factors that bring a frame towards ``budget`` while every axis keeps ``min_oversampling``.

    Summing ``b`` pixels along an axis halves (``b = 2``) the field of view in
    real space and keeps the voxel size, where cutting the frame to the same
    number of pixels keeps the field of view and coarsens the voxel: an axis
    sampled much finer than the object needs (a Bragg scan's rocking axis is
    often oversampled 8 times or more) gives up its spare field of view
    instead of its resolution. Greedy: while the binned frame exceeds the
    budget, the axis with the most oversampling left among those that can
    take one more pixel per bin (``oversampling / (b + 1) >= min_oversampling``)
    is binned once more.

    Parameters
    ----------
    sizes : sequence of int
        The frame that holds the signal (pixels per axis).
    oversampling : sequence of float
        Estimated oversampling per axis (frame over object extent).
    budget : int
        Voxel budget.
    min_oversampling : float
        Least oversampling a binned axis may be left with.

    Returns
    -------
    tuple of int
        Pixels summed per axis (1: not binned); binned, the frame may still
        exceed the budget (it is then cut, :func:`fit_to_budget`).
    """
    factors = [1] * len(sizes)
    while math.prod(n // b for n, b in zip(sizes, factors)) > budget:
        room = [axis for axis in range(len(sizes))
                if oversampling[axis] / (factors[axis] + 1) >= min_oversampling and sizes[axis] // (factors[axis] + 1)
                >= MIN_FRAME]
        if not room:
            break
        factors[max(room, key=lambda axis: oversampling[axis] / factors[axis])] += 1
    return tuple(factors)


def signal_sizes(half_widths: Sequence[int], full_sizes: Sequence[int]) -> list[int]:
    """The FFT-friendly frame that holds the signal's ``half_widths`` about the centre, at most ``full_sizes``."""
    return [min(n, fft_friendly_above(2 * h)) for n, h in zip(full_sizes, half_widths)]


def choose_frame(intensity: np.ndarray, valid: np.ndarray, centre: Sequence[int], full_sizes: Sequence[int],
                 budget: int) -> FrameChoice | None:
    """The frame for a measurement whose full frame exceeds ``budget``; None when it fits.

    Parameters
    ----------
    intensity, valid : numpy.ndarray
        The conditioned pattern and its valid pixels.
    centre : sequence of int
        Zero frequency (pixels).
    full_sizes : sequence of int
        The frame that keeps the whole detector (pixels per axis).
    budget : int
        Voxel budget (:func:`voxel_budget`).
    """
    if math.prod(full_sizes) <= budget:
        return None
    half = signal_half_widths(intensity, valid, centre)
    signal = signal_sizes(half, full_sizes)
    sizes = fit_to_budget(signal, budget)
    shape = "x".join(map(str, full_sizes))
    if tuple(sizes) == tuple(signal):
        reason = (f"the full {shape} frame exceeds the {budget}-voxel budget of this device; "
                  f"cut to the region with signal ({'x'.join(map(str, sizes))})")
    else:
        reason = (f"the full {shape} frame exceeds the {budget}-voxel budget of this device; the region with "
                  f"signal ({'x'.join(map(str, signal))}) does too, so it was cut to {'x'.join(map(str, sizes))} "
                  "around the peak (coarser real-space pixels; --max-size or a GPU keeps more)")
    return FrameChoice(sizes=tuple(sizes), signal_half_widths=half, budget_voxels=budget, reason=reason)


__all__ = ["CPU_VOXEL_BUDGET", "GPU_VOXEL_BUDGET", "MIN_FRAME", "FrameChoice", "choose_frame", "fft_friendly_above",
           "fft_friendly_below", "fit_to_budget", "is_fft_friendly", "oversampled_binning", "signal_half_widths",
           "signal_sizes", "voxel_budget"]
