"""A user's measured scans as training samples (passive loss, no ground truth).

Every scan goes through the tool's own preparation (the configuration's
defaults: corrections, defect finding, centring, the automatic frame), exactly
as ``cdi-dip reconstruct`` would see it, and is then moved onto the model's
frame (:func:`~.resample.to_model_frame`). A scan that cannot be read or
cannot be moved is skipped and reported; training never stops for one bad scan.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from ..config import RunConfig
from ..errors import InvalidInputError
from .data import Batch, measured_batch
from .resample import check_frame, to_model_frame

log = logging.getLogger(__name__)

SCAN_SUFFIXES = (".cxi", ".h5", ".hdf5", ".nxs", ".npy", ".npz", ".tif", ".tiff")
"""Files in a folder that are taken as scans (a sub-folder is one scan of TIFF frames)."""


def scan_sources(paths: Sequence[Path]) -> list[str]:
    """The scans named: a file, a folder of TIFF frames, or a folder of such (each child one scan).

    A folder counts as one scan when it holds TIFF files directly; otherwise
    its files with a :data:`SCAN_SUFFIXES` suffix and its sub-folders are the scans.
    """
    sources: list[str] = []
    for path in map(Path, paths):
        if not path.exists():
            raise InvalidInputError(f"{path} does not exist: give scan files or folders of scans")
        if path.is_file() or any(p.suffix.lower() in (".tif", ".tiff") for p in path.iterdir()):
            sources.append(str(path))
            continue
        children = sorted(p for p in path.iterdir()
                          if p.is_dir() or p.suffix.lower() in SCAN_SUFFIXES and not p.name.startswith("."))
        sources.extend(str(p) for p in children)
    if not sources:
        raise InvalidInputError(f"no scan found in {', '.join(map(str, paths))}")
    return sources


def measured_samples(paths: Sequence[Path], size: int, dim: int,
                     cfg: RunConfig | None = None) -> tuple[Batch, list[str], list[dict[str, str]]]:
    """Prepared scans on the model's frame.

    Parameters
    ----------
    paths : sequence of pathlib.Path
        :func:`scan_sources`.
    size, dim : int
        The model's frame size per axis and dimensionality.
    cfg : RunConfig, optional
        Preparation settings (default: the defaults).

    Returns
    -------
    batch : Batch
        Counts and masks (no truth).
    used : list of str
        The scans in the batch.
    skipped : list of dict
        ``{"scan", "reason"}`` of every scan left out.

    Raises
    ------
    InvalidInputError
        No scan could be used.
    """
    from ..pipeline import load_scan

    cfg = (cfg or RunConfig()).validate()
    counts, valid, used, skipped = [], [], [], []
    for source in scan_sources(paths):
        try:
            measurement = load_scan(source, cfg)
            check_frame(measurement.shape, size, dim, where=f"{source} ({'x'.join(map(str, measurement.shape))})")
        except InvalidInputError as exc:
            log.warning("skipping %s: %s", source, exc)
            skipped.append({"scan": source, "reason": str(exc)})
            continue
        c, v = to_model_frame(torch.from_numpy(measurement.intensity.astype("float32")),
                              torch.from_numpy(measurement.valid), size)
        counts.append(c.numpy())
        valid.append(v.numpy())
        used.append(source)
    if not used:
        raise InvalidInputError(f"none of the {len(skipped)} scans can train a {dim}D model of {size} px: "
                                + (skipped[0]["reason"] if skipped else ""))
    return measured_batch(counts, valid), used, skipped


__all__ = ["SCAN_SUFFIXES", "measured_samples", "scan_sources"]
