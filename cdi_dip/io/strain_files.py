"""Write the strain of a Bragg result: ``strain.cxi``, TIFFs, a VTI and ``strain.png``.

``strain.cxi`` (HDF5, CXI/NeXus-style, every array in the object's
detector-frame shape, NaN outside the support)::

    /entry_1/strain_1/strain            float32, dimensionless, along Q
    /entry_1/strain_1/displacement      float32, m, along Q, zero mean
    /entry_1/strain_1/phase_unwrapped   float32, rad
    /entry_1/strain_1/amplitude         float32
    /entry_1/strain_1/support           uint8, 1 = inside
    /entry_1/strain_1/voxel_size_nm     float64 (3,), array order
    /entry_1/strain_1/q_norm            rad/m
    /entry_1/strain_1/strain_weights    1/m per array axis
    /entry_1/strain_1/source, conventions, command, version
    /entry_1/instrument_1/...           the geometry used

The input result is only read, never changed.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

import h5py
import numpy as np

from ..report.png import write_strain_figure
from ..strain import StrainMaps
from ..types import ScanMeta
from ._atomic import atomic_write
from .cxi import compression, nx_group, write_entry, write_instrument, write_root_attrs
from .vtk import write_vti
from .writers import write_tiff

__all__ = ["CONVENTIONS", "write_strain_files"]

CONVENTIONS = ("phase = Q . u (its twin flips the sign of u and strain); u and strain along Q; detector frame "
               "(not orthogonalised): strain = sum_i w_i du/dn_i with w_i = Q/|Q| . (dual of the step vector a_i), "
               "see cdi_dip.geometry")


def _dataset(group: h5py.Group, name: str, array: np.ndarray, units: str) -> None:
    dataset = group.create_dataset(name, data=array, **compression(array))
    dataset.attrs["units"] = units


def _write_cxi(path: Path, maps: StrainMaps, obj: np.ndarray, meta: ScanMeta, voxel_nm: tuple[float, ...],
               provenance: dict[str, str]) -> Path:
    with atomic_write(path) as tmp, h5py.File(tmp, "w") as file:
        write_root_attrs(file, path)
        entry = write_entry(file, default="strain_1")
        group = nx_group(entry, "strain_1", "NXdata")
        group.attrs["signal"] = "strain"
        _dataset(group, "strain", maps.strain.astype(np.float32), "")
        _dataset(group, "displacement", maps.displacement_m.astype(np.float32), "m")
        _dataset(group, "phase_unwrapped", maps.phase_rad.astype(np.float32), "rad")
        _dataset(group, "amplitude", np.abs(obj).astype(np.float32), "")
        _dataset(group, "support", maps.support.astype(np.uint8), "")
        _dataset(group, "voxel_size_nm", np.asarray(voxel_nm, dtype=np.float64), "nm")
        _dataset(group, "q_norm", np.float64(maps.q_norm_per_m), "rad/m")
        _dataset(group, "strain_weights", maps.weights_per_m, "1/m")
        for key, text in {**provenance, "conventions": CONVENTIONS,
                          "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}.items():
            group.create_dataset(key, data=text, dtype=h5py.string_dtype())
        write_instrument(entry, meta)
    return path


def write_strain_files(directory: Path, name: str, maps: StrainMaps, obj: np.ndarray, meta: ScanMeta,
                       voxel_nm: tuple[float, ...], provenance: dict[str, str]) -> list[Path]:
    """Write every strain file into ``directory`` (which must exist), each atomically.

    Parameters
    ----------
    directory : pathlib.Path
    name : str
        Scan name: ``<name>_strain.tif``, ``<name>_displacement_nm.tif``, ``<name>_strain.vti``.
    maps : StrainMaps
    obj : numpy.ndarray, complex, shape (n_rocking, ny, nx)
        The object the maps were made from.
    meta : ScanMeta
        Geometry used.
    voxel_nm : tuple of 3 float
        Voxel size, array order, nm.
    provenance : dict of str to str
        ``source``, ``command``, ``version``: stored in ``strain.cxi``.

    Returns
    -------
    list of pathlib.Path
        ``strain.cxi``, the two TIFFs, the VTI and ``strain.png``.
    """
    directory = Path(directory)
    displacement_nm = maps.displacement_m * 1e9
    return [
        _write_cxi(directory / "strain.cxi", maps, obj, meta, voxel_nm, provenance),
        write_tiff(directory / f"{name}_strain.tif", maps.strain, voxel_nm=voxel_nm),
        write_tiff(directory / f"{name}_displacement_nm.tif", displacement_nm, voxel_nm=voxel_nm),
        write_vti(directory / f"{name}_strain.vti", np.abs(obj), maps.phase_rad, spacing=tuple(reversed(voxel_nm)),
                  extra={"displacement_nm": displacement_nm, "strain": maps.strain}),
        write_strain_figure(directory / "strain.png", maps, voxel_nm, f"{name}: strain along Q"),
    ]
