"""A frame with an unmeasured margin: the object on pixels finer than the measured frame's.

A frame that holds only the centre of a pattern (a detector too small or too
close, or a frame cut to a voxel budget) records the object band-limited: on
the frame's pixels ``wavelength * distance / (N * pixel)`` the object's edges
ring beyond its outline, so no compact support fits it, and HIO's fit stalls
far above the counting noise (a free Poisson deviance of 10-2000 per pixel
on the corpus's ``truncated`` patterns, where noise allows about 1).

Embedding the measured frame in a larger one whose outer pixels are left
unmeasured (excluded under :data:`MARGIN_REASON`, free in every method)
samples the object :data:`MARGIN_FACTOR` times finer. There its outline is
compact again, and the unmeasured margin of the pattern is whatever the
support makes of it. The measured pixels, and the free pixels among them
(:attr:`cdi_dip.types.Measurement.fixed_free`), stay those of the measured
frame, so the two fits compare pixel for pixel (:func:`measured_part`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from ..ensemble.fourier import centred_fft, centred_ifft
from ..types import Measurement
from .frame import fft_friendly_above
from .stages import detector_roi, extract_window

MARGIN_REASON = "margin"
"""Exclusion reason of the unmeasured margin's pixels."""

MARGIN_FACTOR = 1.5
"""How much larger than the measured frame the frame with a margin is, per axis (before rounding up to an
FFT-friendly size). On 11 truncated 2D tuning patterns a factor of 2 did worse than 1.5 on 4 and better on 1:
twice the frame holds 4 (2D) or 8 (3D) times the unknowns of the measured frame's object for the same counts
(docs/benchmarks.md, sixteenth session)."""


def centred_window(shape: Sequence[int], target: Sequence[int]) -> list[tuple[int, int]]:
    """Range ``[start, stop)`` per axis, in the pixels of a centred frame of ``shape``, of the centred frame of
    ``target`` that shares its centre pixel (``n // 2`` of one is ``m // 2`` of the other). A larger target
    starts below 0 (:func:`~cdi_dip.prepare.stages.extract_window` fills it)."""
    return [(n // 2 - m // 2, n // 2 - m // 2 + m) for n, m in zip(shape, target)]


def margin_window(shape: Sequence[int], factor: float = MARGIN_FACTOR) -> list[tuple[int, int]]:
    """Range ``[start, stop)`` per axis, in the measured frame's pixels, of the frame with a margin.

    Each axis grows to the FFT-friendly size at or above ``factor`` times its
    length; the zero frequency stays at the frame's centre pixel (``n // 2``
    of the measured frame is ``size // 2`` of the larger one).

    Parameters
    ----------
    shape : sequence of int
        The measured frame's shape.
    factor : float
        Above 1.
    """
    return centred_window(shape, [fft_friendly_above(math.ceil(n * factor)) for n in shape])


def measured_region(measured_shape: Sequence[int], shape: Sequence[int]) -> tuple[slice, ...]:
    """Where a frame of ``measured_shape`` sits, centred, in a frame of ``shape`` (:func:`margin_window`)."""
    return tuple(slice(start, stop) for start, stop in centred_window(shape, measured_shape))


def measured_part(array: np.ndarray, measured_shape: Sequence[int]) -> np.ndarray:
    """The pixels of a frame with a margin that the measured frame holds (a view; ``array`` when the shapes
    agree).

    Parameters
    ----------
    array : numpy.ndarray, a frame with a margin (or the measured frame itself)
    measured_shape : sequence of int
    """
    if tuple(array.shape) == tuple(measured_shape):
        return array
    return array[measured_region(measured_shape, array.shape)]


def with_unmeasured_margin(measurement: Measurement, free: np.ndarray | None,
                           factor: float = MARGIN_FACTOR) -> Measurement:
    """The measurement embedded in a larger frame whose outer pixels are unmeasured.

    Parameters
    ----------
    measurement : Measurement
        A prepared (centred, framed) measurement.
    free : numpy.ndarray of bool, the measurement's shape, or None
        The free pixels a reconstruction of the measured frame held out; the
        frame with a margin holds out exactly these
        (:attr:`~cdi_dip.types.Measurement.fixed_free`). None: drawn as usual.
    factor : float
        See :func:`margin_window`.

    Returns
    -------
    Measurement
        Intensity 0 and ``valid`` False in the margin, which is excluded as
        :data:`MARGIN_REASON`; masks, provisional and never-free pixels
        embedded; ``roi`` extended past the measured frame (as a frame padded
        beyond the detector); ``notes["margin"]`` says what was done.
    """
    window = margin_window(measurement.shape, factor)
    inside = extract_window(np.ones(measurement.shape, dtype=bool), window, False)
    masks = {reason: extract_window(mask, window, False) for reason, mask in measurement.masks.items()}
    masks[MARGIN_REASON] = ~inside
    excluded = {**measurement.excluded, MARGIN_REASON: int(np.count_nonzero(~inside))}
    shape = [stop - start for start, stop in window]
    note = {"measured_shape": list(measurement.shape), "shape": shape, "factor": factor}
    return replace(
        measurement,
        intensity=extract_window(measurement.intensity, window, 0.0),
        valid=extract_window(measurement.valid, window, False),
        masks=masks,
        excluded=excluded,
        roi=detector_roi(measurement, window),
        notes={**measurement.notes, "margin": note},
        provisional=_embedded(measurement.provisional, window),
        never_free=_embedded(measurement.never_free, window),
        fixed_free=_embedded(free, window),
    )


def measured_measurement(wider: Measurement, measured_shape: Sequence[int],
                         roi: list[tuple[int, int]]) -> Measurement:
    """The measured frame's part of a measurement with a margin: arrays cut back, the margin's exclusion
    dropped, ``roi`` the measured frame's; ``notes["margin"]`` stays as the record of the fit.

    Parameters
    ----------
    wider : Measurement
        From :func:`with_unmeasured_margin` (after any later exclusion, e.g. a readmitted beamstop rim).
    measured_shape : sequence of int
    roi : list of (int, int)
        The measured frame's detector region.
    """
    def cut(mask: np.ndarray | None) -> np.ndarray | None:
        return None if mask is None else measured_part(mask, measured_shape).copy()

    masks = {reason: cut(mask) for reason, mask in wider.masks.items() if reason != MARGIN_REASON}
    return replace(
        wider,
        intensity=cut(wider.intensity),
        valid=cut(wider.valid),
        masks={reason: mask for reason, mask in masks.items() if mask.any()},
        excluded={reason: int(np.count_nonzero(mask)) for reason, mask in masks.items() if mask.any()},
        roi=list(roi),
        provisional=cut(wider.provisional),
        never_free=cut(wider.never_free),
        fixed_free=None,
    )


def on_measured_frame_support(support: np.ndarray, measured_shape: Sequence[int]) -> np.ndarray:
    """A support on a frame with a margin, on the measured frame's coarser voxels: the voxels more than half
    inside it (its indicator seen on the measured frame, :func:`seen_on_frame`, above 0.5)."""
    return seen_on_frame(np.asarray(support, dtype=np.float64), measured_shape).real > 0.5


def _embedded(mask: np.ndarray | None, window: list[tuple[int, int]]) -> np.ndarray | None:
    """``mask`` in the frame with a margin (False in the margin); None stays None."""
    return None if mask is None else extract_window(mask, window, False)


def seen_on_frame(obj: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """An object as a frame of ``shape`` with the same detector pixels sees it: its centred far field cut to the
    central ``shape``, or zero-padded to it, and transformed back.

    Unitary transforms: cut to the measured frame, a frame with a margin's
    object predicts the measured pixels exactly as before. Used to compare
    objects reconstructed on frames of different sizes (a margin, a frame
    cut to an FFT-friendly size) with a ground truth on its own frame.

    Parameters
    ----------
    obj : numpy.ndarray, complex, centred
    shape : sequence of int
        The frame to see it on, one size per axis of ``obj``.

    Returns
    -------
    numpy.ndarray, complex128, ``shape``
    """
    obj = np.asarray(obj, dtype=np.complex128)
    shape = tuple(int(n) for n in shape)
    if obj.shape == shape:
        return obj.copy()
    field = centred_fft(obj)
    return centred_ifft(extract_window(field, centred_window(field.shape, shape), 0.0))


__all__ = ["MARGIN_FACTOR", "MARGIN_REASON", "centred_window", "margin_window", "measured_measurement", "measured_part",
           "measured_region", "on_measured_frame_support", "seen_on_frame", "with_unmeasured_margin"]
