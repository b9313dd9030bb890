"""What ``cdi-dip inspect`` reports about an input, as plain data.

The input goes through the same preparation as ``reconstruct`` (detector
corrections, defect finding, binning, framing), so what ``inspect`` shows is
what a reconstruction would use.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .config import RunConfig
from .errors import InvalidInputError
from .io.calibration import Calibration, resolve_calibration
from .io.readers import read_calibration, read_measurement
from .device import resolve_device
from .geometry import apply_geometry, voxel_size_m
from .prepare.frame import voxel_budget
from .prepare.stages import bin_oversampled, condition_detector, find_centre, frames_roi, prepare
from .types import Measurement

log = logging.getLogger(__name__)


@dataclass
class Inspection:
    """An input as read, after conditioning, and framed for the solvers."""

    read: Measurement
    conditioned: Measurement
    framed: Measurement


def _conditioned(read: Measurement, cfg: RunConfig, calibration: Calibration) -> Measurement:
    """``read`` through the detector corrections with ``calibration``'s dark and flat."""
    allow = cfg.input.allow_external_links
    return condition_detector(
        read, cfg.detector,
        dark=read_calibration(calibration.dark, "--dark", allow_external_links=allow),
        flat=read_calibration(calibration.flat, "--flat", allow_external_links=allow),
    )


def _calibrated(read: Measurement, cfg: RunConfig, calibration: Calibration) -> Measurement:
    """Detector corrections with the given and found calibration; found images that do not fit are left out.

    A dark or flat found beside the frames (:mod:`cdi_dip.io.calibration`) that
    cannot be read or cut to the frames is a guess gone wrong, not bad input:
    it is dropped with a warning, and recorded under ``calibration`` in the
    notes with what was used.
    """
    try:
        conditioned = _conditioned(read, cfg, calibration)
    except InvalidInputError as exc:
        if not calibration.found:
            raise
        log.warning("%s; running without the calibration found beside the frames (%s)",
                    exc, ", ".join(calibration.found.values()))
        note = {"found": dict(calibration.found), "used": False, "why": str(exc)}
        conditioned = _conditioned(read, cfg, calibration.without_found())
        return replace(conditioned, notes={**conditioned.notes, "calibration": note})
    if not calibration.found:
        return conditioned
    log.info("calibration found beside the frames and applied: %s",
             ", ".join(f"{role} {path}" for role, path in calibration.found.items()))
    region = frames_roi(cfg.detector, read)
    note = {"found": dict(calibration.found), "used": True,
            "detector_region": [list(r) for r in region] if region is not None else None}
    return replace(conditioned, notes={**conditioned.notes, "calibration": note})


def inspect_input(source: str, cfg: RunConfig, *, mask_specs: Sequence[str] = (),
                  calibration: Calibration | None = None) -> Inspection:
    """Read an input and prepare it as ``reconstruct`` would (raises InvalidInputError on bad input).

    ``calibration`` is the dark and flat to use when the caller has already
    resolved them (:func:`cdi_dip.io.calibration.resolve_calibration`); by
    default they are resolved here.
    """
    allow = cfg.input.allow_external_links
    read = read_measurement(source, mask_specs=mask_specs, allow_external_links=allow)
    read = replace(read, meta=apply_geometry(read.meta, cfg.geometry))
    if calibration is None:
        calibration = resolve_calibration(source, cfg.detector.dark, cfg.detector.flat)
    conditioned = _calibrated(read, cfg, calibration)
    budget = cfg.prep.max_voxels or voxel_budget(resolve_device(cfg.device).type)
    if cfg.detector.bin is None:  # --bin given (even 1): the user's binning stands
        conditioned = bin_oversampled(conditioned, cfg.prep, voxel_budget=budget)
    return Inspection(read=read, conditioned=conditioned,
                      framed=prepare(conditioned, cfg.prep, voxel_budget=budget))


def _box(mask: np.ndarray) -> list[list[int]]:
    """``[start, stop)`` per axis of the pixels of a mask."""
    where = np.argwhere(mask)
    return [[int(lo), int(hi) + 1] for lo, hi in zip(where.min(axis=0), where.max(axis=0))]


def _detector_pixels(mask: np.ndarray) -> int:
    """Detector pixels a mask touches (in a stack: in any frame)."""
    return int(np.count_nonzero(mask.any(axis=0) if mask.ndim == 3 else mask))


def _voxel_nm(measurement: Measurement) -> list[float] | None:
    """The object voxel size of a framed measurement in nm per axis (None: geometry unknown)."""
    voxel = voxel_size_m(measurement.meta, measurement.shape)
    return [v * 1e9 for v in voxel] if voxel is not None else None


def describe(inspection: Inspection, *, source: str) -> dict[str, Any]:
    """Summary of an inspection as plain data.

    Returns
    -------
    dict
        ``shape``, ``dtype``, total and maximum counts, peak position, valid
        fraction, the excluded pixels by reason (``excluded``: pixels or
        voxels; ``excluded_detector_px``: detector pixels, a stack's frames
        together; ``excluded_box``: where they lie), facts found
        (``preparation``: saturation, aliens kept...), pixels held out of a
        first pass (``provisional``: a found beamstop's rim), geometry, and the frame
        ``reconstruct`` would use (``suggested_frame``, ``suggested_roi`` in
        detector pixels).
    """
    conditioned, framed = inspection.conditioned, inspection.framed
    intensity, valid = conditioned.intensity, conditioned.valid
    counts = intensity[valid]
    meta = conditioned.meta
    masks = {reason: mask for reason, mask in conditioned.masks.items() if mask.any()}
    return {
        "input": source,
        "name": conditioned.name,
        "shape": list(inspection.read.shape),
        "dtype": str(inspection.read.intensity.dtype),
        "conditioned_shape": list(conditioned.shape),
        "total_counts": float(counts.sum()),
        "max_counts": float(counts.max()) if counts.size else 0.0,
        "peak_px": [int(i) for i in np.unravel_index(int(np.argmax(np.where(valid, intensity, -1))), intensity.shape)],
        "centre_px": [int(c) for c in find_centre(intensity, valid, RunConfig().prep.centre)],
        "zero_fraction": float(np.mean(counts == 0)) if counts.size else 1.0,
        "valid_fraction": float(valid.mean()),
        "excluded": dict(conditioned.excluded),
        "excluded_detector_px": {reason: _detector_pixels(mask) for reason, mask in masks.items()},
        "excluded_box": {reason: _box(mask) for reason, mask in masks.items()},
        "preparation": dict(conditioned.notes),
        "provisional": {"beamstop_rim": int(np.count_nonzero(conditioned.provisional))}
        if conditioned.provisional is not None else {},
        "wavelength_m": meta.wavelength_m,
        "distance_m": meta.distance_m,
        "pixel_size_m": list(meta.pixel_size_m) if meta.pixel_size_m else None,
        "rocking_step_deg": meta.rocking_step_deg,
        "detector_angles_deg": list(meta.detector_angles_deg) if meta.detector_angles_deg else None,
        "voxel_size_nm": _voxel_nm(framed),
        "suggested_frame": list(framed.shape),
        "suggested_roi": [list(r) for r in framed.roi],
        "auto_frame": framed.notes.get("auto_frame"),
    }
