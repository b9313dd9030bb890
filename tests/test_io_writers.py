"""Writers: CXI input and result layouts read back with plain h5py, TIFFs, JSON, atomicity."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile

from cdi_dip.config import RunConfig
from cdi_dip.io import (
    atomic_write,
    read_measurement,
    read_object,
    write_json,
    write_measurement_cxi,
    write_result_cxi,
    write_tiffs,
)
from cdi_dip.types import AlignInfo, Measurement, Result, ScanMeta


def _no_temporaries(directory: Path) -> bool:
    return not [p for p in directory.iterdir() if p.name.endswith(".tmp")]


@pytest.fixture
def result(rng) -> Result:
    shape = (16, 16)
    obj = np.zeros(shape, dtype=np.complex64)
    obj[5:11, 6:10] = np.exp(1j * rng.uniform(-1, 1, size=(6, 4)))
    support = np.abs(obj) > 0
    valid = np.ones(shape, dtype=bool)
    valid[8, 7:9] = False
    free = np.zeros(shape, dtype=bool)
    free[::5, ::5] = True
    measurement = Measurement(
        intensity=rng.poisson(5.0, size=shape).astype(np.float32),
        valid=valid,
        meta=ScanMeta(wavelength_m=1.38e-10, distance_m=0.5, pixel_size_m=(55e-6, 55e-6)),
        source="raw/scan54.cxi",
        name="scan54",
        excluded={"file_mask": 2},
        roi=[(100, 116), (-2, 14)],
    )
    return Result(
        obj=obj,
        support=support,
        measurement=measurement,
        method="hio",
        metrics={"r_factor": 0.12, "llk_poisson": np.float64(1.5), "free_llk_poisson": 1.7, "iterations": 30},
        history=[{"iteration": 0, "loss": 3.0}, {"iteration": 10, "loss": 2.0, "support_size": 24},
                 {"iteration": 20, "loss": 1.0}],
        iterations=30,
        wall_s=1.25,
        device="cpu",
        seed=7,
        interrupted=False,
        align=AlignInfo(shift_px=(0.5, -1.0), ramp_rad_per_px=(0.01, 0.0), phase_offset_rad=0.3),
        config=RunConfig().to_dict(),
        runs=[{"run": 0, "seed": 7, "llk_poisson": 1.5, "kept": True}, {"run": 1, "seed": 8, "llk_poisson": math.nan, "kept": False}],
        model_intensity=np.abs(np.fft.fft2(obj)).astype(np.float32) ** 2,
        free=free,
        masks={"valid": valid, "free": free},
        solver={"stop_iteration": np.int64(25)},
    )


# --------------------------------------------------------------------------- CXI input


def test_measurement_cxi_layout(tmp_path, rng):
    counts = rng.poisson(3.0, size=(3, 8, 8)).astype(np.int32)
    valid = np.ones(counts.shape, dtype=bool)
    valid[0, 1, 1] = False
    truth = (rng.normal(size=(2, 4, 4)) + 1j).astype(np.complex128)
    path = tmp_path / "sim.cxi"
    write_measurement_cxi(path, counts, valid=valid, meta=ScanMeta(1.0e-10, 2.0, (1e-4, 2e-4)), ground_truth=truth)
    with h5py.File(path, "r") as f:
        assert f["cxi_version"][()] == 150
        assert f["entry_1"].attrs["NX_class"] == "NXentry"
        detector = f["entry_1/instrument_1/detector_1"]
        assert detector.attrs["NX_class"] == "NXdetector"
        assert detector["data"].dtype == np.int32
        np.testing.assert_array_equal(detector["data"][()], counts)
        assert detector["mask"].dtype == np.uint32
        np.testing.assert_array_equal(detector["mask"][()] != 0, ~valid)
        assert detector["distance"][()] == 2.0
        assert (detector["y_pixel_size"][()], detector["x_pixel_size"][()]) == (1e-4, 2e-4)
        assert f["entry_1/instrument_1/beam_1/incident_wavelength"][()] == 1.0e-10
        energy_j = f["entry_1/instrument_1/source_1/energy"][()]
        assert energy_j == pytest.approx(6.62607015e-34 * 299792458.0 / 1.0e-10)
        assert f["entry_1/data_1"].get("data", getlink=True).path == "/entry_1/instrument_1/detector_1/data"
        np.testing.assert_array_equal(f["entry_1/data_1/data"][()], counts)
        gt = f["entry_1/sample_1/ground_truth"]
        assert gt.dtype == np.complex64
        np.testing.assert_allclose(gt[()], truth, rtol=1e-6)
    assert _no_temporaries(tmp_path)


def test_measurement_cxi_without_mask_or_meta(tmp_path):
    path = tmp_path / "plain.cxi"
    write_measurement_cxi(path, np.ones((8, 8), dtype=np.float32))
    with h5py.File(path, "r") as f:
        assert "mask" not in f["entry_1/instrument_1/detector_1"]
        assert "sample_1" not in f["entry_1"]
    m = read_measurement(str(path))
    assert m.valid.all() and m.meta.wavelength_m is None


# --------------------------------------------------------------------------- CXI result


def test_result_cxi_round_trip(tmp_path, result):
    path = tmp_path / "scan54.cxi"
    write_result_cxi(path, result, command_line="cdi-dip reconstruct raw/scan54.cxi", version="9.9")
    assert _no_temporaries(tmp_path)
    with h5py.File(path, "r") as f:
        image = f["entry_1/image_1"]
        assert image["data"].dtype == np.complex64
        np.testing.assert_array_equal(image["data"][()], result.obj)
        assert image["mask"].dtype == np.uint8
        np.testing.assert_array_equal(image["mask"][()] == 1, result.support)
        np.testing.assert_array_equal(image["detector_roi"][()], [[100, 116], [-2, 14]])
        assert f["entry_1/data_1"].get("data", getlink=True).path == "/entry_1/image_1/data"
        np.testing.assert_array_equal(f["entry_1/data_1/data"][()], result.obj)

        process = image["process_1"]
        assert process["program"][()].decode() == "cdi-dip"
        assert process["version"][()].decode() == "9.9"
        assert process["command"][()].decode() == "cdi-dip reconstruct raw/scan54.cxi"
        assert process["date"][()].decode()[:2] == "20"
        assert json.loads(process["configuration"][()]) == json.loads(json.dumps(result.config))
        assert process["parameters/method"][()].decode() == result.config["method"]
        assert process["parameters/prep"].attrs["NX_class"] == "NXcollection"

        results = process["results"]
        assert results["r_factor"][()] == pytest.approx(0.12)
        assert results["llk_poisson"][()] == pytest.approx(1.5)
        assert results["iterations"][()] == 30 and results["seed"][()] == 7
        assert results["wall_s"][()] == 1.25 and not results["interrupted"][()]
        assert results["device"][()].decode() == "cpu"
        np.testing.assert_array_equal(results["shift_px"][()], [0.5, -1.0])
        np.testing.assert_array_equal(results["history/iteration"][()], [0, 10, 20])
        np.testing.assert_array_equal(results["history/loss"][()], [3.0, 2.0, 1.0])
        support_size = results["history/support_size"][()]
        assert np.isnan(support_size[0]) and support_size[1] == 24
        runs = json.loads(results["runs"][()])
        assert runs[0]["kept"] and runs[1]["llk_poisson"] is None
        assert json.loads(results["solver"][()]) == {"stop_iteration": 25}
        np.testing.assert_allclose(results["model_intensity"][()], result.model_intensity)

        masks = process["masks"]
        np.testing.assert_array_equal(masks["valid"][()] == 1, result.measurement.valid)
        np.testing.assert_array_equal(masks["free"][()] == 1, result.free)

        detector = f["entry_1/instrument_1/detector_1"]
        assert detector["distance"][()] == 0.5
        np.testing.assert_array_equal(detector["mask"][()] != 0, ~result.measurement.valid)
    # the package's own readers understand it too
    np.testing.assert_array_equal(read_object(str(path)), result.obj)
    again = read_measurement(str(path))
    np.testing.assert_array_equal(again.valid, result.measurement.valid)
    assert again.meta.wavelength_m == pytest.approx(1.38e-10)


def test_result_cxi_without_optional_parts(tmp_path, result):
    result.masks = {}
    result.solver = {}
    result.free = None
    result.model_intensity = None
    result.history = []
    result.measurement.roi = []
    path = tmp_path / "bare.cxi"
    write_result_cxi(path, result, command_line="", version="0")
    with h5py.File(path, "r") as f:
        assert "masks" not in f["entry_1/image_1/process_1"]
        np.testing.assert_array_equal(f["entry_1/image_1/detector_roi"][()], [[0, 16], [0, 16]])


def test_result_cxi_failure_leaves_previous_file(tmp_path, result):
    path = tmp_path / "scan.cxi"
    path.write_bytes(b"previous result")
    result.support = result.support[:4]  # wrong shape: the writer refuses
    with pytest.raises(ValueError):
        write_result_cxi(path, result, command_line="", version="0")
    assert path.read_bytes() == b"previous result"
    assert _no_temporaries(tmp_path)


# --------------------------------------------------------------------------- TIFF and JSON


@pytest.mark.parametrize("shape", [(8, 8), (4, 8, 8)])
def test_tiffs_round_trip(tmp_path, rng, shape):
    obj = (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(np.complex64)
    paths = write_tiffs(tmp_path, "scan", obj)
    assert [p.name for p in paths] == ["scan_amplitude.tif", "scan_phase.tif"]
    amplitude, phase = (tifffile.imread(p) for p in paths)
    assert amplitude.dtype == np.float32 and amplitude.shape == shape
    np.testing.assert_allclose(amplitude * np.exp(1j * phase), obj, atol=1e-5)
    assert _no_temporaries(tmp_path)


def test_write_json_converts_numpy_and_non_finite(tmp_path):
    path = tmp_path / "summary.json"
    write_json(path, {"a": np.float32(1.5), "b": np.int64(3), "c": np.array([1, 2]), "d": math.nan,
                      "e": (np.bool_(True), Path("x/y")), "f": {"g": math.inf}})
    text = path.read_text()
    assert text.startswith("{\n  \"a\"")
    assert json.loads(text) == {"a": 1.5, "b": 3, "c": [1, 2], "d": None, "e": [True, "x/y"], "f": {"g": None}}
    assert _no_temporaries(tmp_path)


# --------------------------------------------------------------------------- atomicity


def test_atomic_write_renames_on_success(tmp_path):
    target = tmp_path / "out.txt"
    with atomic_write(target) as tmp:
        assert tmp.parent == tmp_path and not tmp.exists() and tmp != target
        tmp.write_text("done")
        assert not target.exists()
    assert target.read_text() == "done"
    assert sorted(os.listdir(tmp_path)) == ["out.txt"]


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError), atomic_write(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert os.listdir(tmp_path) == []


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(KeyboardInterrupt), atomic_write(target) as tmp:
        tmp.write_text("new but incomplete")
        raise KeyboardInterrupt
    assert target.read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["out.txt"]


# --------------------------------------------------------------------------- issue 19: valid formats


def _null_datasets(file: h5py.File) -> list[str]:
    found: list[str] = []
    file.visititems(lambda name, node: found.append(name) if isinstance(node, h5py.Dataset) and node.shape is None
                    else None)
    return found


def test_result_cxi_has_no_null_datasets_and_names_unset_settings(tmp_path, result):
    result.metrics["seconds_per_iteration"] = math.nan
    assert result.config["prep"]["max_size"] is None and result.config["runs"] is None  # unset by default
    path = tmp_path / "scan54.cxi"
    write_result_cxi(path, result, command_line="", version="0")
    with h5py.File(path, "r") as f:
        assert _null_datasets(f) == []
        parameters = f["entry_1/image_1/process_1/parameters"]
        assert "runs" not in parameters and "runs" in list(parameters.attrs["unset"])
        assert "max_size" not in parameters["prep"] and "max_size" in list(parameters["prep"].attrs["unset"])
        assert np.isnan(f["entry_1/image_1/process_1/results/seconds_per_iteration"][()])
    from cdi_dip.io.result_cxi import read_result_cxi

    again = read_result_cxi(path).result
    assert again.config["runs"] is None and again.config["prep"]["max_size"] is None
    assert math.isnan(again.metrics["seconds_per_iteration"])


@pytest.mark.parametrize("shape", [(16, 16), (8, 8, 8)])
def test_object_and_measured_data_are_nexus_nxdata(tmp_path, result, shape):
    if len(shape) == 3:
        result.obj = np.ones(shape, dtype=np.complex64)
        result.support = np.ones(shape, dtype=bool)
        result.model_intensity = None
        result.free = None
        result.masks = {}
        result.measurement = Measurement(intensity=np.ones(shape, dtype=np.float32), valid=np.ones(shape, dtype=bool),
                                         name="vol")
    path = tmp_path / "scan.cxi"
    write_result_cxi(path, result, command_line="", version="0")
    allowed = {"scaler", "scalar", "spectrum", "image", "rgb-image", "rgba-image", "hsl-image", "hsla-image",
               "cmyk-image", "cmyka-image", "vertex"}  # the NXdata base class's enumeration
    with h5py.File(path, "r") as f:
        for group, target in (("entry_1/image_1", "/entry_1/image_1/data"),
                              ("entry_1/data_1", "/entry_1/image_1/data"),
                              ("entry_1/data_2", "/entry_1/instrument_1/detector_1/data")):
            nxdata = f[group]
            assert nxdata.attrs["NX_class"] == "NXdata" and nxdata.attrs["signal"] == "data"
            assert list(nxdata.attrs["axes"]) == ["."] * len(shape)
            assert nxdata["data"].attrs["interpretation"] in allowed
            assert nxdata["data"].name == target or nxdata.get("data", getlink=True).path == target
    np.testing.assert_array_equal(read_object(str(path)), result.obj)


def test_measurement_cxi_data_is_nxdata(tmp_path, rng):
    path = tmp_path / "in.cxi"
    write_measurement_cxi(path, rng.poisson(3.0, size=(8, 8)).astype(np.float32))
    with h5py.File(path, "r") as f:
        assert list(f["entry_1/data_1"].attrs["axes"]) == [".", "."]
        assert f["entry_1/data_1/data"].attrs["interpretation"] == "image"


def test_phase_tiff_is_nan_outside_the_support(tmp_path, rng):
    obj = (rng.normal(size=(8, 8)) + 1j * rng.normal(size=(8, 8))).astype(np.complex64)
    support = np.zeros((8, 8), dtype=bool)
    support[2:6, 3:7] = True
    amplitude_path, phase_path = write_tiffs(tmp_path, "scan", obj, support=support)
    phase = tifffile.imread(phase_path)
    assert phase.dtype == np.float32 and np.isnan(phase[~support]).all()
    np.testing.assert_allclose(phase[support], np.angle(obj)[support], atol=1e-6)
    assert np.isfinite(tifffile.imread(amplitude_path)).all()
