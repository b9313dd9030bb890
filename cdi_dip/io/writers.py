"""Write results: the CXI result file, amplitude/phase TIFFs and JSON summaries.

Every file is written under a temporary name in its final directory and
renamed when complete (:func:`atomic_write`), so an interrupted run never
leaves a truncated file under the final name.

CXI result layout (readable by h5py and silx without this package)::

    /cxi_version                                  150
    /entry_1/image_1                              NXdata: @signal "data", @axes "." per axis
    /entry_1/image_1/data                         complex64 aligned object (@interpretation "image")
    /entry_1/image_1/mask                         uint8 support, 1 = inside
    /entry_1/image_1/iterate_std                  float32, shape of data: the double DIP's iterate spread
                                                  (photon amplitude, like |data|; only when computed)
    /entry_1/image_1/detector_roi                 int64 (ndim, 2): [start, stop) per axis
    /entry_1/image_1/voxel_size_nm                float64 (ndim,), nm, array order (known geometry only)
    /entry_1/image_1/x_pixel_size, y_pixel_size   m, the last two axes (and z_pixel_size in 3D)
    /entry_1/image_1/process_1/program            "cdi-dip"
    /entry_1/image_1/process_1/version, command, date, method
    /entry_1/image_1/process_1/versions/...       python, torch, cuda, numpy, h5py, platform, device_name, kernels
    /entry_1/image_1/process_1/configuration      JSON string of the full configuration
    /entry_1/image_1/process_1/parameters/...     the same configuration as a group tree; unset
                                                  settings (None) are left out and named in the
                                                  group's @unset attribute
    /entry_1/image_1/process_1/results/...        metrics, iterations, wall_s, device, seed,
                                                  interrupted, alignment, runs and selection (JSON),
                                                  history/<column>, model_intensity
    /entry_1/image_1/process_1/results/ensemble/  mean, amplitude_std, phase_std_rad, supports,
                                                  errors of the averaged runs (several runs kept)
    /entry_1/image_1/process_1/results/prtf/      PRTF per shell and the resolution
    /entry_1/image_1/process_1/masks/<name>       uint8 masks (1 = True): valid, free, and
                                                  excluded/<reason> for every exclusion reason
    /entry_1/data_1/data                          soft link to /entry_1/image_1/data (NXdata)
    /entry_1/data_2/data                          soft link to the measured intensity (NXdata)
    /entry_1/instrument_1/...                     geometry as in the input file, and the
                                                  measured intensity and mask it was fitted to

NeXus: every NXdata group names its ``@signal`` and gives ``@axes`` with
``"."`` for each dimension (no axis arrays are stored); the signals carry
``@interpretation = "image"``, a value the NXdata base class allows (it
has no "volume": a 3D array is read as a stack of images along z).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import json
import logging
import math
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import tifffile

from ..geometry import voxel_size_m
from ..types import Result
from ._atomic import atomic_write
from .cxi import (DETECTOR_DATA, IMAGE_DATA, ITERATE_STD, compression, mark_image, nx_data, nx_group, write_entry,
                  write_instrument, write_root_attrs)
from .result_cxi import ensemble_datasets, prtf_datasets

log = logging.getLogger(__name__)

__all__ = ["atomic_write", "jsonable", "tiff_resolution", "write_json", "write_result_cxi", "write_tiff",
           "write_tiffs"]


# --------------------------------------------------------------------------- JSON


def jsonable(value: Any) -> Any:
    """Plain JSON data from numpy scalars/arrays, paths, enums, dataclasses.

    Non-finite floats become ``None`` (JSON has no NaN), tuples become lists,
    dictionary keys become strings.
    """
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(item) for item in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, complex):
        return [jsonable(value.real), jsonable(value.imag)]
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _dumps(data: Any, **kwargs: Any) -> str:
    return json.dumps(jsonable(data), allow_nan=False, **kwargs)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as indented JSON, atomically.

    NumPy scalars and arrays, paths and enums are converted; NaN and Inf
    become ``null``.
    """
    text = _dumps(data, indent=2) + "\n"
    with atomic_write(Path(path)) as tmp:
        tmp.write_text(text, encoding="utf-8")


# --------------------------------------------------------------------------- TIFF


def tiff_resolution(voxel_nm: tuple[float, ...] | None) -> dict[str, Any]:
    """tifffile keywords giving an image's pixel size: ``resolution`` in pixels per cm, and the voxel size in nm.

    The TIFF resolution tags hold the two in-plane axes (x, y); a 3D stack's
    full voxel size, in array order, goes to the JSON description as
    ``voxel_size_nm``. Empty (no tags) when the size is unknown.
    """
    if voxel_nm is None:
        return {}
    return {"resolution": (1e7 / voxel_nm[-1], 1e7 / voxel_nm[-2]), "resolutionunit": "CENTIMETER",
            "metadata": {"voxel_size_nm": [float(v) for v in voxel_nm]}}


def write_tiffs(directory: Path, name: str, obj: np.ndarray,
                maps: dict[str, np.ndarray] | None = None, support: np.ndarray | None = None, *,
                voxel_nm: tuple[float, ...] | None = None) -> list[Path]:
    """Write the amplitude and phase of an object as float32 TIFFs.

    The phase is NaN outside ``support`` (when given): there it is the
    phase of noise, and NaN shows as blank in Fiji/ImageJ.

    Parameters
    ----------
    directory : pathlib.Path
        Existing output directory.
    name : str
        Scan name; files are ``<name>_amplitude.tif`` and ``<name>_phase.tif``.
    obj : numpy.ndarray, complex, shape (ny, nx) or (nz, ny, nx)
        The object; a 3D object is written as a multi-page stack.
    maps : dict of str to numpy.ndarray, optional
        More real maps of the object's shape, each written as
        ``<name>_<key>.tif`` (e.g. ``amplitude_std``).
    support : numpy.ndarray of bool, same shape, optional
        Where the object is; the phase is NaN elsewhere.
    voxel_nm : tuple of float, one per axis, optional
        Voxel size in nm, array order: written as the resolution tags
        (:func:`tiff_resolution`).

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    obj = np.asarray(obj)
    images = {
        "amplitude": np.abs(obj).astype(np.float32),
        "phase": masked_phase(obj, support),
        **{key: np.asarray(value, dtype=np.float32) for key, value in (maps or {}).items()},
    }
    return [write_tiff(Path(directory) / f"{name}_{kind}.tif", image, voxel_nm=voxel_nm)
            for kind, image in images.items()]


def write_tiff(path: Path, image: np.ndarray, *, voxel_nm: tuple[float, ...] | None = None) -> Path:
    """One real 2D image or 3D stack as a float32 TIFF, atomically, with its voxel size when known.

    Parameters
    ----------
    path : pathlib.Path
        Output file; its directory must exist.
    image : numpy.ndarray, real, shape (ny, nx) or (nz, ny, nx)
    voxel_nm : tuple of float, one per axis, optional
        Voxel size in nm, array order (:func:`tiff_resolution`).
    """
    with atomic_write(Path(path)) as tmp:
        tifffile.imwrite(tmp, np.asarray(image, dtype=np.float32), photometric="minisblack",
                         **tiff_resolution(voxel_nm))
    return Path(path)


def masked_phase(obj: np.ndarray, support: np.ndarray | None) -> np.ndarray:
    """The phase of ``obj`` in radians, float32, NaN outside ``support`` (everywhere defined without one)."""
    phase = np.angle(obj).astype(np.float32)
    if support is None:
        return phase
    support = np.asarray(support, dtype=bool)
    if support.shape != phase.shape:
        raise ValueError(f"support shape {support.shape} does not match object shape {phase.shape}")
    return np.where(support, phase, np.float32(np.nan))


# --------------------------------------------------------------------------- HDF5 helpers


def _string(group: h5py.Group, name: str, text: str) -> None:
    group.create_dataset(name, data=text, dtype=h5py.string_dtype())


def _write_value(group: h5py.Group, name: str, value: Any) -> None:
    """One configuration or result value as a dataset (or a group for a dict).

    A None (an unset setting) is not written as an HDF5 null dataset, which
    many readers cannot show or read: it is left out and its name is added to
    the group's ``@unset`` attribute. NaN numbers are stored as NaN.
    """
    if isinstance(value, (float, np.floating)) and not math.isfinite(value):
        group.create_dataset(name, data=np.float64(value))
        return
    value = jsonable(value) if not isinstance(value, np.ndarray) else value
    if isinstance(value, dict):
        sub = nx_group(group, name, "NXcollection")
        for key, item in value.items():
            _write_value(sub, key, item)
    elif value is None:
        _mark_unset(group, name)
    elif isinstance(value, str):
        _string(group, name, value)
    elif isinstance(value, list) and not all(isinstance(v, (bool, int, float)) for v in value):
        _string(group, name, json.dumps(value))
    else:
        group.create_dataset(name, data=np.asarray(value))


def _mark_unset(group: h5py.Group, name: str) -> None:
    """Add ``name`` to the group's ``@unset`` attribute: a setting left at None (its default is chosen at run time)."""
    names = [str(v.decode() if isinstance(v, bytes) else v) for v in group.attrs.get("unset", [])]
    group.attrs["unset"] = np.array([*names, name], dtype=h5py.string_dtype())


def _history_columns(history: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Convergence history as columns, NaN where an entry lacks a key."""
    keys: list[str] = []
    for entry in history:
        keys += [k for k in entry if k not in keys]
    columns: dict[str, np.ndarray] = {}
    for key in keys:
        values = [entry.get(key, math.nan) for entry in history]
        if all(v is None or isinstance(v, (int, float, np.number)) for v in values):
            columns[key] = np.array([math.nan if v is None else v for v in values], dtype=np.float64)
    return columns


def _write_results(process: h5py.Group, result: Result) -> None:
    results = nx_group(process, "results", "NXcollection")
    for key, value in result.metrics.items():
        if key not in results:
            _write_value(results, key, float(value) if isinstance(value, (int, float, np.number)) else value)
    scalars = {
        "method": result.method,
        "iterations": int(result.iterations),
        "wall_s": float(result.wall_s),
        "device": result.device,
        "seed": int(result.seed),
        "interrupted": bool(result.interrupted),
        "shift_px": [float(v) for v in result.align.shift_px],
        "ramp_rad_per_px": [float(v) for v in result.align.ramp_rad_per_px],
        "phase_offset_rad": float(result.align.phase_offset_rad),
    }
    for key, value in scalars.items():
        if key in results:
            del results[key]  # the Result field wins over a metric of the same name
        _write_value(results, key, value)
    _write_value(results, "twin", bool(result.align.twin))
    _string(results, "runs", _dumps(result.runs))
    if result.solver:
        _string(results, "solver", _dumps(result.solver))
    if result.selection:
        _string(results, "selection", _dumps(result.selection))
    if result.method_choice:
        _string(results, "method_choice", _dumps(result.method_choice))
    history = nx_group(results, "history", "NXcollection")
    for key, column in _history_columns(result.history).items():
        history.create_dataset(key, data=column)
    if result.model_intensity is not None:
        model = np.asarray(result.model_intensity, dtype=np.float32)
        dataset = results.create_dataset("model_intensity", data=model, **compression(model))
        dataset.attrs["description"] = "fitted intensities |F(obj)|^2 in the frame of the data"
    _write_ensemble(results, result)


def _write_ensemble(results: h5py.Group, result: Result) -> None:
    """The ensemble maps and PRTF, when the result averages several runs."""
    for name, item, to_datasets in (("ensemble", result.ensemble, ensemble_datasets),
                                    ("prtf", result.prtf, prtf_datasets)):
        if item is None:
            continue
        group = nx_group(results, name, "NXcollection")
        for key, array in to_datasets(item).items():
            array = np.asarray(array)
            group.create_dataset(key, data=array, **(compression(array) if array.ndim >= 2 else {}))


def _write_masks(process: h5py.Group, result: Result) -> None:
    masks = dict(result.masks)
    if result.free is not None and "free" not in masks:
        masks["free"] = result.free
    if not masks:
        return
    group = nx_group(process, "masks", "NXcollection")
    for name, mask in masks.items():
        array = np.asarray(mask, dtype=bool).astype(np.uint8)
        dataset = group.create_dataset(str(name), data=array, **compression(array))
        dataset.attrs["convention"] = "1 = True"


def _write_process(image: h5py.Group, result: Result, command_line: str, version: str) -> None:
    process = nx_group(image, "process_1", "NXprocess")
    _string(process, "program", "cdi-dip")
    _string(process, "version", version)
    _string(process, "command", command_line)
    _string(process, "date", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    _string(process, "method", result.method)
    _string(process, "configuration", _dumps(result.config, indent=1))
    versions = nx_group(process, "versions", "NXcollection")
    for key, value in result.versions.items():
        _string(versions, key, str(value))
    parameters = nx_group(process, "parameters", "NXcollection")
    for key, value in result.config.items():
        _write_value(parameters, key, value)
    _write_results(process, result)
    _write_masks(process, result)


def _write_measured(entry: h5py.Group, result: Result) -> None:
    """Geometry plus the (prepared) measurement the object was fitted to."""
    measurement = result.measurement
    detector = write_instrument(entry, measurement.meta)
    intensity = np.asarray(measurement.intensity, dtype=np.float32)
    data = mark_image(detector.create_dataset("data", data=intensity, **compression(intensity)))
    data.attrs["units"] = "counts"
    data.attrs["description"] = "measured intensities after preprocessing (0 on excluded pixels)"
    mask = (~np.asarray(measurement.valid, dtype=bool)).astype(np.uint32)
    detector.create_dataset("mask", data=mask, **compression(mask))
    _string(detector, "source", measurement.source)


# --------------------------------------------------------------------------- CXI result


def _write_voxel_size(image: h5py.Group, voxel_m: tuple[float, ...] | None) -> None:
    """The object's voxel size: ``voxel_size_nm`` (array order) and CXI's ``x/y/z_pixel_size`` in m."""
    if voxel_m is None:
        return
    dataset = image.create_dataset("voxel_size_nm", data=np.asarray(voxel_m, dtype=np.float64) * 1e9)
    dataset.attrs["units"] = "nm"
    dataset.attrs["description"] = ("object voxel size per array axis (detector frame: in 3D the first axis is "
                                    "the rocking direction, not orthogonal to the others)")
    for axis, size in zip("zyx"[3 - len(voxel_m):], voxel_m):
        pixel = image.create_dataset(f"{axis}_pixel_size", data=np.float64(size))
        pixel.attrs["units"] = "m"


ITERATE_STD_UNITS = "photon amplitude, same units as |object|"
"""The ``@units`` of the stored iterate spread (:data:`cdi_dip.io.cxi.ITERATE_STD`)."""


def _write_iterate_std(image: h5py.Group, std: np.ndarray | None, shape: tuple[int, ...]) -> None:
    """The iterate spread ``Result.obj_std`` beside the object as ``iterate_std``; nothing when None.

    Parameters
    ----------
    image : h5py.Group
        ``/entry_1/image_1``.
    std : numpy.ndarray, real, shape ``shape``, or None
        Photon amplitude, like ``|obj|``.
    shape : tuple of int
        The object's shape.
    """
    if std is None:
        return
    values = np.asarray(std, dtype=np.float32)
    if values.shape != shape:
        raise ValueError(f"obj_std shape {values.shape} does not match object shape {shape}")
    dataset = image.create_dataset(ITERATE_STD.rsplit("/", 1)[1], data=values, **compression(values))
    dataset.attrs["units"] = ITERATE_STD_UNITS
    dataset.attrs["description"] = (
        "per-voxel standard deviation of the double DIP's iterates in the window at the minimum of their "
        "windowed moving variance (the variance early stop), of the best run, aligned like data: how much "
        "the fit still moved there, a rough uncertainty of |data| (not a noise-propagated error bar)")


def write_result_cxi(path: Path, result: Result, *, command_line: str, version: str) -> None:
    """Write a reconstruction as a CXI result file (layout in the module docstring).

    Parameters
    ----------
    path : pathlib.Path
        Output ``.cxi`` file; its directory must exist. Written atomically.
    result : Result
        The aligned reconstruction.
    command_line : str
        The command that produced it, for the record.
    version : str
        cdi-dip version.
    """
    path = Path(path)
    obj = np.asarray(result.obj, dtype=np.complex64)
    support = np.asarray(result.support, dtype=bool)
    if support.shape != obj.shape:
        raise ValueError(f"support shape {support.shape} does not match object shape {obj.shape}")
    with atomic_write(path) as tmp, h5py.File(tmp, "w") as file:
        write_root_attrs(file, path)
        entry = write_entry(file, default="data_1")
        _string(entry, "program_name", f"cdi-dip {version}")
        _string(entry, "title", result.measurement.name)
        _string(entry, "start_time", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
        image = nx_data(entry, "image_1", obj.ndim)
        data = mark_image(image.create_dataset("data", data=obj, **compression(obj)))
        data.attrs["description"] = "reconstructed complex object: centred, phase ramp removed, zero mean phase on the support"
        data.attrs["method"] = result.method
        data.attrs["is_fft_shifted"] = 0
        support_u8 = support.astype(np.uint8)
        mask = image.create_dataset("mask", data=support_u8, **compression(support_u8))
        mask.attrs["description"] = "support: 1 = inside the object"
        _write_iterate_std(image, result.obj_std, obj.shape)
        roi = np.asarray(result.measurement.roi or [(0, n) for n in obj.shape], dtype=np.int64).reshape(-1, 2)
        dataset = image.create_dataset("detector_roi", data=roi)
        dataset.attrs["description"] = "[start, stop) of the detector pixels used, per axis"
        _write_voxel_size(image, voxel_size_m(result.measurement.meta, obj.shape))
        _write_process(image, result, command_line, version)
        nx_data(entry, "data_1", obj.ndim)["data"] = h5py.SoftLink(IMAGE_DATA)
        _write_measured(entry, result)
        nx_data(entry, "data_2", obj.ndim)["data"] = h5py.SoftLink(DETECTOR_DATA)
    log.info("wrote %s", path)
