"""Known geometry in -> voxel sizes in nm in the result CXI, the VTI spacing and the TIFF resolution tags."""

import re

import h5py
import numpy as np
import pytest
import tifffile

from cdi_dip.outputs import WRITERS
from cdi_dip.types import Measurement, Result, ScanMeta

# lambda / (2 N dtheta sin 30 deg) = 1e-10 / (2 * 10 * 1e-3 * 0.5) = 10 nm; lambda D / (N p) = 100 nm and 50 nm
META = ScanMeta(wavelength_m=1e-10, distance_m=1.0, pixel_size_m=(50e-6, 100e-6), rocking_step_deg=np.degrees(1e-3),
                detector_angles_deg=(60.0, 0.0))
EXPECTED_NM = (10.0, 100.0, 50.0)


def _result(meta, shape=(10, 20, 20)):
    obj = np.zeros(shape, dtype=np.complex64)
    obj[3:7, 6:14, 7:13] = 1.0
    measurement = Measurement(intensity=np.ones(shape, dtype=np.float32), valid=np.ones(shape, dtype=bool),
                              meta=meta, name="units")
    return Result(obj=obj, support=np.abs(obj) > 0, measurement=measurement, method="hio")


def _write(tmp_path, meta):
    files = {}
    for writer in WRITERS[:3]:  # CXI, TIFFs, VTI
        for path in writer(_result(meta), tmp_path, "test"):
            files[path.suffix if path.suffix != ".tif" else path.stem.split("_", 1)[1]] = path
    return files


def test_voxel_size_in_cxi_vti_and_tiff(tmp_path):
    files = _write(tmp_path, META)
    with h5py.File(files[".cxi"], "r") as file:
        voxel = file["/entry_1/image_1/voxel_size_nm"]
        assert voxel[()] == pytest.approx(EXPECTED_NM) and voxel.attrs["units"] == "nm"
        assert file["/entry_1/image_1/x_pixel_size"][()] == pytest.approx(50e-9)
        assert file["/entry_1/image_1/z_pixel_size"][()] == pytest.approx(10e-9)
    spacing = re.search(r'Spacing="([^"]+)"', files[".vti"].read_text()).group(1)
    assert [float(v) for v in spacing.split()] == pytest.approx([50.0, 100.0, 10.0])  # (x, y, z)
    with tifffile.TiffFile(files["amplitude"]) as tif:
        tags = tif.pages[0].tags
        assert tags["ResolutionUnit"].value == 3  # centimetre
        x_num, x_den = tags["XResolution"].value
        y_num, y_den = tags["YResolution"].value
        assert (1e7 * x_den / x_num, 1e7 * y_den / y_num) == pytest.approx((50.0, 100.0), rel=1e-6)
        assert tif.shaped_metadata[0]["voxel_size_nm"] == pytest.approx(list(EXPECTED_NM))


def test_unknown_geometry_keeps_unit_spacing(tmp_path):
    files = _write(tmp_path, ScanMeta(wavelength_m=1e-10, distance_m=1.0, pixel_size_m=(50e-6, 50e-6)))  # no step
    with h5py.File(files[".cxi"], "r") as file:
        assert "voxel_size_nm" not in file["/entry_1/image_1"]
    assert 'Spacing="1.0 1.0 1.0"' in files[".vti"].read_text()
    with tifffile.TiffFile(files["amplitude"]) as tif:
        assert "XResolution" not in tif.pages[0].tags or tif.pages[0].tags["ResolutionUnit"].value != 3


def test_report_title_gives_the_voxel_size():
    from cdi_dip.report.png import _title

    assert "voxel 10 x 100 x 50 nm" in _title(_result(META))
    assert "voxel" not in _title(_result(ScanMeta()))


def test_summary_gives_the_voxel_size(tmp_path):
    from cdi_dip.io.summary import make_summary

    assert make_summary(_result(META), tmp_path, [])["voxel_size_nm"] == pytest.approx(list(EXPECTED_NM))
    assert "voxel_size_nm" not in make_summary(_result(ScanMeta()), tmp_path, [])
