"""Never lose a scientist's data: result folders never touch inputs or foreign folders (issue 16)."""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cdi_dip.cli import app
from cdi_dip.config import DipConfig, Method, RunConfig
from cdi_dip.io.names import safe_scan_name
from cdi_dip.outputs import hidden_path
from cdi_dip.pipeline import load_scan, reconstruct
from cdi_dip.simulate import simulate_scan, write_simulated_scan
from cdi_dip.solvers import dip_warmstart
from cdi_dip.solvers.dip import DEFAULT_PREFIT_ITERATIONS

runner = CliRunner()
FAST = ["--method", "hio", "--iterations", "5", "--device", "cpu", "--seed", "1", "--quiet"]


@pytest.fixture(scope="module")
def scan_bytes(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("scan") / "scan.cxi"
    write_simulated_scan(path, simulate_scan("crystal", (32, 32), rng=np.random.default_rng(0), peak_counts=1e5))
    return path.read_bytes()


def _tree(folder: Path) -> dict[str, str]:
    """Every file below ``folder`` (hidden ones too) with the SHA-256 of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _beamline(tmp_path: Path, scan_bytes: bytes) -> Path:
    """``data/S0042/S0042.cxi`` with a logbook beside it and a second scan."""
    folder = tmp_path / "data" / "S0042"
    folder.mkdir(parents=True)
    (folder / "S0042.cxi").write_bytes(scan_bytes)
    (folder / "logbook.txt").write_text("sample 3, 9 keV\n")
    (folder / "S0043.cxi").write_bytes(scan_bytes)
    return tmp_path / "data"


def _one_error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


# --------------------------------------------------------------------------- results never touch inputs


def test_out_set_to_the_data_folder_leaves_the_input_folder_byte_for_byte(tmp_path, scan_bytes):
    data = _beamline(tmp_path, scan_bytes)
    before = _tree(data)
    result = runner.invoke(app, ["reconstruct", str(data / "S0042" / "S0042.cxi"), "--out", str(data), *FAST])
    assert result.exit_code == 2, result.output
    assert "holds the input" in _one_error_line(result)
    assert _tree(data) == before


def test_out_dot_inside_the_data_folder_is_refused(tmp_path, scan_bytes, monkeypatch):
    data = _beamline(tmp_path, scan_bytes)
    before = _tree(data)
    monkeypatch.chdir(data)
    result = runner.invoke(app, ["reconstruct", "S0042/S0042.cxi", "--out", ".", *FAST])
    assert result.exit_code == 2, result.output
    assert "--out" in _one_error_line(result)
    assert _tree(data) == before


def _frames(folder: Path) -> Path:
    """A folder of eight TIFF frames (a tiny rocking curve)."""
    import tifffile

    folder.mkdir()
    for k in range(8):
        tifffile.imwrite(folder / f"f_{k:03d}.tif", np.full((16, 16), k, dtype=np.int32))
    return folder


def test_a_folder_of_frames_with_out_set_to_its_parent_keeps_every_frame(tmp_path):
    frames = _frames(tmp_path / "scan7")
    before = _tree(frames)
    for spec in (str(frames), str(frames / "*.tif")):
        result = runner.invoke(app, ["reconstruct", spec, "--out", str(tmp_path), *FAST])
        assert result.exit_code == 2, result.output
        assert "is the input" in _one_error_line(result) or "holds the input" in _one_error_line(result)
        assert _tree(frames) == before


def test_a_result_folder_inside_a_folder_input_is_refused(tmp_path):
    frames = _frames(tmp_path / "frames")
    result = runner.invoke(app, ["reconstruct", str(frames), "--out", str(frames / "results"), *FAST])
    assert result.exit_code == 2, result.output
    assert "inside the input" in _one_error_line(result)
    assert not (frames / "results").exists()


def test_batch_into_the_data_folder_fails_that_scan_and_changes_nothing(tmp_path, scan_bytes):
    data = _beamline(tmp_path, scan_bytes)
    other = tmp_path / "elsewhere" / "S0050.cxi"
    other.parent.mkdir()
    other.write_bytes(scan_bytes)
    before = _tree(data / "S0042")
    result = runner.invoke(app, ["batch", str(data / "S0042" / "S0042.cxi"), str(other), "--out", str(data),
                                 "--json", *FAST[:-1]])
    assert result.exit_code == 1, result.output
    summary = json.loads(result.stdout)
    assert [s["status"] for s in summary["scans"]] == ["failed", "ok"]
    assert "holds the input" in summary["scans"][0]["error"]
    assert _tree(data / "S0042") == before
    assert (data / "S0050" / "summary.json").is_file()


def test_only_a_folder_the_tool_wrote_is_ever_replaced(tmp_path, scan_bytes):
    scan = tmp_path / "S0042.cxi"
    scan.write_bytes(scan_bytes)
    out = tmp_path / "out"
    (out / "S0042").mkdir(parents=True)
    (out / "S0042" / "precious.txt").write_text("not the tool's")
    result = runner.invoke(app, ["reconstruct", str(scan), "--out", str(out), *FAST])
    assert result.exit_code == 2, result.output
    assert "not a cdi-dip result" in _one_error_line(result)
    assert (out / "S0042" / "precious.txt").read_text() == "not the tool's"
    assert sorted(p.name for p in out.iterdir()) == ["S0042"]
    # An empty folder, and the tool's own earlier result, are replaced.
    shutil.rmtree(out / "S0042")
    (out / "S0042").mkdir()
    for _ in range(2):
        result = runner.invoke(app, ["reconstruct", str(scan), "--out", str(out), *FAST])
        assert result.exit_code == 0, result.output
        assert (out / "S0042" / "summary.json").is_file()
    assert sorted(p.name for p in out.iterdir()) == ["S0042"]  # nothing hidden left beside it


# --------------------------------------------------------------------------- scan names


@pytest.mark.parametrize("raw, safe", [
    (".", "scan"), ("..", "scan"), ("", "scan"), (".hidden", "hidden"), ("a/b", "a_b"), ("x~lock", "x_lock"),
    ("batch.json", "scan_batch.json"), ("BATCH.JSON", "scan_BATCH.JSON"), ("S0042_run-1.2", "S0042_run-1.2"),
    ("bad\udcffbyte", "bad_byte"),
])
def test_scan_names_are_one_visible_folder_name(raw, safe):
    assert safe_scan_name(raw) == safe


@pytest.mark.parametrize("file_name, folder", [("..cxi", "scan"), ("...cxi", "scan")])
def test_dot_names_write_inside_out_and_leave_the_rest_alone(tmp_path, scan_bytes, file_name, folder):
    scan = tmp_path / "in" / file_name
    scan.parent.mkdir()
    scan.write_bytes(scan_bytes)
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    result = runner.invoke(app, ["reconstruct", str(scan), "--out", str(out), *FAST])
    assert result.exit_code == 0, result.output
    assert (out / folder / "summary.json").is_file()
    assert (out / "notes.txt").read_text() == "keep me"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    assert _tree(scan.parent) == {file_name: hashlib.sha256(scan_bytes).hexdigest()}


def test_a_scan_called_batch_json_does_not_replace_the_batch_summary(tmp_path):
    scan = simulate_scan("crystal", (32, 32), rng=np.random.default_rng(1), peak_counts=1e5)
    source = tmp_path / "batch.json.npy"
    np.save(source, scan.counts)
    out = tmp_path / "out"
    result = runner.invoke(app, ["batch", str(source), "--out", str(out), "--json", *FAST[:-1]])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "batch.json").read_text())["ok"] == 1
    assert (out / "scan_batch.json" / "summary.json").is_file()


# --------------------------------------------------------------------------- one run per result folder


def test_a_second_run_into_a_held_result_folder_is_refused_at_once(tmp_path, scan_bytes):
    scan = tmp_path / "S0042.cxi"
    scan.write_bytes(scan_bytes)
    out = tmp_path / "out"
    out.mkdir()
    with open(hidden_path(out, "S0042", "lock"), "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another run holds OUT/S0042
        result = runner.invoke(app, ["reconstruct", str(scan), "--out", str(out), *FAST])
    assert result.exit_code == 2, result.output
    assert "another cdi-dip run is writing" in _one_error_line(result)
    assert not (out / "S0042").exists()
    result = runner.invoke(app, ["reconstruct", str(scan), "--out", str(out), *FAST])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["S0042"]  # the lock file is gone too


def test_what_a_killed_run_left_is_removed_by_the_next_run(tmp_path, scan_bytes):
    scan = tmp_path / "S0042.cxi"
    scan.write_bytes(scan_bytes)
    out = tmp_path / "out"
    left = [hidden_path(out, "S0042", "staging-999-dead"), hidden_path(out, "S0042", "old-999-dead")]
    other = hidden_path(out, "S0042.b", "staging-999-live")  # another scan's: not ours to remove
    for folder in (*left, other):
        folder.mkdir(parents=True)
        (folder / "half.cxi").write_bytes(b"\x00" * 10)
    result = runner.invoke(app, ["reconstruct", str(scan), "--out", str(out), *FAST])
    assert result.exit_code == 0, result.output
    assert not any(folder.exists() for folder in left)
    assert other.is_dir()


def test_result_folders_and_files_follow_the_umask(tmp_path, scan_bytes):
    scan = tmp_path / "S0042.cxi"
    scan.write_bytes(scan_bytes)
    old = os.umask(0o002)
    try:
        result = runner.invoke(app, ["reconstruct", str(scan), "--out", str(tmp_path / "out"), *FAST])
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    folder = tmp_path / "out" / "S0042"
    assert folder.stat().st_mode & 0o777 == 0o775
    for path in folder.iterdir():
        assert path.stat().st_mode & 0o777 == 0o664, path.name


# --------------------------------------------------------------------------- nothing created on exit 2


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_a_missing_gpu_creates_no_output_folder(tmp_path, scan_bytes):
    scan = tmp_path / "S0042.cxi"
    scan.write_bytes(scan_bytes)
    result = runner.invoke(app, ["reconstruct", str(scan), "--out", str(tmp_path / "out" / "deep"),
                                 "--device", "cuda", "--quiet"])
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "out").exists()


def test_iterations_over_the_limit_leave_no_empty_output_folder(tmp_path, scan_bytes):
    scan = tmp_path / "S0042.cxi"
    scan.write_bytes(scan_bytes)
    result = runner.invoke(app, ["reconstruct", str(scan), "--out", str(tmp_path / "out" / "deep"),
                                 "--method", "hio", "--iterations", "100000000", "--device", "cpu", "--quiet"])
    assert result.exit_code == 2, result.output
    assert "at most" in _one_error_line(result)
    assert not (tmp_path / "out").exists()


def test_a_batch_name_collision_creates_no_output_folder(tmp_path, scan_bytes):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "S0042.cxi").write_bytes(scan_bytes)
    result = runner.invoke(app, ["batch", str(tmp_path / "a" / "S0042.cxi"), str(tmp_path / "b" / "S0042.cxi"),
                                 "--out", str(tmp_path / "out"), *FAST])
    assert result.exit_code == 2, result.output
    assert "same scan name" in _one_error_line(result)
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- batch contract


def test_a_missing_input_is_recorded_and_the_others_run(tmp_path, scan_bytes):
    scan = tmp_path / "S0042.cxi"
    scan.write_bytes(scan_bytes)
    missing, unmatched = str(tmp_path / "gone.cxi"), str(tmp_path / "nothing*.cxi")
    result = runner.invoke(app, ["batch", missing, str(scan), unmatched, "--out", str(tmp_path / "out"),
                                 "--json", *FAST[:-1]])
    assert result.exit_code == 1, result.output
    summary = json.loads(result.stdout)
    assert [s["status"] for s in summary["scans"]] == ["failed", "ok", "failed"]
    assert "no such file" in summary["scans"][0]["error"]
    assert "no file matches" in summary["scans"][2]["error"]
    assert summary["ok"] == 1 and summary["failed"] == 2


def test_resume_reruns_a_result_that_is_truncated_or_incomplete(tmp_path, scan_bytes):
    scan = tmp_path / "S0042.cxi"
    scan.write_bytes(scan_bytes)
    out = tmp_path / "out"
    args = ["batch", str(scan), "--out", str(out), "--resume", "--json", *FAST[:-1]]

    def status() -> str:
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)["scans"][0]["status"]

    assert status() == "ok"
    assert status() == "skipped"
    cxi = out / "S0042" / "S0042.cxi"
    cxi.write_bytes(cxi.read_bytes()[:1000])  # truncated: does not open
    assert status() == "ok"
    (out / "S0042" / "S0042_phase.tif").unlink()  # a file the summary lists is gone
    assert status() == "ok"
    assert status() == "skipped"


# --------------------------------------------------------------------------- the double DIP's budget


def test_a_small_iteration_budget_makes_a_short_double_dip_run(tmp_path, scan_bytes):
    scan = tmp_path / "S0042.cxi"
    scan.write_bytes(scan_bytes)
    cfg = RunConfig(method=Method.DIP, iterations=5, runs=1, device="cpu",
                    dip=DipConfig(channels=4, depth=2)).validate()
    result = reconstruct(load_scan(str(scan), cfg), cfg)
    solver = result.solver
    prefit = math.ceil(DEFAULT_PREFIT_ITERATIONS * 5 / 1000)
    # One warm-start run (at least one is always made), the pre-fit and fit shortened alike, the polish.
    assert solver["work_iterations"] <= dip_warmstart.ITERATIONS_PER_RUN + prefit + 5 + cfg.dip.polish_iterations
    assert result.iterations <= 5


def test_the_help_says_what_iterations_bounds():
    result = runner.invoke(app, ["reconstruct", "--help"], env={"COLUMNS": "300"})
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "data-fit iterations" in text and "short run" in text


def test_a_folder_of_frames_called_frames_is_named_after_its_scan(tmp_path):
    from cdi_dip.io.readers import scan_name

    for scan in ("S0054", "S0055"):
        (tmp_path / scan).mkdir()
        _frames(tmp_path / scan / "frames")
    assert scan_name(str(tmp_path / "S0054" / "frames")) == "S0054"
    assert scan_name(str(tmp_path / "S0055" / "frames" / "*.tif")) == "S0055"
    assert scan_name(str(tmp_path / "S0054")) == "S0054"  # a folder of frames with its own name keeps it
