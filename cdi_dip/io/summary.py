"""The ``summary.json`` contract of one scan (DESIGN.md)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..geometry import voxel_size_m
from ..types import Result


def make_summary(result: Result, folder: Path, files: Sequence[Path]) -> dict[str, Any]:
    """The ``summary.json`` of one scan whose files are (or will be) in ``folder``."""
    name = result.measurement.name
    metrics = {k: v for k, v in result.metrics.items() if k not in ("iterations", "seconds_per_iteration")}
    summary = {
        "input": result.measurement.source,
        "output": str(folder / f"{name}.cxi"),
        "files": [str(f) for f in files],
        "method": result.method,
        "status": "ok",
        "interrupted": result.interrupted,
        "device": result.device,
        "shape": list(result.measurement.shape),
        "roi": [list(r) for r in result.measurement.roi],
        "excluded": dict(result.measurement.excluded),
        "preparation": dict(result.measurement.notes),
        "iterations": result.iterations,
        "runs": len(result.runs),
        "wall_s": round(result.wall_s, 3),
        "seconds_per_iteration": result.metrics.get("seconds_per_iteration"),
        "metrics": metrics,
        "seed": result.seed,
        "version": __version__,
        "versions": result.versions,
        "alignment": {"shift_px": list(result.align.shift_px), "ramp_rad_per_px": list(result.align.ramp_rad_per_px),
                      "phase_offset_rad": result.align.phase_offset_rad, "twin": result.align.twin},
        "config": result.config,
    }
    voxel = voxel_size_m(result.measurement.meta, np.shape(result.obj))
    if voxel is not None:
        summary["voxel_size_nm"] = [v * 1e9 for v in voxel]
    if result.beamstop_rim is not None:
        summary["beamstop_rim"] = result.beamstop_rim.summary()
    if result.ensemble is not None:
        summary["ensemble"] = result.ensemble.summary()
    if result.prtf is not None:
        summary["resolution"] = result.prtf.summary()
    return summary

