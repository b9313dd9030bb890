"""Preparation of a measurement for the solvers.

Threshold, find the zero frequency (the Bragg peak, or the centre of Friedel
symmetry when a beamstop hides it), cut an FFT-friendly frame centred on it
(cropping or padding with excluded pixels, optionally capped in size), record
the detector region used, and hold out a set of free pixels for validation.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np

from .config import CentreMethod, PrepConfig
from .errors import InvalidInputError
from .types import Measurement

log = logging.getLogger(__name__)

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


def apply_threshold(intensity: np.ndarray, threshold: float) -> np.ndarray:
    """Counts below ``threshold`` photons set to zero (they stay valid pixels)."""
    if threshold <= 0:
        return intensity
    return np.where(intensity < threshold, 0, intensity).astype(intensity.dtype)


def _brightest_pixel(intensity: np.ndarray, valid: np.ndarray) -> tuple[int, ...]:
    masked = np.where(valid, intensity, -np.inf)
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(masked)), intensity.shape))


def _centre_of_mass(intensity: np.ndarray, valid: np.ndarray) -> tuple[int, ...]:
    weights = np.where(valid, intensity, 0).astype(np.float64)
    total = weights.sum()
    grids = np.indices(intensity.shape, sparse=True)
    return tuple(int(round(float((g * weights).sum() / total))) for g in grids)


def friedel_centre(intensity: np.ndarray, valid: np.ndarray) -> tuple[int, ...]:
    """Centre of Friedel (centro-)symmetry of a pattern, robust to a beamstop.

    The autoconvolution ``(a * a)(s) = sum_r a(r) a(s - r)`` of a pattern
    symmetric about ``c`` peaks at ``s = 2c``; ``a = sqrt(I)`` on valid pixels,
    zero-padded so that nothing wraps around.

    Returns
    -------
    tuple of int
        The centre, rounded to whole pixels.
    """
    amplitude = np.sqrt(np.where(valid, np.clip(intensity, 0, None), 0)).astype(np.float64)
    padded_shape = [2 * n for n in amplitude.shape]
    axes = tuple(range(amplitude.ndim))
    spectrum = np.fft.rfftn(amplitude, s=padded_shape, axes=axes)
    autoconvolution = np.fft.irfftn(spectrum * spectrum, s=padded_shape, axes=axes)
    twice_centre = np.unravel_index(int(np.argmax(autoconvolution)), autoconvolution.shape)
    return tuple(int(round(s / 2)) for s in twice_centre)


def _peak_hidden(intensity: np.ndarray, valid: np.ndarray, peak: tuple[int, ...]) -> bool:
    """True when excluded pixels touch the brightest valid pixel (a beamstop edge)."""
    window = tuple(slice(max(p - 2, 0), p + 3) for p in peak)
    return not bool(valid[window].all())


def find_centre(intensity: np.ndarray, valid: np.ndarray, method: CentreMethod) -> tuple[int, ...]:
    """Position of the zero frequency (Bragg peak or direct beam), in pixels.

    Parameters
    ----------
    intensity : numpy.ndarray, shape (ny, nx) or (nz, ny, nx)
        Counts, 0 on excluded pixels.
    valid : numpy.ndarray, bool, same shape
    method : CentreMethod
        ``max``: brightest valid pixel; ``com``: centre of mass; ``friedel``:
        centre of symmetry; ``none``: the array centre; ``auto``: ``max``
        unless excluded pixels touch it (a beamstop), then ``friedel``.
    """
    if method is CentreMethod.NONE:
        return tuple(n // 2 for n in intensity.shape)
    if method is CentreMethod.COM:
        return _centre_of_mass(intensity, valid)
    if method is CentreMethod.FRIEDEL:
        return friedel_centre(intensity, valid)
    peak = _brightest_pixel(intensity, valid)
    if method is CentreMethod.AUTO and _peak_hidden(intensity, valid, peak):
        return friedel_centre(intensity, valid)
    return peak


def centred_window(centre: int, length: int, max_size: int | None) -> tuple[int, int]:
    """Detector range ``[start, stop)`` of an FFT-friendly frame centred on ``centre``.

    When the peak is near the middle of the axis (a symmetric crop would keep
    at least 3/4 of it), the frame keeps the size of the detector axis (the
    FFT-friendly size at or below it) and is shifted to centre the peak: the
    few rows beyond the detector edge become excluded pixels (free in every
    method), so the object keeps the sampling ``wavelength * distance / (N *
    pixel)`` of the full detector. A peak far off centre gets a larger, padded
    frame so that no measured data is lost. ``max_size`` caps the result.
    """
    symmetric = 2 * min(centre, length - centre)
    if symmetric >= 0.75 * length:
        size = fft_friendly_below(length)
    else:
        size = fft_friendly_above(2 * max(centre, length - centre))
    if max_size is not None:
        size = min(size, fft_friendly_below(max_size))
    start = centre - size // 2
    return start, start + size


def extract_window(array: np.ndarray, roi: list[tuple[int, int]], fill: float | bool) -> np.ndarray:
    """Copy of ``array[roi]`` where parts of ``roi`` outside the array hold ``fill``."""
    out = np.full([stop - start for start, stop in roi], fill, dtype=array.dtype)
    source, target = [], []
    for (start, stop), n in zip(roi, array.shape):
        lo, hi = max(start, 0), min(stop, n)
        source.append(slice(lo, hi))
        target.append(slice(lo - start, hi - start))
    out[tuple(target)] = array[tuple(source)]
    return out


def select_free_pixels(
    valid: np.ndarray,
    fraction: float,
    rng: np.random.Generator,
    *,
    island_radius_px: int = 1,
    exclude_centre_px: int = 3,
) -> np.ndarray:
    """Choose held-out ("free") pixels in small islands among the valid ones.

    Islands (cubes of side ``2*island_radius_px + 1``) keep a free pixel's
    neighbours out of the fit too, so that the fit cannot interpolate into it
    through the object's finite extent. The few pixels nearest the zero
    frequency are never held out (they carry most of the signal).

    Parameters
    ----------
    valid : numpy.ndarray, bool
    fraction : float
        Target fraction of valid pixels to hold out (0 switches it off).
    rng : numpy.random.Generator

    Returns
    -------
    numpy.ndarray, bool, same shape
        True on free pixels (always a subset of ``valid``).
    """
    n_valid = int(valid.sum())
    if fraction <= 0 or n_valid == 0:
        return np.zeros_like(valid)
    island_volume = (2 * island_radius_px + 1) ** valid.ndim
    n_seeds = max(1, int(round(fraction * n_valid / island_volume)))
    seeds = np.zeros(valid.shape, dtype=bool)
    flat = rng.choice(valid.size, size=min(n_seeds, valid.size), replace=False)
    seeds.flat[flat] = True
    for axis in range(valid.ndim):
        grown = seeds.copy()
        for step in range(1, island_radius_px + 1):
            grown |= np.roll(seeds, step, axis=axis) | np.roll(seeds, -step, axis=axis)
        seeds = grown
    grids = np.indices(valid.shape, sparse=True)
    radius2 = sum((g - n // 2) ** 2 for g, n in zip(grids, valid.shape))
    centre_region = radius2 <= exclude_centre_px**2
    return seeds & valid & ~centre_region


def prepare(measurement: Measurement, cfg: PrepConfig) -> Measurement:
    """Threshold, centre and frame a measurement for the solvers.

    Parameters
    ----------
    measurement : Measurement
        As read from disk.
    cfg : PrepConfig

    Returns
    -------
    Measurement
        A new measurement whose peak is at the array centre, with an
        FFT-friendly shape and ``roi`` recording the detector pixels used.

    Raises
    ------
    InvalidInputError
        When nothing valid is left, or the frame would be too small.
    """
    intensity = apply_threshold(measurement.intensity, cfg.threshold)
    valid = measurement.valid
    if not valid.any() or not (intensity[valid] > 0).any():
        raise InvalidInputError(
            f"{measurement.source}: no valid pixel with counts above the threshold "
            f"({cfg.threshold:g}): check the mask and --threshold"
        )
    centre = find_centre(intensity, valid, cfg.centre)
    roi = [centred_window(c, n, cfg.max_size) for c, n in zip(centre, intensity.shape)]
    sizes = [stop - start for start, stop in roi]
    if min(sizes) < MIN_FRAME:
        raise InvalidInputError(
            f"{measurement.source}: the frame around the peak at {centre} would be {tuple(sizes)}, "
            f"smaller than {MIN_FRAME} pixels per axis: use a larger detector region or --centre none"
        )
    framed = extract_window(intensity, roi, 0.0).astype(np.float32)
    framed_valid = extract_window(valid, roi, False)
    excluded = dict(measurement.excluded)
    padded = int(framed_valid.size - extract_window(np.ones_like(valid), roi, False).sum())
    if padded:
        excluded["padding"] = padded
    framed[~framed_valid] = 0
    log.info("peak at %s, frame %s from detector region %s", centre, tuple(sizes), roi)
    return replace(
        measurement,
        intensity=framed,
        valid=framed_valid,
        excluded=excluded,
        roi=[(a + s, a + e) for (s, e), (a, _) in zip(roi, _origin(measurement))],
    )


def _origin(measurement: Measurement) -> list[tuple[int, int]]:
    """Detector offsets of the current array, so ROIs compose across steps."""
    if measurement.roi:
        return list(measurement.roi)
    return [(0, n) for n in measurement.shape]
