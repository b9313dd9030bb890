"""Write the strain of a Bragg result: ``strain.cxi``, TIFFs, a VTI and ``strain.png``.

``strain.cxi`` (HDF5, CXI/NeXus-style, every array in the shape of the
chosen frame's grid, NaN outside the support)::

    /entry_1/strain_1/strain            float32, dimensionless, along Q
    /entry_1/strain_1/displacement      float32, m, along Q, zero mean
    /entry_1/strain_1/phase_unwrapped   float32, rad
    /entry_1/strain_1/amplitude         float32
    /entry_1/strain_1/support           uint8, 1 = inside
    /entry_1/strain_1/frame             "detector", "lab" or "crystal"
    /entry_1/strain_1/axes              names of the array axes
    /entry_1/strain_1/voxel_size_nm     float64 (3,), array order
    /entry_1/strain_1/basis             float64 (3, 3), m: column i is the detector-frame
                                        step a_i in the lab (x, y, z) (when the rocking step is known)
    /entry_1/strain_1/detector_shape    int64 (3,): shape of the detector-frame object
    /entry_1/strain_1/rotation          float64 (3, 3), lab or crystal: row k is the lab
                                        unit vector of array axis k
    /entry_1/strain_1/origin_nm         float64 (3,), lab or crystal: frame coordinates of
                                        voxel [0, 0, 0] relative to the detector array's centre N // 2
    /entry_1/strain_1/q_norm            rad/m
    /entry_1/strain_1/strain_weights    1/m per array axis
    /entry_1/strain_1/source, conventions, command, version
    /entry_1/instrument_1/...           the geometry used

Orthogonal grid point ``m`` sits at the lab position ``rotation.T @ (origin +
voxel * m)``, and detector-frame voxel ``n`` at ``basis @ (n - detector_shape
// 2)`` (:mod:`cdi_dip.orthogonal`): enough to redo the transformation.

The input result is only read, never changed.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

import h5py
import numpy as np

from ..orthogonal import OrthogonalGrid
from ..report.png import write_strain_figure
from ..strain import StrainMaps, StrainView
from ..types import ScanMeta
from ._atomic import atomic_write
from .cxi import compression, nx_group, write_entry, write_instrument, write_root_attrs
from .vtk import write_vti
from .writers import write_tiff

__all__ = ["AXIS_NAMES", "CONVENTIONS", "STRAIN_CXI", "read_strain_view", "strain_file_names", "write_strain_files"]

CONVENTIONS = {
    "detector": ("phase = Q . u (its twin flips the sign of u and strain); u and strain along Q; detector frame "
                 "(not orthogonalised): strain = sum_i w_i du/dn_i with w_i = Q/|Q| . (dual of the step vector a_i), "
                 "see cdi_dip.geometry"),
    "lab": ("phase = Q . u (its twin flips the sign of u and strain); u and strain along Q; lab frame, array axes "
            "(z along the beam, y up, x), isotropic voxel, trilinear resampling of the complex object: "
            "strain = sum_k (Q/|Q| . e_k) / voxel du/dm_k, see cdi_dip.orthogonal"),
    "crystal": ("phase = Q . u (its twin flips the sign of u and strain); u and strain along Q; crystal frame, "
                "array axes (z' = Q/|Q|, y' = lab y made perpendicular to Q, x' = y' x z'), isotropic voxel, "
                "trilinear resampling of the complex object: strain = du/dm_0 / voxel, see cdi_dip.orthogonal"),
}
"""The ``conventions`` text of ``strain.cxi``, per frame."""

AXIS_NAMES = {"detector": ("rocking", "row", "column"), "lab": ("z (beam)", "y (up)", "x"),
              "crystal": ("z' (Q)", "y'", "x'")}
"""Names of the array axes of each frame, as the files and figure give them."""


STRAIN_CXI = "strain.cxi"
"""The strain file of a result folder, beside the result CXI."""


def strain_file_names(name: str) -> tuple[str, ...]:
    """Names of the files :func:`write_strain_files` writes for scan ``name``, in its order."""
    return (STRAIN_CXI, f"{name}_strain.tif", f"{name}_displacement_nm.tif", f"{name}_strain.vti", "strain.png")


def _dataset(group: h5py.Group, name: str, array: np.ndarray, units: str) -> None:
    dataset = group.create_dataset(name, data=array, **compression(array))
    dataset.attrs["units"] = units


def _write_frame(group: h5py.Group, frame: str, basis_m: np.ndarray | None, detector_shape: tuple[int, ...],
                 grid: OrthogonalGrid | None) -> None:
    """The frame's name and what redoes the transformation (:mod:`cdi_dip.orthogonal`)."""
    group.create_dataset("frame", data=frame, dtype=h5py.string_dtype())
    group.create_dataset("axes", data=list(AXIS_NAMES[frame]), dtype=h5py.string_dtype())
    _dataset(group, "detector_shape", np.asarray(detector_shape, dtype=np.int64), "")
    if basis_m is not None:
        _dataset(group, "basis", np.asarray(basis_m, dtype=np.float64), "m")
    if grid is not None:
        _dataset(group, "rotation", grid.rotation, "")
        _dataset(group, "origin_nm", grid.origin_m * 1e9, "nm")


def _write_cxi(path: Path, maps: StrainMaps, obj: np.ndarray, meta: ScanMeta, voxel_nm: tuple[float, ...],
               provenance: dict[str, str], frame: str, basis_m: np.ndarray | None, detector_shape: tuple[int, ...],
               grid: OrthogonalGrid | None) -> Path:
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
        _write_frame(group, frame, basis_m, detector_shape, grid)
        _dataset(group, "q_norm", np.float64(maps.q_norm_per_m), "rad/m")
        _dataset(group, "strain_weights", maps.weights_per_m, "1/m")
        for key, text in {**provenance, "conventions": CONVENTIONS[frame],
                          "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}.items():
            group.create_dataset(key, data=text, dtype=h5py.string_dtype())
        write_instrument(entry, meta)
    return path


def write_strain_files(directory: Path, name: str, maps: StrainMaps, obj: np.ndarray, meta: ScanMeta,
                       voxel_nm: tuple[float, ...], provenance: dict[str, str], *,
                       grid: OrthogonalGrid | None = None, basis_m: np.ndarray | None = None,
                       detector_shape: tuple[int, ...] | None = None) -> list[Path]:
    """Write every strain file into ``directory`` (which must exist), each atomically, in the maps' frame.

    Parameters
    ----------
    directory : pathlib.Path
    name : str
        Scan name: ``<name>_strain.tif``, ``<name>_displacement_nm.tif``, ``<name>_strain.vti``.
    maps : StrainMaps
        On the detector-frame array, or on ``grid``.
    obj : numpy.ndarray, complex, shape of the maps
        The object in the same frame (its amplitude is written).
    meta : ScanMeta
        Geometry used.
    voxel_nm : tuple of 3 float
        Voxel size, array order, nm.
    provenance : dict of str to str
        ``source``, ``command``, ``version``: stored in ``strain.cxi``.
    grid : OrthogonalGrid, optional
        The orthogonal grid of the maps (lab or crystal frame); None: detector frame.
    basis_m : numpy.ndarray, shape (3, 3), optional
        Detector-frame steps (columns, metres); default ``grid.basis_m``; None when unknown.
    detector_shape : tuple of 3 int, optional
        Shape of the detector-frame object; default ``grid.detector_shape``, else ``obj.shape``.

    Returns
    -------
    list of pathlib.Path
        ``strain.cxi``, the two TIFFs, the VTI and ``strain.png``.
    """
    directory = Path(directory)
    frame = "detector" if grid is None else grid.frame
    if basis_m is None and grid is not None:
        basis_m = grid.basis_m
    if detector_shape is None:
        detector_shape = grid.detector_shape if grid is not None else tuple(obj.shape)
    origin_nm = (0.0, 0.0, 0.0) if grid is None else tuple(float(v) for v in grid.origin_m * 1e9)
    displacement_nm = maps.displacement_m * 1e9
    note = "detector frame, not orthogonalised" if grid is None else f"{frame} frame, {voxel_nm[0]:.3g} nm voxels"
    return [
        _write_cxi(directory / STRAIN_CXI, maps, obj, meta, voxel_nm, provenance, frame, basis_m, detector_shape,
                   grid),
        write_tiff(directory / f"{name}_strain.tif", maps.strain, voxel_nm=voxel_nm),
        write_tiff(directory / f"{name}_displacement_nm.tif", displacement_nm, voxel_nm=voxel_nm),
        write_vti(directory / f"{name}_strain.vti", np.abs(obj), maps.phase_rad, spacing=tuple(reversed(voxel_nm)),
                  origin=tuple(reversed(origin_nm)), extra={"displacement_nm": displacement_nm, "strain": maps.strain}),
        write_strain_figure(directory / "strain.png", maps, voxel_nm, f"{name}: strain along Q",
                            axis_names=AXIS_NAMES[frame], origin_nm=origin_nm, frame=note),
    ]


def _text(group: h5py.Group, key: str) -> str:
    value = group[key][()]
    return value.decode() if isinstance(value, bytes) else str(value)


def read_strain_view(path: Path) -> StrainView:
    """The maps of a ``strain.cxi`` and where their voxels sit, for a figure.

    Parameters
    ----------
    path : pathlib.Path
        A ``strain.cxi`` of :func:`write_strain_files`.

    Returns
    -------
    StrainView
        With the shape of the detector-frame object the maps came from.

    Raises
    ------
    OSError, KeyError, ValueError
        The file does not open or lacks a dataset.
    """
    with h5py.File(path, "r") as file:
        group = file["/entry_1/strain_1"]
        support = group["support"][()].astype(bool)
        maps = StrainMaps(phase_rad=group["phase_unwrapped"][()].astype(np.float64),
                          displacement_m=group["displacement"][()].astype(np.float64),
                          strain=group["strain"][()].astype(np.float64), support=support,
                          q_norm_per_m=float(group["q_norm"][()]),
                          weights_per_m=np.asarray(group["strain_weights"][()], dtype=np.float64))
        frame = _text(group, "frame")
        axes = tuple(v.decode() if isinstance(v, bytes) else str(v) for v in group["axes"][()])
        origin = tuple(float(v) for v in group["origin_nm"][()]) if "origin_nm" in group else (0.0, 0.0, 0.0)
        voxel = tuple(float(v) for v in group["voxel_size_nm"][()])
        detector_shape = tuple(int(v) for v in group["detector_shape"][()])
    if maps.strain.ndim != 3 or len(voxel) != 3 or frame not in AXIS_NAMES:
        raise ValueError(f"{path} does not hold 3D strain maps")
    return StrainView(maps, voxel, frame, axes, origin, detector_shape)
