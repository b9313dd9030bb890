"""The CXI file layout (HDF5, https://www.cxidb.org/cxi.html): paths, geometry, input files.

A CXI *input* file (what ``cdi-dip simulate`` writes and ``reconstruct``
reads) holds the detector frames and their geometry::

    /cxi_version                                   150
    /entry_1/instrument_1/detector_1/data          counts, (ny, nx) or (nz, ny, nx)
    /entry_1/instrument_1/detector_1/mask          uint32, nonzero = excluded pixel
    /entry_1/instrument_1/detector_1/distance      m
    /entry_1/instrument_1/detector_1/x_pixel_size  m
    /entry_1/instrument_1/detector_1/y_pixel_size  m
    /entry_1/instrument_1/detector_1/delta         degree, detector arm (3D Bragg, optional)
    /entry_1/instrument_1/detector_1/gamma         degree, detector arm (3D Bragg, optional)
    /entry_1/instrument_1/detector_1/rocking_step  degree between frames (3D Bragg, optional)
    /entry_1/instrument_1/beam_1/incident_wavelength  m
    /entry_1/instrument_1/source_1/energy          J
    /entry_1/data_1/data                           soft link to detector_1/data (NXdata: @signal,
                                                   @axes ".", @interpretation "image")
    /entry_1/sample_1/ground_truth                 complex64 (simulations only)

Reading and writing of the geometry live here so that inputs and results
describe the instrument the same way.
"""

from __future__ import annotations

import datetime as _dt
import logging
from pathlib import Path
from collections.abc import Callable
from typing import Any

import h5py
import numpy as np

from .. import __version__
from ..errors import InvalidInputError
from ..types import ScanMeta
from ._atomic import atomic_write

log = logging.getLogger(__name__)

CXI_VERSION = 150

DETECTOR = "/entry_1/instrument_1/detector_1"
DETECTOR_DATA = f"{DETECTOR}/data"
DETECTOR_MASK = f"{DETECTOR}/mask"
IMAGE_DATA = "/entry_1/image_1/data"
ITERATE_STD = "/entry_1/image_1/iterate_std"
"""The double DIP's per-voxel iterate spread beside the object (result files; absent without one)."""
DATA_LINK = "/entry_1/data_1/data"
GROUND_TRUTH = "/entry_1/sample_1/ground_truth"
EXTRA_GROUP = "/entry_1/instrument_1/cdi_dip_meta"

#: Where measured frames are looked for, in order (DESIGN.md input contract).
DATA_PATHS = (DETECTOR_DATA, IMAGE_DATA, DATA_LINK)

_PLANCK_J_S = 6.62607015e-34
_LIGHT_M_S = 299792458.0


def energy_j_from_wavelength(wavelength_m: float) -> float:
    """Photon energy in joules of a wavelength in metres (``E = h c / lambda``)."""
    return _PLANCK_J_S * _LIGHT_M_S / wavelength_m


def wavelength_m_from_energy(energy_j: float) -> float:
    """Wavelength in metres of a photon energy in joules (``lambda = h c / E``)."""
    return _PLANCK_J_S * _LIGHT_M_S / energy_j


Getter = Callable[[str], Any]
"""Looks up a path in an open file: the object, or None when absent (see :func:`plain_getter`)."""


def plain_getter(file: h5py.File) -> Getter:
    """``file.get``, with a link that cannot be followed (a loop, a missing file) read as absent."""

    def get(path: str) -> Any:
        try:
            return file.get(path)
        except (KeyError, RuntimeError, OSError, ValueError) as exc:
            log.warning("ignoring %s in %s: %s", path, file.filename, exc)
            return None

    return get


def is_cxi(file: h5py.File, get: Getter | None = None) -> bool:
    """True when an open HDF5 file follows the CXI layout (has the group ``/entry_1``).

    ``get`` looks paths up (default :func:`plain_getter`); the readers pass
    one that checks every link it follows.
    """
    get = get or plain_getter(file)
    return isinstance(get("/entry_1"), h5py.Group)


def nx_group(parent: h5py.Group, name: str, nx_class: str) -> h5py.Group:
    """Get or create the group ``name`` with its NeXus class attribute."""
    group = parent.require_group(name)
    group.attrs["NX_class"] = nx_class
    return group


INTERPRETATION = "image"
"""``@interpretation`` of every 2D or 3D signal: one of the values the NeXus NXdata base class allows
(``scalar``, ``spectrum``, ``image``, ``rgb-image``... ``vertex``; there is no "volume"), and the one
viewers (silx, h5web) show as an image, a 3D array as a stack of images along its first axis."""


def nx_data(parent: h5py.Group, name: str, ndim: int, signal: str = "data") -> h5py.Group:
    """Get or create an NXdata group whose ``@signal`` is ``signal``, with no axis arrays.

    Parameters
    ----------
    parent : h5py.Group
    name : str
        The group's name (``image_1``, ``data_1``...).
    ndim : int
        Dimensions of the signal: ``@axes`` gets one ``"."`` (no axis) each,
        as the NeXus NXdata base class asks when no axis arrays are stored.
    signal : str
        Name of the signal field (a dataset or a link in the group).

    Returns
    -------
    h5py.Group
    """
    group = nx_group(parent, name, "NXdata")
    group.attrs["signal"] = signal
    group.attrs["axes"] = np.array(["."] * ndim, dtype=h5py.string_dtype())
    return group


def mark_image(dataset: h5py.Dataset) -> h5py.Dataset:
    """Set ``@interpretation`` (:data:`INTERPRETATION`) on a 2D or 3D signal dataset; returns it."""
    dataset.attrs["interpretation"] = INTERPRETATION
    return dataset


def _scalar(group: h5py.Group, name: str, value: float, units: str) -> None:
    dataset = group.create_dataset(name, data=np.float64(value))
    dataset.attrs["units"] = units


def write_root_attrs(file: h5py.File, path: Path) -> None:
    """The file-level CXI/NeXus attributes and ``/cxi_version``."""
    file.create_dataset("cxi_version", data=np.int64(CXI_VERSION))
    file.attrs["default"] = "entry_1"
    file.attrs["creator"] = "cdi-dip"
    file.attrs["creator_version"] = __version__
    file.attrs["file_name"] = Path(path).name
    file.attrs["file_time"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    file.attrs["HDF5_Version"] = h5py.version.hdf5_version
    file.attrs["h5py_version"] = h5py.version.version


def write_entry(file: h5py.File, *, default: str) -> h5py.Group:
    """Create ``/entry_1`` (NXentry) whose default plot is the group ``default``."""
    entry = nx_group(file, "entry_1", "NXentry")
    entry.attrs["default"] = default
    return entry


def write_instrument(entry: h5py.Group, meta: ScanMeta | None) -> h5py.Group:
    """Write the geometry of ``meta`` under ``entry/instrument_1``.

    Fields that ``meta`` does not know are left out (readers then get
    ``None``). ``meta.extra`` values that are strings or numbers go to
    ``instrument_1/cdi_dip_meta`` as scalar datasets.

    Returns
    -------
    h5py.Group
        ``instrument_1/detector_1``, for the caller to add data to.
    """
    meta = meta or ScanMeta()
    instrument = nx_group(entry, "instrument_1", "NXinstrument")
    detector = nx_group(instrument, "detector_1", "NXdetector")
    if meta.distance_m is not None:
        _scalar(detector, "distance", meta.distance_m, "m")
    if meta.pixel_size_m is not None:
        _scalar(detector, "y_pixel_size", meta.pixel_size_m[0], "m")
        _scalar(detector, "x_pixel_size", meta.pixel_size_m[1], "m")
    if meta.detector_angles_deg is not None:
        _scalar(detector, "delta", meta.detector_angles_deg[0], "degree")
        _scalar(detector, "gamma", meta.detector_angles_deg[1], "degree")
    if meta.rocking_step_deg is not None:
        _scalar(detector, "rocking_step", meta.rocking_step_deg, "degree")
    if meta.wavelength_m is not None:
        beam = nx_group(instrument, "beam_1", "NXbeam")
        _scalar(beam, "incident_wavelength", meta.wavelength_m, "m")
        source = nx_group(instrument, "source_1", "NXsource")
        _scalar(source, "energy", energy_j_from_wavelength(meta.wavelength_m), "J")
    extra = {k: v for k, v in meta.extra.items() if isinstance(v, (str, int, float, np.number)) and not isinstance(v, bool)}
    if extra:
        group = nx_group(instrument, "cdi_dip_meta", "NXcollection")
        for key, value in extra.items():
            group.create_dataset(str(key), data=value)
    return detector


def _optional(file: h5py.File, get: Getter, path: str) -> Any:
    """``get(path)``, or None with a warning when a link on the way is refused (geometry is optional)."""
    try:
        return get(path)
    except InvalidInputError as exc:
        log.warning("ignoring %s in %s: %s", path, file.filename, exc)
        return None


def _read_float(file: h5py.File, path: str, get: Getter, *, positive: bool = True) -> float | None:
    """A finite scalar at ``path`` (positive unless ``positive`` is False), or None when absent or unusable."""
    node = _optional(file, get, path)
    if not isinstance(node, h5py.Dataset):
        return None
    if node.dtype.kind not in "iuf" or node.size == 0:
        log.warning("ignoring %s in %s: not a number (%s %s)", path, file.filename, node.dtype, node.shape)
        return None
    try:
        value = float(node[(0,) * node.ndim] if node.ndim else node[()])  # the first value only
    except (TypeError, ValueError, IndexError, OSError, RuntimeError):
        log.warning("ignoring unreadable %s in %s", path, file.filename)
        return None
    if not np.isfinite(value) or (positive and value <= 0):
        log.warning("ignoring non-positive %s = %r in %s", path, value, file.filename)
        return None
    return value


def _scalar_value(node: Any) -> Any:
    """A scalar dataset's value as a Python str or number; None when it is neither (or unreadable)."""
    if not isinstance(node, h5py.Dataset) or node.shape != ():
        return None
    is_text = node.dtype.kind == "S" or h5py.check_string_dtype(node.dtype) is not None
    if not is_text and node.dtype.kind not in "biufc":
        return None
    try:
        value = node[()]
    except (OSError, RuntimeError, ValueError, TypeError):
        return None
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return str(value) if is_text else value.item()


def _read_extra(file: h5py.File, get: Getter) -> dict[str, Any]:
    group = _optional(file, get, EXTRA_GROUP)
    if not isinstance(group, h5py.Group):
        return {}
    extra: dict[str, Any] = {}
    for key in group.keys():
        value = _scalar_value(_optional(file, get, f"{EXTRA_GROUP}/{key}"))
        if value is not None:
            extra[key] = value
    return extra


def read_cxi_meta(file: h5py.File, get: Getter | None = None) -> ScanMeta:
    """Geometry of an open CXI file (each field None when absent).

    The wavelength comes from ``beam_1/incident_wavelength`` (m), else from
    ``source_1/energy`` (J). ``get`` looks paths up (default
    :func:`plain_getter`); a field it refuses (a broken link, an external
    link not allowed) is ignored with a warning.
    """
    get = get or plain_getter(file)
    distance = _read_float(file, f"{DETECTOR}/distance", get)
    y_pixel = _read_float(file, f"{DETECTOR}/y_pixel_size", get)
    x_pixel = _read_float(file, f"{DETECTOR}/x_pixel_size", get)
    if y_pixel is None and x_pixel is not None:
        y_pixel = x_pixel
    if x_pixel is None and y_pixel is not None:
        x_pixel = y_pixel
    wavelength = _read_float(file, "/entry_1/instrument_1/beam_1/incident_wavelength", get)
    if wavelength is None:
        energy = _read_float(file, "/entry_1/instrument_1/source_1/energy", get)
        wavelength = wavelength_m_from_energy(energy) if energy is not None else None
    pixel = (y_pixel, x_pixel) if y_pixel is not None and x_pixel is not None else None
    delta, gamma = (_read_float(file, f"{DETECTOR}/{name}", get, positive=False) for name in ("delta", "gamma"))
    return ScanMeta(wavelength_m=wavelength, distance_m=distance, pixel_size_m=pixel, extra=_read_extra(file, get),
                    rocking_step_deg=_read_float(file, f"{DETECTOR}/rocking_step", get),
                    detector_angles_deg=(delta, gamma) if delta is not None and gamma is not None else None)


def compression(array: np.ndarray) -> dict[str, Any]:
    """gzip for arrays big enough to gain from it (any HDF5 reader can decode it)."""
    return {"compression": "gzip", "compression_opts": 4} if array.size >= 4096 else {}


def write_measurement_cxi(
    path: Path,
    intensity: np.ndarray,
    *,
    valid: np.ndarray | None = None,
    meta: ScanMeta | None = None,
    ground_truth: np.ndarray | None = None,
) -> None:
    """Write a CXI input file: detector frames, mask, geometry and ground truth.

    The file is written under a temporary name in the same directory and
    renamed onto ``path`` once complete.

    Parameters
    ----------
    path : pathlib.Path
        Output file (``.cxi``). Its directory must exist.
    intensity : numpy.ndarray, real, shape (ny, nx) or (nz, ny, nx)
        Measured counts, written with their dtype (float32 or integer counts).
    valid : numpy.ndarray of bool, same shape, optional
        True where the pixel was measured; written as the CXI mask
        ``uint32(~valid)`` (nonzero = excluded). Without it no mask is written.
    meta : ScanMeta, optional
        Geometry: distance (m), pixel size ``(y, x)`` (m), wavelength (m, also
        written as the photon energy in J).
    ground_truth : numpy.ndarray, complex, optional
        The true object of a simulation, at ``/entry_1/sample_1/ground_truth``
        (complex64).

    Raises
    ------
    ValueError
        ``intensity`` is not a 2D/3D real array, or ``valid`` has another shape.
    """
    intensity = np.asarray(intensity)
    if intensity.ndim not in (2, 3) or not (np.issubdtype(intensity.dtype, np.integer) or np.issubdtype(intensity.dtype, np.floating)):
        raise ValueError(f"intensity must be a 2D or 3D real array, got {intensity.dtype} of shape {intensity.shape}")
    if valid is not None and np.shape(valid) != intensity.shape:
        raise ValueError(f"valid shape {np.shape(valid)} does not match intensity shape {intensity.shape}")
    path = Path(path)
    with atomic_write(path) as tmp, h5py.File(tmp, "w") as file:
        write_root_attrs(file, path)
        entry = write_entry(file, default="data_1")
        detector = write_instrument(entry, meta)
        data = mark_image(detector.create_dataset("data", data=intensity, **compression(intensity)))
        data.attrs["units"] = "counts"
        if valid is not None:
            mask = (~np.asarray(valid, dtype=bool)).astype(np.uint32)
            detector.create_dataset("mask", data=mask, **compression(mask))
        data_1 = nx_data(entry, "data_1", intensity.ndim)
        data_1["data"] = h5py.SoftLink(DETECTOR_DATA)
        if ground_truth is not None:
            sample = nx_group(entry, "sample_1", "NXsample")
            truth = np.asarray(ground_truth, dtype=np.complex64)
            sample.create_dataset("ground_truth", data=truth, **compression(truth))
    log.info("wrote %s %s to %s", intensity.dtype, intensity.shape, path)
