"""``reconstruct`` of a 3D Bragg scan writes its strain when the geometry is known, and never loses a result to it."""

from __future__ import annotations

import json
import logging

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from cdi_dip.cli import app

runner = CliRunner()

GEOMETRY = ["--energy-kev", "9", "--distance-m", "0.5", "--pixel-size-m", "55e-6", "--detector-angles", "32.174,12.6346"]
STEP = ["--rocking-step-deg", "0.02"]
STRAIN_NAMES = ("strain.cxi", "tiny3d_strain.tif", "tiny3d_displacement_nm.tif", "tiny3d_strain.vti", "strain.png")


@pytest.fixture(scope="module")
def scan_3d(tmp_path_factory):
    path = tmp_path_factory.mktemp("sim") / "tiny3d.cxi"
    run = runner.invoke(app, ["simulate", str(path), "--shape", "20,20,20", "--seed", "3", "--peak-counts", "1e5"])
    assert run.exit_code == 0, run.output
    return path


def _reconstruct(scan, out, *extra):
    run = runner.invoke(app, ["reconstruct", str(scan), "--out", str(out), "--json", "--device", "cpu", "--method",
                              "hio", "--iterations", "20", "--runs", "1", "--seed", "1", *extra])
    assert run.exit_code == 0, run.output
    return json.loads(run.stdout), out / "tiny3d"


def _listed_files_exist(summary, folder):
    assert {p.name for p in folder.iterdir()} == {p.rsplit("/", 1)[-1] for p in summary["files"]}


def test_known_geometry_writes_the_strain_in_the_lab_frame(scan_3d, tmp_path):
    summary, folder = _reconstruct(scan_3d, tmp_path, *GEOMETRY, *STEP)
    record = summary["strain"]
    assert record["status"] == "ok" and record["frame"] == "lab", record
    voxel = record["voxel_size_nm"]
    assert voxel[0] == voxel[1] == voxel[2] > 0
    assert np.isfinite([record["strain_rms"], record["strain_min"], record["strain_max"]]).all()
    assert len(record["crystal_size_nm"]) == 3 and min(record["crystal_size_nm"]) > voxel[0]
    for name in STRAIN_NAMES:
        assert str(folder / name) in summary["files"] and str(folder / name) in record["files"], name
    _listed_files_exist(summary, folder)
    assert json.loads((folder / "summary.json").read_text())["strain"] == record
    with h5py.File(folder / "strain.cxi", "r") as file:
        assert file["/entry_1/strain_1/frame"][()].decode() == "lab"
        assert file["/entry_1/strain_1/source"][()].decode() == str(folder / "tiny3d.cxi")
    assert not list(tmp_path.glob(".tiny3d~*"))  # nothing staged is left beside the result


def test_without_the_rocking_step_auto_is_the_detector_frame(scan_3d, tmp_path):
    summary, folder = _reconstruct(scan_3d, tmp_path, *GEOMETRY)
    assert summary["strain"]["status"] == "ok" and summary["strain"]["frame"] == "detector"
    assert "rocking step unknown" in summary["strain"]["note"]
    summary, _ = _reconstruct(scan_3d, tmp_path / "lab", *GEOMETRY, "--strain", "lab")
    assert summary["strain"]["status"] == "skipped" and "--rocking-step-deg" in summary["strain"]["reason"]


def test_without_geometry_no_strain_and_the_summary_says_why(scan_3d, tmp_path):
    summary, folder = _reconstruct(scan_3d, tmp_path)
    assert summary["strain"]["status"] == "skipped"
    assert summary["strain"]["reason"] == ("the geometry is incomplete: give --detector-angles (or --bragg-angle-deg) "
                                           "(or a metadata.json beside the frames)")  # the simulation gives the rest
    assert not (folder / "strain.cxi").exists()
    _listed_files_exist(summary, folder)


def test_a_bragg_angle_or_d_spacing_stands_in_for_the_detector_angles(scan_3d, tmp_path):
    # The simulation gives energy, distance and pixel; with the reflection instead of the arm angles the strain
    # is written, in the lab frame when the rocking step is known: |Q| = 4 pi sin(theta_B) / lambda or 2 pi / d.
    summary, folder = _reconstruct(scan_3d, tmp_path / "angle", "--bragg-angle-deg", "17.16", *STEP)
    assert summary["strain"]["status"] == "ok" and summary["strain"]["frame"] == "lab", summary["strain"]
    assert summary["config"]["geometry"]["bragg_angle_deg"] == 17.16
    summary, folder = _reconstruct(scan_3d, tmp_path / "spacing", "--d-spacing-nm", "0.2265", *STEP)
    assert summary["strain"]["status"] == "ok", summary["strain"]
    with h5py.File(folder / "strain.cxi", "r") as file:
        assert np.isclose(float(file["/entry_1/strain_1/q_norm"][()]), 2 * np.pi / 0.2265e-9, rtol=1e-6)


def test_strain_off_writes_none(scan_3d, tmp_path):
    summary, folder = _reconstruct(scan_3d, tmp_path, *GEOMETRY, *STEP, "--strain", "off")
    assert summary["strain"] == {"status": "skipped", "reason": "--strain off"}
    assert not any((folder / name).exists() for name in STRAIN_NAMES)
    _listed_files_exist(summary, folder)


def test_a_failed_strain_keeps_the_reconstruction(scan_3d, tmp_path, monkeypatch, caplog):
    import cdi_dip.strain_result as strain_result
    from cdi_dip.io import strain_files

    real = strain_files.write_strain_files

    def half_then_fail(directory, name, *args, **kwargs):  # one file written, then a failure
        real(directory, name, *args, **kwargs)
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(strain_files, "write_strain_files", half_then_fail)
    with caplog.at_level(logging.WARNING, logger="cdi_dip"):
        summary, folder = _reconstruct(scan_3d, tmp_path, *GEOMETRY, *STEP)
    assert summary["status"] == "ok"
    assert summary["strain"]["status"] == "failed" and "disk on fire" in summary["strain"]["reason"]
    assert any("strain" in r.getMessage() and "disk on fire" in r.getMessage() for r in caplog.records)
    assert (folder / "tiny3d.cxi").is_file() and (folder / "report.png").is_file()
    assert not any((folder / name).exists() for name in STRAIN_NAMES)  # no half strain left
    _listed_files_exist(summary, folder)

    def boom(*args, **kwargs):
        raise ValueError("no strain today")

    monkeypatch.setattr(strain_result, "compute_strain", boom)
    summary, folder = _reconstruct(scan_3d, tmp_path / "again", *GEOMETRY, *STEP)
    assert summary["strain"]["status"] == "failed" and "no strain today" in summary["strain"]["reason"]
    assert (folder / "tiny3d.cxi").is_file()


def test_bad_strain_choice_is_refused_before_anything_runs(scan_3d, tmp_path):
    run = runner.invoke(app, ["reconstruct", str(scan_3d), "--out", str(tmp_path / "o"), "--strain", "sideways"])
    assert run.exit_code == 2 and "--strain 'sideways'" in run.output
    assert not (tmp_path / "o").exists()


def test_report_rebuilt_from_the_result_shows_the_strain(scan_3d, tmp_path):
    from matplotlib.image import imread

    summary, folder = _reconstruct(scan_3d, tmp_path, *GEOMETRY, *STEP)
    written = imread(folder / "report.png").shape
    run = runner.invoke(app, ["report", str(folder / "tiny3d.cxi"), "--out", str(tmp_path / "rebuilt"), "--json"])
    assert run.exit_code == 0, run.output
    assert imread(tmp_path / "rebuilt" / "report.png").shape == written  # the same panels, strain included
    assert "Strain along Q" in (tmp_path / "rebuilt" / "report.html").read_text()
    (folder / "strain.cxi").unlink()  # without it: the report of the object alone, two columns narrower
    run = runner.invoke(app, ["report", str(folder / "tiny3d.cxi"), "--out", str(tmp_path / "plain"), "--json"])
    assert run.exit_code == 0, run.output
    assert imread(tmp_path / "plain" / "report.png").shape[1] < written[1]
    assert "Strain along Q" not in (tmp_path / "plain" / "report.html").read_text()


@pytest.mark.parametrize("fields, choice, expected", [
    ("all", "auto", ("lab", None)),
    ("all", "crystal", ("crystal", None)),
    ("all", "detector", ("detector", None)),
    ("all", "off", (None, "--strain off")),
    ("no step", "auto", ("detector", None)),
    ("no step", "lab", (None, "the rocking step is unknown: give --rocking-step-deg (the lab frame needs it)")),
    ("none", "auto", (None, "the geometry is not known: give --energy-kev, --distance-m, --pixel-size-m, "
                            "--detector-angles (or --bragg-angle-deg) (or a metadata.json beside the frames)")),
])
def test_strain_frame_follows_the_geometry(fields, choice, expected):
    from cdi_dip.geometry import wavelength_m_from_kev
    from cdi_dip.strain_result import strain_frame
    from cdi_dip.types import ScanMeta

    full = ScanMeta(wavelength_m=wavelength_m_from_kev(9.0), distance_m=0.5, pixel_size_m=(55e-6, 55e-6),
                    rocking_step_deg=0.02, detector_angles_deg=(32.174, 12.6346))
    meta = {"all": full, "no step": ScanMeta(full.wavelength_m, full.distance_m, full.pixel_size_m,
                                             detector_angles_deg=full.detector_angles_deg),
            "none": ScanMeta()}[fields]
    assert strain_frame(meta, 3, choice) == expected
    assert strain_frame(full, 2, choice)[0] is None
