"""Where the geometry comes from: options > the CXI file > metadata.json beside frames; binning."""

import json

import numpy as np
import pytest
import tifffile

from cdi_dip.config import config_from_dict
from cdi_dip.geometry import wavelength_m_from_kev
from cdi_dip.inspection import inspect_input
from cdi_dip.io.cxi import write_measurement_cxi
from cdi_dip.io.readers import read_measurement
from cdi_dip.types import ScanMeta

METADATA = {"energy_keV": 9.0, "detector_distance_m": 0.5, "pixel_size_m": 5.5e-05, "rocking_step_deg": 0.005,
            "angles_deg": {"delta": 32.174, "gamma": 0.0}, "diffractometer_xrayutilities": {"pixel_orientation":
                                                                                           ["x+", "y-"]}}


def _stack(shape=(16, 32, 32)):
    rng = np.random.default_rng(0)
    return rng.poisson(50.0, size=shape).astype(np.float32)


def test_metadata_json_beside_a_frames_folder(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i, frame in enumerate(_stack()):
        tifffile.imwrite(frames / f"f{i}.tif", frame)
    (tmp_path / "metadata.json").write_text(json.dumps(METADATA))
    meta = read_measurement(str(frames)).meta
    assert meta.wavelength_m == pytest.approx(wavelength_m_from_kev(9.0))
    assert (meta.distance_m, meta.pixel_size_m, meta.rocking_step_deg) == (0.5, (5.5e-5, 5.5e-5), 0.005)
    assert meta.detector_angles_deg == (32.174, 0.0)
    assert meta.extra["pixel_orientation"] == "x+,y-"


def test_bad_metadata_json_is_ignored(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i, frame in enumerate(_stack()):
        tifffile.imwrite(frames / f"f{i}.tif", frame)
    (frames / "metadata.json").write_text("{not json")
    assert read_measurement(str(frames)).meta == ScanMeta()


def test_options_override_the_cxi_file_and_binning_scales_pixels_and_step(tmp_path):
    path = tmp_path / "scan.cxi"
    write_measurement_cxi(path, _stack(), meta=ScanMeta(1e-10, 2.0, (50e-6, 50e-6), rocking_step_deg=0.01,
                                                        detector_angles_deg=(30.0, 5.0)))
    read = read_measurement(str(path)).meta
    assert (read.rocking_step_deg, read.detector_angles_deg) == (0.01, (30.0, 5.0))  # CXI round trip
    cfg = config_from_dict({"device": "cpu", "geometry": {"energy_kev": 10.0, "detector_angles_deg": [31.0, 0.0]},
                            "detector": {"bin": [2, 2, 2]}, "prep": {"centre": "none"}})
    meta = inspect_input(str(path), cfg).conditioned.meta
    assert meta.wavelength_m == pytest.approx(wavelength_m_from_kev(10.0))  # the option
    assert meta.detector_angles_deg == (31.0, 0.0)
    assert meta.distance_m == 2.0  # the file
    assert meta.pixel_size_m == (100e-6, 100e-6) and meta.rocking_step_deg == pytest.approx(0.02)  # binned


@pytest.mark.parametrize("geometry", [{"detector_angles_deg": [1.0]}, {"pixel_orientation": "up,down"},
                                      {"energy_kev": -1.0}])
def test_bad_geometry_configuration(geometry):
    from cdi_dip.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="geometry"):
        config_from_dict({"geometry": geometry})
