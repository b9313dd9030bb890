"""A run that diverges (NaN or Inf) never reaches a written result (issue 8)."""

from __future__ import annotations

import dataclasses
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cdi_dip import restarts
from cdi_dip.cli import app
from cdi_dip.config import ProjectionConfig, RunConfig
from cdi_dip.errors import ReconstructionError
from cdi_dip.pipeline import reconstruct
from cdi_dip.prepare.stages import prepare
from cdi_dip.simulate import simulate_scan
from cdi_dip.solvers import SOLVERS, Problem
from cdi_dip.solvers.projections import ProjectionRun, solve_projections

runner = CliRunner()


@pytest.fixture
def measurement():
    scan = simulate_scan("crystal", (48, 48), rng=np.random.default_rng(1), peak_counts=1e5)
    return prepare(scan.to_measurement("div"), RunConfig().prep)


def _solver_failing_for(bad_runs: set[int], how: str):
    calls = {"count": 0}

    def solve(problem, options, *, init, rng, on_iter=None):
        index = calls["count"]
        calls["count"] += 1
        output = solve_projections(problem, options, init=init, rng=rng, on_iter=on_iter)
        if index in bad_runs:
            if how == "raise":
                raise ReconstructionError("the HIO iterate became NaN or Inf at iteration 7")
            output.obj = np.full_like(output.obj, np.nan)
        return output

    return lambda method: dataclasses.replace(SOLVERS[method], solve=solve)


@pytest.mark.parametrize("how", ["raise", "nan"])
def test_a_diverged_run_is_left_out_and_the_others_are_used(measurement, monkeypatch, how):
    monkeypatch.setattr(restarts, "solver_entry", _solver_failing_for({0}, how))
    cfg = RunConfig(device="cpu", runs=3, keep=1, projection=ProjectionConfig(plan="40*HIO+20*ER")).validate()
    result = reconstruct(measurement, cfg)
    assert np.isfinite(result.obj).all()
    assert [run["run"] for run in result.runs] == [1, 2]


def test_when_every_run_diverges_nothing_is_written_and_the_exit_code_is_1(tmp_path, monkeypatch):
    scan = simulate_scan("crystal", (48, 48), rng=np.random.default_rng(1), peak_counts=1e5)
    np.save(tmp_path / "scan.npy", scan.counts)
    monkeypatch.setattr(restarts, "solver_entry", _solver_failing_for({0, 1}, "nan"))
    out = tmp_path / "out"
    result = runner.invoke(app, ["reconstruct", str(tmp_path / "scan.npy"), "--out", str(out), "--runs", "2",
                                 "--device", "cpu", "--plan", "20*HIO"])
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "diverged" in lines[0]
    assert not out.exists() or not any(p for p in out.iterdir() if not p.name.startswith("."))


def test_nan_counts_reaching_a_solver_stop_it_with_a_clear_message():
    counts = torch.ones((16, 16))
    counts[3, 3] = float("nan")
    from cdi_dip.physics import FarField

    cfg = RunConfig(device="cpu", projection=ProjectionConfig(plan="20*HIO")).validate()
    with pytest.raises(ReconstructionError, match="NaN or Inf"):
        solve_projections(Problem.build(counts, torch.ones((16, 16), dtype=torch.bool), FarField((16, 16))),
                          ProjectionRun.from_config(cfg), rng=torch.Generator().manual_seed(0))
