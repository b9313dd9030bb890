"""What ``cdi-dip inspect`` reports about an input, as plain data."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .config import PrepConfig
from .io.readers import read_measurement
from .preprocess import find_centre, prepare


def describe(source: str, *, mask_specs: Sequence[str] = (), max_size: int | None = None) -> dict[str, Any]:
    """Read an input and summarise it.

    Returns
    -------
    dict
        ``shape``, ``dtype``, total and maximum counts, peak position, valid
        fraction, excluded pixels by reason, geometry, and the frame that
        ``reconstruct`` would use (shape and detector region).
    """
    measurement = read_measurement(source, mask_specs=mask_specs)
    intensity, valid = measurement.intensity, measurement.valid
    cfg = PrepConfig(max_size=max_size)
    prepared = prepare(measurement, cfg)
    meta = measurement.meta
    counts = intensity[valid]
    return {
        "input": source,
        "name": measurement.name,
        "shape": list(measurement.shape),
        "dtype": str(intensity.dtype),
        "total_counts": float(counts.sum()),
        "max_counts": float(counts.max()) if counts.size else 0.0,
        "peak_px": [int(i) for i in np.unravel_index(int(np.argmax(np.where(valid, intensity, -1))), intensity.shape)],
        "centre_px": list(find_centre(intensity, valid, cfg.centre)),
        "zero_fraction": float(np.mean(counts == 0)) if counts.size else 1.0,
        "valid_fraction": float(valid.mean()),
        "excluded": dict(measurement.excluded),
        "wavelength_m": meta.wavelength_m,
        "distance_m": meta.distance_m,
        "pixel_size_m": list(meta.pixel_size_m) if meta.pixel_size_m else None,
        "suggested_frame": list(prepared.shape),
        "suggested_roi": [list(r) for r in prepared.roi],
    }
