"""What the corpus holds: object families and detector conditions, each with its parameter draws.

:data:`FAMILIES` maps a family name to its generator and to how one case's
parameters are drawn; :data:`CONDITIONS` maps a condition name to how its
:class:`~.detector.DetectorSettings` are drawn. Which of them the tuning and
the reporting halves use is decided in :mod:`.split` alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .crystals import blob_particle, faceted_particle
from .detector import DetectorSettings
from .specimens import lithography_pattern, membrane_cell, porous_particle

OVERSAMPLING_DRAW = (1.7, 4.0)
"""Range of the oversampling drawn per axis (frame size / object extent): objects from a quarter of
the frame to more than half of it (real BCDI is often below 2 along some axis)."""

ParamDraw = Callable[[np.random.Generator, int], dict[str, Any]]
"""``(rng, ndim) -> keyword parameters of a family's generator``."""


@dataclass(frozen=True)
class Family:
    """An object family.

    Attributes
    ----------
    name : str
    kind : str
        ``"crystal"`` (complex, Bragg CDI) or ``"specimen"`` (real >= 0, forward CDI).
    dims : tuple of int
        Dimensionalities it exists in.
    make : callable
        ``(shape, rng, **params) -> complex64 array``.
    draw : ParamDraw
        One case's parameters.
    """

    name: str
    kind: str
    dims: tuple[int, ...]
    make: Callable[..., np.ndarray]
    draw: ParamDraw


def draw_oversampling(rng: np.random.Generator, ndim: int, low: float = OVERSAMPLING_DRAW[0],
                      high: float = OVERSAMPLING_DRAW[1]) -> tuple[float, ...]:
    """Oversampling per axis, uniform in ``[low, high]``."""
    return tuple(round(float(v), 3) for v in rng.uniform(low, high, size=ndim))


def draw_elongated_oversampling(rng: np.random.Generator, ndim: int) -> tuple[float, ...]:
    """Oversampling of an elongated object: one long axis (1.7 to 2.2) and the others 1.5 to 2.3 times shorter,
    capped at 4."""
    long = rng.uniform(OVERSAMPLING_DRAW[0], 2.2)
    values = np.minimum(long * rng.uniform(1.5, 2.3, size=ndim), OVERSAMPLING_DRAW[1])
    values[int(rng.integers(ndim))] = long
    return tuple(round(float(v), 3) for v in values)


def _strain(rng: np.random.Generator, high: float = 3.0) -> float:
    return round(float(rng.uniform(0.0, high)), 3)


def _draw_faceted(rng: np.random.Generator, ndim: int) -> dict[str, Any]:
    return {"oversampling": draw_oversampling(rng, ndim), "facets": int(rng.integers(4, 21)),
            "strain_rad": _strain(rng)}


def _draw_elongated(rng: np.random.Generator, ndim: int) -> dict[str, Any]:
    return {"oversampling": draw_elongated_oversampling(rng, ndim), "facets": int(rng.integers(4, 21)),
            "aspect": round(float(rng.uniform(1.5, 3.0)), 3), "flat": bool(ndim == 3 and rng.random() < 0.5),
            "strain_rad": _strain(rng)}


def _draw_dislocated(rng: np.random.Generator, ndim: int) -> dict[str, Any]:
    return {"oversampling": draw_oversampling(rng, ndim), "facets": int(rng.integers(6, 15)),
            "strain_rad": _strain(rng, 2.0), "dislocations": int(rng.integers(1, 3))}


def _draw_domains(rng: np.random.Generator, ndim: int) -> dict[str, Any]:
    return {"oversampling": draw_oversampling(rng, ndim), "facets": int(rng.integers(6, 15)),
            "strain_rad": _strain(rng, 1.5), "domain_jump_rad": round(float(rng.uniform(np.pi / 4, np.pi)), 3)}


def _draw_rounded(rng: np.random.Generator, ndim: int) -> dict[str, Any]:
    return {"oversampling": draw_oversampling(rng, ndim), "roughness": round(float(rng.uniform(0.03, 0.12)), 3),
            "max_frequency": 2.5, "strain_rad": _strain(rng)}


def _draw_irregular(rng: np.random.Generator, ndim: int) -> dict[str, Any]:
    return {"oversampling": draw_oversampling(rng, ndim), "roughness": round(float(rng.uniform(0.2, 0.35)), 3),
            "max_frequency": round(float(rng.uniform(3.0, 5.0)), 3), "strain_rad": _strain(rng)}


def _draw_cell(rng: np.random.Generator, ndim: int) -> dict[str, Any]:
    return {"oversampling": draw_oversampling(rng, ndim, low=1.9), "membrane_px": int(rng.integers(1, 3)),
            "membrane_density": round(float(rng.uniform(0.2, 0.6)), 3)}


def _draw_lithography(rng: np.random.Generator, ndim: int) -> dict[str, Any]:
    return {"oversampling": draw_oversampling(rng, ndim), "tiles": tuple(int(t) for t in rng.integers(1, 4, size=2))}


def _draw_porous(rng: np.random.Generator, ndim: int) -> dict[str, Any]:
    return {"oversampling": draw_oversampling(rng, ndim), "porosity": round(float(rng.uniform(0.15, 0.45)), 3),
            "pore_px": round(float(rng.uniform(1.0, 3.0)), 3), "roughness": round(float(rng.uniform(0.05, 0.25)), 3)}


FAMILIES: dict[str, Family] = {family.name: family for family in (
    Family("faceted", "crystal", (2, 3), faceted_particle, _draw_faceted),
    Family("elongated", "crystal", (2, 3), faceted_particle, _draw_elongated),
    Family("dislocated", "crystal", (2, 3), faceted_particle, _draw_dislocated),
    Family("domains", "crystal", (2, 3), faceted_particle, _draw_domains),
    Family("rounded", "crystal", (2, 3), blob_particle, _draw_rounded),
    Family("irregular", "crystal", (2, 3), blob_particle, _draw_irregular),
    Family("cell", "specimen", (2, 3), membrane_cell, _draw_cell),
    Family("lithography", "specimen", (2,), lithography_pattern, _draw_lithography),
    Family("porous", "specimen", (2, 3), porous_particle, _draw_porous),
)}
"""Every object family, by name."""


def _photons(rng: np.random.Generator, low_exp: float, high_exp: float) -> float:
    """Peak photons, log-uniform between ``10**low_exp`` and ``10**high_exp``."""
    return float(f"{10 ** rng.uniform(low_exp, high_exp):.3g}")


ConditionDraw = Callable[[np.random.Generator], DetectorSettings]

CONDITIONS: dict[str, ConditionDraw] = {
    "clean": lambda rng: DetectorSettings(peak_counts=_photons(rng, 5, 8)),
    "low-flux": lambda rng: DetectorSettings(peak_counts=_photons(rng, 3, 4)),
    "beamstop-masked": lambda rng: DetectorSettings(
        peak_counts=_photons(rng, 5, 7), beamstop_px=int(rng.integers(2, 9)), beamstop_masked=True),
    "beamstop-unmasked": lambda rng: DetectorSettings(
        peak_counts=_photons(rng, 5, 7), beamstop_px=int(rng.integers(2, 9)), beamstop_masked=False),
    "gaps": lambda rng: DetectorSettings(peak_counts=_photons(rng, 5, 7), gap_px=int(rng.integers(2, 7)),
                                         gap_masked=bool(rng.random() < 0.5)),
    "hot": lambda rng: DetectorSettings(peak_counts=_photons(rng, 5, 7), hot_pixels=int(rng.integers(2, 11))),
    "saturated": lambda rng: DetectorSettings(peak_counts=_photons(rng, 6, 8),
                                              saturated_regions=int(rng.integers(1, 4))),
    "blur": lambda rng: DetectorSettings(peak_counts=_photons(rng, 5, 7),
                                         psf_sigma_px=round(float(rng.uniform(0.5, 2.0)), 3)),
    "truncated": lambda rng: DetectorSettings(peak_counts=_photons(rng, 5, 7),
                                              kept_fraction=round(float(rng.uniform(0.5, 0.75)), 3)),
    "off-centre": lambda rng: DetectorSettings(
        peak_counts=_photons(rng, 5, 7),
        centre_offset_px=tuple(round(float(rng.uniform(-0.5, 0.5)), 3) for _ in range(3))),
    "background": lambda rng: DetectorSettings(peak_counts=_photons(rng, 4, 6),
                                               background_counts=round(float(rng.uniform(0.5, 5.0)), 3)),
    "beamline": lambda rng: DetectorSettings(
        peak_counts=_photons(rng, 4, 7), psf_sigma_px=round(float(rng.uniform(0.5, 1.0)), 3),
        background_counts=round(float(rng.uniform(0.2, 2.0)), 3), beamstop_px=int(rng.integers(0, 9)),
        beamstop_masked=bool(rng.random() < 0.5), gap_px=int(rng.integers(2, 5)), hot_pixels=3,
        saturated_regions=int(rng.integers(0, 2))),
}
"""Every detector condition, by name: how its settings are drawn."""
