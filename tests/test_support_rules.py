"""Support and selection rules learned from PyNX: runs with too much power outside their support are
left out of the ranking (never all of them), and a support that collapses or explodes restarts the run
with a moved shrinkwrap threshold."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cdi_dip.config import Method, ProjectionConfig, RunConfig, config_from_dict
from cdi_dip.errors import InvalidInputError
from cdi_dip.physics import FarField
from cdi_dip.pipeline import reconstruct
from cdi_dip.prepare.stages import prepare
from cdi_dip.restarts import Run, screen_outside
from cdi_dip.simulate import cell_specimen, expected_intensity, simulate_scan
from cdi_dip.solvers import Problem
from cdi_dip.solvers.projections import (SUPPORT_RESTARTS, ProjectionRun, moved_threshold, power_outside,
                                         solve_projections)
from cdi_dip.types import SolverOutput

PLAN = "20*ER+60*HIO+10*ER"


def _run(index: int, outside: float | None) -> Run:
    """A finished run with score ``index`` (lower is better) and the solver's outside fraction."""
    extra = {} if outside is None else {"outside_fraction": outside}
    output = SolverOutput(obj=np.ones((4, 4), np.complex64), support=np.ones((4, 4), bool), history=[],
                          iterations=1, extra=extra)
    return Run(index, index, output, {}, np.zeros((4, 4), np.float32), float(index))


def test_runs_over_the_limit_are_left_out_and_the_others_kept_best_first():
    runs = [_run(0, 0.4), _run(1, 0.01), _run(2, None), _run(3, 0.05)]
    kept, outside = screen_outside(runs, 0.1)
    assert [run.index for run in kept] == [1, 2, 3] and outside == {0: 0.4}
    assert screen_outside(runs, None) == (runs, {})


def test_the_best_run_is_kept_when_every_run_is_over_the_limit(caplog):
    runs = [_run(0, 0.5), _run(1, 0.3)]
    kept, outside = screen_outside(runs, 0.1)
    assert [run.index for run in kept] == [0] and outside == {1: 0.3}
    assert "keeping the best" in caplog.text


def test_power_outside_is_the_share_of_the_squared_modulus_outside_the_support():
    x = torch.tensor([[1.0, 2.0], [0.0, 1j]], dtype=torch.complex64)
    support = torch.tensor([[True, False], [True, False]])
    assert power_outside(x, support) == pytest.approx(5 / 6)
    assert power_outside(torch.zeros(2, 2, dtype=torch.complex64), support) == 0.0


@pytest.fixture(scope="module")
def measurement():
    scan = simulate_scan("crystal", (32, 32), rng=np.random.default_rng(2), peak_counts=1e5)
    return prepare(scan.to_measurement("tiny"), RunConfig().prep)


def test_a_run_with_too_much_power_outside_is_dropped_with_its_reason_never_every_run(measurement):
    cfg = RunConfig(device="cpu", method=Method.HIO, runs=3, keep=3,
                    projection=ProjectionConfig(plan="20*HIO+10*ER", max_outside_fraction=0.0)).validate()
    result = reconstruct(measurement, cfg)  # every HIO iterate has some power outside: all over 0
    selection = result.selection
    assert selection["max_outside_fraction"] == 0.0 and selection["averaged"] == 1
    dropped = [entry for entry in selection["dropped"] if entry["reason"] == "outside support"]
    assert len(dropped) == 2 and all(entry["outside_fraction"] > 0 for entry in dropped)
    assert "max_outside_fraction 0" in dropped[0]["detail"]
    kept = [run for run in result.runs if run["kept"]]
    assert len(kept) == 1 and "dropped" not in kept[0] and kept[0]["outside_fraction"] > 0
    assert sorted(run["dropped"] for run in result.runs if "dropped" in run) == ["outside support"] * 2


def test_by_default_no_run_is_dropped_for_its_outside_fraction(measurement):
    cfg = RunConfig(device="cpu", method=Method.HIO, runs=2, keep=2,
                    projection=ProjectionConfig(plan="20*HIO+10*ER")).validate()
    result = reconstruct(measurement, cfg)
    assert not [entry for entry in result.selection["dropped"] if entry["reason"] == "outside support"]
    assert "support_restarts" not in result.solver and 0 <= result.solver["outside_fraction"] <= 1


def _tiny_fit(bounds, *, missing_centre_only=False, beamstop_px=0):
    truth = cell_specimen((32, 32), rng=np.random.default_rng(11))
    intensity = expected_intensity(truth)
    counts = torch.from_numpy(np.random.default_rng(11).poisson(intensity * 1e6 / intensity.max()).astype(np.float32))
    cfg = RunConfig(method="hio", device="cpu", projection=ProjectionConfig(
        plan=PLAN, metric_period=10, support_fraction_bounds=bounds,
        support_bounds_missing_centre_only=missing_centre_only)).validate()
    valid = torch.ones((32, 32), dtype=torch.bool)
    if beamstop_px:
        y, x = torch.meshgrid(torch.arange(32) - 16, torch.arange(32) - 16, indexing="ij")
        valid &= (y ** 2 + x ** 2) > beamstop_px ** 2
    problem = Problem.build(counts, valid, FarField((32, 32)))
    return solve_projections(problem, ProjectionRun.from_config(cfg), rng=torch.Generator().manual_seed(0))


def test_a_collapsing_support_restarts_with_a_lower_threshold_and_is_recorded():
    output = _tiny_fit([0.6, 1.0])  # a cell never fills 60 % of its frame: every attempt collapses
    restarts = output.extra["support_restarts"]
    assert len(restarts) == SUPPORT_RESTARTS and {entry["cause"] for entry in restarts} == {"collapsed"}
    thresholds = output.extra["shrinkwrap_thresholds"]
    assert len(thresholds) == SUPPORT_RESTARTS + 1 and thresholds == sorted(thresholds, reverse=True)
    assert all(entry["next_threshold"] < entry["threshold"] and entry["support_fraction"] < 0.6 for entry in restarts)
    assert output.iterations == 90 and [entry["iteration"] for entry in output.history][-1] == 90


def test_an_exploding_support_restarts_with_a_higher_threshold():
    output = _tiny_fit([0.0, 0.001])
    assert {entry["cause"] for entry in output.extra["support_restarts"]} == {"exploded"}
    assert output.extra["shrinkwrap_thresholds"] == sorted(output.extra["shrinkwrap_thresholds"])


def test_a_support_within_its_bounds_runs_once():
    output = _tiny_fit([0.0, 1.0])
    assert output.extra["support_restarts"] == [] and len(output.extra["shrinkwrap_thresholds"]) == 1


def test_moved_thresholds_stay_below_one():
    assert moved_threshold(0.3, collapsed=True) == pytest.approx(0.2)
    assert moved_threshold(0.8, collapsed=False) < 1


def test_support_fraction_bounds_are_validated():
    with pytest.raises(InvalidInputError, match="support_fraction_bounds"):
        config_from_dict({"projection": {"support_fraction_bounds": [0.3, 0.1]}})
    with pytest.raises(InvalidInputError, match="support_fraction_bounds"):
        config_from_dict({"projection": {"support_fraction_bounds": [0.1, 1.5]}})
    with pytest.raises(InvalidInputError, match="max_outside_fraction"):
        config_from_dict({"projection": {"max_outside_fraction": -0.1}})
    assert config_from_dict({"projection": {"support_fraction_bounds": [0.002, 0.3]}}).projection.support_fraction_bounds


def test_bounds_limited_to_a_missing_centre_leave_a_measured_centre_alone():
    measured = _tiny_fit([0.6, 1.0], missing_centre_only=True)
    assert "support_restarts" not in measured.extra and not measured.extra["missing_centre"]
    behind_beamstop = _tiny_fit([0.6, 1.0], missing_centre_only=True, beamstop_px=3)
    assert behind_beamstop.extra["missing_centre"]
    assert len(behind_beamstop.extra["support_restarts"]) == SUPPORT_RESTARTS
