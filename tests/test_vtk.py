"""VTK ImageData files: parsed back with the standard library, the arrays come back exactly."""

from __future__ import annotations

import base64
import math
import xml.etree.ElementTree as ET
import zlib

import numpy as np
import pytest

from cdi_dip.errors import InvalidInputError
from cdi_dip.io.vtk import write_vti


_TYPES = {"Float32": "<f4", "UInt8": "u1"}


def _raw_array(text, compressed):
    """The bytes of one inline binary array: uncompressed (count + data) or zlib blocks after their header."""
    if not compressed:
        raw = base64.b64decode(text)
        size = int(np.frombuffer(raw[:8], dtype="<u8")[0])
        assert size == len(raw) - 8
        return raw[8:]
    blocks = int(np.frombuffer(base64.b64decode(text[:12])[:8], dtype="<u8")[0])  # 12 chars hold the first word
    header_chars = 4 * math.ceil(8 * (3 + blocks) / 3)  # the header is base64-encoded on its own
    header = np.frombuffer(base64.b64decode(text[:header_chars]), dtype="<u8")
    block_size, last, sizes = int(header[1]), int(header[2]), header[3:]
    data = base64.b64decode(text[header_chars:])
    assert len(data) == int(sizes.sum())
    chunks, offset = [], 0
    for index, size in enumerate(sizes):
        chunk = zlib.decompress(data[offset:offset + int(size)])
        assert len(chunk) == (last if index == blocks - 1 and last else block_size)
        chunks.append(chunk)
        offset += int(size)
    return b"".join(chunks)


def _read_vti(path):
    """Independent reader: extents, spacing, origin and the point-data arrays as [z, y, x]."""
    root = ET.parse(path).getroot()
    assert root.tag == "VTKFile" and root.get("type") == "ImageData"
    assert root.get("byte_order") == "LittleEndian" and root.get("header_type") == "UInt64"
    compressed = root.get("compressor") is not None
    assert root.get("compressor") in (None, "vtkZLibDataCompressor")
    image = root.find("ImageData")
    extent = [int(v) for v in image.get("WholeExtent").split()]
    assert image.find("Piece").get("Extent") == image.get("WholeExtent")
    nx, ny, nz = extent[1] + 1, extent[3] + 1, extent[5] + 1
    arrays = {}
    for node in image.find("Piece").find("PointData").findall("DataArray"):
        assert node.get("type") in _TYPES and node.get("format") == "binary"
        dtype = np.dtype(_TYPES[node.get("type")])
        raw = _raw_array(node.text.strip(), compressed)
        assert len(raw) == dtype.itemsize * nx * ny * nz
        arrays[node.get("Name")] = np.frombuffer(raw, dtype=dtype).reshape(nz, ny, nx)  # x fastest
    spacing = [float(v) for v in image.get("Spacing").split()]
    origin = [float(v) for v in image.get("Origin").split()]
    return extent, spacing, origin, arrays


def test_3d_arrays_come_back_exactly(tmp_path, rng):
    obj = (rng.normal(size=(3, 4, 5)) + 1j * rng.normal(size=(3, 4, 5))).astype(np.complex64)
    path = write_vti(tmp_path / "obj.vti", np.abs(obj), np.angle(obj), spacing=(2.0, 3.0, 4.5), origin=(1, -1, 0.5))
    extent, spacing, origin, arrays = _read_vti(path)
    assert extent == [0, 4, 0, 3, 0, 2]  # x (last numpy axis) first
    assert spacing == [2.0, 3.0, 4.5] and origin == [1.0, -1.0, 0.5]
    np.testing.assert_array_equal(arrays["amplitude"], np.abs(obj).astype(np.float32))
    np.testing.assert_array_equal(arrays["phase"], np.angle(obj).astype(np.float32))
    # an asymmetric marker lands where VTK's x-fastest order expects it: point (x=4, y=1, z=2)
    marked = np.zeros((3, 4, 5), dtype=np.float32)
    marked[2, 1, 4] = 1
    _, _, _, arrays = _read_vti(write_vti(tmp_path / "marker.vti", marked, marked, compress=False))
    flat = base64.b64decode(ET.parse(tmp_path / "marker.vti").getroot().find(".//DataArray").text.strip())[8:]
    assert int(np.argmax(np.frombuffer(flat, dtype="<f4"))) == 4 + 5 * (1 + 4 * 2)


def test_2d_is_written_as_one_slice(tmp_path, rng):
    image = rng.random((6, 7)).astype(np.float32)
    extent, _, _, arrays = _read_vti(write_vti(tmp_path / "img.vti", image, -image))
    assert extent == [0, 6, 0, 5, 0, 0]
    np.testing.assert_array_equal(arrays["amplitude"][0], image)
    np.testing.assert_array_equal(arrays["phase"][0], -image)


def test_bad_input_is_refused_and_nothing_is_left(tmp_path):
    with pytest.raises(InvalidInputError, match="shape"):
        write_vti(tmp_path / "x.vti", np.ones((4, 4)), np.ones((4, 5)))
    with pytest.raises(InvalidInputError, match="real"):
        write_vti(tmp_path / "x.vti", np.ones((4, 4), dtype=complex), np.ones((4, 4)))
    with pytest.raises(InvalidInputError, match="spacing"):
        write_vti(tmp_path / "x.vti", np.ones((4, 4)), np.ones((4, 4)), spacing=(1, 0, 1))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("shape", [(6, 7), (40, 41, 42)])  # one block; several, the last one partial
def test_compressed_file_holds_the_support_and_comes_back_exactly(tmp_path, rng, shape):
    obj = (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(np.complex64)
    support = np.abs(obj) > 1
    std = np.where(support, 0.1, np.nan).astype(np.float32)
    path = write_vti(tmp_path / "obj.vti", np.abs(obj), np.angle(obj), support=support, extra={"phase_std": std})
    assert 'compressor="vtkZLibDataCompressor"' in path.read_text()
    _, _, _, arrays = _read_vti(path)
    assert list(arrays) == ["amplitude", "phase", "support", "phase_std"]
    volume = (lambda a: a[np.newaxis] if a.ndim == 2 else a)
    np.testing.assert_array_equal(arrays["amplitude"], volume(np.abs(obj)))
    np.testing.assert_array_equal(arrays["support"], volume(support).astype(np.uint8))
    np.testing.assert_array_equal(arrays["phase_std"], volume(std))


def test_compression_shrinks_a_mostly_empty_object(tmp_path):
    amplitude = np.zeros((32, 32, 32), dtype=np.float32)
    amplitude[12:20, 12:20, 12:20] = 1
    small = write_vti(tmp_path / "small.vti", amplitude, amplitude, support=amplitude > 0).stat().st_size
    large = write_vti(tmp_path / "large.vti", amplitude, amplitude, compress=False).stat().st_size
    assert small < large / 20


def test_a_support_of_another_shape_is_refused(tmp_path):
    with pytest.raises(InvalidInputError, match="support"):
        write_vti(tmp_path / "x.vti", np.ones((4, 4)), np.ones((4, 4)), support=np.ones((4, 5), dtype=bool))
