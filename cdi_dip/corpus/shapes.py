"""Particle outlines that fill a requested extent along every axis.

An outline is a *level function* of normalised coordinates: below 1 inside,
above 1 outside. :func:`fit_outline` maps it onto the frame so that its
inside spans the requested extent along every axis (the oversampling
``frame size / object extent`` is then what was asked for, to about one
pixel), and returns the signed distance to its boundary in pixels, ready for
:func:`cdi_dip.simulate._edge`. :func:`polytope_level` (flat facets) and
:func:`blob_level` (a smooth random radius) are the two outlines the corpus
uses.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..errors import InvalidInputError
from ..simulate import _offsets, _rotation, _spread_normals, _unit_vectors

Level = Callable[[Sequence[np.ndarray]], np.ndarray]
"""An outline: normalised coordinates (one broadcastable array per axis) -> level, < 1 inside."""

OVERSAMPLING_RANGE = (1.5, 8.0)
"""Accepted oversampling per axis (frame size / object extent)."""

_PROBE_POINTS = {2: 161, 3: 65}
"""Points per axis of the grid on which an outline's extent is first measured."""

_PROBE_HALF_WIDTH = 4.0
"""Half-width of that grid, normalised units (an outline must lie within it)."""


def check_oversampling(shape: Sequence[int], oversampling: Sequence[float]) -> tuple[float, ...]:
    """One oversampling per axis, each within :data:`OVERSAMPLING_RANGE`.

    Raises
    ------
    InvalidInputError
        Wrong count or out of range.
    """
    try:
        values = tuple(float(v) for v in np.broadcast_to(np.asarray(oversampling, dtype=float), (len(shape),)))
    except ValueError:
        raise InvalidInputError(f"oversampling {oversampling!r}: give one number, or one per axis of "
                                f"{tuple(shape)}") from None
    low, high = OVERSAMPLING_RANGE
    if not all(low <= v <= high for v in values):
        raise InvalidInputError(f"oversampling {values}: give one value per axis in [{low}, {high}] "
                                "(frame size / object extent)")
    return values


def half_extents_px(shape: Sequence[int], oversampling: Sequence[float]) -> np.ndarray:
    """Half the object extent along every axis, pixels: ``n_i / oversampling_i / 2``.

    Returns
    -------
    numpy.ndarray, float64, shape (ndim,)
    """
    return np.array([n / s / 2 for n, s in zip(shape, check_oversampling(shape, oversampling))])


def _inside_bounds(level: Level, coords: Sequence[np.ndarray], shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Lowest and highest coordinate of the inside (``level < 1``) along every axis."""
    inside = level(coords) < 1
    if not inside.any():
        raise InvalidInputError("the outline is empty on the frame: give a larger extent (lower oversampling)")
    low, high = [], []
    for axis, c in enumerate(coords):
        values = np.broadcast_to(c, shape)[inside]
        low.append(values.min())
        high.append(values.max())
    return np.array(low), np.array(high)


def _probe_bounds(level: Level, ndim: int) -> tuple[np.ndarray, np.ndarray]:
    """The outline's extent on a coarse probe grid, widened by half a probe step."""
    points = _PROBE_POINTS[ndim]
    axis = np.linspace(-_PROBE_HALF_WIDTH, _PROBE_HALF_WIDTH, points)
    coords = [axis.reshape([-1 if a == i else 1 for a in range(ndim)]) for i in range(ndim)]
    low, high = _inside_bounds(level, coords, (points,) * ndim)
    if np.any(low <= -_PROBE_HALF_WIDTH) or np.any(high >= _PROBE_HALF_WIDTH):
        raise InvalidInputError(f"the outline reaches beyond +-{_PROBE_HALF_WIDTH} normalised units: "
                                "it must be bounded")
    step = axis[1] - axis[0]
    return low - step / 2, high + step / 2


def fit_outline(level: Level, shape: Sequence[int], half_extent_px: Sequence[float], *,
                refinements: int = 2) -> np.ndarray:
    """Place an outline in the frame so that its inside spans ``2 * half_extent_px`` per axis.

    The outline is evaluated at ``a_i + b_i * offset_i / half_extent_i``
    (offsets in pixels from the centre ``n // 2``); ``a`` and ``b`` are set
    from a coarse probe grid and then refined on the frame itself, so the
    inside spans the requested extent to about one pixel along every axis.

    Parameters
    ----------
    level : callable
        The outline (:data:`Level`); it must be bounded within +-4
        normalised units.
    shape : sequence of int
        Frame shape, 2D or 3D.
    half_extent_px : sequence of float
        Half the requested extent along every axis, pixels.
    refinements : int
        Passes on the frame after the probe grid.

    Returns
    -------
    numpy.ndarray, float64, ``shape``
        Signed distance to the boundary, pixels, positive inside (first
        order: ``(1 - level) / |grad level|``; exact near a flat facet).
    """
    frame = tuple(int(n) for n in shape)
    radii = np.asarray(half_extent_px, dtype=float)
    unit = [offset / r for offset, r in zip(_offsets(frame), radii)]
    low, high = _probe_bounds(level, len(frame))
    for _ in range(refinements):
        low, high = _refined_bounds(level, frame, unit, radii, low, high)
    return _signed_distance(level(_mapped(unit, low, high)))


def _mapped(unit: Sequence[np.ndarray], low: np.ndarray, high: np.ndarray) -> list[np.ndarray]:
    """Outline coordinates ``(high + low) / 2 + (high - low) / 2 * unit``: ``[low, high]`` onto ``unit`` in [-1, 1]."""
    return [(h + lo) / 2 + (h - lo) / 2 * u for u, lo, h in zip(unit, low, high)]


def _refined_bounds(level: Level, frame: tuple[int, ...], unit: Sequence[np.ndarray], radii: np.ndarray,
                    low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The outline's extent measured on the frame: outermost inside pixel centres, widened by half a pixel."""
    found_low, found_high = _inside_bounds(level, _mapped(unit, low, high), frame)
    half_pixel = (high - low) / 2 / radii / 2
    return found_low - half_pixel, found_high + half_pixel


def _signed_distance(level_values: np.ndarray) -> np.ndarray:
    """``(1 - level) / |grad level|`` in pixels (a large value where the level is flat)."""
    norm = np.sqrt(sum(g**2 for g in np.gradient(level_values)))
    flat = norm < 1e-12
    return np.where(flat, np.sign(1 - level_values) * 1e6, (1 - level_values) / np.where(flat, 1.0, norm))


def _stretched(coords: Sequence[np.ndarray], rotation: np.ndarray, stretch: np.ndarray) -> list[np.ndarray]:
    """Coordinates in a rotated frame whose axis ``j`` is stretched by ``stretch[j]`` (``y = S^-1 R^T x``)."""
    ndim = len(coords)
    return [sum(rotation[i, j] * coords[i] for i in range(ndim)) / stretch[j] for j in range(ndim)]


def elongation_stretch(ndim: int, aspect: float, *, flat: bool = False) -> np.ndarray:
    """Stretch per intrinsic axis for an aspect ratio: a rod ``(1, 1/a, ...)`` or, 3D, a plate ``(1, 1, 1/a)``.

    Parameters
    ----------
    ndim : int
    aspect : float
        Longest over shortest intrinsic axis, >= 1.
    flat : bool
        3D only: one short axis (a platelet) instead of one long axis (a rod).

    Returns
    -------
    numpy.ndarray, float64, shape (ndim,)
        Largest entry 1.
    """
    if not aspect >= 1:
        raise InvalidInputError(f"aspect {aspect}: must be >= 1 (longest over shortest axis)")
    stretch = np.full(ndim, 1.0 / aspect)
    if flat and ndim == 3:
        stretch[:2] = 1.0
    else:
        stretch[0] = 1.0
    return stretch


def polytope_level(ndim: int, rng: np.random.Generator, *, facets: int,
                   stretch: Sequence[float] | None = None) -> Level:
    """A random convex polygon/polyhedron: the gauge ``max_k (u_k . y) / d_k``.

    Facet normals ``u_k`` are spread over all directions
    (:func:`cdi_dip.simulate._spread_normals`), the distances ``d_k`` drawn in
    [0.7, 1]; ``y`` are the coordinates in a random rotated frame stretched by
    ``stretch`` (elongated and flat crystals). A box ``|y_j| <= 3 * stretch_j``
    bounds it when the normals leave a direction open (few facets in 3D).

    Parameters
    ----------
    ndim : int
        2 or 3.
    rng : numpy.random.Generator
    facets : int
        Number of facets, at least ``ndim + 1``.
    stretch : sequence of float, optional
        Intrinsic stretch per rotated axis (:func:`elongation_stretch`),
        each in (0, 1]; default isotropic.

    Returns
    -------
    Level
    """
    if facets < ndim + 1:
        raise InvalidInputError(f"facets={facets}: a bounded {ndim}D polytope needs at least {ndim + 1}")
    normals = _spread_normals(ndim, rng, count=facets)
    distances = rng.uniform(0.7, 1.0, size=len(normals))
    rotation = _rotation(ndim, rng)
    scale = np.ones(ndim) if stretch is None else np.asarray(stretch, dtype=float)

    def level(coords: Sequence[np.ndarray]) -> np.ndarray:
        y = _stretched(coords, rotation, scale)
        gauge = np.max(np.abs(np.broadcast_arrays(*y)), axis=0) / 3
        for normal, d in zip(normals, distances):
            gauge = np.maximum(gauge, sum(u * c for u, c in zip(normal, y)) / d)
        return gauge

    return level


def blob_level(ndim: int, rng: np.random.Generator, *, roughness: float, waves: int = 8,
               max_frequency: float = 3.0) -> Level:
    """A smooth random star-shaped particle: ``|x| / r(x / |x|)``.

    The radius ``r`` over directions ``n`` is
    ``1 + roughness * sum_k g_k cos(pi f_k w_k . n + phi_k)`` with ``waves``
    random directions ``w_k``, frequencies ``f_k`` in [1, ``max_frequency``]
    and weights ``g_k ~ N(0, 1) / f_k`` normalised to unit sum of squares;
    ``r >= 0.35``. Low ``roughness`` (~0.1) gives rounded particles, high
    (~0.3) irregular, lobed ones.

    Parameters
    ----------
    ndim : int
    rng : numpy.random.Generator
    roughness : float
        Relative amplitude of the radius variations, in [0, 0.6].
    waves : int
    max_frequency : float
        Highest angular frequency (number of half-waves across the particle).

    Returns
    -------
    Level
    """
    if not 0 <= roughness <= 0.6:
        raise InvalidInputError(f"roughness={roughness}: must be in [0, 0.6]")
    directions = _unit_vectors(waves, ndim, rng)
    frequencies = rng.uniform(1.0, max_frequency, size=waves)
    phases = rng.uniform(0, 2 * np.pi, size=waves)
    weights = rng.normal(size=waves) / frequencies
    weights /= np.linalg.norm(weights)

    def level(coords: Sequence[np.ndarray]) -> np.ndarray:
        radius = np.sqrt(sum(c**2 for c in coords))
        unit = [c / np.maximum(radius, 1e-12) for c in coords]
        bumps = sum(g * np.cos(np.pi * f * sum(w_i * u for w_i, u in zip(w, unit)) + p)
                    for g, f, w, p in zip(weights, frequencies, directions, phases))
        return radius / np.maximum(1 + roughness * bumps, 0.35)

    return level
