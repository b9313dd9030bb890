"""VTK ImageData files: parsed back with the standard library, the arrays come back exactly."""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from cdi_dip.errors import InvalidInputError
from cdi_dip.io.vtk import write_vti


def _read_vti(path):
    """Independent reader: extents, spacing, origin and the point-data arrays as [z, y, x]."""
    root = ET.parse(path).getroot()
    assert root.tag == "VTKFile" and root.get("type") == "ImageData"
    assert root.get("byte_order") == "LittleEndian" and root.get("header_type") == "UInt64"
    image = root.find("ImageData")
    extent = [int(v) for v in image.get("WholeExtent").split()]
    assert image.find("Piece").get("Extent") == image.get("WholeExtent")
    nx, ny, nz = extent[1] + 1, extent[3] + 1, extent[5] + 1
    arrays = {}
    for node in image.find("Piece").find("PointData").findall("DataArray"):
        assert node.get("type") == "Float32" and node.get("format") == "binary"
        raw = base64.b64decode(node.text.strip())
        size = int(np.frombuffer(raw[:8], dtype="<u8")[0])
        assert size == len(raw) - 8 == 4 * nx * ny * nz
        arrays[node.get("Name")] = np.frombuffer(raw[8:], dtype="<f4").reshape(nz, ny, nx)  # x fastest
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
    _, _, _, arrays = _read_vti(write_vti(tmp_path / "marker.vti", marked, marked))
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
