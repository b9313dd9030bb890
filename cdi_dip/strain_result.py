"""``cdi-dip strain`` as a library call: a written 3D Bragg result in, strain files out.

Reads the result (:func:`cdi_dip.io.result_cxi.read_result_cxi`), completes
its geometry from the options (:func:`cdi_dip.geometry.bragg_geometry`),
computes the maps (:func:`cdi_dip.strain.strain_maps`) and writes them
(:func:`cdi_dip.io.strain_files.write_strain_files`). Every problem with the
input is an :class:`~cdi_dip.errors.InvalidInputError` naming what to give.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import __version__
from .config import GeometryConfig
from .errors import InvalidInputError
from .geometry import apply_geometry, bragg_geometry, strain_weights_per_m, voxel_size_m
from .strain import strain_maps
from .types import ScanMeta

__all__ = ["strain_of_result"]


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


def strain_of_result(path: Path, out_dir: Path | None = None, *, geometry: GeometryConfig | None = None,
                     d_spacing_nm: float | None = None, bragg_angle_deg: float | None = None,
                     command_line: str = "") -> dict[str, Any]:
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
    command_line : str
        For the record in ``strain.cxi``.

    Returns
    -------
    dict
        ``result``, ``files``, ``voxel_size_nm`` and the strain summary (:meth:`StrainMaps.summary`).

    Raises
    ------
    InvalidInputError
        A missing or unreadable file, a 2D result, incomplete geometry.
    """
    from .io.result_cxi import read_result_cxi
    from .io.strain_files import write_strain_files

    path = Path(path)
    stored = read_result_cxi(path).result
    if stored.obj.ndim != 3:
        raise InvalidInputError(f"{path} holds a 2D object: strain needs a 3D Bragg CDI result")
    meta = apply_geometry(stored.measurement.meta, geometry or GeometryConfig())
    meta, q_norm = _complete(meta, d_spacing_nm, bragg_angle_deg, path)
    maps = strain_maps(stored.obj, stored.support, q_norm, strain_weights_per_m(meta, stored.obj.shape))
    voxel = voxel_size_m(meta, stored.obj.shape)
    if voxel is None:  # no rocking step: the rocking axis keeps a unit of 1 nm in the files, said in the summary
        voxel = (1e-9, *voxel_size_m(meta, stored.obj.shape[1:]))
    voxel_nm = tuple(v * 1e9 for v in voxel)
    out = Path(out_dir) if out_dir is not None else path.parent
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInputError(f"cannot create the output folder {out}: {exc.strerror}") from None
    files = write_strain_files(out, stored.measurement.name, maps, stored.obj, meta, voxel_nm,
                               {"source": str(path), "command": command_line, "version": __version__})
    summary = {"result": str(path), "files": [str(f) for f in files], "voxel_size_nm": list(voxel_nm),
               **maps.summary()}
    if meta.rocking_step_deg is None:
        summary["note"] = "rocking step unknown: the rocking axis is drawn at 1 nm per frame (--rocking-step-deg)"
    return summary
