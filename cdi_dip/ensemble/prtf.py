"""Phase-retrieval transfer function (PRTF) of an ensemble, and the resolution it gives.

:func:`prtf` and :func:`resolution_from_prtf` give the phase-retrieval transfer
function and the half-period resolution where it falls below ``1/e``;
:func:`compute_prtf` bundles both, in pixels and, when the geometry is known,
in metres (:class:`~cdi_dip.types.PrtfResult`, plain data in :mod:`cdi_dip.types`;
:mod:`cdi_dip.io.result_cxi` stores it).

Everything runs on the host in NumPy (float64/complex128 internally). Arrays
are centred: the origin of every axis is at index ``n // 2``.

References
----------
H. N. Chapman et al., "High-resolution ab initio three-dimensional x-ray
diffraction microscopy", J. Opt. Soc. Am. A 23, 1179 (2006) (PRTF, 1/e
criterion).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..geometry import detector_voxel_m
from ..errors import InvalidInputError
from ..types import PRTF_THRESHOLD, PrtfResult, ScanMeta
from .average import stack_members
from .fourier import apply_ramp, centred_fft

def _complex(array: Any) -> np.ndarray:
    return np.asarray(array).astype(np.complex128, copy=False)


def _check_prtf_inputs(objects: Sequence[np.ndarray] | np.ndarray, counts: np.ndarray,
                       valid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    stack = stack_members(objects, "objects")
    counts = np.asarray(counts, dtype=np.float64)
    valid = np.asarray(valid, dtype=bool)
    if stack.shape[1:] != counts.shape or valid.shape != counts.shape:
        raise InvalidInputError(f"objects of shape {stack.shape[1:]}, counts {counts.shape} and valid {valid.shape} "
                                "differ: the PRTF needs objects in the detector frame (the full frame, not cropped)")
    return stack, counts, valid


def _frequency_radius(shape: Sequence[int], spacing: Sequence[float]) -> np.ndarray:
    """``|q|`` of every pixel of a centred spectrum, cycles per unit of ``spacing``."""
    ndim = len(shape)
    radius2 = np.zeros([1] * ndim)
    for axis, (n, step) in enumerate(zip(shape, spacing)):
        q = (np.arange(n, dtype=np.float64) - n // 2) / (n * step)
        radius2 = radius2 + (q**2).reshape([n if a == axis else 1 for a in range(ndim)])
    return np.sqrt(radius2)


def _check_spacing(spacing: Sequence[float] | None, ndim: int) -> tuple[float, ...]:
    if spacing is None:
        return (1.0,) * ndim
    values = tuple(float(s) for s in spacing)
    if len(values) != ndim or not all(np.isfinite(s) and s > 0 for s in values):
        raise InvalidInputError(f"spacing={list(values)}: give {ndim} positive pixel sizes, one per axis")
    return values


def _shell_ratio(numerator: np.ndarray, denominator: np.ndarray, use: np.ndarray,
                 spacing: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Shell sums ``sum num / sum den`` over the ``use`` pixels, shells out to the Nyquist sphere."""
    shape = numerator.shape
    radius = _frequency_radius(shape, spacing)
    width = max(1.0 / (n * step) for n, step in zip(shape, spacing))  # the coarsest frequency step
    nyquist = min(0.5 / step for step in spacing)  # the largest sphere inside the frame
    count = max(int(np.floor(nyquist / width + 1e-9)), 1)
    index = np.floor(radius / width + 1e-9).astype(np.int64)
    keep = use & (index < count)
    num = np.bincount(index[keep], weights=numerator[keep], minlength=count)
    den = np.bincount(index[keep], weights=denominator[keep], minlength=count)
    with np.errstate(invalid="ignore", divide="ignore"):
        values = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return (np.arange(count) + 0.5) * width, values


def _mean_amplitude(stack: np.ndarray, ramp_rad_per_px: Sequence[float] | None) -> np.ndarray:
    """``|<F(x_k exp(i g . (r - c)))>_k|`` on the centred detector grid."""
    total = np.zeros(stack.shape[1:], dtype=np.complex128)
    for obj in stack:
        obj = _complex(obj)
        if ramp_rad_per_px is not None:
            obj = apply_ramp(obj, ramp_rad_per_px)
        total += centred_fft(obj)
    return np.abs(total / stack.shape[0])


def prtf(objects_matched: Sequence[np.ndarray] | np.ndarray, counts: np.ndarray, valid: np.ndarray, *,
         ramp_rad_per_px: Sequence[float] | None = None,
         spacing: Sequence[float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Phase-retrieval transfer function of an ensemble, averaged in shells of ``|q|``.

    ``PRTF(q) = sum_shell |<F(x_k)>_k| / sum_shell sqrt(I)``: the ratio of
    the mean complex far field of the members to the measured amplitude,
    summed over the valid pixels with ``I > 0`` of each circular (2D) or
    spherical (3D) shell. (The sum ratio is the amplitude-weighted mean of the
    per-pixel ratio: faint, shot-noise-dominated pixels do not blow it up.)
    Members that agree in phase give 1 where they fit the data; where their
    phases are random it falls to about ``1/sqrt(K)``.

    The members must be phase-aligned *in reciprocal space too*: matching them
    in real space (:func:`ensemble_statistics`) removes relative shifts
    (reciprocal-space phase ramps), twins and global phases. They must also
    sit in the *same reciprocal frame as the counts*: a real-space phase ramp
    moves the far field, so members whose ramp was removed by
    :func:`cdi_dip.ensemble.align.align_object` (a Bragg peak off the frame centre) must
    get it back: pass the removed ramp (``AlignInfo.ramp_rad_per_px``) as
    ``ramp_rad_per_px``. A real-space shift only changes far-field phases, the
    same for every matched member, so it needs nothing.

    Parameters
    ----------
    objects_matched : sequence of numpy.ndarray, complex, each shape S (2D or 3D)
        Matched members in the full detector frame (unitary, centred FFT
        convention of :class:`cdi_dip.physics.FarField`).
    counts : numpy.ndarray, real, shape S
        Measured intensities (photons).
    valid : numpy.ndarray, bool, shape S
        True where a pixel was measured; excluded pixels never count.
    ramp_rad_per_px : sequence of float, optional
        Ramp multiplied back into every member, ``x exp(i g . (r - c))``.
    spacing : sequence of float, optional
        Object pixel size per axis. Default 1: frequencies in cycles per
        pixel; with sizes in metres, cycles per metre.

    Returns
    -------
    shell_freq : numpy.ndarray, float64, shape (M,)
        Centre of each shell (cycles per pixel, or per unit of ``spacing``);
        shells are as wide as the coarsest frequency step and reach the
        largest sphere inside the frame (0.5 cycles/px without ``spacing``).
    prtf_values : numpy.ndarray, float64, shape (M,)
        The PRTF per shell; NaN for shells without usable pixels.
    """
    stack, counts, valid = _check_prtf_inputs(objects_matched, counts, valid)
    spacing_values = _check_spacing(spacing, counts.ndim)
    if ramp_rad_per_px is not None and len(ramp_rad_per_px) != counts.ndim:
        raise InvalidInputError(f"ramp_rad_per_px has {len(ramp_rad_per_px)} values for {counts.ndim}D objects")
    use = valid & (counts > 0) & np.isfinite(counts)
    return _shell_ratio(_mean_amplitude(stack, ramp_rad_per_px), np.sqrt(np.where(use, counts, 0.0)), use,
                        spacing_values)


def resolution_from_prtf(freq: np.ndarray, values: np.ndarray, threshold: float = PRTF_THRESHOLD) -> float | None:
    """Half-period resolution ``1 / (2 q)`` where the PRTF first falls below ``threshold``.

    The crossing frequency ``q`` is linearly interpolated between the last
    shell at or above the threshold and the first below it (shells without
    data, NaN, are skipped).

    Parameters
    ----------
    freq : numpy.ndarray, shape (M,)
        Shell frequencies, increasing (cycles per pixel, or per metre).
    values : numpy.ndarray, shape (M,)
        PRTF per shell.
    threshold : float
        Criterion, ``1/e`` by default.

    Returns
    -------
    float or None
        The resolution in pixels (or metres, as ``freq``); None when the PRTF
        never falls below the threshold (the resolution is then limited by the
        detector edge, at best ``1 / (2 freq[-1])``) or there are no data.
    """
    freq = np.asarray(freq, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    if freq.shape != values.shape or freq.ndim != 1:
        raise InvalidInputError(f"freq {freq.shape} and values {values.shape}: give two 1D arrays of equal length")
    finite = np.isfinite(values) & np.isfinite(freq)
    q, v = freq[finite], values[finite]
    below = np.flatnonzero(v < threshold)
    if below.size == 0:
        return None
    j = int(below[0])
    if j == 0:
        crossing = q[0]
    else:
        crossing = q[j - 1] + (v[j - 1] - threshold) * (q[j] - q[j - 1]) / (v[j - 1] - v[j])
    return float(1.0 / (2.0 * crossing)) if crossing > 0 else None


def object_pixel_size_m(meta: ScanMeta | None, shape: Sequence[int]) -> tuple[float, ...] | None:
    """Object-plane pixel size per axis from the far-field geometry.

    ``dx_a = wavelength * distance / (N_a * detector_pixel_a)`` for the two
    detector axes of a 2D (forward CDI) frame of shape ``(N_y, N_x)``.

    Parameters
    ----------
    meta : ScanMeta or None
    shape : sequence of int
        Frame shape (after preprocessing; the frame is not binned).

    Returns
    -------
    tuple of float or None
        ``(dy_m, dx_m)`` in metres, or None when the geometry is incomplete
        or the frame is 3D: in Bragg CDI the first axis is a rocking angle,
        and its frame is not orthogonal, so the PRTF's shells stay in pixels
        there (:func:`cdi_dip.geometry.voxel_size_m` gives the 3D voxel).
    """
    if meta is None or len(shape) != 2:
        return None
    if meta.wavelength_m is None or meta.distance_m is None or meta.pixel_size_m is None:
        return None
    return tuple(detector_voxel_m(meta.wavelength_m, meta.distance_m, n, p) for n, p in zip(shape, meta.pixel_size_m))


def compute_prtf(objects_matched: Sequence[np.ndarray] | np.ndarray, counts: np.ndarray, valid: np.ndarray, *,
                 ramp_rad_per_px: Sequence[float] | None = None, meta: ScanMeta | None = None,
                 threshold: float = PRTF_THRESHOLD) -> PrtfResult:
    """PRTF and resolution of an ensemble, in pixels and (2D, known geometry) metres.

    Parameters are as for :func:`prtf`; ``meta`` gives the geometry
    (:func:`object_pixel_size_m`).

    Returns
    -------
    PrtfResult
    """
    freq, values = prtf(objects_matched, counts, valid, ramp_rad_per_px=ramp_rad_per_px)
    result = PrtfResult(freq, values, threshold, resolution_from_prtf(freq, values, threshold),
                        members=len(objects_matched))
    pixel = object_pixel_size_m(meta, np.shape(counts))
    if pixel is not None:
        freq_m, values_m = prtf(objects_matched, counts, valid, ramp_rad_per_px=ramp_rad_per_px, spacing=pixel)
        result.resolution_m = resolution_from_prtf(freq_m, values_m, threshold)
    return result
