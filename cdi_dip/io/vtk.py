"""VTK XML ImageData (``.vti``) files of amplitude, phase and support, for ParaView.

One ``Piece`` with point data arrays ``amplitude`` and ``phase`` (Float32),
``support`` (UInt8, 1 = inside the object) when given, and any extra maps,
each stored inline as base64 ("binary" format, ``header_type="UInt64"``).

Compressed (the default, ``compressor="vtkZLibDataCompressor"``): each
array is cut into blocks of :data:`BLOCK_BYTES` uncompressed bytes, each
block compressed with zlib; the header ``[number of blocks, block size,
size of the last block if partial (else 0), compressed size of each
block]`` (UInt64) is base64-encoded on its own, followed by the base64 of
the compressed blocks, as VTK's own writer does. Uncompressed: the base64
of one UInt64 byte count followed by the data, in one stream.

Axis order: VTK's image data run x fastest, then y, then z, with
``WholeExtent="0 nx-1 0 ny-1 0 nz-1"``. A NumPy array indexed ``[z, y, x]``
in C order flattens x-fastest, so it is written as is; a 2D ``[y, x]``
image becomes one slice (``nz = 1``). ``spacing`` and ``origin`` are given
in ``(x, y, z)`` order, as ParaView shows them.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Sequence
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np

from ..errors import InvalidInputError
from ._atomic import atomic_write

__all__ = ["write_vti"]

HEADER_TYPE = np.dtype("<u8")
"""Type of the byte-count header before each inline array (``header_type="UInt64"``)."""

BLOCK_BYTES = 32768
"""Uncompressed size of a compressed block (VTK's default)."""

COMPRESSOR = "vtkZLibDataCompressor"

_VTK_TYPES = {np.dtype("<f4"): "Float32", np.dtype("u1"): "UInt8"}


def _as_volume(array: np.ndarray, name: str) -> np.ndarray:
    """A 2D ``[y, x]`` or 3D ``[z, y, x]`` real array as little-endian float32 ``[z, y, x]``."""
    array = np.asarray(array)
    if array.ndim not in (2, 3) or np.iscomplexobj(array):
        raise InvalidInputError(f"{name} has shape {array.shape} and dtype {array.dtype}: give a real 2D or 3D array")
    volume = array[np.newaxis] if array.ndim == 2 else array
    return np.ascontiguousarray(volume, dtype="<f4")


def _triple(values: Sequence[float], name: str, *, positive: bool) -> tuple[float, float, float]:
    numbers = tuple(float(v) for v in values)
    if len(numbers) != 3 or not all(np.isfinite(numbers)) or (positive and min(numbers) <= 0):
        kind = "positive" if positive else "finite"
        raise InvalidInputError(f"{name}={list(values)}: give three {kind} numbers in (x, y, z) order")
    return numbers  # type: ignore[return-value]


def _encode(volume: np.ndarray) -> str:
    """Uncompressed inline binary: base64 of the UInt64 byte count and the data, one stream."""
    data = volume.tobytes(order="C")
    return base64.b64encode(np.array([len(data)], dtype=HEADER_TYPE).tobytes() + data).decode("ascii")


def _encode_compressed(volume: np.ndarray) -> str:
    """zlib-compressed inline binary: base64 of the block header, then base64 of the compressed blocks.

    The header is ``[blocks, BLOCK_BYTES, last block's size if partial else
    0, compressed size of each block]`` as UInt64 (VTK's compressed layout).
    """
    data = volume.tobytes(order="C")
    blocks = [zlib.compress(data[start:start + BLOCK_BYTES]) for start in range(0, len(data), BLOCK_BYTES)]
    header = np.array([len(blocks), BLOCK_BYTES, len(data) % BLOCK_BYTES, *map(len, blocks)], dtype=HEADER_TYPE)
    return (base64.b64encode(header.tobytes()) + base64.b64encode(b"".join(blocks))).decode("ascii")


def _data_array(name: str, volume: np.ndarray, compress: bool) -> str:
    finite = volume[np.isfinite(volume)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    encoded = _encode_compressed(volume) if compress else _encode(volume)
    return (f'        <DataArray type="{_VTK_TYPES[volume.dtype]}" Name={quoteattr(name)} NumberOfComponents="1" '
            f'format="binary" RangeMin="{lo!r}" RangeMax="{hi!r}">\n'
            f"          {encoded}\n"
            "        </DataArray>\n")


def _support_volume(support: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A 2D/3D boolean support as uint8 ``[z, y, x]`` (1 = inside) of the amplitude's shape."""
    array = np.asarray(support)
    volume = (array[np.newaxis] if array.ndim == 2 else array).astype(bool)
    if volume.shape != shape:
        raise InvalidInputError(f"support of shape {array.shape}: give a mask of the amplitude's shape")
    return np.ascontiguousarray(volume, dtype="u1")


def _arrays(amplitude: np.ndarray, phase: np.ndarray, support: np.ndarray | None,
            extra: dict[str, np.ndarray] | None) -> dict[str, np.ndarray]:
    """Every point-data array by name, as ``[z, y, x]`` volumes of one shape (checked)."""
    amp = _as_volume(amplitude, "amplitude")
    pha = _as_volume(phase, "phase")
    if amp.shape != pha.shape:
        raise InvalidInputError(f"amplitude shape {np.shape(amplitude)} and phase shape {np.shape(phase)} differ: "
                                "give arrays of one shape")
    arrays = {"amplitude": amp, "phase": pha}
    if support is not None:
        arrays["support"] = _support_volume(support, amp.shape)
    for name, array in (extra or {}).items():
        volume = _as_volume(array, name)
        if volume.shape != amp.shape or name in arrays:
            raise InvalidInputError(f"extra array {name!r} of shape {volume.shape}: give arrays of the amplitude's "
                                    f"shape {amp.shape}, not named {', '.join(arrays)}")
        arrays[name] = volume
    return arrays


def write_vti(path: Path, amplitude: np.ndarray, phase: np.ndarray, *,
              spacing: Sequence[float] = (1.0, 1.0, 1.0), origin: Sequence[float] = (0.0, 0.0, 0.0),
              extra: dict[str, np.ndarray] | None = None, support: np.ndarray | None = None,
              compress: bool = True) -> Path:
    """Write amplitude, phase and support as a VTK XML ImageData file, atomically.

    Parameters
    ----------
    path : pathlib.Path
        Output file, normally ``*.vti``; its directory must exist.
    amplitude, phase : numpy.ndarray, real, shape (ny, nx) or (nz, ny, nx)
        Point data (e.g. ``abs(obj)`` and ``angle(obj)`` in radians), written
        as float32. A 2D image is written as a single slice.
    spacing : sequence of 3 float
        Voxel size in ``(x, y, z)`` order (e.g. metres or nm), default 1.
    origin : sequence of 3 float
        Position of voxel ``[0, 0, 0]``, ``(x, y, z)`` order.
    extra : dict of str to numpy.ndarray, optional
        More point-data arrays of the same shape (e.g. ``amplitude_std``);
        NaN values are written as they are.
    support : numpy.ndarray of bool, same shape, optional
        Written as the UInt8 array ``support`` (1 = inside the object), to
        threshold or clip by in ParaView.
    compress : bool
        zlib-compress every array (``vtkZLibDataCompressor``); False writes
        them uncompressed.

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    InvalidInputError
        Arrays that are not real 2D/3D arrays of one shape, or bad spacing/origin.
    """
    arrays = _arrays(amplitude, phase, support, extra)
    step = _triple(spacing, "spacing", positive=True)
    start = _triple(origin, "origin", positive=False)
    nz, ny, nx = arrays["amplitude"].shape
    extent = f"0 {nx - 1} 0 {ny - 1} 0 {nz - 1}"
    compressor = f' compressor="{COMPRESSOR}"' if compress else ""
    text = (
        '<?xml version="1.0"?>\n'
        f'<VTKFile type="ImageData" version="1.0" byte_order="LittleEndian" header_type="UInt64"{compressor}>\n'
        f'  <ImageData WholeExtent="{extent}" Origin="{start[0]!r} {start[1]!r} {start[2]!r}" '
        f'Spacing="{step[0]!r} {step[1]!r} {step[2]!r}" Direction="1 0 0 0 1 0 0 0 1">\n'
        f'    <Piece Extent="{extent}">\n'
        '      <PointData Scalars="amplitude">\n'
        + "".join(_data_array(name, volume, compress) for name, volume in arrays.items()) +
        "      </PointData>\n"
        "      <CellData>\n"
        "      </CellData>\n"
        "    </Piece>\n"
        "  </ImageData>\n"
        "</VTKFile>\n"
    )
    path = Path(path)
    with atomic_write(path) as tmp:
        tmp.write_text(text, encoding="ascii")
    return path
