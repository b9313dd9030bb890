"""``cdi-dip reconstruct --name NAME``: the result folder is OUT/NAME/, made safe, and checked like any other."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from cdi_dip.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    """Two inputs with the same scan name ``tiny``, in folders ``a`` and ``b``."""
    root = tmp_path_factory.mktemp("named")
    (root / "a").mkdir()
    result = runner.invoke(app, ["simulate", str(root / "a" / "tiny.cxi"), "--shape", "32,32", "--seed", "3"])
    assert result.exit_code == 0, result.output
    (root / "b").mkdir()
    shutil.copy(root / "a" / "tiny.cxi", root / "b" / "tiny.cxi")
    return root / "a" / "tiny.cxi", root / "b" / "tiny.cxi"


def _reconstruct(scan, out, *extra):
    return runner.invoke(app, ["reconstruct", str(scan), "--out", str(out), "--json", "--device", "cpu",
                               "--method", "er", "--iterations", "20", "--runs", "1", *extra])


def test_two_scans_of_one_name_with_different_names_give_two_results(scans, tmp_path):
    summaries = []
    for scan, name in zip(scans, ("first", "second")):
        result = _reconstruct(scan, tmp_path, "--name", name)
        assert result.exit_code == 0, result.output
        summaries.append(json.loads(result.stdout))
    for summary, name in zip(summaries, ("first", "second")):
        assert summary["output"] == str(tmp_path / name / "tiny.cxi")
        assert (tmp_path / name / "summary.json").is_file()
    assert not (tmp_path / "tiny").exists()


def test_a_name_with_a_path_separator_is_made_safe(scans, tmp_path):
    result = _reconstruct(scans[0], tmp_path / "out", "--name", "../escape/x")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["output"] == str(tmp_path / "out" / "_escape_x" / "tiny.cxi")
    assert not (tmp_path / "escape").exists()


def test_a_name_that_is_the_input_folder_is_refused(scans, tmp_path):
    scan = scans[0]
    before = scan.read_bytes()
    result = _reconstruct(scan, scan.parent.parent, "--name", scan.parent.name)
    assert result.exit_code == 2
    assert "holds the input" in result.output
    assert scan.read_bytes() == before and not (scan.parent / "summary.json").exists()
