"""Crystal families of the evaluation corpus (Bragg CDI ground truths), 2D and 3D.

Each family is a function ``(shape, rng, **params) -> complex64 array``: an
amplitude ~1 inside an outline that spans ``shape[i] / oversampling[i]``
pixels along axis ``i`` (edges smoothed over ~1 px), zero outside, times a
phase (radians) built from a smooth strain field, dislocations and domain
boundaries. The strain and dislocation fields are those of
:func:`cdi_dip.simulate.faceted_crystal`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import InvalidInputError
from ..simulate import _check_shape, _dislocation, _edge, _normalised_coords, _strain_phase, _unit_vectors
from .shapes import Level, blob_level, elongation_stretch, fit_outline, half_extents_px, polytope_level

DISLOCATION_CORE_DIP = 0.7
"""Relative amplitude dip at a dislocation core (as in :func:`cdi_dip.simulate.faceted_crystal`)."""


def domain_phase(shape: Sequence[int], half_extent_px: np.ndarray, rng: np.random.Generator,
                 jump_rad: float) -> np.ndarray:
    """A domain boundary: ``jump_rad`` on one side of a random plane through the crystal, 0 on the other.

    Parameters
    ----------
    shape : sequence of int
    half_extent_px : numpy.ndarray, shape (ndim,)
        Half the object extent per axis, pixels (the plane passes within 30%
        of it from the centre).
    rng : numpy.random.Generator
    jump_rad : float
        Phase difference across the boundary, radians.

    Returns
    -------
    numpy.ndarray, float64, ``shape``
    """
    frame = tuple(shape)
    coords = _normalised_coords(frame, half_extent_px)
    normal = _unit_vectors(1, len(frame), rng)[0]
    position = rng.uniform(-0.3, 0.3)
    side = sum(u * c for u, c in zip(normal, coords)) > position
    return np.broadcast_to(jump_rad * side, frame).astype(np.float64)


def _crystal(frame: tuple[int, ...], level: Level, half_extent_px: np.ndarray, rng: np.random.Generator, *,
             strain_rad: float, dislocations: int, domain_jump_rad: float) -> np.ndarray:
    """Amplitude of the fitted outline times the phase fields (see :func:`faceted_particle`)."""
    if not np.isfinite(strain_rad) or strain_rad < 0:
        raise InvalidInputError(f"strain_rad={strain_rad}: must be >= 0 (radians)")
    if dislocations < 0:
        raise InvalidInputError(f"dislocations={dislocations}: must be >= 0")
    amplitude = _edge(fit_outline(level, frame, half_extent_px))
    phase = _strain_phase(frame, half_extent_px, amplitude > 0.5, strain_rad, rng)
    if domain_jump_rad:
        phase = phase + domain_phase(frame, half_extent_px, rng, domain_jump_rad)
    obj = amplitude * np.exp(1j * phase)
    for _ in range(int(dislocations)):
        vortex, core_px = _dislocation(frame, half_extent_px, rng)
        obj = obj * np.exp(1j * vortex) * (1 - DISLOCATION_CORE_DIP * np.exp(-0.5 * core_px**2))
    return obj.astype(np.complex64)


def faceted_particle(shape: Sequence[int], rng: np.random.Generator, *, oversampling: Sequence[float],
                     facets: int = 8, aspect: float = 1.0, flat: bool = False, strain_rad: float = 1.0,
                     dislocations: int = 0, domain_jump_rad: float = 0.0) -> np.ndarray:
    """A faceted, strained crystal: a random convex polygon/polyhedron.

    Parameters
    ----------
    shape : sequence of int
        Frame shape, ``(ny, nx)`` or ``(nz, ny, nx)``.
    rng : numpy.random.Generator
        Source of every random draw.
    oversampling : sequence of float
        Frame size over object extent, per axis (a scalar applies to all),
        each in [1.5, 8]; below 2 the object is larger than half the frame.
    facets : int
        Number of facets (4 to 20 in the corpus).
    aspect : float
        Intrinsic aspect ratio (>= 1) along a random direction: elongated
        crystals; combined with the per-axis extent.
    flat : bool
        3D: a platelet (one short axis) rather than a rod.
    strain_rad : float
        Half the peak-to-peak of the smooth strain phase, radians.
    dislocations : int
        Phase vortices around points (2D) or lines (3D) through the crystal.
    domain_jump_rad : float
        Phase jump across a random plane (a domain boundary), radians; 0: none.

    Returns
    -------
    numpy.ndarray, complex64, ``shape``
        Centred object, amplitude ~1 inside and 0 outside.
    """
    frame = _check_shape(shape)
    radii = half_extents_px(frame, oversampling)
    level = polytope_level(len(frame), rng, facets=facets, stretch=elongation_stretch(len(frame), aspect, flat=flat))
    return _crystal(frame, level, radii, rng, strain_rad=strain_rad, dislocations=dislocations,
                    domain_jump_rad=domain_jump_rad)


def blob_particle(shape: Sequence[int], rng: np.random.Generator, *, oversampling: Sequence[float],
                  roughness: float = 0.1, max_frequency: float = 3.0, strain_rad: float = 1.0,
                  dislocations: int = 0, domain_jump_rad: float = 0.0) -> np.ndarray:
    """A rounded or irregular strained particle: a smooth random blob (:func:`.shapes.blob_level`).

    Parameters
    ----------
    shape : sequence of int
        Frame shape, ``(ny, nx)`` or ``(nz, ny, nx)``.
    rng : numpy.random.Generator
    oversampling : sequence of float
        Frame size over object extent, per axis, each in [1.5, 8].
    roughness : float
        Relative radius variation: ~0.1 rounded, ~0.3 irregular.
    max_frequency : float
        Highest angular frequency of the outline (more lobes when higher).
    strain_rad, dislocations, domain_jump_rad
        As for :func:`faceted_particle`.

    Returns
    -------
    numpy.ndarray, complex64, ``shape``
    """
    frame = _check_shape(shape)
    radii = half_extents_px(frame, oversampling)
    level = blob_level(len(frame), rng, roughness=roughness, max_frequency=max_frequency)
    return _crystal(frame, level, radii, rng, strain_rad=strain_rad, dislocations=dislocations,
                    domain_jump_rad=domain_jump_rad)
