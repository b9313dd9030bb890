"""Batch reconstruction: input expansion, failure isolation, resume, local pool and Dask."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from cdi_dip import batch as batch_module
from cdi_dip.batch import expand_inputs, run_batch
from cdi_dip.cli.batch import batch
from cdi_dip.config import config_from_dict
from cdi_dip.errors import InvalidInputError

runner = CliRunner()
OPTIONS = ["--method", "er", "--iterations", "20", "--seed", "1", "--device", "cpu"]
CONFIG = {"method": "er", "iterations": 20, "seed": 1, "device": "cpu"}


def _app() -> typer.Typer:
    """A Typer app with only ``batch`` (independent of how cli/app.py registers it)."""
    app = typer.Typer(add_completion=False)
    app.command(name="batch")(batch)

    @app.command()
    def version() -> None:  # a second command keeps `batch` a subcommand
        """Unused."""

    return app


APP = _app()


def _touch(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return str(path)


def _object(cxi: str | Path) -> np.ndarray:
    with h5py.File(cxi, "r") as handle:
        return handle["/entry_1/image_1/data"][()]


# --------------------------------------------------------------------------- expand_inputs


def test_expand_files_keeps_order_and_drops_duplicates(tmp_path):
    b, a = _touch(tmp_path / "b.cxi"), _touch(tmp_path / "a.npy")
    same_b = str(tmp_path / "." / "b.cxi")
    assert expand_inputs([b, a, same_b]) == [b, a]


def test_expand_directory_of_scans_and_of_tiff_frames(tmp_path):
    scans = tmp_path / "scans"
    expected = [_touch(scans / name) for name in ("s1.cxi", "s1_truth.npy", "s2.h5", "s3.npz")]
    _touch(scans / "notes.txt")
    expected.remove(str(scans / "s1_truth.npy"))  # ground truth written by `cdi-dip simulate`
    assert expand_inputs([str(scans)]) == expected

    frames = tmp_path / "frames"
    for k in range(3):
        _touch(frames / f"f{k}.tif")
    assert expand_inputs([str(frames)]) == [str(frames)]  # one scan

    tree = tmp_path / "tree"
    for scan in ("scan2", "scan1"):
        _touch(tree / scan / "f0.tif")
    _touch(tree / "results" / "scan1" / "summary.json")
    assert expand_inputs([str(tree)]) == [str(tree / "scan1"), str(tree / "scan2")]


def test_expand_glob_dataset_spec_and_stdin_list(tmp_path):
    scans = [_touch(tmp_path / f"s{k}.cxi") for k in (2, 1)]
    dataset = f"{_touch(tmp_path / 'raw.h5')}:/entry/data"
    assert expand_inputs([str(tmp_path / "s*.cxi")]) == sorted(scans)
    assert expand_inputs([dataset]) == [dataset]
    stdin = f"# scans of the night\n\n  {scans[0]}  \n{dataset}\n{tmp_path / 's*.cxi'}\n"
    assert expand_inputs(["-"], stdin_text=stdin) == [scans[0], dataset, scans[1]]


@pytest.mark.parametrize("items, stdin, message", [
    (["-"], None, "standard input"),
    (["-"], "# only a comment\n\n", "no inputs"),
    ([], None, "no inputs"),
])
def test_expand_rejects_bad_inputs(tmp_path, monkeypatch, items, stdin, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidInputError, match=message):
        expand_inputs(items, stdin_text=stdin)


def test_inputs_that_cannot_be_expanded_are_kept_to_be_recorded_as_failed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _touch(tmp_path / "empty" / "readme.txt")
    good = _touch(tmp_path / "good.cxi")
    assert expand_inputs(["missing.cxi", "nothing*.cxi", "empty", good]) == ["missing.cxi", "nothing*.cxi", "empty",
                                                                              good]


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    """Two tiny simulated 2D scans and one corrupt file."""
    from cdi_dip.simulate import simulate_scan, write_simulated_scan

    folder = tmp_path_factory.mktemp("scans")
    rng = np.random.default_rng(7)
    paths = []
    for name, offset in (("alpha", (1, -2)), ("beta", (0, 3))):
        scan = simulate_scan("crystal", (32, 32), rng=rng, peak_counts=1e5, offset_px=offset)
        write_simulated_scan(folder / f"{name}.cxi", scan)
        paths.append(str(folder / f"{name}.cxi"))
    broken = folder / "broken.cxi"
    broken.write_bytes(b"this is not an HDF5 file")
    return paths, str(broken)


@pytest.fixture(scope="module")
def pool_run(scans, tmp_path_factory):
    """One batch on a local pool of 2 workers: (CLI result, output folder)."""
    good, broken = scans
    out = tmp_path_factory.mktemp("pool")
    result = runner.invoke(APP, ["batch", *good, broken, "--out", str(out), "--workers", "2", "--json", *OPTIONS])
    return result, out


def test_failed_scan_is_recorded_and_the_batch_goes_on(scans, pool_run):
    good, broken = scans
    result, out = pool_run
    assert result.exit_code == 1, result.output
    summary = json.loads(result.stdout)  # nothing but the JSON object on stdout
    assert summary == json.loads((out / "batch.json").read_text())
    assert [s["input"] for s in summary["scans"]] == [*good, broken]
    assert [s["status"] for s in summary["scans"]] == ["ok", "ok", "failed"]
    assert (summary["ok"], summary["failed"], summary["skipped"]) == (2, 1, 0)
    assert "broken.cxi" in summary["scans"][2]["error"] and "\n" not in summary["scans"][2]["error"]
    for scan, name in zip(summary["scans"][:2], ("alpha", "beta")):
        assert scan["output"] == str(out / name / f"{name}.cxi") and os.path.isfile(scan["output"])
        assert scan["error"] is None
        assert json.loads((out / name / "summary.json").read_text())["status"] == "ok"


def test_results_equal_reconstruct_scan_with_the_same_seed(scans, pool_run, tmp_path):
    from cdi_dip.pipeline import reconstruct_scan

    _, out = pool_run
    summary = reconstruct_scan(scans[0][0], config_from_dict(CONFIG), tmp_path)
    np.testing.assert_array_equal(_object(summary["output"]), _object(out / "alpha" / "alpha.cxi"))


def test_resume_recomputes_nothing_done_with_the_same_config(scans, pool_run):
    good, broken = scans
    _, out = pool_run
    results = [out / name / f"{name}.cxi" for name in ("alpha", "beta")]
    before = [p.stat().st_mtime_ns for p in results]
    result = runner.invoke(APP, ["batch", *good, "--out", str(out), "--resume", "--json", *OPTIONS])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert [s["status"] for s in summary["scans"]] == ["skipped", "skipped"]
    assert [s["output"] for s in summary["scans"]] == [str(p) for p in results]
    assert [p.stat().st_mtime_ns for p in results] == before


def test_resume_recomputes_a_scan_done_with_another_config(scans, pool_run, tmp_path):
    copy = tmp_path / "moved"
    shutil.copytree(pool_run[1], copy)  # a moved output folder still resumes
    alpha, beta = scans[0]
    same = run_batch([beta], config_from_dict(CONFIG), copy, resume=True)
    assert [s["status"] for s in same["scans"]] == ["skipped"]
    assert same["scans"][0]["output"] == str(copy / "beta" / "beta.cxi")
    before = (copy / "alpha" / "alpha.cxi").stat().st_mtime_ns
    changed = run_batch([alpha], config_from_dict({**CONFIG, "seed": 2}), copy, resume=True)
    assert [s["status"] for s in changed["scans"]] == ["ok"]
    assert (copy / "alpha" / "alpha.cxi").stat().st_mtime_ns != before


def test_a_worker_that_dies_fails_only_its_scan(tmp_path):
    jobs = [(0, "fine-0"), (1, "crash"), (2, "fine-2")]
    records = dict(batch_module._run_local_pool(jobs, 2, (), task=_crash_on_request))
    assert [records[k]["status"] for k in range(3)] == ["ok", "failed", "ok"]
    assert "worker process died" in records[1]["error"]


def _crash_on_request(source: str) -> dict:
    """A pool task that kills its worker process for the input ``crash``."""
    if source == "crash":
        os._exit(3)
    return {"input": source, "status": "ok", "output": None, "error": None}


# --------------------------------------------------------------------------- usage errors


@pytest.mark.parametrize("args, message", [
    ([], "no inputs"),
    (["{scan}", "--workers", "0"], "--workers 0"),
    (["{scan}", "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "contradict"),
    (["{scan}", "--method", "magic"], "method"),
    (["{scan}", "{copy}"], "same scan name"),
])
def test_invalid_usage_exits_2_with_one_line(scans, tmp_path, args, message):
    copy = tmp_path / "copy" / "alpha.cxi"
    copy.parent.mkdir()
    copy.write_bytes(Path(scans[0][0]).read_bytes())
    args = [a.format(scan=scans[0][0], copy=copy) for a in args]
    result = runner.invoke(APP, ["batch", *args, "--out", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
    assert result.stdout == ""


def test_unreachable_scheduler_is_invalid_input(scans, tmp_path, monkeypatch):
    pytest.importorskip("dask.distributed")
    monkeypatch.setattr(batch_module, "DASK_CONNECT_TIMEOUT_S", 1)
    with pytest.raises(InvalidInputError, match="cannot reach the Dask scheduler"):
        run_batch(scans[0], config_from_dict(CONFIG), tmp_path, scheduler="tcp://127.0.0.1:1")


# --------------------------------------------------------------------------- Dask


def test_dask_cluster_gives_the_same_objects_as_the_local_pool(scans, pool_run, tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    good, broken = scans
    _, pool_out = pool_run
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp",
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        result = runner.invoke(APP, ["batch", *good, broken, "--out", str(tmp_path),
                                     "--scheduler", cluster.scheduler_address, "--json", *OPTIONS])
    assert result.exit_code == 1, result.output
    summary = json.loads(result.stdout)
    assert [s["input"] for s in summary["scans"]] == [*good, broken]
    assert [s["status"] for s in summary["scans"]] == ["ok", "ok", "failed"]
    for name in ("alpha", "beta"):
        np.testing.assert_array_equal(_object(tmp_path / name / f"{name}.cxi"),
                                      _object(pool_out / name / f"{name}.cxi"))


def test_resume_matches_a_configuration_written_before_a_setting_existed():
    from cdi_dip.config import RunConfig

    current = RunConfig().to_dict()
    older = json.loads(json.dumps(current))
    del older["geometry"]["d_spacing_nm"]  # as a version before the setting wrote it
    assert batch_module._same_config(older, current)
    changed = json.loads(json.dumps(current))
    changed["geometry"]["d_spacing_nm"] = 0.2265  # not the default: the old result does not stand for it
    assert not batch_module._same_config(older, changed)
    newer = json.loads(json.dumps(current))
    newer["geometry"]["unknown_future_setting"] = 1  # a setting this version does not know: not the same run
    assert not batch_module._same_config(newer, current)
    assert not batch_module._same_config({**current, "seed": current["seed"] + 1}, current)
