"""End-to-end runs of the command line on tiny simulated 2D and 3D scans."""

from __future__ import annotations

import json
import os

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from cdi_dip.cli import app

runner = CliRunner()

SUMMARY_KEYS = {"input", "output", "files", "method", "status", "device", "shape", "iterations",
                "wall_s", "seconds_per_iteration", "metrics", "seed", "version"}


def _simulate(path, shape, **options):
    args = ["simulate", str(path), "--shape", ",".join(map(str, shape)), "--seed", "3"]
    for key, value in options.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return path, path.with_name(f"{path.stem}_truth.npy")


@pytest.fixture(scope="module")
def scan_2d(tmp_path_factory):
    return _simulate(tmp_path_factory.mktemp("sim") / "tiny2d.cxi", (48, 48), offset="2,-3", peak_counts=1e5)


@pytest.fixture(scope="module")
def scan_3d(tmp_path_factory):
    return _simulate(tmp_path_factory.mktemp("sim") / "tiny3d.cxi", (24, 24, 24), peak_counts=1e5)


def _reconstruct(scan, out, *extra):
    return runner.invoke(app, ["reconstruct", str(scan), "--out", str(out), "--json", "--device", "cpu", *extra])


def test_reconstruct_2d_writes_the_contracted_outputs(scan_2d, tmp_path):
    scan, truth = scan_2d
    before = scan.read_bytes()
    result = _reconstruct(scan, tmp_path, "--method", "hio", "--iterations", "300", "--seed", "1")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)  # nothing but the JSON object on stdout
    assert SUMMARY_KEYS <= summary.keys()
    assert summary["status"] == "ok" and summary["method"] == "hio"
    folder = tmp_path / "tiny2d"
    for name in ("tiny2d.cxi", "tiny2d_amplitude.tif", "tiny2d_phase.tif", "report.png", "summary.json"):
        assert (folder / name).is_file(), name
        assert str(folder / name) in summary["files"]
    assert json.loads((folder / "summary.json").read_text()) == summary
    with h5py.File(folder / "tiny2d.cxi", "r") as handle:
        obj = handle["/entry_1/image_1/data"][()]
        support = handle["/entry_1/image_1/mask"][()]
        assert np.iscomplexobj(obj) and obj.shape == tuple(summary["shape"])
        assert support.shape == obj.shape and support.any()
        assert np.array_equal(handle["/entry_1/data_1/data"][()], obj)
        assert "process_1" in handle["/entry_1/image_1"]
    # The fit explains the data, and the object resembles the truth.
    assert summary["metrics"]["r_factor"] < 0.3
    compared = runner.invoke(app, ["compare", str(folder / "tiny2d.cxi"), str(truth), "--json"])
    assert compared.exit_code == 0, compared.output
    assert json.loads(compared.stdout)["error"] < 0.5
    assert scan.read_bytes() == before  # the input is never touched
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


def test_reconstruct_3d(scan_3d, tmp_path):
    scan, _ = scan_3d
    result = _reconstruct(scan, tmp_path, "--method", "er", "--iterations", "60")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert len(summary["shape"]) == 3
    with h5py.File(summary["output"], "r") as handle:
        assert handle["/entry_1/image_1/data"].ndim == 3


def test_same_seed_repeats(scan_2d, tmp_path):
    scan, _ = scan_2d
    objects = []
    for out in ("a", "b"):
        result = _reconstruct(scan, tmp_path / out, "--iterations", "40", "--seed", "5")
        assert result.exit_code == 0, result.output
        with h5py.File(json.loads(result.stdout)["output"], "r") as handle:
            objects.append(handle["/entry_1/image_1/data"][()])
    assert np.array_equal(objects[0], objects[1])


def test_missing_input_is_exit_2_with_one_line_and_nothing_written(tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["reconstruct", str(tmp_path / "nope.cxi"), "--out", str(out)])
    assert result.exit_code == 2
    assert "nope.cxi" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output
    assert not out.exists()


@pytest.mark.parametrize("args, needle", [
    (["--method", "magic"], "method"),
    (["--device", "tpu"], "device"),
    (["--runs", "0"], "runs"),
    (["--plan", "3*(20*ER+"], "plan"),
    (["--time-budget", "-1"], "time_budget_s"),
])
def test_bad_options_are_exit_2(scan_2d, tmp_path, args, needle):
    scan, _ = scan_2d
    result = runner.invoke(app, ["reconstruct", str(scan), "--out", str(tmp_path / "o"), *args])
    assert result.exit_code == 2, result.output
    assert needle in result.stderr
    assert not (tmp_path / "o").exists()


def test_unwritable_output_is_exit_2(scan_2d, tmp_path):
    if os.geteuid() == 0:
        blocker = tmp_path / "file"
        blocker.write_text("x")
        out = blocker / "sub"  # a path below a regular file cannot be created, even by root
    else:
        out = tmp_path / "ro"
        out.mkdir()
        out.chmod(0o500)
    result = runner.invoke(app, ["reconstruct", str(scan_2d[0]), "--out", str(out), "--iterations", "5"])
    assert result.exit_code == 2, result.output
    assert "output directory" in result.stderr


def test_inspect_json(scan_2d):
    result = runner.invoke(app, ["inspect", str(scan_2d[0]), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["shape"] == [48, 48]
    assert info["total_counts"] > 0 and info["valid_fraction"] == 1.0
    # the peak is off-centre by the simulated offset; inspect finds it
    assert info["centre_px"] == [24 + 2, 24 - 3]


def test_compare_truth_with_itself(scan_2d):
    truth = str(scan_2d[1])
    result = runner.invoke(app, ["compare", truth, truth, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["error"] < 1e-6


def test_simulate_rejects_bad_shape(tmp_path):
    result = runner.invoke(app, ["simulate", str(tmp_path / "x.cxi"), "--shape", "12"])
    assert result.exit_code == 2
    assert "--shape" in result.stderr
    assert not (tmp_path / "x.cxi").exists()
