"""Read detector data, masks and objects from CXI, HDF5, TIFF and NumPy files.

An input *spec* is what the user typed:

- ``scan.cxi``: a CXI file (data, mask and geometry, see :mod:`cdi_dip.io.cxi`);
- ``scan.h5`` / ``scan.nxs``: the only dataset with >= 2 dimensions (or the
  NeXus default plot), or ``scan.h5:/path/to/dataset`` for a chosen one;
- ``frame.tif``: one page is a 2D frame, several pages a 3D stack;
- ``frames/`` or ``'frames/*.tif'``: TIFF frames stacked in natural name order
  (``f2`` before ``f10``), the first axis being the frame;
- ``scan.npy``, ``scan.npz`` (key ``data``, else the only array; an optional
  ``mask`` array), or ``scan.npz:key``.

Files are only ever opened read-only. Every problem with an input raises
:class:`~cdi_dip.errors.InvalidInputError` with one line naming the file.
"""

from __future__ import annotations

import glob
import logging
import re
import struct
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import tifffile

from ..errors import InvalidInputError
from ..types import Measurement, ScanMeta
from .cxi import DATA_PATHS, DETECTOR_MASK, GROUND_TRUTH, IMAGE_DATA, is_cxi, read_cxi_meta
from .names import safe_scan_name

log = logging.getLogger(__name__)

HDF5_SUFFIXES = (".cxi", ".h5", ".hdf5", ".hdf", ".he5", ".nxs", ".nx5")
TIFF_SUFFIXES = (".tif", ".tiff")
NUMPY_SUFFIXES = (".npy", ".npz")
_GLOB_CHARS = re.compile(r"[*?\[]")
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"
_TIFF_ERRORS = (ValueError, OSError, EOFError, IndexError, struct.error)  # tifffile.TiffFileError is a ValueError
_NUMPY_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile)
_FORMATS_HINT = "give CXI/HDF5 (.cxi .h5 .nxs), TIFF (.tif), NumPy (.npy .npz), or a directory or glob of TIFF frames"

# Which dataset a file holds for each role, when the spec does not name one.
_CXI_PATHS = {
    "data": DATA_PATHS,
    "array": DATA_PATHS,
    "object": (IMAGE_DATA, GROUND_TRUTH),
    "mask": (DETECTOR_MASK, *DATA_PATHS),
}
_NPZ_KEYS = {"data": ("data",), "array": ("data",), "object": ("object", "data"), "mask": ("mask", "data")}


@dataclass
class _Raw:
    """An array as found in a file, before any checking or conversion."""

    array: np.ndarray
    where: str
    excluded: np.ndarray | None = None  # the file's own mask, True = excluded
    meta: ScanMeta = field(default_factory=ScanMeta)


# --------------------------------------------------------------------------- specs


def _split_spec(spec: str) -> tuple[Path, str | None]:
    """``file.h5:/path`` -> (file, "/path"); a plain path -> (path, None).

    The split is made at the first ``:`` whose left part is an existing file,
    so paths containing ``:`` still work.
    """
    path = Path(spec).expanduser()
    if path.exists():
        return path, None
    for match in re.finditer(":", spec):
        head, key = spec[: match.start()], spec[match.end():]
        if head and key and Path(head).expanduser().is_file():
            return Path(head).expanduser(), key
    head, sep, key = spec.partition(":/")
    if sep and head and Path(head).suffix.lower() in HDF5_SUFFIXES:
        return Path(head).expanduser(), "/" + key
    return path, None


def _natural_key(path: Path) -> list[int | str]:
    """Sort key putting ``frame2`` before ``frame10``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def _is_glob(spec: str) -> bool:
    return bool(_GLOB_CHARS.search(spec)) and not Path(spec).expanduser().exists()


def scan_name(spec: str) -> str:
    """Short scan name of an input: the file name without extension, the
    directory name of a folder of frames, the parent directory of a glob;
    made safe as a folder name (:func:`cdi_dip.io.names.safe_scan_name`)."""
    if _is_glob(spec):
        name = Path(spec).expanduser().parent.resolve().name
    else:
        path, _ = _split_spec(spec)
        name = path.resolve().name if path.is_dir() else path.stem
    return safe_scan_name(name)


def input_paths(spec: str) -> list[Path]:
    """The files or folders an input spec reads: its file (``file.h5:/path``
    included), its folder of frames, or the files a glob matches."""
    if _is_glob(spec):
        return [Path(p) for p in glob.glob(str(Path(spec).expanduser()))]
    path, _ = _split_spec(spec)
    return [path]


# --------------------------------------------------------------------------- format detection


def _sniff(path: Path) -> str:
    """The format of a file from its first bytes: hdf5, tiff, npy or npz."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except FileNotFoundError:
        raise InvalidInputError(f"{path}: no such file or directory; check the path") from None
    except IsADirectoryError:
        raise InvalidInputError(f"{path} is a directory; give a file") from None
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot read the file ({exc.strerror}); check its permissions") from None
    if not head:
        raise InvalidInputError(f"{path}: the file is empty; check that it was written completely")
    if head[:4] in _TIFF_MAGIC:
        return "tiff"
    if head.startswith(_NPY_MAGIC):
        return "npy"
    if head.startswith(_ZIP_MAGIC):
        return "npz"
    if h5py.is_hdf5(path):
        return "hdf5"
    suffix = path.suffix.lower()
    expected = (
        "HDF5" if suffix in HDF5_SUFFIXES else "TIFF" if suffix in TIFF_SUFFIXES
        else "NumPy" if suffix in NUMPY_SUFFIXES else None
    )
    if expected:
        raise InvalidInputError(
            f"{path}: not a valid {expected} file (unrecognised content); check that it is complete and the extension is right"
        )
    raise InvalidInputError(f"{path}: unrecognised file format; {_FORMATS_HINT}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# --------------------------------------------------------------------------- HDF5 / CXI


def _candidates(file: h5py.File) -> list[h5py.Dataset]:
    """Datasets with >= 2 dimensions (soft links are not followed, so no duplicates)."""
    found: list[h5py.Dataset] = []
    file.visititems(lambda _, node: found.append(node) if isinstance(node, h5py.Dataset) and node.ndim >= 2 else None)
    return found


def _nexus_default(file: h5py.File) -> str | None:
    """Path of the NeXus default signal (``@default`` -> ``@default`` -> ``@signal``)."""
    node: h5py.Group = file
    for _ in range(4):
        target = node.attrs.get("default")
        if target is None:
            break
        target = target.decode() if isinstance(target, bytes) else str(target)
        child = node.get(target)
        if not isinstance(child, h5py.Group):
            break
        node = child
    signal = node.attrs.get("signal")
    if signal is None:
        return None
    signal = signal.decode() if isinstance(signal, bytes) else str(signal)
    dataset = node.get(signal)
    return dataset.name if isinstance(dataset, h5py.Dataset) else None


def _only_dataset(file: h5py.File, path: Path) -> str:
    """The dataset to read when the spec names none."""
    candidates = _candidates(file)
    if len(candidates) == 1:
        return candidates[0].name
    if not candidates:
        raise InvalidInputError(f"{path}: no dataset with 2 or more dimensions in the file; check that it holds detector frames")
    default = _nexus_default(file)
    if default is not None:
        return default
    listing = ", ".join(f"{d.name} {d.shape}" for d in candidates[:8]) + (" ..." if len(candidates) > 8 else "")
    raise InvalidInputError(
        f"{path}: several datasets could be the data ({listing}); choose one as {path}:{candidates[0].name}"
    )


def _read_dataset(file: h5py.File, key: str, path: Path) -> np.ndarray:
    try:
        node = file.get(key)
    except (KeyError, OSError, RuntimeError, ValueError) as exc:
        raise InvalidInputError(f"{path}: cannot resolve {key} ({_first_line(exc)}); check the dataset path") from None
    if node is None:
        raise InvalidInputError(f"{path}: no dataset {key} in the file; list its contents with h5ls -r {path}")
    if not isinstance(node, h5py.Dataset):
        raise InvalidInputError(f"{path}:{key} is a group, not a dataset; give the path of a dataset inside it")
    try:
        return node[()]
    except (OSError, RuntimeError, ValueError, TypeError) as exc:
        raise InvalidInputError(f"{path}:{key}: cannot read the dataset ({_first_line(exc)}); the file may be truncated or corrupt") from None


def _load_hdf5(path: Path, key: str | None, role: str) -> _Raw:
    try:
        file = h5py.File(path, "r", locking=False)
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot open as HDF5 ({_first_line(exc)}); the file may be truncated or corrupt") from None
    with file:
        cxi = is_cxi(file)
        if key is None and cxi:
            key = next((p for p in _CXI_PATHS[role] if isinstance(file.get(p), h5py.Dataset)), None)
            if key is None and role == "object":
                raise InvalidInputError(
                    f"{path}: no object in this CXI file (looked at {IMAGE_DATA} and {GROUND_TRUTH}); "
                    f"give a result file or name the dataset as {path}:/path"
                )
        if key is None:
            key = _only_dataset(file, path)
        key = "/" + key.lstrip("/")
        raw = _Raw(_read_dataset(file, key, path), where=f"{path}:{key}")
        if cxi:
            raw.meta = read_cxi_meta(file)
            if role == "data" and key in DATA_PATHS and isinstance(file.get(DETECTOR_MASK), h5py.Dataset):
                mask = _read_dataset(file, DETECTOR_MASK, path)
                raw.excluded = _nonzero(mask, f"{path}:{DETECTOR_MASK}")
    return raw


# --------------------------------------------------------------------------- TIFF


def _load_tiff(path: Path) -> np.ndarray:
    """A single-page TIFF as 2D, a multi-page TIFF as a 3D stack."""
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series
            if not series:
                raise InvalidInputError(f"{path}: the TIFF file holds no image")
            if len(series) == 1:
                if "S" in series[0].axes:
                    raise InvalidInputError(f"{path}: colour (RGB) TIFF; give single-channel detector frames")
                return series[0].asarray()
            pages = [s.asarray() for s in series]
    except _TIFF_ERRORS as exc:
        raise InvalidInputError(f"{path}: cannot read as TIFF ({_first_line(exc)}); the file may be truncated or corrupt") from None
    shapes = sorted({p.shape for p in pages})
    if len(shapes) > 1:
        raise InvalidInputError(f"{path}: the TIFF pages have different shapes {shapes}; every page must be one frame of the same size")
    return np.stack(pages)


def _tiff_frames(files: Sequence[Path], where: str) -> np.ndarray:
    """Stack single-frame TIFF files (already sorted) along a new first axis."""
    frames: list[np.ndarray] = []
    for file in files:
        frame = _load_tiff(file)
        if frame.ndim != 2:
            raise InvalidInputError(f"{file}: a frame of {where} has shape {frame.shape}; each file must hold one 2D frame")
        if frames and frame.shape != frames[0].shape:
            raise InvalidInputError(
                f"{file}: frame shape {frame.shape} differs from {frames[0].shape} of {files[0].name}; all frames of {where} must have the same size"
            )
        frames.append(frame)
    return np.stack(frames)


def _tiff_files_in(directory: Path) -> list[Path]:
    try:
        entries = list(directory.iterdir())
    except OSError as exc:
        raise InvalidInputError(f"{directory}: cannot list the directory ({exc.strerror}); check its permissions") from None
    files = [p for p in entries if p.suffix.lower() in TIFF_SUFFIXES and not p.name.startswith(".") and p.is_file()]
    if not files:
        raise InvalidInputError(f"{directory}: the directory holds no .tif/.tiff frames; give a directory of TIFF frames or a file")
    return sorted(files, key=_natural_key)


def _glob_files(pattern: str) -> list[Path]:
    files = [Path(p) for p in glob.glob(str(Path(pattern).expanduser())) if Path(p).is_file()]
    if not files:
        raise InvalidInputError(f"{pattern}: no file matches this pattern; check the path (quote it so the shell does not expand it)")
    other = [p for p in files if p.suffix.lower() not in TIFF_SUFFIXES]
    if other:
        raise InvalidInputError(f"{pattern}: the pattern also matches {other[0].name}, not a TIFF frame; a glob must select TIFF frames only")
    return sorted(files, key=_natural_key)


# --------------------------------------------------------------------------- NumPy


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except _NUMPY_ERRORS as exc:
        raise InvalidInputError(f"{path}: cannot read as .npy ({_first_line(exc)}); the file may be truncated or hold Python objects") from None


def _load_npz(path: Path, key: str | None, role: str) -> _Raw:
    try:
        with np.load(path, allow_pickle=False) as npz:
            keys = list(npz.files)
            if key is None:
                key = next((k for k in _NPZ_KEYS[role] if k in keys), None)
            if key is None:
                arrays = [k for k in keys if k != "mask"]
                if len(arrays) != 1:
                    raise InvalidInputError(
                        f"{path}: cannot tell which array is the data (arrays: {', '.join(keys) or 'none'}); "
                        f"name it 'data' or give {path}:NAME"
                    )
                key = arrays[0]
            if key not in keys:
                raise InvalidInputError(f"{path}: no array {key!r} (arrays: {', '.join(keys)}); check the name after ':'")
            raw = _Raw(npz[key], where=f"{path}:{key}")
            if role == "data" and key != "mask" and "mask" in keys:
                raw.excluded = _nonzero(npz["mask"], f"{path}:mask")
    except _NUMPY_ERRORS as exc:
        raise InvalidInputError(f"{path}: cannot read as .npz ({_first_line(exc)}); the file may be truncated or hold Python objects") from None
    return raw


# --------------------------------------------------------------------------- dispatch


def _load(spec: str, role: str) -> _Raw:
    """Read the array a spec points at, with the file's own mask and geometry."""
    if not spec:
        raise InvalidInputError(f"empty input path; {_FORMATS_HINT}")
    if _is_glob(spec):
        return _Raw(_tiff_frames(_glob_files(spec), spec), where=spec)
    path, key = _split_spec(spec)
    if path.is_dir():
        if key is not None:
            raise InvalidInputError(f"{path} is a directory; ':{key}' only applies to HDF5 and NPZ files")
        return _Raw(_tiff_frames(_tiff_files_in(path), str(path)), where=str(path))
    kind = _sniff(path)
    if key is not None and kind not in ("hdf5", "npz"):
        raise InvalidInputError(f"{path} is a {kind.upper()} file; ':{key}' only applies to HDF5 and NPZ files")
    if kind == "hdf5":
        return _load_hdf5(path, key, role)
    if kind == "npz":
        return _load_npz(path, key, role)
    if kind == "npy":
        return _Raw(_load_npy(path), where=str(path))
    return _Raw(_load_tiff(path), where=str(path))


# --------------------------------------------------------------------------- checks


def _check_numeric(array: np.ndarray, where: str, *, complex_ok: bool) -> None:
    kind = array.dtype.kind
    if kind == "c" and not complex_ok:
        raise InvalidInputError(
            f"{where}: holds complex values; give measured intensities (a real array), not an object or a result"
        )
    if kind not in ("i", "u", "f", "c", "b"):
        raise InvalidInputError(f"{where}: holds {array.dtype} values, not numbers; give a numeric array")


def _check_shape(array: np.ndarray, where: str) -> np.ndarray:
    """2D or 3D, a single-frame 3D stack squeezed to 2D."""
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim not in (2, 3):
        raise InvalidInputError(
            f"{where}: has {array.ndim} dimensions {array.shape}; give a 2D frame (ny, nx) or a 3D stack (nz, ny, nx)"
        )
    if min(array.shape) < 2:
        raise InvalidInputError(f"{where}: shape {array.shape} is too small; every axis needs at least 2 pixels")
    return array


def _nonzero(mask: np.ndarray, where: str) -> np.ndarray:
    """A mask array (any numeric type, nonzero = excluded) as bool, True = excluded."""
    _check_numeric(np.asarray(mask), where, complex_ok=False)
    return np.asarray(mask) != 0


def _fit_mask(excluded: np.ndarray, shape: tuple[int, ...], where: str) -> np.ndarray:
    """Match a mask to the data: same shape, one frame for a whole stack, or a squeezed single frame."""
    if excluded.shape == shape:
        return excluded
    if excluded.ndim == len(shape) + 1 and excluded.shape[0] == 1 and excluded.shape[1:] == shape:
        return excluded[0]
    if len(shape) == 3 and excluded.shape == shape[1:]:
        return np.broadcast_to(excluded, shape)
    frame_hint = f" or of one frame {shape[1:]}" if len(shape) == 3 else ""
    raise InvalidInputError(
        f"{where}: mask shape {excluded.shape} does not match data shape {shape}; give a mask of the data's shape{frame_hint}"
    )


def _read_mask(spec: str) -> np.ndarray:
    """A mask file (any supported format) as bool, True = excluded."""
    raw = _load(spec, "mask")
    return _nonzero(raw.array, raw.where)


# --------------------------------------------------------------------------- public


def read_measurement(spec: str, *, mask_specs: Sequence[str] = ()) -> Measurement:
    """Read detector intensities, their mask and geometry.

    Parameters
    ----------
    spec : str
        The input: a file, ``file.h5:/dataset``, a directory or glob of TIFF
        frames (see the module docstring).
    mask_specs : sequence of str
        Extra mask files, any supported format, nonzero = excluded pixel,
        combined with OR. A 2D mask applies to every frame of a 3D stack.

    Returns
    -------
    Measurement
        ``intensity`` float32 of shape (ny, nx) or (nz, ny, nx), 0 on excluded
        pixels; ``valid`` bool (True = usable). NaN, Inf and negative pixels are
        excluded. ``excluded`` counts each excluded pixel once, under the
        first reason that applies in the order ``nan``, ``inf``, ``negative``,
        ``file_mask`` (the file's own mask), ``mask_file`` (``mask_specs``).

    Raises
    ------
    InvalidInputError
        Missing or unreadable file, unsupported or non-numeric data, a mask
        of another shape, all-zero data or no usable pixel.
    """
    raw = _load(spec, "data")
    _check_numeric(raw.array, raw.where, complex_ok=False)
    data = _check_shape(np.asarray(raw.array), raw.where)
    with np.errstate(over="ignore", invalid="ignore"):
        intensity = data.astype(np.float32)  # copies: the caller owns it
    reasons: list[tuple[str, np.ndarray]] = [
        ("nan", np.isnan(intensity)),
        ("inf", np.isinf(intensity)),
        ("negative", intensity < 0),
    ]
    if raw.excluded is not None:
        reasons.append(("file_mask", _fit_mask(raw.excluded, data.shape, raw.where)))
    if mask_specs:
        extra = np.zeros(data.shape, dtype=bool)
        for mask_spec in mask_specs:
            extra |= _fit_mask(_read_mask(mask_spec), data.shape, mask_spec)
        reasons.append(("mask_file", extra))
    excluded_px: dict[str, int] = {}
    masks: dict[str, np.ndarray] = {}
    bad = np.zeros(data.shape, dtype=bool)
    for reason, hit in reasons:
        new = hit & ~bad
        count = int(np.count_nonzero(new))
        if count:
            excluded_px[reason] = count
            masks[reason] = new
            bad |= new
    intensity[bad] = 0.0
    valid = ~bad
    if not valid.any():
        raise InvalidInputError(f"{raw.where}: every pixel is excluded ({excluded_px}); check the mask and the data")
    if not intensity.any():
        raise InvalidInputError(f"{raw.where}: all usable pixels are zero; check that this is the measured data")
    for reason in ("nan", "inf", "negative"):
        if reason in excluded_px:
            log.warning("%s: %d %s pixels excluded", raw.where, excluded_px[reason], reason)
    log.info("read %s: %s %s, %d pixels excluded", raw.where, data.dtype, data.shape, int(bad.sum()))
    return Measurement(
        intensity=intensity,
        valid=valid,
        meta=raw.meta,
        source=spec,
        name=scan_name(spec),
        excluded=excluded_px,
        roi=[(0, n) for n in data.shape],
        masks=masks,
    )


def read_array(spec: str) -> np.ndarray:
    """Read one numeric array (real or complex, any shape) as stored.

    Parameters
    ----------
    spec : str
        Any input spec (CXI without a path gives the detector data).

    Returns
    -------
    numpy.ndarray
        The array with its stored dtype.
    """
    raw = _load(spec, "array")
    array = np.asarray(raw.array)
    _check_numeric(array, raw.where, complex_ok=True)
    return array


def read_object(spec: str) -> np.ndarray:
    """Read a complex object: a result or a reference.

    Parameters
    ----------
    spec : str
        A result CXI (``/entry_1/image_1/data``), a simulated input CXI (its
        ``/entry_1/sample_1/ground_truth``; or name it,
        ``file.cxi:/entry_1/sample_1/ground_truth``), an ``.npy``/``.npz``,
        an HDF5 dataset spec, or a TIFF (a real object).

    Returns
    -------
    numpy.ndarray, complex64, shape (ny, nx) or (nz, ny, nx)
    """
    raw = _load(spec, "object")
    array = np.asarray(raw.array)
    _check_numeric(array, raw.where, complex_ok=True)
    array = _check_shape(array, raw.where)
    if not np.all(np.isfinite(array)):
        raise InvalidInputError(f"{raw.where}: the object holds NaN or Inf values; give a finite object")
    return array.astype(np.complex64)
