"""Early stopping by the windowed moving variance of the iterates (ES-WMV), and its uncertainty map.

Reference: H. Wang, T. Li, Z. Zhuang, T. Chen, H. Liang and J. Sun, *Early
stopping for deep image prior*, Transactions on Machine Learning Research
(2023), arXiv:2112.06074.

A deep image prior first fits the object's structure and later its noise; its
iterates move least in between. ES-WMV tracks how much the last ``W`` iterates
spread about their mean, and stops once that spread has not reached a new
minimum for ``P`` updates, returning the iterate at the minimum. No held-out
data are needed.

Here the iterate is the double DIP's complex object box. Its global phase is
not fixed by the data and may drift along a fit, so before the spread is taken
every iterate of the window is turned by the constant phase that best matches
it to the latest one (least squares: ``arg <x_k, x_latest>``); a pure drift of
the global phase then gives zero variance.
"""

from __future__ import annotations

import math
from collections import deque

import torch


def align_global_phase(obj: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """``obj`` times the unit phase factor that brings it closest to ``reference``.

    Parameters
    ----------
    obj, reference : torch.Tensor, complex, same shape
        Any shape (the object box, ``(ny, nx)`` or ``(nz, ny, nx)``).

    Returns
    -------
    torch.Tensor, complex, shape of ``obj``
        ``obj * exp(i phi)`` with ``phi = arg sum conj(obj) * reference``,
        which minimises ``||obj exp(i phi) - reference||``; ``obj`` itself when
        the two are orthogonal (no phase is better than another).
    """
    overlap = (obj.conj() * reference).sum()
    size = overlap.abs()
    if float(size) == 0.0:
        return obj
    return obj * (overlap / size)


def window_variance_map(window: list[torch.Tensor]) -> torch.Tensor:
    """Per-voxel variance of a window of complex iterates after aligning their global phases to the last.

    Parameters
    ----------
    window : list of torch.Tensor, complex, all one shape
        Iterates in order, the latest last (at least one).

    Returns
    -------
    torch.Tensor, float, shape of one iterate
        ``mean_k |a_k - mean_j a_j|**2`` with ``a_k`` the ``k``-th iterate
        aligned by :func:`align_global_phase` to the latest; in the iterate's
        units squared (photon amplitude squared for the DIP object).
    """
    latest = window[-1]
    mean = sum(align_global_phase(x, latest) for x in window) / len(window)
    # One iterate at a time, so that the peak memory is the window and a few boxes, not twice the window.
    return sum((align_global_phase(x, latest) - mean).abs().square() for x in window) / len(window)


class WindowedVariance:
    """The ES-WMV criterion fed one iterate at a time.

    Parameters
    ----------
    window : int
        ``W``: iterates kept (at least 2). Memory: about ``W + 4`` copies
        of the iterate (the window, the iterate at the minimum, its standard
        deviation map, the working mean and sum); 48 MiB for ``W = 20`` and
        a 64^3 complex64 box.
    patience : int
        ``P``: updates without a new minimum after which :attr:`stop` is True.

    Attributes
    ----------
    value : float
        The latest windowed moving variance (NaN until the window is full).
    min_value : float
        The smallest value so far (inf until the window is full).
    min_iteration : int
        The caller's iteration number of the iterate at the minimum (-1: none yet).
    min_object : torch.Tensor or None
        That iterate (a copy).
    min_std : torch.Tensor or None
        The per-voxel windowed standard deviation at the minimum, float, the
        iterate's shape and units: a cheap uncertainty map of ``min_object``.
    stale : int
        Updates since the minimum.

    Notes
    -----
    The windowed moving variance of the window ``a_1..a_W`` (aligned as in
    :func:`window_variance_map`) is ``mean over voxels of mean_k |a_k - mean|**2``
    divided by the latest iterate's mean power ``mean |a_W|**2``: dimensionless
    and independent of the object's scale.
    """

    def __init__(self, window: int, patience: int):
        if window < 2:
            raise ValueError(f"window {window}: give at least 2 iterates")
        if patience < 1:
            raise ValueError(f"patience {patience}: give at least 1 update")
        self.window = int(window)
        self.patience = int(patience)
        self._iterates: deque[torch.Tensor] = deque(maxlen=self.window)
        self.value = math.nan
        self.min_value = math.inf
        self.min_iteration = -1
        self.min_object: torch.Tensor | None = None
        self.min_std: torch.Tensor | None = None
        self.stale = 0

    @torch.no_grad()
    def update(self, obj: torch.Tensor, iteration: int) -> bool:
        """Add an iterate; True when it sets a new minimum of the windowed moving variance.

        Parameters
        ----------
        obj : torch.Tensor, complex, the object box's shape
            The current iterate (copied; the caller may change it afterwards).
        iteration : int
            Its iteration number, recorded with the minimum.

        Returns
        -------
        bool
        """
        self._iterates.append(obj.detach().clone())
        if len(self._iterates) < self.window:
            return False
        variance = window_variance_map(list(self._iterates))
        power = float(self._iterates[-1].abs().square().mean())
        self.value = float(variance.mean()) / power if power > 0 else math.inf
        if self.value < self.min_value:
            self.min_value = self.value
            self.min_iteration = int(iteration)
            self.min_object = self._iterates[-1].clone()
            self.min_std = variance.sqrt()
            self.stale = 0
            return True
        self.stale += 1
        return False

    @property
    def stop(self) -> bool:
        """True once :attr:`patience` updates have passed without a new minimum."""
        return self.stale >= self.patience


__all__ = ["WindowedVariance", "align_global_phase", "window_variance_map"]
