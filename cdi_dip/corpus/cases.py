"""Corpus cases, made deterministically from seeds, and written as CXI input files.

Case ``k`` of a half, for a dimensionality ``d``, a family ``f`` and a
condition ``c``, has the seed ``half.seeds[k]``. The object (frame size,
family parameters, the object itself) is drawn from
``default_rng([seed, d, key(f)])``, so every condition of a half sees the
same objects (paired comparisons); the detector settings and noise from
``default_rng([seed, d, key(f), key(c)])``. ``key`` is the CRC-32 of the
name: adding a family or a condition changes no other case.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidInputError
from ..io.cxi import write_measurement_cxi
from ..simulate import (DISTANCE_M, PIXEL_SIZE_M, WAVELENGTH_M, expected_intensity, offset_ramp,
                        pixel_integrated_intensity)
from ..types import ScanMeta
from .catalogue import CONDITIONS, FAMILIES, Family
from .detector import DetectorSettings, detect, truncate_pattern
from .split import half as half_spec

log = logging.getLogger(__name__)

FRAME_SIZES = {2: (128, 160, 192, 256, 320, 384, 512), 3: (48, 64, 80, 96, 128)}
"""Frame sizes per axis of the full corpus, pixels (FFT-friendly)."""

QUICK_FRAME_SIZES = {2: (32, 48, 64), 3: (24, 32)}
"""Frame sizes per axis of ``quick=True``, pixels."""


@dataclass
class CorpusCase:
    """One case of the corpus: a ground truth and what a detector recorded of it.

    Attributes
    ----------
    label : str
        ``<half>/<d>d/<family>/<condition>/<seed>``, unique.
    family, condition : str
        Names in :data:`~.catalogue.FAMILIES`, :data:`~.catalogue.CONDITIONS`.
    half : str
        ``"tuning"`` or ``"reporting"``.
    seed : int
    kind : str
        ``"crystal"`` or ``"specimen"``.
    truth : numpy.ndarray, complex64, frame shape
        The centred object, scaled so that ``|F(truth)|**2`` is the coherent
        expected count (before blur, background and defects).
    counts : numpy.ndarray, float32, frame shape
        Photon counts as the file holds them.
    valid : numpy.ndarray, bool, frame shape
        The file's mask: True = measured (the CXI mask is its negation).
    params : dict
        The family's parameters for this case.
    settings : DetectorSettings
    """

    label: str
    family: str
    condition: str
    half: str
    seed: int
    kind: str
    truth: np.ndarray
    counts: np.ndarray
    valid: np.ndarray
    params: dict[str, Any] = field(default_factory=dict)
    settings: DetectorSettings | None = None

    @property
    def dim(self) -> int:
        return self.truth.ndim

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.truth.shape)

    @property
    def oversampling(self) -> tuple[float, ...]:
        """Measured oversampling per axis: frame size over :func:`object_extent_px`."""
        return tuple(n / e for n, e in zip(self.shape, object_extent_px(self.truth)))


FAINT_FRACTION = 0.1
"""Magnitudes below this fraction of the maximum are not part of the object in :func:`object_extent_px`."""


def object_extent_px(obj: np.ndarray, threshold: float = 0.5) -> tuple[int, ...]:
    """Bounding-box size per axis of the pixels above ``threshold`` times the median nonzero magnitude.

    The median (not the maximum) makes the figure the same for a flat crystal
    (amplitude ~1) and a textured specimen (a dense nucleus in a thin
    cytoplasm); 0.5 counts a smoothed edge pixel when it is more than half in.
    Pixels under :data:`FAINT_FRACTION` of the maximum are left out of the
    median: the faint ringing around a band-limited truth (the ``truncated``
    condition) is nonzero everywhere.

    Parameters
    ----------
    obj : numpy.ndarray, 2D or 3D
    threshold : float
        Fraction of the median magnitude of the nonzero pixels.

    Returns
    -------
    tuple of int, one per axis (0 for a zero object)
    """
    magnitude = np.abs(obj)
    nonzero = magnitude[magnitude > FAINT_FRACTION * magnitude.max()] if magnitude.size else magnitude
    if nonzero.size == 0:
        return (0,) * obj.ndim
    inside = magnitude > threshold * np.median(nonzero)
    extents = []
    for axis in range(obj.ndim):
        occupied = np.flatnonzero(inside.any(axis=tuple(a for a in range(obj.ndim) if a != axis)))
        extents.append(int(occupied[-1] - occupied[0] + 1) if occupied.size else 0)
    return tuple(extents)


def case_key(name: str) -> int:
    """A stable integer for a family or condition name (CRC-32), for seeding."""
    return zlib.crc32(name.encode())


def draw_frame(rng: np.random.Generator, dim: int, *, quick: bool) -> tuple[int, ...]:
    """A frame shape: square in 2D; in 3D the rocking axis (axis 0) drawn apart from the two detector axes."""
    sizes = (QUICK_FRAME_SIZES if quick else FRAME_SIZES)[dim]
    detector = int(rng.choice(sizes))
    return (detector, detector) if dim == 2 else (int(rng.choice(sizes)), detector, detector)


@dataclass
class _Drawn:
    """An object drawn for one (seed, dimension, family), shared by every condition."""

    obj: np.ndarray
    params: dict[str, Any]
    expected: np.ndarray


def _draw_object(family: Family, seed: int, dim: int, *, quick: bool) -> _Drawn:
    rng = np.random.default_rng([seed, dim, case_key(family.name)])
    frame = draw_frame(rng, dim, quick=quick)
    params = family.draw(rng, dim)
    obj = family.make(frame, rng, **params)
    return _Drawn(obj=obj, params=params, expected=expected_intensity(obj))


def _detect_case(drawn: _Drawn, family: Family, condition: str, seed: int, half_name: str) -> CorpusCase:
    dim = drawn.obj.ndim
    rng = np.random.default_rng([seed, dim, case_key(family.name), case_key(condition)])
    settings = CONDITIONS[condition](rng)
    obj, expected = drawn.obj, drawn.expected
    if settings.kept_fraction < 1:  # the frame holds the centre of the pattern: a band-limited truth
        obj = truncate_pattern(drawn.obj, settings.kept_fraction)
        expected = expected_intensity(obj)
    if any(settings.centre_offset_px[:dim]):  # the zero frequency inside its pixel: a ramp on the object
        expected = expected_intensity(obj * offset_ramp(obj.shape, settings.centre_offset_px[:dim]))
    detection = detect(expected, settings, rng)
    scale = settings.peak_counts / expected.max()
    truth = (obj.astype(np.complex128) * np.sqrt(scale)).astype(np.complex64)
    return CorpusCase(label=f"{half_name}/{dim}d/{family.name}/{condition}/{seed}", family=family.name,
                      condition=condition, half=half_name, seed=seed, kind=family.kind, truth=truth,
                      counts=detection.counts, valid=detection.valid, params=drawn.params, settings=settings)


def moved_off_centre(case: CorpusCase) -> CorpusCase:
    """The case detected again with its zero frequency at a random point inside its pixel, as on a real detector.

    The offset (up to half a pixel per axis, the same for every method,
    seeded by the case) is a phase ramp on the ground truth before its
    intensity is taken; the case's own detector settings (noise, blur,
    beamstop, defects) are applied again with a fresh draw. The truth stays
    centred; the label gains ``+off-centre``. For the corpus's other
    conditions, whose zero frequency sits on the centre pixel.
    """
    dim = case.truth.ndim
    rng = np.random.default_rng([case.seed, dim, case_key(case.family), case_key(case.condition),
                                 case_key("off-centre")])
    offset = tuple(round(float(rng.uniform(-0.5, 0.5)), 3) for _ in range(dim))
    settings = replace(case.settings, centre_offset_px=offset + (0.0,) * (3 - dim))
    detection = detect(expected_intensity(case.truth * offset_ramp(case.truth.shape, offset)), settings, rng)
    return replace(case, label=f"{case.label}+off-centre", counts=detection.counts, valid=detection.valid,
                   settings=settings)


def integrated_over_pixels(case: CorpusCase) -> CorpusCase:
    """The case detected again with its intensity averaged over each pixel, as a real detector records it.

    The corpus samples the far field at the pixels' centres
    (:func:`cdi_dip.simulate.expected_intensity`); a detector pixel
    integrates it over its width (:func:`cdi_dip.simulate.pixel_integrated_intensity`),
    which scales the pattern's autocorrelation by up to a third at the edge of
    the field of view. The case's own detector settings are applied again with
    a fresh draw; the label gains ``+pixels``. Applied after
    :func:`moved_off_centre` it keeps that case's offset.
    """
    dim = case.truth.ndim
    rng = np.random.default_rng([case.seed, dim, case_key(case.family), case_key(case.condition),
                                 case_key("pixels")])
    offset = case.settings.centre_offset_px[:dim]
    obj = case.truth * offset_ramp(case.truth.shape, offset) if any(offset) else case.truth
    detection = detect(pixel_integrated_intensity(obj), case.settings, rng)
    return replace(case, label=f"{case.label}+pixels", counts=detection.counts, valid=detection.valid)


def _selected(names: Sequence[str], wanted: Sequence[str] | None, what: str, half_name: str) -> list[str]:
    if wanted is None:
        return list(names)
    unknown = [w for w in wanted if w not in names]
    if unknown:
        raise InvalidInputError(f"{what} {', '.join(unknown)} not in the {half_name} half; "
                                f"choose from {', '.join(names)}")
    return [n for n in names if n in wanted]


def corpus_cases(half: str, *, dims: Sequence[int] = (2, 3), quick: bool = False, per_family: int = 1,
                 families: Sequence[str] | None = None,
                 conditions: Sequence[str] | None = None) -> Iterator[CorpusCase]:
    """The cases of one half, made one at a time, always the same for the same arguments.

    Order: seed index ``k``, then dimensionality, family and condition in
    the half's order (so the first cases already cover many families).

    Parameters
    ----------
    half : {"tuning", "reporting"}
    dims : sequence of int
        2, 3 or both.
    quick : bool
        Small frames (:data:`QUICK_FRAME_SIZES`) instead of :data:`FRAME_SIZES`.
    per_family : int
        Seeds per (dimensionality, family, condition), at most the half's
        1000 seeds.
    families, conditions : sequence of str, optional
        Only these (each must be in the half); default all of the half's.

    Yields
    ------
    CorpusCase
    """
    spec = half_spec(half)
    if not 1 <= per_family <= len(spec.seeds):
        raise InvalidInputError(f"per_family={per_family}: give 1 to {len(spec.seeds)}")
    if not dims or any(d not in (2, 3) for d in dims):
        raise InvalidInputError(f"dims {tuple(dims)}: give 2, 3 or both")
    family_names = _selected(spec.families, families, "families", spec.name)
    condition_names = _selected(spec.conditions, conditions, "conditions", spec.name)
    for seed in spec.seeds[:per_family]:
        for dim in dims:
            for name in family_names:
                family = FAMILIES[name]
                if dim not in family.dims:
                    continue
                drawn = _draw_object(family, seed, dim, quick=quick)
                for condition in condition_names:
                    yield _detect_case(drawn, family, condition, seed, spec.name)


def scan_meta(case: CorpusCase) -> ScanMeta:
    """The geometry of :mod:`cdi_dip.simulate` (9 keV, 1 m, 55 um pixels) and the case's label."""
    return ScanMeta(wavelength_m=WAVELENGTH_M, distance_m=DISTANCE_M, pixel_size_m=(PIXEL_SIZE_M, PIXEL_SIZE_M),
                    extra={"corpus_case": case.label})


def write_case(path: Path, case: CorpusCase) -> None:
    """Write a case as a CXI input file: counts, mask (nonzero = excluded), geometry and ground truth.

    Parameters
    ----------
    path : pathlib.Path
        The ``.cxi`` file; its directory must exist (written atomically).
    case : CorpusCase
    """
    write_measurement_cxi(Path(path), case.counts, valid=case.valid, meta=scan_meta(case), ground_truth=case.truth)
    log.info("wrote corpus case %s to %s", case.label, path)
