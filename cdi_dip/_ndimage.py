"""The few n-dimensional image operations the defect detectors need, in NumPy only.

``scipy.ndimage`` is not a dependency of the package, so this module carries
small, tested replacements: box sums (separable cumulative sums), cube
dilation, connected-component labelling (vectorised union-find) and order
statistics of a pixel's neighbours. All work on 2D and 3D arrays alike and
treat everything beyond the array edge as absent.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

import numpy as np


def _radii(radius: int | Sequence[int], ndim: int) -> tuple[int, ...]:
    if isinstance(radius, (int, np.integer)):
        return (int(radius),) * ndim
    radii = tuple(int(r) for r in radius)
    if len(radii) != ndim:
        raise ValueError(f"{len(radii)} radii for a {ndim}D array")
    return radii


def box_sum(array: np.ndarray, radius: int | Sequence[int]) -> np.ndarray:
    """Sum over the box ``[i - r, i + r]`` on every axis, zero beyond the edges.

    Parameters
    ----------
    array : numpy.ndarray, any shape
    radius : int or sequence of int
        Half-width of the box per axis, pixels (0 leaves the axis alone).

    Returns
    -------
    numpy.ndarray, float64, same shape
    """
    out = np.asarray(array, dtype=np.float64)
    for axis, r in enumerate(_radii(radius, out.ndim)):
        if r <= 0:
            continue
        n = out.shape[axis]
        pad = [(0, 0)] * out.ndim
        pad[axis] = (r + 1, r)
        cumulative = np.cumsum(np.pad(out, pad), axis=axis)
        upper = np.take(cumulative, np.arange(2 * r + 1, 2 * r + 1 + n), axis=axis)
        lower = np.take(cumulative, np.arange(0, n), axis=axis)
        out = upper - lower
    return out


def box_mean(array: np.ndarray, valid: np.ndarray, radius: int | Sequence[int]) -> np.ndarray:
    """Mean of ``array`` over the valid pixels of the box around each pixel.

    Pixels whose box holds no valid pixel get 0.

    Returns
    -------
    numpy.ndarray, float64, same shape
    """
    valid = np.asarray(valid, dtype=bool)
    if valid.all():
        total = box_sum(array, radius)
        count = np.ones((1,) * valid.ndim)
        for axis, (n, r) in enumerate(zip(valid.shape, _radii(radius, valid.ndim))):
            shape = [1] * valid.ndim
            shape[axis] = n
            count = count * box_sum(np.ones(n), r).reshape(shape)
    else:
        total = box_sum(np.where(valid, array, 0), radius)
        count = box_sum(valid, radius)
    return np.divide(total, count, out=np.zeros_like(total), where=count > 0.5)


def dilate(mask: np.ndarray, radius: int | Sequence[int]) -> np.ndarray:
    """Grow a boolean mask by a box of half-width ``radius`` (pixels)."""
    if all(r <= 0 for r in _radii(radius, mask.ndim)):
        return np.asarray(mask, dtype=bool).copy()
    return box_sum(mask, radius) > 0.5


def _find_roots(parent: np.ndarray) -> np.ndarray:
    """Full path compression: every entry points at its root."""
    while True:
        grand = parent[parent]
        if np.array_equal(grand, parent):
            return parent
        parent = grand


def label(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Connected components of a boolean mask (face connectivity).

    A vectorised union-find: every round hooks the root of the larger index
    of each edge under the smaller one, then compresses paths; it ends when
    both ends of every edge share a root (a few rounds in practice).

    Parameters
    ----------
    mask : numpy.ndarray, bool, 2D or 3D

    Returns
    -------
    labels : numpy.ndarray, int32, same shape
        0 outside the mask, components numbered 1..count in order of their
        first pixel (C order).
    count : int
    """
    mask = np.asarray(mask, dtype=bool)
    flat = np.flatnonzero(mask)
    labels = np.zeros(mask.shape, dtype=np.int32)
    if flat.size == 0:
        return labels, 0
    compact = np.full(mask.size, -1, dtype=np.int64)
    compact[flat] = np.arange(flat.size)
    compact = compact.reshape(mask.shape)
    heads, tails = [], []
    for axis in range(mask.ndim):
        lo = [slice(None)] * mask.ndim
        hi = [slice(None)] * mask.ndim
        lo[axis], hi[axis] = slice(0, -1), slice(1, None)
        both = mask[tuple(lo)] & mask[tuple(hi)]
        heads.append(compact[tuple(lo)][both])
        tails.append(compact[tuple(hi)][both])
    head, tail = np.concatenate(heads), np.concatenate(tails)
    parent = np.arange(flat.size)
    while head.size:
        root_head, root_tail = parent[head], parent[tail]
        apart = root_head != root_tail
        if not apart.any():
            break
        head, tail = head[apart], tail[apart]
        low = np.minimum(root_head[apart], root_tail[apart])
        high = np.maximum(root_head[apart], root_tail[apart])
        np.minimum.at(parent, high, low)
        parent = _find_roots(parent)
    _, numbered = np.unique(parent, return_inverse=True)
    labels.flat[flat] = numbered.astype(np.int32) + 1
    return labels, int(numbered.max()) + 1


def neighbour_offsets(ndim: int) -> Iterator[tuple[int, ...]]:
    """Offsets of the ``3**ndim - 1`` neighbours of a pixel (faces, edges, corners)."""
    for offset in itertools.product((-1, 0, 1), repeat=ndim):
        if any(offset):
            yield offset


def _shifted_views(padded: np.ndarray, shape: tuple[int, ...]) -> Iterator[np.ndarray]:
    """Views of a 1-pixel padded array, one per neighbour offset."""
    for offset in neighbour_offsets(len(shape)):
        yield padded[tuple(slice(1 + o, 1 + o + n) for o, n in zip(offset, shape))]


def neighbour_top2(values: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Largest and second-largest value among each pixel's valid neighbours.

    Neighbours are the ``3**ndim - 1`` pixels of the surrounding cube; invalid
    ones and those beyond the edge are ignored. Memory: four arrays of the
    input's size, whatever the dimension.

    Returns
    -------
    first, second : numpy.ndarray, float32, same shape
        ``-inf`` where fewer than one (two) valid neighbours exist.
    count : numpy.ndarray, uint8, same shape
        Number of valid neighbours.
    """
    work = np.where(valid, values, -np.inf).astype(np.float32)
    padded = np.pad(work, 1, constant_values=-np.inf)
    first = np.full(values.shape, -np.inf, dtype=np.float32)
    second = np.full(values.shape, -np.inf, dtype=np.float32)
    count = np.zeros(values.shape, dtype=np.uint8)
    for view in _shifted_views(padded, values.shape):
        second = np.maximum(second, np.minimum(first, view))
        first = np.maximum(first, view)
        count += view > -np.inf
    return first, second, count


def neighbour_median(values: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median of each pixel's valid neighbours, and how many there are.

    Stacks the ``3**ndim - 1`` shifted copies, so meant for single frames
    (2D) or small volumes.

    Returns
    -------
    median : numpy.ndarray, float64, same shape
        NaN where no neighbour is valid.
    count : numpy.ndarray, int, same shape
    """
    work = np.where(valid, values, np.nan).astype(np.float64)
    padded = np.pad(work, 1, constant_values=np.nan)
    stack = np.stack(list(_shifted_views(padded, values.shape)))
    count = np.isfinite(stack).sum(axis=0)
    median = np.full(values.shape, np.nan)
    some = count > 0
    median[some] = np.nanmedian(stack[:, some], axis=0)
    return median, count
