"""PyNX rules measured as options (issue 15), both off by default: a shrinkwrap threshold relative to the RMS
of the blurred amplitude over the support, and detwinning (the support cut below its centre of mass along
every axis for a few iterations)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cdi_dip.config import ProjectionConfig, RunConfig, config_from_dict
from cdi_dip.errors import InvalidInputError
from cdi_dip.physics import FarField
from cdi_dip.simulate import cell_specimen, expected_intensity
from cdi_dip.solvers import Problem
from cdi_dip.solvers.projections import ProjectionRun, _detwin_span, solve_projections
from cdi_dip.config.plan import parse_plan
from cdi_dip.support import detwin_support, shrinkwrap


def test_rms_threshold_is_relative_to_the_rms_over_the_support_not_the_maximum():
    obj = torch.zeros(4, 4)
    obj[1, 1:3] = torch.tensor([4.0, 2.0])
    obj[2, 1:3] = torch.tensor([1.0, 1.0])
    obj[0, 0] = 0.5  # outside the support: left out of the RMS
    support = torch.zeros(4, 4, dtype=torch.bool)
    support[1:3, 1:3] = True
    rms = np.sqrt((16 + 4 + 1 + 1) / 4)  # 2.345
    by_max = shrinkwrap(obj, sigma_px=0.0, threshold=0.5)  # level 2
    by_rms = shrinkwrap(obj, sigma_px=0.0, threshold=0.5, relative_to="rms", support=support)  # level 1.17
    assert by_max.sum() == 2 and bool(by_max[1, 1]) and bool(by_max[1, 2])
    assert torch.equal(by_rms, obj >= 0.5 * rms) and by_rms.sum() == 2
    by_rms = shrinkwrap(obj, sigma_px=0.0, threshold=0.4, relative_to="rms", support=support)  # level 0.94
    assert torch.equal(by_rms, support) and not torch.equal(by_rms, shrinkwrap(obj, sigma_px=0.0, threshold=0.4))


def test_rms_threshold_keeps_the_maximum_and_needs_a_support():
    obj = torch.tensor([[0.0, 1.0], [0.0, 10.0]])
    support = torch.tensor([[True, True], [True, False]])  # rms 0.58 over the support, the peak is outside it
    assert shrinkwrap(obj, sigma_px=0.0, threshold=1.5, relative_to="rms", support=support).sum() == 2
    assert shrinkwrap(obj, sigma_px=0.0, threshold=100.0, relative_to="rms", support=support).sum() == 1
    with pytest.raises(ValueError, match="support"):
        shrinkwrap(obj, sigma_px=0.0, threshold=0.5, relative_to="rms")
    with pytest.raises(ValueError, match="relative_to"):
        shrinkwrap(obj, sigma_px=0.0, threshold=0.5, relative_to="mean", support=support)


def test_detwin_support_keeps_the_part_below_the_centre_of_mass_along_every_axis():
    support = torch.zeros(8, 8, dtype=torch.bool)
    support[2:6, 1:7] = True  # centre of mass (3.5, 3.5): halves round up, to 4 and 4
    expected = torch.zeros(8, 8, dtype=torch.bool)
    expected[2:4, 1:4] = True
    assert torch.equal(detwin_support(support), expected)
    row = torch.zeros(8, 8, dtype=torch.bool)
    row[3, 2:6] = True  # one voxel thick along axis 0: that row is kept
    assert detwin_support(row).nonzero().tolist() == [[3, 2], [3, 3]]
    cube = torch.zeros(6, 6, 6, dtype=torch.bool)
    cube[1:5, 1:5, 1:5] = True
    assert detwin_support(cube).sum() == 8 and bool(detwin_support(cube)[1:3, 1:3, 1:3].all())
    assert detwin_support(support, axes=(0,)).sum() == 12
    assert not detwin_support(torch.zeros(3, 3, dtype=torch.bool)).any()


def test_detwinning_starts_at_the_first_hio_iteration_and_ends_before_the_final_er():
    assert _detwin_span(parse_plan("20*ER+60*HIO+10*ER"), 0, 80) is None
    assert _detwin_span(parse_plan("20*ER+60*HIO+10*ER"), 30, 80) == (21, 50)
    assert _detwin_span(parse_plan("20*ER+60*HIO+10*ER"), 500, 80) == (21, 80)
    assert _detwin_span(parse_plan("40*ER"), 10, 40) == (1, 10)


def _tiny_fit(**settings):
    truth = cell_specimen((32, 32), rng=np.random.default_rng(11))
    intensity = expected_intensity(truth)
    counts = torch.from_numpy(np.random.default_rng(11).poisson(intensity * 1e6 / intensity.max()).astype(np.float32))
    cfg = RunConfig(method="hio", device="cpu", projection=ProjectionConfig(
        plan="20*ER+60*HIO+10*ER", metric_period=10, **settings)).validate()
    problem = Problem.build(counts, torch.ones((32, 32), dtype=torch.bool), FarField((32, 32)))
    return solve_projections(problem, ProjectionRun.from_config(cfg), rng=torch.Generator().manual_seed(0))


def test_a_run_records_detwinning_and_its_support_returns_afterwards():
    output = _tiny_fit(detwin_iterations=25)
    detwin = output.extra["detwin"]
    assert (detwin["first_iteration"], detwin["last_iteration"], detwin["iterations"]) == (21, 45, 25)
    assert 0 < detwin["detwin_support_px"] < detwin["full_support_px"] / 2
    sizes = {entry["iteration"]: entry["support_size"] for entry in output.history}
    assert sizes[30] == sizes[40] == detwin["detwin_support_px"] and sizes[50] > detwin["detwin_support_px"]
    assert output.iterations == 90


def test_by_default_neither_rule_runs_and_rms_is_recorded_when_on():
    default = _tiny_fit()
    assert "detwin" not in default.extra and "shrinkwrap_threshold_relative_to" not in default.extra
    rms = _tiny_fit(shrinkwrap_threshold_relative_to="rms", shrinkwrap_rms_threshold=0.3)
    assert rms.extra["shrinkwrap_threshold_relative_to"] == "rms" and rms.extra["shrinkwrap_threshold"] == 0.3
    assert not np.array_equal(rms.support, default.support)


def test_the_options_are_validated_and_off_by_default():
    opts = ProjectionConfig()
    assert (opts.shrinkwrap_threshold_relative_to, opts.shrinkwrap_rms_threshold, opts.detwin_iterations) == \
        ("max", None, 0)
    with pytest.raises(InvalidInputError, match="shrinkwrap_threshold_relative_to"):
        config_from_dict({"projection": {"shrinkwrap_threshold_relative_to": "mean"}})
    with pytest.raises(InvalidInputError, match="shrinkwrap_rms_threshold"):
        config_from_dict({"projection": {"shrinkwrap_rms_threshold": -0.1}})
    with pytest.raises(InvalidInputError, match="detwin_iterations"):
        config_from_dict({"projection": {"detwin_iterations": -1}})
    with pytest.raises(InvalidInputError, match="detwin_iterations"):
        config_from_dict({"projection": {"detwin_iterations": 2.5}})
    cfg = config_from_dict({"projection": {"shrinkwrap_threshold_relative_to": "rms", "detwin_iterations": 50}})
    assert cfg.projection.detwin_iterations == 50
