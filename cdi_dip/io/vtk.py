"""VTK XML ImageData (``.vti``) files of amplitude and phase, for ParaView.

One ``Piece`` with point data arrays ``amplitude`` and ``phase`` (float32),
each stored inline as base64 ("binary" format): the base64 encoding of one
``UInt64`` byte count followed by the little-endian data, encoded together
in one stream, as VTK's own writer does for uncompressed data.

Axis order: VTK's image data run x fastest, then y, then z, with
``WholeExtent="0 nx-1 0 ny-1 0 nz-1"``. A NumPy array indexed ``[z, y, x]``
in C order flattens x-fastest, so it is written as is; a 2D ``[y, x]``
image becomes one slice (``nz = 1``). ``spacing`` and ``origin`` are given
in ``(x, y, z)`` order, as ParaView shows them.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np

from ..errors import InvalidInputError
from ._atomic import atomic_write

__all__ = ["write_vti"]

HEADER_TYPE = np.dtype("<u8")
"""Type of the byte-count header before each inline array (``header_type="UInt64"``)."""


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
    """Inline binary: base64 of the UInt64 byte count and the data, one stream."""
    data = volume.tobytes(order="C")
    return base64.b64encode(np.array([len(data)], dtype=HEADER_TYPE).tobytes() + data).decode("ascii")


def _data_array(name: str, volume: np.ndarray) -> str:
    finite = volume[np.isfinite(volume)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    return (f'        <DataArray type="Float32" Name={quoteattr(name)} NumberOfComponents="1" format="binary" '
            f'RangeMin="{lo!r}" RangeMax="{hi!r}">\n'
            f"          {_encode(volume)}\n"
            "        </DataArray>\n")


def write_vti(path: Path, amplitude: np.ndarray, phase: np.ndarray, *,
              spacing: Sequence[float] = (1.0, 1.0, 1.0), origin: Sequence[float] = (0.0, 0.0, 0.0),
              extra: dict[str, np.ndarray] | None = None) -> Path:
    """Write amplitude and phase as a VTK XML ImageData file, atomically.

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

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    InvalidInputError
        Arrays that are not real 2D/3D arrays of one shape, or bad spacing/origin.
    """
    amp = _as_volume(amplitude, "amplitude")
    pha = _as_volume(phase, "phase")
    if amp.shape != pha.shape:
        raise InvalidInputError(f"amplitude shape {np.shape(amplitude)} and phase shape {np.shape(phase)} differ: "
                                "give arrays of one shape")
    more = {name: _as_volume(array, name) for name, array in (extra or {}).items()}
    for name, volume in more.items():
        if volume.shape != amp.shape or name in ("amplitude", "phase"):
            raise InvalidInputError(f"extra array {name!r} of shape {volume.shape}: give arrays of the amplitude's "
                                    f"shape {amp.shape}, not named amplitude or phase")
    step = _triple(spacing, "spacing", positive=True)
    start = _triple(origin, "origin", positive=False)
    nz, ny, nx = amp.shape
    extent = f"0 {nx - 1} 0 {ny - 1} 0 {nz - 1}"
    text = (
        '<?xml version="1.0"?>\n'
        '<VTKFile type="ImageData" version="1.0" byte_order="LittleEndian" header_type="UInt64">\n'
        f'  <ImageData WholeExtent="{extent}" Origin="{start[0]!r} {start[1]!r} {start[2]!r}" '
        f'Spacing="{step[0]!r} {step[1]!r} {step[2]!r}" Direction="1 0 0 0 1 0 0 0 1">\n'
        f'    <Piece Extent="{extent}">\n'
        '      <PointData Scalars="amplitude">\n'
        f"{_data_array('amplitude', amp)}"
        f"{_data_array('phase', pha)}"
        + "".join(_data_array(name, volume) for name, volume in more.items()) +
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
