"""``cdi-dip strain`` as a library call: a written 3D Bragg result in, strain files out.

Reads the result (:func:`cdi_dip.io.result_cxi.read_result_cxi`), completes
its geometry from the options (:func:`cdi_dip.geometry.bragg_geometry`),
computes the maps in the chosen frame (:func:`cdi_dip.strain.strain_maps` on
the detector-frame array, or :func:`cdi_dip.strain.orthogonal_strain_maps`
on an orthogonal lab or crystal grid) and writes them
(:func:`cdi_dip.io.strain_files.write_strain_files`). Every problem with the
input is an :class:`~cdi_dip.errors.InvalidInputError` naming what to give.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .config import GeometryConfig
from .errors import InvalidInputError
from .geometry import (apply_geometry, bragg_geometry, q_direction, real_space_basis, strain_weights_per_m,
                       voxel_size_m)
from .orthogonal import FRAMES, OrthogonalGrid, orthogonal_grid
from .strain import StrainMaps, orthogonal_strain_maps, strain_maps
from .types import ScanMeta

__all__ = ["DEFAULT_FRAME", "strain_of_result"]

DEFAULT_FRAME = "lab"
"""Frame of the strain files when none is asked for: the lab's axes are those of the experiment and the viewers."""

log = logging.getLogger(__name__)


def _complete(meta: ScanMeta, d_spacing_nm: float | None, bragg_angle_deg: float | None,
              path: Path) -> tuple[ScanMeta, float]:
    """The geometry and ``|Q|``, or an InvalidInputError naming what is missing."""
    missing = [option for option, value in (("--energy-kev", meta.wavelength_m), ("--distance-m", meta.distance_m),
                                            ("--pixel-size-m", meta.pixel_size_m)) if value is None]
    if missing:
        raise InvalidInputError(f"{path} does not give the geometry: give {', '.join(missing)} (strain needs the "
                                "wavelength, distance and pixel size)")
    try:
        meta, q_norm = bragg_geometry(meta, d_spacing_m=None if d_spacing_nm is None else d_spacing_nm * 1e-9,
                                      bragg_angle_deg=bragg_angle_deg)
    except ValueError as exc:
        raise InvalidInputError(f"{path}: {exc}") from None
    return meta, q_norm


def _detector_frame(obj: np.ndarray, support: np.ndarray, meta: ScanMeta, q_norm: float
                    ) -> tuple[StrainMaps, np.ndarray, tuple[float, ...]]:
    """The maps on the detector-frame array, the object, and its voxel in nm (1 nm per frame without a step)."""
    maps = strain_maps(obj, support, q_norm, strain_weights_per_m(meta, obj.shape))
    voxel = voxel_size_m(meta, obj.shape)
    if voxel is None:  # no rocking step: the rocking axis keeps a unit of 1 nm in the files, said in the summary
        voxel = (1e-9, *voxel_size_m(meta, obj.shape[1:]))
    return maps, obj, tuple(v * 1e9 for v in voxel)


def _orthogonal_frame(obj: np.ndarray, support: np.ndarray, meta: ScanMeta, q_norm: float, frame: str,
                      path: Path) -> tuple[StrainMaps, np.ndarray, OrthogonalGrid]:
    """The maps on an orthogonal lab or crystal grid, the resampled object and the grid."""
    if meta.rocking_step_deg is None:
        raise InvalidInputError(f"{path}: the rocking step is unknown: give --rocking-step-deg (the {frame} frame "
                                "needs it) or --frame detector")
    q_hat = q_direction(meta)
    try:
        grid = orthogonal_grid(real_space_basis(meta, obj.shape), support, frame, q_hat)
    except ValueError as exc:
        raise InvalidInputError(f"{path}: {exc}") from None
    log.info("%s frame: %s grid of %.3g nm voxels (detector frame %s)", frame, grid.shape, grid.voxel_m * 1e9,
             obj.shape)
    maps, resampled = orthogonal_strain_maps(obj, support, grid, q_norm, q_hat)
    return maps, resampled, grid


def strain_of_result(path: Path, out_dir: Path | None = None, *, geometry: GeometryConfig | None = None,
                     d_spacing_nm: float | None = None, bragg_angle_deg: float | None = None,
                     frame: str = DEFAULT_FRAME, command_line: str = "") -> dict[str, Any]:
    """Displacement and strain along Q of a written 3D Bragg result, written beside it or into ``out_dir``.

    Parameters
    ----------
    path : pathlib.Path
        A result ``.cxi`` of ``cdi-dip reconstruct`` (never modified).
    out_dir : pathlib.Path, optional
        Folder for the files (created); default: the result's folder.
    geometry : GeometryConfig, optional
        Overrides of the stored geometry (energy, distance, detector angles).
    d_spacing_nm, bragg_angle_deg : float, optional
        The reflection, when the detector angles are not known (or to set ``|Q|`` exactly).
    frame : {"detector", "lab", "crystal"}
        Frame of the files: the detector-frame array as reconstructed, or an
        orthogonal isotropic grid (:mod:`cdi_dip.orthogonal`; needs the rocking step).
    command_line : str
        For the record in ``strain.cxi``.

    Returns
    -------
    dict
        ``result``, ``files``, ``frame``, ``voxel_size_nm`` (array order), ``shape`` and the strain summary
        (:meth:`StrainMaps.summary`).

    Raises
    ------
    InvalidInputError
        A missing or unreadable file, a 2D result, incomplete geometry, an unknown frame, an orthogonal
        frame without the rocking step.
    """
    from .io.result_cxi import read_result_cxi
    from .io.strain_files import write_strain_files

    if frame not in FRAMES:
        raise InvalidInputError(f"--frame {frame!r}: give one of {', '.join(FRAMES)}")
    path = Path(path)
    stored = read_result_cxi(path).result
    if stored.obj.ndim != 3:
        raise InvalidInputError(f"{path} holds a 2D object: strain needs a 3D Bragg CDI result")
    meta = apply_geometry(stored.measurement.meta, geometry or GeometryConfig())
    meta, q_norm = _complete(meta, d_spacing_nm, bragg_angle_deg, path)
    grid = None
    if frame == "detector":
        maps, obj, voxel_nm = _detector_frame(stored.obj, stored.support, meta, q_norm)
    else:
        maps, obj, grid = _orthogonal_frame(stored.obj, stored.support, meta, q_norm, frame, path)
        voxel_nm = (grid.voxel_m * 1e9,) * 3
    out = Path(out_dir) if out_dir is not None else path.parent
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInputError(f"cannot create the output folder {out}: {exc.strerror}") from None
    basis = real_space_basis(meta, stored.obj.shape) if meta.rocking_step_deg is not None else None
    files = write_strain_files(out, stored.measurement.name, maps, obj, meta, voxel_nm,
                               {"source": str(path), "command": command_line, "version": __version__},
                               grid=grid, basis_m=basis, detector_shape=tuple(stored.obj.shape))
    summary = {"result": str(path), "files": [str(f) for f in files], "frame": frame, "voxel_size_nm": list(voxel_nm),
               "shape": list(maps.strain.shape), **maps.summary()}
    if meta.rocking_step_deg is None:
        summary["note"] = "rocking step unknown: the rocking axis is drawn at 1 nm per frame (--rocking-step-deg)"
    return summary
