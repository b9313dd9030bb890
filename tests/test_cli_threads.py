"""``--threads`` on ``reconstruct`` and ``batch`` (issue 19): this process's torch threads."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from cdi_dip.cli import app

runner = CliRunner()


@pytest.mark.parametrize("command", ["reconstruct", "batch"])
def test_threads_is_validated_with_one_line_exit_2(command):
    result = runner.invoke(app, [command, "scan.cxi", "--threads", "0"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == ["cdi-dip: error: --threads 0: give at least 1"]


@pytest.mark.parametrize("command", ["reconstruct", "batch"])
def test_threads_sets_torch_threads_before_anything_runs(command, monkeypatch):
    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    # an invalid --method fails the configuration: --threads was applied before it
    result = runner.invoke(app, [command, "scan.cxi", "--threads", "3", "--method", "bogus"])
    assert result.exit_code == 2, result.output
    assert calls == [3]


@pytest.mark.parametrize("command", ["reconstruct", "batch"])
def test_threads_not_given_leaves_torch_alone(command, monkeypatch):
    calls = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    result = runner.invoke(app, [command, "scan.cxi", "--method", "bogus"])
    assert result.exit_code == 2, result.output
    assert calls == []


def test_threads_is_not_part_of_the_configuration():
    from cdi_dip.cli import options as opt

    assert "threads" not in opt.CONFIG_PATH
    assert opt.overrides({"threads": 3}) == {}
