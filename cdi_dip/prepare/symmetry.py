"""Friedel (centro-)symmetry of a diffraction pattern: its centre and its mirror image.

Without absorption the far-field intensity obeys ``I(q) = I(-q)``: a
forward-CDI pattern is symmetric about the zero frequency ``c``, and every
real speckle has a partner of similar intensity at ``2 c - r``. Strain and
absorption break this only mildly. Mirror images are taken through ``c``
given as ``twice_centre = 2 c`` in whole pixels, so that a centre half-way
between two pixels is exact.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._ndimage import neighbour_top2


OUTLIER_LIMIT = 4.0
"""For the centre only, every count is limited to this many times its second-largest valid neighbour
(at least 1 photon): compact objects at oversampling >= 2 never peak in one pixel (every maximum has
two neighbours within a factor ~4), so this leaves their pattern nearly as it is, and a Friedel pair
is limited alike; a hot pixel beside the Bragg peak at 10 times its count would otherwise be the
centre (tuning/2d/faceted/hot/1000 of the corpus)."""


def _outliers_limited(counts: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``counts`` (non-negative) with every pixel limited to :data:`OUTLIER_LIMIT` times its second-largest
    valid neighbour (its largest when it has one valid neighbour; at least :data:`OUTLIER_LIMIT` photons)."""
    first, second, _ = neighbour_top2(counts, valid)
    reference = np.where(np.isfinite(second), second, np.where(np.isfinite(first), first, np.inf))
    return np.minimum(counts, OUTLIER_LIMIT * np.maximum(reference, 1.0))


def friedel_twice_centre(intensity: np.ndarray, valid: np.ndarray) -> tuple[int, ...]:
    """Twice the centre of Friedel symmetry of a pattern, robust to a beamstop and to single bright pixels.

    The autoconvolution ``(a * a)(s) = sum_r a(r) a(s - r)`` of a pattern
    symmetric about ``c`` peaks at ``s = 2c``; ``a = sqrt(I)`` on valid pixels,
    zero-padded so that nothing wraps around, with ``I`` limited near single
    bright pixels (:data:`OUTLIER_LIMIT`) so that an unmasked hot pixel
    cannot pose as the centre.

    Parameters
    ----------
    intensity : numpy.ndarray, shape (ny, nx) or (nz, ny, nx)
        Counts.
    valid : numpy.ndarray of bool, same shape

    Returns
    -------
    tuple of int
        ``2 c`` per axis, pixels.
    """
    counts = np.where(valid, np.clip(intensity, 0, None), 0).astype(np.float64)
    amplitude = np.sqrt(np.where(valid, _outliers_limited(counts, valid), 0))
    padded_shape = [2 * n for n in amplitude.shape]
    axes = tuple(range(amplitude.ndim))
    spectrum = np.fft.rfftn(amplitude, s=padded_shape, axes=axes)
    autoconvolution = np.fft.irfftn(spectrum * spectrum, s=padded_shape, axes=axes)
    return tuple(int(s) for s in np.unravel_index(int(np.argmax(autoconvolution)), autoconvolution.shape))


def friedel_centre(intensity: np.ndarray, valid: np.ndarray) -> tuple[int, ...]:
    """Centre of Friedel symmetry of a pattern (see :func:`friedel_twice_centre`), rounded to whole pixels."""
    return tuple(int(round(s / 2)) for s in friedel_twice_centre(intensity, valid))


def mirror(values: np.ndarray, valid: np.ndarray,
           twice_centre: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """The image through the centre: ``values(s - r)`` at every ``r``, with ``s = twice_centre``.

    Parameters
    ----------
    values : numpy.ndarray, any shape
    valid : numpy.ndarray of bool, same shape
    twice_centre : sequence of int
        ``2 c`` per axis, pixels.

    Returns
    -------
    mirrored : numpy.ndarray, same shape and dtype as ``values``
        0 where the mirror point lies outside the array.
    present : numpy.ndarray of bool, same shape
        True where the mirror point exists and is valid.
    """
    target, source = [], []
    for s, n in zip(twice_centre, values.shape):
        lo, hi = max(0, s - (n - 1)), min(n - 1, s)
        if lo > hi:
            return np.zeros_like(values), np.zeros(values.shape, dtype=bool)
        target.append(slice(lo, hi + 1))
        stop = s - hi - 1
        source.append(slice(s - lo, stop if stop >= 0 else None, -1))
    mirrored = np.zeros_like(values)
    present = np.zeros(values.shape, dtype=bool)
    mirrored[tuple(target)] = values[tuple(source)]
    present[tuple(target)] = valid[tuple(source)]
    return mirrored, present


def partner_counts(counts: np.ndarray, valid: np.ndarray,
                   twice_centre: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """The brightest valid pixel within one pixel of each pixel's mirror point.

    The window of 3 pixels per axis absorbs a centre known to a pixel, a
    centre between pixels and the slight displacement of a partner by
    absorption or the curvature of the Ewald sphere.

    Parameters
    ----------
    counts : numpy.ndarray, shape (ny, nx) or (nz, ny, nx)
    valid : numpy.ndarray of bool, same shape
    twice_centre : sequence of int
        ``2 c`` per axis, pixels.

    Returns
    -------
    partner : numpy.ndarray, float64, same shape
        Largest valid count in the window around ``s - r``; 0 where there is none.
    present : numpy.ndarray of bool, same shape
        True where the window holds at least one valid pixel.
    """
    first, _, neighbours = neighbour_top2(counts, valid)
    window = np.maximum(np.where(valid, counts, -np.inf), first).astype(np.float64)
    partner, present = mirror(window, valid | (neighbours > 0), twice_centre)
    present &= np.isfinite(partner)
    return np.where(present, partner, 0.0), present
