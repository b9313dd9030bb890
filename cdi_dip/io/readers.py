"""Read detector data, masks and objects from CXI, HDF5, TIFF and NumPy files.

An input *spec* is what the user typed:

- ``scan.cxi``: a CXI file (data, mask and geometry, see :mod:`cdi_dip.io.cxi`);
- ``scan.h5`` / ``scan.nxs``: the only dataset with >= 2 dimensions (or the
  NeXus default plot), or ``scan.h5:/path/to/dataset`` for a chosen one;
- ``frame.tif``: one page is a 2D frame, several pages a 3D stack;
- ``frames/`` or ``'frames/*.tif'``: TIFF frames stacked in natural name order
  (``f2`` before ``f10``), the first axis being the frame, with the geometry
  of a ``metadata.json`` in that folder or its parent (:mod:`cdi_dip.io.metadata`);
- ``scan.npy``, ``scan.npz`` (key ``data``, else the only array; an optional
  ``mask`` array), or ``scan.npz:key``.

Files are only ever opened read-only. Every problem with an input raises
:class:`~cdi_dip.errors.InvalidInputError` with one line naming the file.

Before any data is read: only regular files are opened (a named pipe or a
device would block or never end); the size a file declares is checked against
the free memory (:mod:`cdi_dip.io._safety`), so a forged header cannot ask for
hundreds of GiB; HDF5 links are followed one at a time, and external links,
virtual-dataset sources and external raw storage are refused when they lead
outside the input file's folder unless ``allow_external_links`` is given
(:mod:`cdi_dip.io._hdf5`).
"""

from __future__ import annotations

import glob
import logging
import posixpath
import re
import struct
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import tifffile

from ..errors import InvalidInputError
from ..types import Measurement, ScanMeta
from ._hdf5 import Hdf5Input
from ._safety import check_read_size, out_of_memory, require_regular_file
from .metadata import find_metadata, read_metadata
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
_NUMPY_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile, NotImplementedError, RuntimeError)
_FORMATS_HINT = "give CXI/HDF5 (.cxi .h5 .nxs), TIFF (.tif), NumPy (.npy .npz), or a directory or glob of TIFF frames"

# Which dataset a file holds for each role, when the spec does not name one.
_CXI_PATHS = {
    "data": DATA_PATHS,
    "array": DATA_PATHS,
    "object": (IMAGE_DATA, GROUND_TRUTH),
    "mask": (DETECTOR_MASK, *DATA_PATHS),
}
_NPZ_KEYS = {"data": ("data",), "array": ("data",), "object": ("object", "data"), "mask": ("mask", "data")}

# What each role converts the stored array to (read_array's callers convert darks and flats to float64).
_CONVERTED = {"data": np.dtype(np.float32), "object": np.dtype(np.complex64), "array": np.dtype(np.float64),
              "mask": np.dtype(np.bool_)}
_DATA_MASK_BYTES = 4  # read_measurement's bool arrays alive at once (one reason's pixels, bad, new, valid)


@dataclass
class _Raw:
    """An array as found in a file, before any checking or conversion."""

    array: np.ndarray
    where: str
    excluded: np.ndarray | None = None  # the file's own mask, True = excluded
    meta: ScanMeta = field(default_factory=ScanMeta)


# --------------------------------------------------------------------------- specs


def split_spec(spec: str) -> tuple[Path, str | None]:
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


def is_glob(spec: str) -> bool:
    """Whether an input names files by a pattern (``frames/*.tif``) rather than an existing path."""
    return bool(_GLOB_CHARS.search(spec)) and not Path(spec).expanduser().exists()


GENERIC_FRAME_FOLDERS = frozenset({"frames", "data", "raw", "tif", "tiff", "images"})
"""Folder names that say what a folder holds, not which scan it is: a folder of frames called so is
named after its parent (``S0054/frames`` is the scan ``S0054``)."""


def scan_name(spec: str) -> str:
    """Short scan name of an input: the file name without extension, the
    directory name of a folder of frames, the parent directory of a glob
    (for a folder of frames with a generic name such as ``frames``, its
    parent's name); made safe as a folder name
    (:func:`cdi_dip.io.names.safe_scan_name`)."""
    if is_glob(spec):
        folder = Path(spec).expanduser().parent.resolve()
    else:
        path, _ = split_spec(spec)
        if not path.is_dir():
            return safe_scan_name(path.stem)
        folder = path.resolve()
    if folder.name.lower() in GENERIC_FRAME_FOLDERS and folder.parent.name:
        folder = folder.parent
    return safe_scan_name(folder.name)


def input_paths(spec: str) -> list[Path]:
    """The files or folders an input spec reads: its file (``file.h5:/path``
    included), its folder of frames, or the files a glob matches."""
    if is_glob(spec):
        return [Path(p) for p in glob.glob(str(Path(spec).expanduser()))]
    path, _ = split_spec(spec)
    return [path]


# --------------------------------------------------------------------------- format detection


def _sniff(path: Path) -> str:
    """The format of a file from its first bytes: hdf5, tiff, npy or npz (regular files only)."""
    require_regular_file(path)
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


def _bytes_per_element(role: str, dtype: np.dtype) -> int:
    """Memory reading one element needs: as stored, plus the copy the reader converts it to."""
    dtype = np.dtype(dtype)
    converted = _CONVERTED[role]
    extra = 0 if dtype == converted else converted.itemsize
    return dtype.itemsize + extra + (_DATA_MASK_BYTES if role == "data" else 0)


def _check_fits(shape: Sequence[int], dtype: np.dtype, role: str, where: str) -> None:
    """Refuse, before reading, an array the host has no memory for (see :mod:`cdi_dip.io._safety`)."""
    check_read_size(shape, dtype, _bytes_per_element(role, dtype), where)


# --------------------------------------------------------------------------- HDF5 / CXI


def _candidates(file: h5py.File) -> list[h5py.Dataset]:
    """Datasets with >= 2 dimensions (soft links are not followed, so no duplicates)."""
    found: list[h5py.Dataset] = []
    file.visititems(lambda _, node: found.append(node) if isinstance(node, h5py.Dataset) and node.ndim >= 2 else None)
    return found


def _text(value: object) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _nexus_default(h5: Hdf5Input) -> str | None:
    """Path of the NeXus default signal (``@default`` -> ``@default`` -> ``@signal``)."""
    path = "/"
    node: h5py.Group = h5.file
    for _ in range(4):
        target = node.attrs.get("default")
        if target is None:
            break
        child = h5.get(posixpath.join(path, _text(target)))
        if not isinstance(child, h5py.Group):
            break
        path, node = posixpath.join(path, _text(target)), child
    signal = node.attrs.get("signal")
    if signal is None:
        return None
    key = posixpath.join(path, _text(signal))
    return key if isinstance(h5.get(key), h5py.Dataset) else None


def _only_dataset(h5: Hdf5Input, path: Path) -> str:
    """The dataset to read when the spec names none."""
    candidates = _candidates(h5.file)
    if len(candidates) == 1:
        return candidates[0].name
    if not candidates:
        raise InvalidInputError(f"{path}: no dataset with 2 or more dimensions in the file; check that it holds detector frames")
    default = _nexus_default(h5)
    if default is not None:
        return default
    listing = ", ".join(f"{d.name} {d.shape}" for d in candidates[:8]) + (" ..." if len(candidates) > 8 else "")
    raise InvalidInputError(
        f"{path}: several datasets could be the data ({listing}); choose one as {path}:{candidates[0].name}"
    )


def _read_dataset(h5: Hdf5Input, key: str, path: Path, role: str) -> np.ndarray:
    """Read a dataset once its links, type, storage and size are checked."""
    node = h5.get(key)
    where = f"{path}:{key}"
    if node is None:
        raise InvalidInputError(f"{path}: no dataset {key} in the file; list its contents with h5ls -r {path}")
    if not isinstance(node, h5py.Dataset):
        raise InvalidInputError(f"{where} is a group, not a dataset; give the path of a dataset inside it")
    _check_dtype(node.dtype, where, complex_ok=True)
    h5.check_storage(node, where)
    _check_fits(node.shape, node.dtype, role, where)
    try:
        return np.asarray(node[()])
    except (OSError, RuntimeError, ValueError, TypeError) as exc:
        raise InvalidInputError(f"{where}: cannot read the dataset ({_first_line(exc)}); the file may be truncated or corrupt") from None


def _meta_getter(h5: Hdf5Input):
    """Looks geometry up like :meth:`Hdf5Input.get`, refusing datasets stored outside the file."""

    def get(key: str) -> object:
        node = h5.get(key)
        if isinstance(node, h5py.Dataset):
            h5.check_storage(node, f"{h5.path}:{key}")
        return node

    return get


def _default_key(h5: Hdf5Input, path: Path, role: str) -> str:
    """The dataset a CXI file holds for ``role`` (the first of its paths that exists), else the only one."""
    if is_cxi(h5.file, h5.get):
        key = next((p for p in _CXI_PATHS[role] if isinstance(h5.get(p), h5py.Dataset)), None)
        if key is not None:
            return key
        if role == "object":
            raise InvalidInputError(
                f"{path}: no object in this CXI file (looked at {IMAGE_DATA} and {GROUND_TRUTH}); "
                f"give a result file or name the dataset as {path}:/path"
            )
    return _only_dataset(h5, path)


def _load_hdf5(path: Path, key: str | None, role: str, allow_external: bool) -> _Raw:
    with Hdf5Input(path, allow_external=allow_external) as h5:
        key = "/" + (key if key is not None else _default_key(h5, path, role)).lstrip("/")
        raw = _Raw(_read_dataset(h5, key, path, role), where=f"{path}:{key}")
        if is_cxi(h5.file, h5.get):
            raw.meta = read_cxi_meta(h5.file, _meta_getter(h5))
            # A mask link that is broken or refused raises here: silently reading without it would fit bad pixels.
            if role == "data" and key in DATA_PATHS and isinstance(h5.get(DETECTOR_MASK), h5py.Dataset):
                mask = _read_dataset(h5, DETECTOR_MASK, path, "mask")
                raw.excluded = _nonzero(mask, f"{path}:{DETECTOR_MASK}")
    return raw


# --------------------------------------------------------------------------- TIFF


def _tiff_layout(tif: tifffile.TiffFile, path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and type of a TIFF's image from its header: one series, or a stack of same-shape series."""
    series = tif.series
    if not series:
        raise InvalidInputError(f"{path}: the TIFF file holds no image")
    if any(s.dtype is None for s in series):
        raise InvalidInputError(f"{path}: the TIFF pages have no numeric sample type; give detector frames")
    if len(series) == 1:
        if "S" in series[0].axes:
            raise InvalidInputError(f"{path}: colour (RGB) TIFF; give single-channel detector frames")
        return tuple(series[0].shape), np.dtype(series[0].dtype)
    shapes = sorted({tuple(s.shape) for s in series})
    if len(shapes) > 1:
        raise InvalidInputError(f"{path}: the TIFF pages have different shapes {shapes}; every page must be one frame of the same size")
    return (len(series), *shapes[0]), np.result_type(*(s.dtype for s in series))


def _tiff_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """:func:`_tiff_layout` of a file, reading no pixel."""
    try:
        with tifffile.TiffFile(path) as tif:
            return _tiff_layout(tif, path)
    except _TIFF_ERRORS as exc:
        raise InvalidInputError(f"{path}: cannot read as TIFF ({_first_line(exc)}); the file may be truncated or corrupt") from None


def _load_tiff(path: Path, role: str) -> np.ndarray:
    """A single-page TIFF as 2D, a multi-page TIFF as a 3D stack (its size checked first)."""
    try:
        with tifffile.TiffFile(path) as tif:
            shape, dtype = _tiff_layout(tif, path)
            _check_fits(shape, dtype, role, str(path))
            if len(tif.series) == 1:
                return tif.series[0].asarray()
            stack = np.empty(shape, dtype)
            for index, series in enumerate(tif.series):
                stack[index] = series.asarray()
            return stack
    except _TIFF_ERRORS as exc:
        raise InvalidInputError(f"{path}: cannot read as TIFF ({_first_line(exc)}); the file may be truncated or corrupt") from None


def _frames_dtype(dtype: np.dtype, role: str) -> np.dtype:
    """The stack's type: float32 for real detector data (what read_measurement uses), else the stored type."""
    return np.dtype(np.float32) if role == "data" and np.dtype(dtype).kind in "biuf" else np.dtype(dtype)


def _tiff_frames(files: Sequence[Path], where: str, role: str) -> np.ndarray:
    """Stack single-frame TIFF files (already sorted) along a new first axis.

    The first frame's header gives the stack's shape, checked against free
    memory before any pixel is read; the frames are then read one at a time
    into the preallocated stack (float32 for data), so a large rocking curve
    needs no second full copy.
    """
    first, dtype = _tiff_header(files[0])
    if len(first) != 2:
        raise InvalidInputError(f"{files[0]}: a frame of {where} has shape {first}; each file must hold one 2D frame")
    shape = (len(files), *first)
    _check_fits(shape, _frames_dtype(dtype, role), role, where)
    stack = np.empty(shape, _frames_dtype(dtype, role))
    casting = "same_kind" if role == "data" else "safe"
    with np.errstate(over="ignore", invalid="ignore"):
        for index, file in enumerate(files):
            frame = _load_tiff(file, role)
            if frame.ndim != 2:
                raise InvalidInputError(f"{file}: a frame of {where} has shape {frame.shape}; each file must hold one 2D frame")
            if frame.shape != first:
                raise InvalidInputError(
                    f"{file}: frame shape {frame.shape} differs from {first} of {files[0].name}; all frames of {where} must have the same size"
                )
            if not np.can_cast(frame.dtype, stack.dtype, casting=casting):  # a wider type than the first frame's
                stack = stack.astype(np.result_type(stack.dtype, frame.dtype))
            stack[index] = frame
    return stack


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


def _npy_header(handle) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and type an ``.npy`` stream declares, read from its header only."""
    version = np.lib.format.read_magic(handle)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
    else:  # 2.0, and 3.0 (the same layout, field names in UTF-8)
        shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
    return tuple(shape), np.dtype(dtype)


def _load_npy(path: Path, role: str) -> np.ndarray:
    try:
        with open(path, "rb") as handle:
            shape, dtype = _npy_header(handle)
        _check_fits(shape, dtype, role, str(path))
        return np.load(path, allow_pickle=False)
    except _NUMPY_ERRORS as exc:
        raise InvalidInputError(f"{path}: cannot read as .npy ({_first_line(exc)}); the file may be truncated or hold Python objects") from None


def _npz_array(npz: np.lib.npyio.NpzFile, key: str, role: str, where: str) -> np.ndarray:
    """One array of an open ``.npz``, its declared size checked before it is decompressed."""
    member = key if key in npz.zip.namelist() else f"{key}.npy"
    with npz.zip.open(member) as handle:
        shape, dtype = _npy_header(handle)
    _check_fits(shape, dtype, role, where)
    return npz[key]


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
            raw = _Raw(_npz_array(npz, key, role, f"{path}:{key}"), where=f"{path}:{key}")
            if role == "data" and key != "mask" and "mask" in keys:
                raw.excluded = _nonzero(_npz_array(npz, "mask", "mask", f"{path}:mask"), f"{path}:mask")
    except _NUMPY_ERRORS as exc:
        raise InvalidInputError(f"{path}: cannot read as .npz ({_first_line(exc)}); the file may be truncated or hold Python objects") from None
    return raw


# --------------------------------------------------------------------------- dispatch


def _load(spec: str, role: str, allow_external: bool = False) -> _Raw:
    """Read the array a spec points at, with the file's own mask and geometry.

    ``allow_external``: follow HDF5 external links and virtual-dataset sources
    outside the file's folder, and external raw storage (:mod:`cdi_dip.io._hdf5`).
    """
    if not spec:
        raise InvalidInputError(f"empty input path; {_FORMATS_HINT}")
    if is_glob(spec):
        return _Raw(_tiff_frames(_glob_files(spec), spec, role), where=spec, meta=_frames_meta(Path(spec).parent))
    path, key = split_spec(spec)
    if path.is_dir():
        if key is not None:
            raise InvalidInputError(f"{path} is a directory; ':{key}' only applies to HDF5 and NPZ files")
        return _Raw(_tiff_frames(_tiff_files_in(path), str(path), role), where=str(path), meta=_frames_meta(path))
    kind = _sniff(path)
    if key is not None and kind not in ("hdf5", "npz"):
        raise InvalidInputError(f"{path} is a {kind.upper()} file; ':{key}' only applies to HDF5 and NPZ files")
    if kind == "hdf5":
        return _load_hdf5(path, key, role, allow_external)
    if kind == "npz":
        return _load_npz(path, key, role)
    if kind == "npy":
        return _Raw(_load_npy(path, role), where=str(path))
    return _Raw(_load_tiff(path, role), where=str(path))


def _frames_meta(folder: Path) -> ScanMeta:
    """Geometry from a ``metadata.json`` beside a folder of frames (:mod:`cdi_dip.io.metadata`), else none."""
    found = find_metadata(folder)
    return read_metadata(found) if found is not None else ScanMeta()


@contextmanager
def _memory_errors_as_input_errors(spec: str) -> Iterator[None]:
    """A ``MemoryError`` while reading ``spec`` becomes one line (exit code 2), not a traceback."""
    try:
        yield
    except MemoryError:
        raise out_of_memory(spec) from None


# --------------------------------------------------------------------------- checks


def _check_numeric(array: np.ndarray, where: str, *, complex_ok: bool) -> None:
    _check_dtype(array.dtype, where, complex_ok=complex_ok)


def _check_dtype(dtype: np.dtype, where: str, *, complex_ok: bool) -> None:
    """Numbers only (strings, compound records and references are refused, before reading them)."""
    kind = dtype.kind
    if kind == "c" and not complex_ok:
        raise InvalidInputError(
            f"{where}: holds complex values; give measured intensities (a real array), not an object or a result"
        )
    if kind not in ("i", "u", "f", "c", "b"):
        raise InvalidInputError(f"{where}: holds {_dtype_text(dtype)} values, not numbers; give a numeric array")


def _dtype_text(dtype: np.dtype) -> str:
    """``string``, ``compound (a, b)`` or the dtype's name, for messages."""
    if dtype.kind in "SUO" and h5py.check_string_dtype(dtype) is not None or dtype.kind in "SU":
        return f"string ({dtype})"
    if dtype.names:
        return f"compound ({', '.join(dtype.names)})"
    return str(dtype)


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


def _mask_files(specs: Sequence[str], shape: tuple[int, ...], allow_external: bool) -> np.ndarray:
    """Mask files combined with OR, each fitted to the data's shape."""
    combined = np.zeros(shape, dtype=bool)
    for spec in specs:
        combined |= _fit_mask(_read_mask(spec, allow_external), shape, spec)
    return combined


def _read_mask(spec: str, allow_external: bool) -> np.ndarray:
    """A mask file (any supported format) as bool, True = excluded."""
    raw = _load(spec, "mask", allow_external)
    return _nonzero(raw.array, raw.where)


# --------------------------------------------------------------------------- public


def read_measurement(spec: str, *, mask_specs: Sequence[str] = (), allow_external_links: bool = False) -> Measurement:
    """Read detector intensities, their mask and geometry.

    Parameters
    ----------
    spec : str
        The input: a file, ``file.h5:/dataset``, a directory or glob of TIFF
        frames (see the module docstring).
    mask_specs : sequence of str
        Extra mask files, any supported format, nonzero = excluded pixel,
        combined with OR. A 2D mask applies to every frame of a 3D stack.
    allow_external_links : bool
        Follow HDF5 external links and virtual-dataset sources outside the
        input file's folder, and external raw storage. Off: they are refused
        (a crafted file could otherwise read any file of the machine).

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
        Missing or unreadable file (or not a regular file), unsupported or
        non-numeric data, a mask of another shape, all-zero data or no usable
        pixel; data larger than the free memory (checked before reading), a
        broken, looping or refused link.
    """
    with _memory_errors_as_input_errors(spec):
        return _read_measurement(spec, mask_specs, allow_external_links)


def _read_measurement(spec: str, mask_specs: Sequence[str], allow_external: bool) -> Measurement:
    raw = _load(spec, "data", allow_external)
    _check_numeric(raw.array, raw.where, complex_ok=False)
    data = _check_shape(np.asarray(raw.array), raw.where)
    with np.errstate(over="ignore", invalid="ignore"):
        intensity = data.astype(np.float32, copy=False)  # the reader's own array: no second copy
    if not intensity.flags.writeable:
        intensity = intensity.copy()
    # Each reason's pixels are found when their turn comes, so one full-size bool array is alive at a time.
    reasons: list[tuple[str, Callable[[], np.ndarray]]] = [
        ("nan", lambda: np.isnan(intensity)),
        ("inf", lambda: np.isinf(intensity)),
        ("negative", lambda: intensity < 0),
    ]
    if raw.excluded is not None:
        reasons.append(("file_mask", lambda: _fit_mask(raw.excluded, data.shape, raw.where)))
    if mask_specs:
        reasons.append(("mask_file", lambda: _mask_files(mask_specs, data.shape, allow_external)))
    excluded_px: dict[str, int] = {}
    masks: dict[str, np.ndarray] = {}
    bad = np.zeros(data.shape, dtype=bool)
    for reason, find in reasons:
        new = np.greater(find(), bad)  # hit and not yet excluded, without a temporary ~bad
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


def read_array(spec: str, *, allow_external_links: bool = False) -> np.ndarray:
    """Read one numeric array (real or complex, any shape) as stored.

    Parameters
    ----------
    spec : str
        Any input spec (CXI without a path gives the detector data).
    allow_external_links : bool
        As for :func:`read_measurement`.

    Returns
    -------
    numpy.ndarray
        The array with its stored dtype (a folder of TIFF frames: the frames'
        common dtype).
    """
    with _memory_errors_as_input_errors(spec):
        raw = _load(spec, "array", allow_external_links)
        array = np.asarray(raw.array)
        _check_numeric(array, raw.where, complex_ok=True)
        return array


def read_calibration(spec: str | None, role: str, *, allow_external_links: bool = False) -> np.ndarray | None:
    """A dark or flat image from a file (any supported format), or None.

    ``allow_external_links``: as for :func:`cdi_dip.io.read_array` (``input.allow_external_links``).
    """
    if spec is None:
        return None
    image = np.asarray(read_array(spec, allow_external_links=allow_external_links))
    if np.iscomplexobj(image) or image.ndim not in (2, 3):
        raise InvalidInputError(f"{role} {spec}: give a real 2D detector frame (or one frame per data frame), "
                                f"got {image.dtype} {image.shape}")
    return image.astype(np.float64)


def read_object(spec: str, *, allow_external_links: bool = False) -> np.ndarray:
    """Read a complex object: a result or a reference.

    Parameters
    ----------
    spec : str
        A result CXI (``/entry_1/image_1/data``), a simulated input CXI (its
        ``/entry_1/sample_1/ground_truth``; or name it,
        ``file.cxi:/entry_1/sample_1/ground_truth``), an ``.npy``/``.npz``,
        an HDF5 dataset spec, or a TIFF (a real object).
    allow_external_links : bool
        As for :func:`read_measurement`.

    Returns
    -------
    numpy.ndarray, complex64, shape (ny, nx) or (nz, ny, nx)
    """
    with _memory_errors_as_input_errors(spec):
        raw = _load(spec, "object", allow_external_links)
        array = np.asarray(raw.array)
        _check_numeric(array, raw.where, complex_ok=True)
        array = _check_shape(array, raw.where)
        if not np.all(np.isfinite(array)):
            raise InvalidInputError(f"{raw.where}: the object holds NaN or Inf values; give a finite object")
        return array.astype(np.complex64)
