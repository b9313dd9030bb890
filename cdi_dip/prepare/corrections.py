"""Detector corrections applied to raw frames before anything else.

The usual beamline sequence, one small function per step:

1. :func:`apply_roi` cuts full-detector calibration images (dark, flat) to
   the detector region the frames were read from (``--roi y0,y1,x0,x1``);
2. :func:`subtract_dark` removes the dark current and marks pixels that
   count without beam (hot in the dark);
3. :func:`flat_field` divides by the flat field (white field) normalised to
   its mean, and marks pixels far less sensitive than the mean;
4. :func:`threshold_photons` zeroes counts below a photon threshold;
5. :func:`bin_frames` sums blocks of pixels.

:func:`correct_measurement` runs steps 1-3 on a :class:`~cdi_dip.types.Measurement`
with dark and flat read from files. Frames are ``(ny, nx)`` or ``(nz, ny, nx)``
(first axis the rocking angle); a dark or flat is one detector frame, or one
per frame.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from ..errors import InvalidInputError
from ..types import Measurement

log = logging.getLogger(__name__)

Roi = Sequence[tuple[int, int]]
"""Per axis, ``(start, stop)`` in detector pixels."""


# -- region of interest ------------------------------------------------------------
def parse_roi(text: str) -> list[tuple[int, int]]:
    """Read ``"y0,y1,x0,x1"`` (or ``"z0,z1,y0,y1,x0,x1"`` with a frame range).

    Returns
    -------
    list of (int, int)
        ``(start, stop)`` per axis, stop exclusive.

    Raises
    ------
    InvalidInputError
        When the text is not 4 or 6 integers with ``0 <= start < stop``.
    """
    try:
        values = [int(v) for v in text.replace(" ", "").split(",")]
    except ValueError:
        raise InvalidInputError(f"roi {text!r}: give integers as y0,y1,x0,x1 (stop exclusive), e.g. 0,256,0,256") from None
    if len(values) not in (4, 6):
        raise InvalidInputError(f"roi {text!r}: give 4 numbers y0,y1,x0,x1 (or 6 with a frame range z0,z1 first)")
    roi = list(zip(values[::2], values[1::2]))
    for start, stop in roi:
        if not 0 <= start < stop:
            raise InvalidInputError(f"roi {text!r}: each range needs 0 <= start < stop, got {start},{stop}")
    return roi


def apply_roi(detector_image: np.ndarray, roi: Roi, *, name: str = "detector image") -> np.ndarray:
    """Cut a detector image (or stack) to a region of interest.

    Parameters
    ----------
    detector_image : numpy.ndarray, shape (ny, nx) or (nz, ny, nx)
    roi : sequence of (int, int)
        One ``(start, stop)`` per axis of the image. A 2D image also accepts
        a 3-axis roi (the frame range is ignored: one dark or flat serves
        every frame).
    name : str
        What the image is, for error messages.

    Returns
    -------
    numpy.ndarray
        A view of the region.

    Raises
    ------
    InvalidInputError
        When the roi has the wrong number of axes or reaches beyond the image.
    """
    image = np.asarray(detector_image)
    pairs = [(int(a), int(b)) for a, b in roi]
    if len(pairs) == image.ndim + 1:
        pairs = pairs[1:]
    if len(pairs) == image.ndim - 1:  # a stack of calibration frames: the roi names the detector axes
        pairs = [(0, image.shape[0]), *pairs]
    if len(pairs) != image.ndim:
        raise InvalidInputError(f"roi {pairs} has {len(pairs)} ranges for the {image.ndim}D {name} {image.shape}")
    for (start, stop), n in zip(pairs, image.shape):
        if not 0 <= start < stop <= n:
            raise InvalidInputError(
                f"roi range {start}:{stop} does not fit the {name} of shape {image.shape}; "
                "give a region inside the detector"
            )
    return image[tuple(slice(a, b) for a, b in pairs)]


def _fit_to_frames(image: np.ndarray, frames: np.ndarray, name: str, roi: Roi | None) -> np.ndarray:
    """A calibration image (cut to ``roi`` if given) that broadcasts onto the frames."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[0] == 1:
        image = image[0]
    if roi is not None:
        image = apply_roi(image, roi, name=name)
    if image.shape == frames.shape or (frames.ndim == 3 and image.shape == frames.shape[1:]):
        return image
    hint = "; give --roi y0,y1,x0,x1, the detector region the frames come from" if image.size > frames[0].size else ""
    raise InvalidInputError(
        f"{name} shape {image.shape} does not match the frames {frames.shape}{hint}"
    )


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim not in (2, 3):
        raise InvalidInputError(f"frames of shape {frames.shape}: give a 2D frame or a 3D stack (nz, ny, nx)")
    return frames


# -- dark ---------------------------------------------------------------------------
def subtract_dark(
    frames: np.ndarray,
    dark: np.ndarray,
    *,
    hot_counts: float | None = 1.0,
    roi: Roi | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Subtract a dark (no-beam) image and mark pixels that count without beam.

    Parameters
    ----------
    frames : numpy.ndarray, shape (ny, nx) or (nz, ny, nx)
        Raw counts.
    dark : numpy.ndarray
        One detector frame, or one per frame, in counts per frame.
    hot_counts : float or None
        Pixels whose dark exceeds this are excluded (the usual beamline rule
        for photon-counting detectors is ``dark > 1``); None: none.
    roi : sequence of (int, int), optional
        Detector region of the frames, to cut a full-detector dark.

    Returns
    -------
    corrected : numpy.ndarray, float32, shape of ``frames``
        ``frames - dark``, clipped at 0 (counts cannot be negative), 0 on
        excluded pixels.
    excluded : numpy.ndarray of bool, shape of ``frames``
        True where the dark is above ``hot_counts`` or not finite.
    """
    frames = _check_frames(frames)
    dark = _fit_to_frames(dark, frames, "dark", roi).astype(np.float64)
    bad = ~np.isfinite(dark)
    if hot_counts is not None:
        bad |= np.nan_to_num(dark, nan=np.inf) > hot_counts
    corrected = np.clip(frames - np.where(bad, 0.0, dark), 0, None)
    excluded = np.broadcast_to(bad, frames.shape).copy()
    corrected[excluded] = 0
    log.info("dark: %d detector pixels hot without beam", int(bad.sum()))
    return corrected.astype(np.float32), excluded


# -- flat field ---------------------------------------------------------------------
def flat_field(
    frames: np.ndarray,
    flat: np.ndarray,
    *,
    min_relative: float | None = None,
    roi: Roi | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Correct the pixels' sensitivity with a flat (white) field.

    Counts are multiplied by ``mean(flat) / flat``, so a pixel of average
    sensitivity keeps its counts (and their Poisson statistics, near enough).
    Pixels whose flat is below the usable level, zero, or not finite are
    excluded: they see too little of the beam to be corrected. The level is
    the beamline rule ``mean - 3 std`` by default, or ``min_relative *
    mean``. Mean and standard deviation are taken over the positive, finite
    pixels of the *whole* flat before it is cut to ``roi`` (as the beamline
    software does).

    Parameters
    ----------
    frames : numpy.ndarray, shape (ny, nx) or (nz, ny, nx)
        Counts (dark already subtracted).
    flat : numpy.ndarray
        One detector frame (or one per frame).
    min_relative : float, optional
        Smallest usable sensitivity, relative to the mean, in [0, 1); None:
        ``mean - 3 std``.
    roi : sequence of (int, int), optional
        Detector region of the frames, to cut a full-detector flat.

    Returns
    -------
    corrected : numpy.ndarray, float32, shape of ``frames``
        0 on excluded pixels.
    excluded : numpy.ndarray of bool, shape of ``frames``
    """
    frames = _check_frames(frames)
    if min_relative is not None and not 0 <= min_relative < 1:
        raise InvalidInputError(f"flat min_relative {min_relative}: must be in [0, 1)")
    full = np.asarray(flat, dtype=np.float64)
    good = np.isfinite(full) & (full > 0)
    if not good.any():
        raise InvalidInputError("the flat field has no positive pixel; check that it is a flat (white-field) image")
    mean = float(full[good].mean())
    level = mean - 3.0 * float(full[good].std()) if min_relative is None else min_relative * mean
    cut = _fit_to_frames(full, frames, "flat field", roi)
    usable = np.isfinite(cut) & (cut > 0) & (cut >= level)
    gain = np.divide(mean, cut, out=np.zeros_like(cut), where=usable)
    corrected = frames * gain
    excluded = np.broadcast_to(~usable, frames.shape).copy()
    corrected[excluded] = 0
    log.info("flat field: mean %.4g, %d detector pixels below %.4g", mean, int((~usable).sum()), level)
    return corrected.astype(np.float32), excluded


# -- photons and binning --------------------------------------------------------------
def threshold_photons(frames: np.ndarray, threshold: float) -> np.ndarray:
    """Counts below ``threshold`` set to 0 (the pixels stay valid).

    Returns
    -------
    numpy.ndarray, same shape and dtype as ``frames``
    """
    if not np.isfinite(threshold) or threshold < 0:
        raise InvalidInputError(f"photon threshold {threshold}: must be >= 0 counts")
    frames = np.asarray(frames)
    if threshold == 0:
        return frames.copy()
    return np.where(frames < threshold, 0, frames).astype(frames.dtype)


def _bin_factors(factors: int | Sequence[int], ndim: int) -> tuple[int, ...]:
    if isinstance(factors, (int, np.integer)):
        values = (int(factors),) * ndim
    else:
        values = tuple(int(f) for f in factors)
        if ndim == 3 and len(values) == 2:
            values = (1, *values)
    if len(values) != ndim or min(values) < 1:
        raise InvalidInputError(
            f"bin factors {factors}: give one integer >= 1, or one per axis ({ndim}; 2 for the detector axes of a stack)"
        )
    return values


def bin_frames(
    frames: np.ndarray,
    valid: np.ndarray,
    factors: int | Sequence[int],
    *,
    min_valid_fraction: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Sum counts over blocks of pixels.

    A block is valid when at least ``min_valid_fraction`` of its pixels are.
    With the default 1.0 a block must be wholly valid, and its value is a
    plain sum of counts, so it keeps exact Poisson statistics (the
    reconstruction's noise model); the masks grow by at most one block. With
    a smaller fraction, partly valid blocks are kept and their sum is scaled
    by ``block size / valid pixels``: more data, but those values are
    estimates whose noise is larger than Poisson. Trailing pixels that do not
    fill a block are dropped.

    Parameters
    ----------
    frames : numpy.ndarray, shape (ny, nx) or (nz, ny, nx)
        Counts.
    valid : numpy.ndarray of bool, same shape
    factors : int or sequence of int
        Block size per axis; a stack also accepts two (detector axes only).
    min_valid_fraction : float
        In (0, 1].

    Returns
    -------
    binned : numpy.ndarray, float32, shape ``n // factor`` per axis
        0 on invalid blocks.
    binned_valid : numpy.ndarray of bool, same shape
    """
    frames = _check_frames(frames)
    valid = np.asarray(valid, dtype=bool)
    if valid.shape != frames.shape:
        raise InvalidInputError(f"valid mask shape {valid.shape} does not match the frames {frames.shape}")
    if not 0 < min_valid_fraction <= 1:
        raise InvalidInputError(f"min_valid_fraction {min_valid_fraction}: must be in (0, 1]")
    steps = _bin_factors(factors, frames.ndim)
    out_shape = [n // f for n, f in zip(frames.shape, steps)]
    if min(out_shape) < 1:
        raise InvalidInputError(f"bin factors {steps} are larger than the frames {frames.shape}")
    cut = tuple(slice(0, n * f) for n, f in zip(out_shape, steps))
    blocks = [v for n, f in zip(out_shape, steps) for v in (n, f)]
    block_axes = tuple(range(1, 2 * frames.ndim, 2))
    counts = np.where(valid, frames, 0).astype(np.float64)[cut].reshape(blocks).sum(axis=block_axes)
    present = valid[cut].reshape(blocks).sum(axis=block_axes)
    size = int(np.prod(steps))
    binned_valid = present >= min_valid_fraction * size - 1e-9
    scale = np.divide(size, present, out=np.zeros(present.shape), where=binned_valid & (present > 0))
    binned = np.where(binned_valid, counts * scale, 0.0)
    return binned.astype(np.float32), binned_valid


# -- measurement level ---------------------------------------------------------------
def correct_measurement(
    measurement: Measurement,
    *,
    dark: np.ndarray | None = None,
    flat: np.ndarray | None = None,
    roi: Roi | None = None,
    hot_dark_counts: float | None = 1.0,
    min_flat_relative: float | None = None,
) -> Measurement:
    """Dark subtraction and flat-field correction of a measurement as read.

    Parameters
    ----------
    measurement : Measurement
        Raw counts as read from disk.
    dark, flat : numpy.ndarray, optional
        Full-detector (with ``roi``) or frame-sized calibration images, e.g.
        from :func:`cdi_dip.io.read_array`.
    roi : sequence of (int, int), optional
        Detector region the frames come from.
    hot_dark_counts : float or None
        See :func:`subtract_dark`.
    min_flat_relative : float
        See :func:`flat_field`.

    Returns
    -------
    Measurement
        Corrected intensities; pixels excluded by the dark or the flat are
        invalid and counted under ``"dark"`` and ``"flat"`` in ``excluded``.
    """
    result = measurement
    if dark is not None:
        intensity, bad = subtract_dark(result.intensity, dark, hot_counts=hot_dark_counts, roi=roi)
        result = replace(result, intensity=np.where(result.valid, intensity, 0).astype(np.float32)).exclude("dark", bad)
    if flat is not None:
        intensity, bad = flat_field(result.intensity, flat, min_relative=min_flat_relative, roi=roi)
        result = replace(result, intensity=np.where(result.valid, intensity, 0).astype(np.float32)).exclude("flat", bad)
    return result
