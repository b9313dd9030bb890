"""Synthetic specimens and diffraction patterns, for the demo, tests and benchmarks.

Two kinds of object, both centred in the frame and no larger than half of it
along every axis (oversampling >= 2):

- :func:`faceted_crystal`: a 2D polygon or 3D polyhedron of amplitude ~1 with
  a smooth strain phase field and optionally a dislocation (phase vortex), as
  seen in Bragg CDI;
- :func:`cell_specimen`: a non-negative, cell-like specimen (body, nucleus,
  texture) with a small imaginary part, as seen in forward CDI.

:func:`diffraction` turns an object into Poisson counts with the centred,
unitary far-field transform of :class:`cdi_dip.physics.FarField`;
:func:`simulate_scan` makes a whole scan (counts, mask, ground truth,
geometry) and :func:`write_simulated_scan` writes it as CXI plus
``<stem>_truth.npy``. Every random draw comes from the NumPy ``Generator``
passed in.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import InvalidInputError
from .io._atomic import atomic_write
from .io.cxi import write_measurement_cxi
from .types import Measurement, ScanMeta

log = logging.getLogger(__name__)

PHOTON_ENERGY_EV = 9000.0
"""Photon energy of the simulated geometry, eV."""

WAVELENGTH_M = 1.239841984e-6 / PHOTON_ENERGY_EV
"""Wavelength of the simulated geometry, metres (``h c / E``)."""

DISTANCE_M = 1.0
"""Sample-detector distance of the simulated geometry, metres."""

PIXEL_SIZE_M = 55e-6
"""Detector pixel size of the simulated geometry (a Timepix/Eiger-like 55 um), metres."""

EDGE_WIDTH_PX = 1.0
"""Width of the linear amplitude ramp that smooths facet edges, pixels."""

KINDS = ("crystal", "cell")

SIMULATION_BYTES_PER_VOXEL = 160
"""Peak host memory of :func:`simulate_scan` and :func:`write_simulated_scan`, bytes per voxel: 72 to 120
measured with tracemalloc (crystals and cells, 2D and 3D), with a margin for the allocator."""


# -- geometry helpers -------------------------------------------------------------
def _check_shape(shape: Sequence[int]) -> tuple[int, ...]:
    try:
        frame = tuple(int(n) for n in shape)
    except (TypeError, ValueError):
        raise InvalidInputError(f"shape {shape!r}: give 2 or 3 integer sizes, e.g. (128, 128)") from None
    if len(frame) not in (2, 3) or min(frame) < 8:
        raise InvalidInputError(f"shape {frame}: give 2 or 3 sizes of at least 8 pixels, e.g. (128, 128)")
    _check_fits_in_memory(frame)
    return frame


def _check_fits_in_memory(frame: tuple[int, ...]) -> None:
    """Refuse a frame whose simulation would not fit in the host's free memory (not a MemoryError later).

    Uses :data:`SIMULATION_BYTES_PER_VOXEL` and
    :func:`cdi_dip.memory.available_memory_bytes`; nothing is refused where
    the free memory cannot be told.
    """
    import torch

    from . import memory

    need = SIMULATION_BYTES_PER_VOXEL * math.prod(frame)
    free = memory.available_memory_bytes(torch.device("cpu"))
    if free is not None and need > free:
        raise InvalidInputError(
            f"shape {'x'.join(str(n) for n in frame)}: simulating it needs about {need / 2**30:.3g} GiB of memory "
            f"but the host has {free / 2**30:.3g} GiB free; give a smaller shape, e.g. 128,128 or 64,64,64"
        )


def _check_size_fraction(size_fraction: float) -> float:
    if not 0 < size_fraction <= 0.5:
        raise InvalidInputError(f"size_fraction={size_fraction}: must be in (0, 0.5] so the object fits in half "
                                "the frame (oversampling >= 2)")
    return float(size_fraction)


def _offsets(shape: tuple[int, ...]) -> list[np.ndarray]:
    """Pixel offsets from the centre ``n // 2`` as broadcastable arrays, one per axis."""
    ndim = len(shape)
    out = []
    for axis, n in enumerate(shape):
        view = [1] * ndim
        view[axis] = n
        out.append((np.arange(n, dtype=np.float64) - n // 2).reshape(view))
    return out


def _radii_px(shape: tuple[int, ...], size_fraction: float) -> np.ndarray:
    """Half-extent of the object along every axis, pixels (``size_fraction * n / 2``)."""
    return np.array([size_fraction * n / 2 for n in shape])


def _box_distance(shape: tuple[int, ...], radii_px: np.ndarray) -> np.ndarray:
    """Signed distance (px, positive inside) to the box that keeps the smoothed edge within ``radii_px``."""
    distance = np.full(shape, np.inf)
    for offset, radius in zip(_offsets(shape), radii_px):
        distance = np.minimum(distance, radius - EDGE_WIDTH_PX / 2 - np.abs(offset))
    return distance


def _edge(distance_px: np.ndarray) -> np.ndarray:
    """Amplitude 0..1 from a signed distance to the boundary (px): a linear ramp one edge width wide."""
    return np.clip(0.5 + distance_px / EDGE_WIDTH_PX, 0.0, 1.0)


def _unit_vectors(count: int, ndim: int, rng: np.random.Generator) -> np.ndarray:
    vectors = rng.normal(size=(count, ndim))
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _rotation(ndim: int, rng: np.random.Generator) -> np.ndarray:
    """A random rotation matrix (QR of a Gaussian matrix, sign-fixed)."""
    q, r = np.linalg.qr(rng.normal(size=(ndim, ndim)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def _smooth_noise(shape: tuple[int, ...], rng: np.random.Generator, sigma_px: float) -> np.ndarray:
    """Gaussian-filtered white noise with zero mean and unit standard deviation."""
    noise = rng.normal(size=shape)
    spectrum = np.fft.fftn(noise)
    freq2 = sum(np.fft.fftfreq(n).reshape([-1 if a == i else 1 for a in range(len(shape))]) ** 2
                for i, n in enumerate(shape))
    smooth = np.fft.ifftn(spectrum * np.exp(-2 * np.pi**2 * sigma_px**2 * freq2)).real
    std = smooth.std()
    return (smooth - smooth.mean()) / std if std > 0 else smooth


def _normalised_coords(shape: tuple[int, ...], radii_px: np.ndarray) -> list[np.ndarray]:
    """Coordinates scaled so the object's half-extent is 1 along every axis."""
    return [offset / radius for offset, radius in zip(_offsets(shape), radii_px)]


# -- crystal ----------------------------------------------------------------------
def _spread_normals(ndim: int, rng: np.random.Generator, count: int | None = None) -> np.ndarray:
    """Facet normals spread over all directions (so the polytope is bounded), jittered.

    2D: ``count`` angles evenly spaced with random jitter; 3D: ``count`` points
    of a Fibonacci sphere with random jitter, randomly rotated. ``count``
    None draws 5 to 8 (2D) or 8 to 14 (3D), as :func:`faceted_crystal` does.

    Returns
    -------
    numpy.ndarray, float64, shape (count, ndim)
        Unit vectors.
    """
    if ndim == 2:
        count = int(rng.integers(5, 9)) if count is None else int(count)
        spacing = 2 * np.pi / count
        angles = rng.uniform(0, 2 * np.pi) + spacing * (np.arange(count) + rng.uniform(-0.3, 0.3, count))
        return np.stack([np.cos(angles), np.sin(angles)], axis=1)
    count = int(rng.integers(8, 15)) if count is None else int(count)
    k = np.arange(count) + 0.5
    polar = np.arccos(1 - 2 * k / count)
    azimuth = np.pi * (1 + 5**0.5) * k
    points = np.stack([np.cos(polar), np.sin(polar) * np.cos(azimuth), np.sin(polar) * np.sin(azimuth)], axis=1)
    points = points + rng.normal(scale=0.3 * np.sqrt(4 * np.pi / count) / 2, size=points.shape)
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    return points @ _rotation(3, rng).T


def _polytope_distance(shape: tuple[int, ...], radii_px: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Signed distance (px, positive inside) to a random convex polygon/polyhedron.

    Facets ``u . x <= d`` in coordinates normalised by ``radii_px``, with
    spread random normals and distances in [0.7, 1]. The polytope is then
    scaled so that it just fits the unit box ``|x_i| <= 1`` (the box also
    bounds it, against grid discreteness).
    """
    normals = _spread_normals(len(shape), rng)
    distances = rng.uniform(0.7, 1.0, size=len(normals))
    coords = _normalised_coords(shape, radii_px)
    gauge = np.zeros(shape)
    for normal, d in zip(normals, distances):
        gauge = np.maximum(gauge, sum(u * c for u, c in zip(normal, coords)) / d)
    inside = gauge <= 1
    extent = max(float(np.abs(np.broadcast_to(c, shape)[inside]).max()) for c in coords)
    distances = distances / max(extent, 1e-6)
    distance = _box_distance(shape, radii_px)
    for normal, d in zip(normals, distances):
        gradient_norm = np.linalg.norm(normal / radii_px)  # d(u . x)/d(pixel)
        level = sum(u * c for u, c in zip(normal, coords))
        distance = np.minimum(distance, (d - level) / gradient_norm)
    return distance


def _strain_phase(shape: tuple[int, ...], radii_px: np.ndarray, inside: np.ndarray,
                  strain_rad: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth phase: random quadratic and cubic terms plus one slow sinusoid.

    The mean and the linear part (weighted least squares on ``inside``) are
    removed, so the field has no phase ramp; it is scaled to a peak-to-peak of
    ``2 * strain_rad`` on ``inside``.
    """
    ndim = len(shape)
    coords = [np.broadcast_to(c, shape) for c in _normalised_coords(shape, radii_px)]
    phase = np.zeros(shape)
    for i in range(ndim):
        for j in range(i, ndim):
            phase += rng.normal() * coords[i] * coords[j]
            for k in range(j, ndim):
                phase += 0.5 * rng.normal() * coords[i] * coords[j] * coords[k]
    wave = _unit_vectors(1, ndim, rng)[0] * rng.uniform(0.3, 0.8)
    phase += np.sin(np.pi * sum(w * c for w, c in zip(wave, coords)) + rng.uniform(0, 2 * np.pi))
    if strain_rad == 0 or inside.sum() <= ndim + 1:
        return np.zeros(shape)
    design = np.stack([np.ones(int(inside.sum()))] + [c[inside] for c in coords], axis=1)
    solution = np.linalg.lstsq(design, phase[inside], rcond=None)[0]
    phase -= solution[0] + sum(s * c for s, c in zip(solution[1:], coords))
    span = np.ptp(phase[inside])
    return phase * (2 * strain_rad / span) if span > 0 else phase


def _dislocation(shape: tuple[int, ...], radii_px: np.ndarray,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Phase vortex ``atan2`` around a point (2D) or a line (3D) near the centre.

    Returns the vortex phase (rad) and the distance to its core (px).
    """
    ndim = len(shape)
    core = rng.uniform(-0.3, 0.3, size=ndim) * radii_px
    rel = [offset - c for offset, c in zip(_offsets(shape), core)]
    if ndim == 2:
        e1, e2 = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    else:
        line = _unit_vectors(1, 3, rng)[0]
        helper = np.eye(3)[int(np.argmin(np.abs(line)))]
        e1 = np.cross(line, helper)
        e1 /= np.linalg.norm(e1)
        e2 = np.cross(line, e1)
    d1 = sum(e * r for e, r in zip(e1, rel))
    d2 = sum(e * r for e, r in zip(e2, rel))
    return np.arctan2(d2, d1), np.hypot(d1, d2)


def faceted_crystal(shape: Sequence[int], *, rng: np.random.Generator, size_fraction: float = 0.4,
                    strain_rad: float = 1.0, dislocation: bool = False) -> np.ndarray:
    """A faceted, strained nanocrystal (Bragg CDI ground truth).

    Parameters
    ----------
    shape : sequence of int
        Frame shape, ``(ny, nx)`` or ``(nz, ny, nx)``.
    rng : numpy.random.Generator
        Source of every random draw.
    size_fraction : float
        Largest extent of the crystal as a fraction of each axis, in (0, 0.5]:
        the crystal always fits in half the frame.
    strain_rad : float
        Half the peak-to-peak of the smooth strain phase on the crystal (rad).
    dislocation : bool
        Multiply in a phase vortex around a point (2D) or a line (3D) through
        the crystal, with a narrow amplitude dip at its core.

    Returns
    -------
    numpy.ndarray, complex64, ``shape``
        Centred object: amplitude ~1 inside (edges smoothed over ~1 px),
        exactly 0 outside ``|r_i - n_i // 2| < size_fraction * n_i / 2``.
    """
    frame = _check_shape(shape)
    size_fraction = _check_size_fraction(size_fraction)
    if not np.isfinite(strain_rad) or strain_rad < 0:
        raise InvalidInputError(f"strain_rad={strain_rad}: must be >= 0 (radians)")
    radii = _radii_px(frame, size_fraction)
    amplitude = _edge(_polytope_distance(frame, radii, rng))
    phase = _strain_phase(frame, radii, amplitude > 0.5, strain_rad, rng)
    obj = amplitude * np.exp(1j * phase)
    if dislocation:
        vortex, core_px = _dislocation(frame, radii, rng)
        obj = obj * np.exp(1j * vortex) * (1 - 0.7 * np.exp(-0.5 * core_px**2))
    return obj.astype(np.complex64)


# -- cell -----------------------------------------------------------------------
def _ellipsoid_level(coords: list[np.ndarray], rotation: np.ndarray, centre: np.ndarray,
                     radii: np.ndarray) -> np.ndarray:
    """``sqrt(sum (y_i / a_i)^2)`` with ``y = R (x - centre)``: < 1 inside the ellipsoid."""
    rotated = [sum(rotation[i, j] * (coords[j] - centre[j]) for j in range(len(coords))) for i in range(len(coords))]
    return np.sqrt(sum((y / a) ** 2 for y, a in zip(rotated, radii)))


def cell_specimen(shape: Sequence[int], *, rng: np.random.Generator, size_fraction: float = 0.4) -> np.ndarray:
    """A non-negative, cell-like specimen (forward CDI ground truth).

    A blobby body (a randomly rotated ellipse/ellipsoid with a wavy outline)
    with fine texture, a denser nucleus and nucleolus and a few granules and
    vacuoles. The real part is the (non-negative) density; the imaginary part
    is a small, smooth absorption-like term (<= ~10% of the real part).

    Parameters
    ----------
    shape : sequence of int
        Frame shape, ``(ny, nx)`` or ``(nz, ny, nx)``.
    rng : numpy.random.Generator
    size_fraction : float
        Largest extent as a fraction of each axis, in (0, 0.5].

    Returns
    -------
    numpy.ndarray, complex64, ``shape``
        Centred; ``real >= 0``, zero outside half the frame.
    """
    frame = _check_shape(shape)
    size_fraction = _check_size_fraction(size_fraction)
    ndim = len(frame)
    radii_px = _radii_px(frame, size_fraction)
    coords = [np.broadcast_to(c, frame) for c in _normalised_coords(frame, radii_px)]
    scale_px = float(radii_px.min())
    rotation = _rotation(ndim, rng)

    wobble = np.clip(_smooth_noise(frame, rng, sigma_px=scale_px / 3), -1.5, 1.5)
    body_level = _ellipsoid_level(coords, rotation, np.zeros(ndim), rng.uniform(0.75, 0.85, size=ndim))
    body = np.minimum(_edge((1 - body_level * (1 + 0.08 * wobble)) * scale_px * 0.8),
                      _edge(_box_distance(frame, radii_px)))

    nucleus_centre = _unit_vectors(1, ndim, rng)[0] * rng.uniform(0, 0.25)
    nucleus = _edge((1 - _ellipsoid_level(coords, rotation, nucleus_centre,
                                          rng.uniform(0.25, 0.35, size=ndim))) * scale_px * 0.3)
    nucleolus = _edge((1 - _ellipsoid_level(coords, rotation, nucleus_centre + rng.uniform(-0.08, 0.08, ndim),
                                            np.full(ndim, rng.uniform(0.07, 0.1)))) * scale_px * 0.08)
    texture = 1 + 0.15 * _smooth_noise(frame, rng, sigma_px=1.0)
    granules = np.zeros(frame)
    for _ in range(int(rng.integers(3, 9))):
        centre = _unit_vectors(1, ndim, rng)[0] * rng.uniform(0.3, 0.55)
        width = rng.uniform(0.05, 0.1)
        r2 = sum((c - c0) ** 2 for c, c0 in zip(coords, centre))
        granules += rng.choice([0.4, -0.3]) * np.exp(-0.5 * r2 / width**2)

    density = body * (0.5 * texture + granules) + 0.4 * nucleus * texture + 0.3 * nucleolus
    density = np.clip(density, 0.0, None) * (body > 0)
    absorption = 0.05 * body + 0.04 * nucleus
    return (density + 1j * absorption * (density > 0)).astype(np.complex64)


# -- extended specimen (fully developed speckle) ----------------------------------
def _quantised(noise: np.ndarray, levels: Sequence[float]) -> np.ndarray:
    """Piecewise-constant map: ``noise`` cut at its quantiles into ``len(levels)`` equal parts."""
    cuts = np.quantile(noise, np.linspace(0, 1, len(levels) + 1)[1:-1])
    return np.asarray(levels, dtype=np.float64)[np.searchsorted(cuts, noise)]


def extended_specimen(shape: Sequence[int], *, rng: np.random.Generator, extent_fraction: float = 0.6,
                      greyscale: bool = True, absorption: float = 0.05) -> np.ndarray:
    """An extended, irregular, sharp-edged non-negative specimen (forward CDI ground truth).

    A random convex outline spanning ``extent_fraction`` of every axis, cut
    by thresholded smooth noise into irregular islands and holes, with no edge
    smoothing at all. Its far field is fully developed speckle: at an extent
    above half the frame (oversampling below 2 per axis, as on a detector
    whose pixels are coarse for the specimen) speckles are one to two pixels
    wide, and single-pixel speckles several times brighter than their
    neighbours occur.

    Parameters
    ----------
    shape : sequence of int
        Frame shape, ``(ny, nx)`` or ``(nz, ny, nx)``.
    rng : numpy.random.Generator
    extent_fraction : float
        Extent of the outline as a fraction of each axis, in (0, 0.75]
        (0.5 to 0.7: a quarter to a half of a 2D frame's area).
    greyscale : bool
        Densities of 0.3, 0.6 and 1 in sharp-edged patches; False: a binary
        object of density 1.
    absorption : float
        Mean imaginary part as a fraction of the largest density; it varies
        over the specimen independently of the density (patches of 0.5, 1
        and 1.5 times the mean), which breaks Friedel symmetry mildly.

    Returns
    -------
    numpy.ndarray, complex64, ``shape``
        Centred; ``real >= 0``; zero outside ``|r_i - n_i // 2| < extent_fraction * n_i / 2``.
    """
    frame = _check_shape(shape)
    if not 0 < extent_fraction <= 0.75:
        raise InvalidInputError(f"extent_fraction={extent_fraction}: must be in (0, 0.75]")
    if not 0 <= absorption <= 1:
        raise InvalidInputError(f"absorption={absorption}: must be in [0, 1]")
    radii = _radii_px(frame, extent_fraction)
    scale_px = float(radii.min())
    outline = _polytope_distance(frame, radii, rng) > 0
    islands = _smooth_noise(frame, rng, sigma_px=scale_px / 6) > rng.uniform(-1.5, -0.8)
    holes = _smooth_noise(frame, rng, sigma_px=scale_px / 20) > 1.2
    body = outline & islands & ~holes
    if greyscale:
        density = body * _quantised(_smooth_noise(frame, rng, sigma_px=scale_px / 10), (0.3, 0.6, 1.0))
    else:
        density = body.astype(np.float64)
    patches = _quantised(_smooth_noise(frame, rng, sigma_px=scale_px / 10), (0.5, 1.0, 1.5))
    return (density + 1j * absorption * body * patches).astype(np.complex64)


# -- diffraction ------------------------------------------------------------------
def _check_offset(shape: tuple[int, ...], offset_px: Sequence[int] | None) -> tuple[int, ...]:
    if offset_px is None:
        return (0,) * len(shape)
    try:
        offset = tuple(int(k) for k in offset_px)
    except (TypeError, ValueError):
        raise InvalidInputError(f"offset_px {offset_px!r}: give one integer per axis") from None
    if len(offset) != len(shape) or any(k != float(v) for k, v in zip(offset, offset_px)):
        raise InvalidInputError(f"offset_px {tuple(offset_px)}: give {len(shape)} integers, one per axis")
    if any(abs(k) >= n // 2 for k, n in zip(offset, shape)):
        raise InvalidInputError(f"offset_px {offset}: the peak must stay inside the frame {shape}; "
                                "give offsets smaller than half the frame")
    return offset


def offset_ramp(shape: Sequence[int], offset_px: Sequence[float]) -> np.ndarray:
    """``exp(2 pi i sum_a k_a (r_a - n_a // 2) / n_a)``: moves the far field by ``k`` pixels.

    Parameters
    ----------
    shape : sequence of int
    offset_px : sequence of float
        Peak displacement per axis (positive: to higher indices), whole or fractional pixels.

    Returns
    -------
    numpy.ndarray, complex128, ``shape``
    """
    frame = tuple(int(n) for n in shape)
    phase = sum(2 * np.pi * k * offset / n for k, offset, n in zip(offset_px, _offsets(frame), frame))
    return np.broadcast_to(np.exp(1j * phase), frame)


def far_field(obj: np.ndarray) -> np.ndarray:
    """Centred, unitary DFT of a centred object (equal to :meth:`FarField.forward`).

    Parameters
    ----------
    obj : numpy.ndarray, complex, shape (ny, nx) or (nz, ny, nx)

    Returns
    -------
    numpy.ndarray, complex128, same shape
    """
    obj = np.asarray(obj)
    axes = tuple(range(obj.ndim))
    return np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(obj, axes=axes), axes=axes, norm="ortho"), axes=axes)


def expected_intensity(obj: np.ndarray, *, offset_px: Sequence[int] | None = None) -> np.ndarray:
    """Noise-free intensities ``|F(obj * ramp)|**2``, peak moved by ``offset_px``.

    Parameters
    ----------
    obj : numpy.ndarray, complex, 2D or 3D, centred
    offset_px : sequence of int, optional
        Displacement of the zero frequency from the frame centre, pixels.

    Returns
    -------
    numpy.ndarray, float64, same shape
    """
    obj = np.asarray(obj, dtype=np.complex128)
    offset = _check_offset(_check_shape(obj.shape), offset_px)
    if any(offset):
        obj = obj * offset_ramp(obj.shape, offset)
    field_ = far_field(obj)
    return field_.real**2 + field_.imag**2


def pixel_integrated_intensity(obj: np.ndarray) -> np.ndarray:
    """The far-field intensity of an object averaged over each detector pixel, as a real detector records it.

    :func:`expected_intensity` samples ``|F x|^2`` at the pixels' centres; a
    pixel integrates it over its width. The average is exact here: the
    intensity's autocorrelation (the object's, up to twice the frame) is
    computed without wrapping on a frame twice as large, multiplied by
    ``sinc(x / n)`` along each axis (the transform of a one-pixel box; ``x`` the
    lag in voxels, ``n`` the frame's pixels) and taken back to the pixel
    centres. For an object oversampled at least twice this is what
    :func:`cdi_dip.coherence.pixel_kernel` models.

    Parameters
    ----------
    obj : numpy.ndarray, complex, 2D or 3D, centred
        The object (any phase ramp already applied).

    Returns
    -------
    numpy.ndarray, float64, same shape, centred
        Non-negative; the same total as ``expected_intensity(obj)``.
    """
    obj = np.asarray(obj, dtype=np.complex128)
    shape = _check_shape(obj.shape)
    padded = np.pad(obj, [(n // 2, n - n // 2) for n in shape])  # on 2n pixels; a shift leaves |F|^2 alone
    fine = np.abs(np.fft.fftn(np.fft.ifftshift(padded))) ** 2  # FFT order: pixel k's centre at 2k
    autocorrelation = np.fft.ifftn(fine)
    for axis, n in enumerate(shape):
        along = [1] * len(shape)
        along[axis] = 2 * n
        autocorrelation = autocorrelation * np.sinc(np.fft.fftfreq(2 * n, d=1 / 2)).reshape(along)
    averaged = np.fft.fftn(autocorrelation).real[tuple(slice(None, None, 2) for _ in shape)] / math.prod(shape)
    return np.fft.fftshift(np.clip(averaged, 0, None))  # as far_field's orthonormal transform


def _check_peak_counts(peak_counts: float) -> float:
    if not np.isfinite(peak_counts) or peak_counts <= 0:
        raise InvalidInputError(f"peak_counts={peak_counts}: must be a positive number of photons")
    return float(peak_counts)


def diffraction(obj: np.ndarray, *, peak_counts: float, rng: np.random.Generator,
                offset_px: Sequence[int] | None = None) -> np.ndarray:
    """Poisson counts of the far field of ``obj``.

    Parameters
    ----------
    obj : numpy.ndarray, complex, 2D or 3D, centred
    peak_counts : float
        Expected photons at the brightest pixel (the pattern is scaled to it).
    rng : numpy.random.Generator
        Draws the Poisson noise.
    offset_px : sequence of int, optional
        The zero frequency (Bragg peak) lands at ``n // 2 + offset_px``,
        realised as a linear phase ramp on the object.

    Returns
    -------
    numpy.ndarray, float32, same shape
        Photon counts (whole numbers).
    """
    peak_counts = _check_peak_counts(peak_counts)
    expected = expected_intensity(obj, offset_px=offset_px)
    top = expected.max()
    if not np.isfinite(top) or top <= 0:
        raise InvalidInputError("the object is zero (or not finite): it does not diffract")
    return rng.poisson(expected * (peak_counts / top)).astype(np.float32)


# -- masks ------------------------------------------------------------------------
def beamstop_mask(shape: Sequence[int], radius_px: float, *,
                  centre: Sequence[float] | None = None) -> np.ndarray:
    """Valid pixels around a beamstop: False within ``radius_px`` of the centre.

    Parameters
    ----------
    shape : sequence of int
    radius_px : float
        Radius of the disc (2D) or ball (3D), pixels; ``<= 0`` excludes nothing.
    centre : sequence of float, optional
        Where the beam (zero frequency) is; default the frame centre ``n // 2``.

    Returns
    -------
    numpy.ndarray, bool, ``shape``
        True = valid.
    """
    frame = tuple(int(n) for n in shape)
    if radius_px <= 0:
        return np.ones(frame, dtype=bool)
    centre = [n // 2 for n in frame] if centre is None else list(centre)
    if len(centre) != len(frame):
        raise InvalidInputError(f"beamstop centre {tuple(centre)} has {len(centre)} values for shape {frame}")
    r2 = sum((np.arange(n).reshape([-1 if a == i else 1 for a in range(len(frame))]) - c) ** 2
             for i, (n, c) in enumerate(zip(frame, centre)))
    return np.broadcast_to(r2 > radius_px**2, frame).copy()


def gap_mask(shape: Sequence[int], *, axis: int, start: int, width: int) -> np.ndarray:
    """Valid pixels beside a detector gap: False on ``start <= index < start + width`` along ``axis``.

    Parameters
    ----------
    shape : sequence of int
    axis : int
        Axis across which the gap runs (the gap is a line (2D) or plane (3D)
        of constant index along it).
    start, width : int
        First excluded index and number of excluded indices (clipped to the frame).

    Returns
    -------
    numpy.ndarray, bool, ``shape``
        True = valid.
    """
    frame = tuple(int(n) for n in shape)
    if not -len(frame) <= axis < len(frame):
        raise InvalidInputError(f"gap axis {axis} does not exist in a {len(frame)}D frame")
    if width < 0:
        raise InvalidInputError(f"gap width {width}: must be >= 0 pixels")
    valid = np.ones(frame, dtype=bool)
    index = [slice(None)] * len(frame)
    index[axis] = slice(max(int(start), 0), max(int(start) + int(width), 0))
    valid[tuple(index)] = False
    return valid


# -- scans ------------------------------------------------------------------------
@dataclass
class SimulatedScan:
    """A synthetic measurement and the object that made it.

    Attributes
    ----------
    counts : numpy.ndarray, float32, frame shape
        Poisson counts; excluded pixels hold 0.
    valid : numpy.ndarray, bool, frame shape
        True where the pixel was measured.
    ground_truth : numpy.ndarray, complex64, frame shape
        The centred object, without the Bragg offset ramp, scaled so that
        ``|FarField.forward(ground_truth)|**2`` is the noise-free expectation
        of the pattern re-centred on its peak.
    meta : ScanMeta
        Geometry (9 keV, 1 m, 55 um pixels) and what was simulated.
    kind : str
        ``"crystal"`` or ``"cell"``.
    offset_px : tuple of int
        Where the zero frequency is relative to the frame centre.
    """

    counts: np.ndarray
    valid: np.ndarray
    ground_truth: np.ndarray
    meta: ScanMeta = field(default_factory=ScanMeta)
    kind: str = "crystal"
    offset_px: tuple[int, ...] = ()

    def to_measurement(self, name: str = "simulated") -> Measurement:
        """The scan as a :class:`Measurement` (as if read from a file)."""
        excluded = {"simulated_mask": int((~self.valid).sum())} if not self.valid.all() else {}
        return Measurement(intensity=self.counts, valid=self.valid, meta=self.meta, source=name, name=name,
                           excluded=excluded, roi=[(0, n) for n in self.counts.shape])


def simulate_scan(kind: str, shape: Sequence[int], *, rng: np.random.Generator, peak_counts: float = 1e5,
                  offset_px: Sequence[int] | None = None, dislocation: bool = False,
                  beamstop_radius_px: float = 0, gap_px: int = 0) -> SimulatedScan:
    """A complete synthetic scan: object, Poisson counts, mask and geometry.

    Parameters
    ----------
    kind : {"crystal", "cell"}
        :func:`faceted_crystal` (Bragg CDI) or :func:`cell_specimen` (forward CDI).
    shape : sequence of int
        Frame shape, 2D or 3D, at least 8 pixels per axis.
    rng : numpy.random.Generator
        Source of the object and the noise: the same seed gives the same scan.
    peak_counts : float
        Expected photons at the brightest pixel.
    offset_px : sequence of int, optional
        Zero frequency (Bragg peak / direct beam) position relative to the
        frame centre, pixels.
    dislocation : bool
        Crystal only: add a phase vortex.
    beamstop_radius_px : float
        Radius of an excluded disc/ball centred on the peak (0: none).
    gap_px : int
        Width of an excluded detector gap: a strip of constant index along the
        last axis, ``n // 8`` pixels to the high side of the peak (0: none).

    Returns
    -------
    SimulatedScan
    """
    if kind not in KINDS:
        raise InvalidInputError(f"kind {kind!r}: choose one of {', '.join(KINDS)}")
    frame = _check_shape(shape)
    offset = _check_offset(frame, offset_px)
    peak_counts = _check_peak_counts(peak_counts)
    if dislocation and kind != "crystal":
        raise InvalidInputError("a dislocation only applies to kind 'crystal'")
    if beamstop_radius_px < 0 or gap_px < 0:
        raise InvalidInputError(f"beamstop radius {beamstop_radius_px} and gap width {gap_px} must be >= 0 pixels")

    if kind == "crystal":
        obj = faceted_crystal(frame, rng=rng, dislocation=dislocation)
    else:
        obj = cell_specimen(frame, rng=rng)
    expected = expected_intensity(obj, offset_px=offset)
    scale = peak_counts / expected.max()
    counts = rng.poisson(expected * scale).astype(np.float32)
    truth = (obj.astype(np.complex128) * np.sqrt(scale)).astype(np.complex64)

    peak = [n // 2 + k for n, k in zip(frame, offset)]
    valid = beamstop_mask(frame, beamstop_radius_px, centre=peak)
    if gap_px > 0:
        valid &= gap_mask(frame, axis=-1, start=peak[-1] + max(frame[-1] // 8, 1), width=int(gap_px))
    counts[~valid] = 0
    meta = ScanMeta(wavelength_m=WAVELENGTH_M, distance_m=DISTANCE_M, pixel_size_m=(PIXEL_SIZE_M, PIXEL_SIZE_M),
                    extra={"simulated_kind": kind, "photon_energy_ev": PHOTON_ENERGY_EV,
                           "peak_counts": peak_counts, "offset_px": ",".join(str(k) for k in offset),
                           "dislocation": int(bool(dislocation))})
    log.info("simulated %s %s: %.3g photons, %d excluded pixels", kind, frame, float(counts.sum()),
             int((~valid).sum()))
    return SimulatedScan(counts=counts, valid=valid, ground_truth=truth, meta=meta, kind=kind, offset_px=offset)


def write_simulated_scan(path: Path, scan: SimulatedScan) -> None:
    """Write a simulated scan as a CXI input file, and its ground truth beside it.

    Parameters
    ----------
    path : pathlib.Path
        The ``.cxi`` file; its directory must exist. The ground truth also
        goes to ``<stem>_truth.npy`` (complex64, centred) in the same folder.
        Both files are written under temporary names and renamed when complete.
    scan : SimulatedScan
    """
    path = Path(path)
    write_measurement_cxi(path, scan.counts, valid=scan.valid, meta=scan.meta, ground_truth=scan.ground_truth)
    truth = path.with_name(f"{path.stem}_truth.npy")
    with atomic_write(truth) as tmp, open(tmp, "wb") as handle:
        np.save(handle, np.asarray(scan.ground_truth, dtype=np.complex64))
    log.info("wrote ground truth to %s", truth)


# -- planted detector defects -----------------------------------------------------
@dataclass
class PlantedDefects:
    """Counts with detector defects planted into them, and where they are.

    Attributes
    ----------
    counts : numpy.ndarray, float32, frame shape
        The counts as a faulty detector would record them.
    truth : dict of str to numpy.ndarray of bool
        Planted pixels by reason (``beamstop``, ``gap``, ``hot``,
        ``saturated``), disjoint; none of them is marked in any mask.
    saturation_counts : float or None
        The level the counts were clipped at.
    """

    counts: np.ndarray
    truth: dict[str, np.ndarray]
    saturation_counts: float | None = None


def _clip_level(counts: np.ndarray, usable: np.ndarray, regions: int) -> float:
    """The highest level above which the counts form at least ``regions`` separate blobs of 3+ pixels."""
    from ._ndimage import label

    for fraction in np.geomspace(0.7, 0.02, 40):
        level = float(np.floor(fraction * counts[usable].max()))
        labels, count = label(usable & (counts > level))
        sizes = np.bincount(labels.ravel())[1:]
        if count and int(np.count_nonzero(sizes >= 3)) >= regions:
            return level
    raise InvalidInputError(f"the pattern has no {regions} separate bright regions to saturate")


def plant_defects(counts: np.ndarray, *, rng: np.random.Generator, peak: Sequence[int] | None = None,
                  beamstop_radius_px: float = 0.0, gap_px: int = 0, hot: int = 0,
                  saturated_regions: int = 0) -> PlantedDefects:
    """Plant unmasked detector defects into simulated counts (for tests and benchmarks).

    Parameters
    ----------
    counts : numpy.ndarray, frame shape
        Clean counts (e.g. :attr:`SimulatedScan.counts` without a mask).
    rng : numpy.random.Generator
        Where the hot pixels go.
    peak : sequence of int, optional
        Zero frequency; default the brightest pixel.
    beamstop_radius_px : float
        A beamstop shadow: zero counts within this radius of ``peak``.
    gap_px : int
        A detector gap: this many lines of zeros along the last axis, a
        quarter of the frame away from the peak.
    hot : int
        Hot pixels: this many isolated pixels, away from the other defects,
        set far above their neighbours (but below any saturation level).
    saturated_regions : int
        Clip the counts at the highest level above which at least this many
        separate regions of three or more pixels lie (a saturated detector).

    Returns
    -------
    PlantedDefects
    """
    from ._ndimage import dilate, neighbour_top2

    work = np.asarray(counts, dtype=np.float32).copy()
    shape = work.shape
    centre = tuple(int(p) for p in peak) if peak is not None else \
        tuple(int(i) for i in np.unravel_index(int(np.argmax(work)), shape))
    truth: dict[str, np.ndarray] = {}
    taken = np.zeros(shape, dtype=bool)
    if beamstop_radius_px > 0:
        grids = np.indices(shape, sparse=True)
        truth["beamstop"] = sum((g - c) ** 2 for g, c in zip(grids, centre)) <= beamstop_radius_px**2
        taken |= truth["beamstop"]
    if gap_px > 0:
        start = min(centre[-1] + shape[-1] // 4, shape[-1] - gap_px)
        gap = np.zeros(shape, dtype=bool)
        gap[..., start:start + gap_px] = True
        truth["gap"] = gap & ~taken
        taken |= gap
    work[taken] = 0
    level = None
    if saturated_regions > 0:
        level = _clip_level(work, ~taken, saturated_regions)
        truth["saturated"] = (work >= level) & ~taken
        taken |= truth["saturated"]
        work = np.minimum(work, level)
    if hot > 0:
        first, _, _ = neighbour_top2(work, np.ones(shape, dtype=bool))
        ceiling = level if level is not None else np.inf
        value = np.minimum(10.0 * np.clip(first, 0, None) + 50.0, ceiling - 1)
        allowed = ~dilate(taken, 2) & (value > 5 * np.clip(first, 0, None) + 20)
        allowed[tuple(slice(0, 1) for _ in shape)] = False
        choice = rng.choice(np.flatnonzero(allowed), size=hot, replace=False)
        hot_mask = np.zeros(shape, dtype=bool)
        hot_mask.flat[choice] = True
        if (dilate(hot_mask, 1).sum() < hot * 3**len(shape)):  # two draws touching: draw again
            return plant_defects(counts, rng=rng, peak=peak, beamstop_radius_px=beamstop_radius_px,
                                 gap_px=gap_px, hot=hot, saturated_regions=saturated_regions)
        truth["hot"] = hot_mask
        work[hot_mask] = value[hot_mask]
    return PlantedDefects(counts=work, truth=truth, saturation_counts=level)
