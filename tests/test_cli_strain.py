"""``cdi-dip strain`` on a written 3D result whose displacement field is known, and its bad inputs."""

import json

import h5py
import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from cdi_dip.cli.app import app
from cdi_dip.geometry import real_space_basis, wavelength_m_from_kev
from cdi_dip.io.writers import write_result_cxi
from cdi_dip.types import Measurement, Result, ScanMeta

from strained import erode, quadratic_crystal

META = ScanMeta(wavelength_m=wavelength_m_from_kev(9.0), distance_m=0.5, pixel_size_m=(55e-6, 55e-6),
                rocking_step_deg=0.02, detector_angles_deg=(32.174, 12.6346))
SHAPE = (24, 28, 28)


def _write(path, meta, obj, support, config=None):
    measurement = Measurement(intensity=np.ones(obj.shape, dtype=np.float32), valid=np.ones(obj.shape, dtype=bool),
                              meta=meta, name="crystal")
    write_result_cxi(path, Result(obj=obj, support=support, measurement=measurement, method="hio",
                                  config=config or {}),
                     command_line="test", version="0")
    return path


def test_strain_command_recovers_a_known_strain(tmp_path):
    obj, support, expected = quadratic_crystal(META, SHAPE)
    source = _write(tmp_path / "crystal.cxi", META, obj, support)
    before = source.read_bytes()
    run = CliRunner().invoke(app, ["strain", str(source), "--out", str(tmp_path / "strain"), "--frame", "detector",
                                   "--json"])
    assert run.exit_code == 0, run.output
    assert source.read_bytes() == before  # the input is never modified
    with h5py.File(tmp_path / "strain" / "strain.cxi", "r") as file:
        strain = file["/entry_1/strain_1/strain"][()]
        assert file["/entry_1/strain_1/displacement"].attrs["units"] == "m"
        voxel = file["/entry_1/strain_1/voxel_size_nm"][()]
    inner = erode(support, 2)
    rms = float(np.sqrt(np.mean((strain[inner] - expected[inner]) ** 2)))
    assert rms < 1e-6, rms  # strain up to 1.1e-3, stored as float32: measured 4e-11
    assert np.isnan(strain[~support]).all()
    with tifffile.TiffFile(tmp_path / "strain" / "crystal_strain.tif") as tif:
        assert tif.shaped_metadata[0]["voxel_size_nm"] == pytest.approx(list(voxel))
    for name in ("crystal_displacement_nm.tif", "crystal_strain.vti", "strain.png"):
        assert (tmp_path / "strain" / name).stat().st_size > 0


def test_bragg_angle_stands_in_for_unknown_detector_angles(tmp_path):
    obj, support, _ = quadratic_crystal(META, SHAPE)
    meta = ScanMeta(META.wavelength_m, META.distance_m, META.pixel_size_m)  # no angles, no step
    source = _write(tmp_path / "crystal.cxi", meta, obj, support)
    run = CliRunner().invoke(app, ["strain", str(source), "--bragg-angle-deg", "17.16", "--frame", "detector", "--json"])
    assert run.exit_code == 0, run.output
    assert (tmp_path / "strain.cxi").is_file()
    run = CliRunner().invoke(app, ["strain", str(source), "--bragg-angle-deg", "17.16"])  # lab: needs the step
    assert run.exit_code == 2 and "--rocking-step-deg" in run.output
    run = CliRunner().invoke(app, ["strain", str(source), "--bragg-angle-deg", "17.16", "--rocking-step-deg", "0.02",
                                   "--json"])
    assert run.exit_code == 0, run.output


def _detector_strain(tmp_path, name, config, options):
    """``cdi-dip strain --frame detector`` of a result without detector angles, stored with ``config``: the strain."""
    obj, support, _ = quadratic_crystal(META, SHAPE)
    meta = ScanMeta(META.wavelength_m, META.distance_m, META.pixel_size_m)  # no angles: the reflection is needed
    source = _write(tmp_path / f"{name}.cxi", meta, obj, support, config)
    run = CliRunner().invoke(app, ["strain", str(source), "--out", str(tmp_path / name), "--frame", "detector",
                                   *options])
    assert run.exit_code == 0, run.output
    with h5py.File(tmp_path / name / "strain.cxi", "r") as file:
        return file["/entry_1/strain_1/strain"][()]


def test_strain_reuses_the_reflection_stored_with_the_result(tmp_path):
    stored = {"geometry": {"d_spacing_nm": 0.2, "bragg_angle_deg": 17.16}}
    given = _detector_strain(tmp_path, "given", {}, ["--d-spacing-nm", "0.2", "--bragg-angle-deg", "17.16"])
    reused = _detector_strain(tmp_path, "reused", stored, [])
    assert np.isfinite(given).any()
    np.testing.assert_array_equal(reused, given)


def test_command_line_reflection_wins_over_the_stored_one(tmp_path):
    stored = {"geometry": {"d_spacing_nm": 0.3, "bragg_angle_deg": 17.16}}
    expected = _detector_strain(tmp_path, "given", {}, ["--d-spacing-nm", "0.2", "--bragg-angle-deg", "17.16"])
    mixed = _detector_strain(tmp_path, "mixed", stored, ["--d-spacing-nm", "0.2"])  # the stored angle still holds
    np.testing.assert_array_equal(mixed, expected)
    stale = _detector_strain(tmp_path, "stale", stored, [])  # the stored d: a different |Q|, a different strain
    inside = np.isfinite(expected) & (expected != 0)
    assert not np.allclose(stale[inside], expected[inside])


@pytest.mark.parametrize("frame", ["lab", "crystal"])
def test_orthogonal_frames_write_isotropic_files(tmp_path, frame):
    obj, support, _ = quadratic_crystal(META, SHAPE)
    source = _write(tmp_path / "crystal.cxi", META, obj, support)
    args = ["strain", str(source), "--out", str(tmp_path / "strain"), "--json"]
    run = CliRunner().invoke(app, args + ["--frame", frame] if frame != "lab" else args)  # lab is the default
    assert run.exit_code == 0, run.output
    summary = json.loads(run.stdout)
    voxel = summary["voxel_size_nm"]
    assert summary["frame"] == frame and voxel[0] == voxel[1] == voxel[2] and 5 < voxel[0] < 40
    with h5py.File(tmp_path / "strain" / "strain.cxi", "r") as file:
        group = file["/entry_1/strain_1"]
        assert group["frame"][()].decode() == frame
        assert group["voxel_size_nm"][()] == pytest.approx(voxel)
        assert group["basis"][()] == pytest.approx(real_space_basis(META, SHAPE))
        assert group["basis"].attrs["units"] == "m"
        assert group["rotation"].shape == (3, 3) and group["origin_nm"].shape == (3,)
        strain = group["strain"][()]
        assert list(strain.shape) == summary["shape"] != list(SHAPE)
        assert np.isfinite(strain[group["support"][()] == 1]).all()
    with tifffile.TiffFile(tmp_path / "strain" / "crystal_strain.tif") as tif:
        assert tif.shaped_metadata[0]["voxel_size_nm"] == pytest.approx(voxel)
    vti = (tmp_path / "strain" / "crystal_strain.vti").read_text()
    spacing = [float(v) for v in vti.split('Spacing="')[1].split('"')[0].split()]
    assert spacing == pytest.approx(voxel)
    assert (tmp_path / "strain" / "strain.png").stat().st_size > 0


def test_bad_frame_is_one_line_and_exit_2(tmp_path):
    obj, support, _ = quadratic_crystal(META, SHAPE)
    source = _write(tmp_path / "crystal.cxi", META, obj, support)
    run = CliRunner().invoke(app, ["strain", str(source), "--frame", "sample"])
    assert run.exit_code == 2
    assert run.stdout == "" and len(run.stderr.strip().splitlines()) == 1 and "--frame" in run.stderr


@pytest.mark.parametrize("case", ["missing", "2d", "no_geometry", "no_angles"])
def test_bad_input_is_one_line_and_exit_2(tmp_path, case):
    obj, support, _ = quadratic_crystal(META, SHAPE)
    path = tmp_path / "r.cxi"
    if case == "2d":
        _write(path, META, obj[SHAPE[0] // 2], support[SHAPE[0] // 2])
    elif case == "no_geometry":
        _write(path, ScanMeta(), obj, support)
    elif case == "no_angles":
        _write(path, ScanMeta(META.wavelength_m, META.distance_m, META.pixel_size_m), obj, support)
    run = CliRunner().invoke(app, ["strain", str(path)])
    assert run.exit_code == 2, run.output
    assert len(run.output.strip().splitlines()) == 1 and "error" in run.output


def test_a_malformed_stored_reflection_is_refused_unless_the_option_replaces_it(tmp_path):
    obj, support, _ = quadratic_crystal(META, SHAPE)
    meta = ScanMeta(META.wavelength_m, META.distance_m, META.pixel_size_m)
    source = _write(tmp_path / "edited.cxi", meta, obj, support,
                    {"geometry": {"d_spacing_nm": "0.2 nm", "bragg_angle_deg": 17.16}})
    run = CliRunner().invoke(app, ["strain", str(source), "--out", str(tmp_path / "refused"), "--frame", "detector"])
    assert run.exit_code == 2, run.output
    assert "geometry.d_spacing_nm" in run.output and "--d-spacing-nm" in run.output
    assert "Traceback" not in run.output
    replaced = _detector_strain(tmp_path, "replaced", {"geometry": {"d_spacing_nm": "0.2 nm", "bragg_angle_deg": 17.16}},
                                ["--d-spacing-nm", "0.2"])
    assert np.isfinite(replaced).any()
