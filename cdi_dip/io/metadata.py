"""Geometry from a ``metadata.json`` beside a folder (or glob) of TIFF frames.

The keys are those of the APS 34-ID-C example (``energy_keV``,
``detector_distance_m``, ``pixel_size_m`` (one number or ``[y, x]``),
``rocking_step_deg``, ``angles_deg: {delta, gamma}``,
``diffractometer_xrayutilities: {pixel_orientation: [rows, columns]}``, and
the detector region the frames were read from, ``detector_roi_start_size:
[y0, ny, x0, nx]`` or ``detector_roi: [y0, y1, x0, x1]``).
The file is looked for in the frames' folder, then in its parent. Unknown or
unusable keys are left out with a warning: geometry is optional.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from ..geometry import wavelength_m_from_kev
from ..types import ScanMeta

log = logging.getLogger(__name__)

__all__ = ["METADATA_NAME", "find_metadata", "read_metadata"]

METADATA_NAME = "metadata.json"

_MAX_BYTES = 1 << 20  # a geometry file is a few kB: anything larger is not one


def find_metadata(frames: Path) -> Path | None:
    """``metadata.json`` in the folder of the frames (``frames`` itself if a folder), else in its parent."""
    folder = frames if frames.is_dir() else frames.parent
    for candidate in (folder / METADATA_NAME, folder.parent / METADATA_NAME):
        if candidate.is_file():
            return candidate
    return None


def _finite(value: Any) -> float | None:
    """A real finite number as float, else None (booleans are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _positive(value: Any) -> float | None:
    number = _finite(value)
    return number if number is not None and number > 0 else None


def _pixel(value: Any) -> tuple[float, float] | None:
    values = [_positive(v) for v in (value if isinstance(value, list) else [value, value])]
    return (values[0], values[1]) if len(values) == 2 and None not in values else None


def _angles(value: Any) -> tuple[float, float] | None:
    if not isinstance(value, dict):
        return None
    delta, gamma = _finite(value.get("delta")), _finite(value.get("gamma"))
    return (delta, gamma) if delta is not None and gamma is not None else None


def _orientation(data: dict[str, Any]) -> dict[str, str]:
    block = data.get("diffractometer_xrayutilities")
    axes = block.get("pixel_orientation") if isinstance(block, dict) else None
    if isinstance(axes, list) and len(axes) == 2 and all(isinstance(a, str) for a in axes):
        return {"pixel_orientation": ",".join(axes)}
    return {}


def _integers(value: Any, count: int) -> list[int] | None:
    """``count`` non-negative integers (booleans and floats are not), else None."""
    if not isinstance(value, list) or len(value) != count:
        return None
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
        return None
    return [int(v) for v in value]


def _detector_roi(data: dict[str, Any]) -> tuple[int, int, int, int] | None:
    """``(y0, y1, x0, x1)`` from ``detector_roi`` or ``detector_roi_start_size`` (sizes positive), else None."""
    bounds = _integers(data.get("detector_roi"), 4)
    if bounds is None:
        start_size = _integers(data.get("detector_roi_start_size"), 4)
        if start_size is not None:
            y0, ny, x0, nx = start_size
            bounds = [y0, y0 + ny, x0, x0 + nx]
    if bounds is None or not (bounds[0] < bounds[1] and bounds[2] < bounds[3]):
        return None
    return (bounds[0], bounds[1], bounds[2], bounds[3])


def read_metadata(path: Path) -> ScanMeta:
    """The geometry a ``metadata.json`` gives (fields it lacks stay None; an unreadable file gives none)."""
    try:
        if path.stat().st_size > _MAX_BYTES:
            raise ValueError(f"larger than {_MAX_BYTES} bytes")
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        log.warning("ignoring %s: %s", path, exc)
        return ScanMeta()
    energy = _positive(data.get("energy_keV"))
    step = _finite(data.get("rocking_step_deg"))
    meta = ScanMeta(
        wavelength_m=wavelength_m_from_kev(energy) if energy is not None else None,
        distance_m=_positive(data.get("detector_distance_m")),
        pixel_size_m=_pixel(data.get("pixel_size_m")),
        rocking_step_deg=abs(step) if step else None,
        detector_angles_deg=_angles(data.get("angles_deg")),
        detector_roi=_detector_roi(data),
        extra=_orientation(data),
    )
    log.info("geometry from %s: %s", path, meta)
    return meta
