"""The solver seam: one Problem, one table row per solver, one function per initialiser, one loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cdi_dip.ensemble import compare_objects
from cdi_dip.config import DipConfig, Method, ProjectionConfig, RunConfig
from cdi_dip.errors import InvalidInputError
from cdi_dip.physics import FarField
from cdi_dip.pipeline import reconstruct
from cdi_dip.prepare.stages import prepare
from cdi_dip.simulate import simulate_scan
from cdi_dip.solvers import SOLVERS, Problem, SolverEntry, random_phases
from cdi_dip.solvers.loop import FixedSupport, run_plan
from cdi_dip.solvers.fused import ModulusTarget, TorchBackend
from cdi_dip.config.plan import parse_plan
from cdi_dip.solvers.projections import er_update, hio_update
from cdi_dip.types import SolverOutput


@pytest.fixture(scope="module")
def scan():
    return simulate_scan("crystal", (32, 32), rng=np.random.default_rng(3), peak_counts=1e5)


@pytest.fixture(scope="module")
def measurement(scan):
    return prepare(scan.to_measurement("seam"), RunConfig().prep)


# --------------------------------------------------------------------------- a toy solver is one function and one row


def toy_back_projection(problem: Problem, options: float, *, init, rng, on_iter=None) -> SolverOutput:
    """A toy solver: the starting object thresholded at ``options`` of its maximum, as it is."""
    support = torch.ones(problem.physics.shape, dtype=torch.bool, device=problem.device)
    obj = init(problem, support, rng=rng)
    kept = obj.abs() > options * obj.abs().max()
    return SolverOutput(obj=(obj * kept).cpu().numpy(), support=kept.cpu().numpy(), history=[], iterations=1)


def test_a_toy_solver_runs_through_the_pipeline_from_one_table_row(measurement, monkeypatch):
    monkeypatch.setitem(SOLVERS, Method.ER, SolverEntry(toy_back_projection, options=lambda cfg: 0.5, runs=3,
                                                       memory=lambda cfg, shape: 0))
    # psf none: the toy's poor fit would otherwise be challenged by --psf compare's own reconstructions
    result = reconstruct(measurement, RunConfig(method=Method.ER, device="cpu", runs=3, keep=1, psf="none").validate())
    assert result.method == "er" and len(result.runs) == 3 and result.iterations == 1
    assert np.isfinite(result.obj).all() and result.support.any()
    assert {"r_factor", "llk_poisson", "free_llk_poisson"} <= set(result.metrics)


# --------------------------------------------------------------------------- an initialiser is one function


def test_an_initialiser_plugs_into_the_projection_solvers_and_the_dip_warm_start(scan, measurement):
    assert measurement.shape == scan.ground_truth.shape
    truth = torch.from_numpy(scan.ground_truth)
    seen = []

    def from_the_truth(problem: Problem, support: torch.Tensor, *, rng: torch.Generator) -> torch.Tensor:
        """An oracle initialiser: the true object, cut to the support."""
        seen.append(tuple(support.shape))
        return torch.where(support, truth, torch.zeros((), dtype=truth.dtype))

    projection = RunConfig(method=Method.ER, device="cpu", runs=1,
                           projection=ProjectionConfig(plan="10*ER", shrinkwrap_period=0)).validate()
    started = reconstruct(measurement, projection, init=from_the_truth)
    random = reconstruct(measurement, projection)
    assert seen, "the projection solver did not call the initialiser"
    assert compare_objects(started.obj, truth.numpy()).error < 0.5 * compare_objects(random.obj, truth.numpy()).error

    seen.clear()
    dip = RunConfig(method=Method.DIP, device="cpu", runs=1, iterations=5, poor_fit_dip_starts=0,
                    dip=DipConfig(warm_start_runs=2, prefit_iterations=2, channels=4, depth=2,
                                  polish_iterations=0)).validate()
    reconstruct(measurement, dip, init=from_the_truth)
    assert len(seen) == 2  # once per warm-start run


def test_a_written_result_with_its_ramp_back_restarts_where_it_ended(measurement):
    """The aligned object has its phase ramp removed, which moves its pattern, and moved by a fraction of a pixel
    beside its support; moved back (:func:`restart_object`) and on its own support (:class:`StartFrom`), a few ER
    iterations go on from its fit."""
    from cdi_dip.ensemble import restart_object
    from cdi_dip.solvers.init import StartFrom

    import dataclasses

    off_centre = dataclasses.replace(  # a Bragg peak 2 px off the frame's centre: a ramp of 2 x 2 pi / 32 rad/px
        measurement, intensity=np.roll(measurement.intensity, 2, axis=1), valid=np.roll(measurement.valid, 2, axis=1))
    cfg = RunConfig(method=Method.HIO, device="cpu", runs=1, iterations=200, psf="none").validate()
    first = reconstruct(off_centre, cfg)
    assert abs(first.align.ramp_rad_per_px[1]) == pytest.approx(4 * np.pi / 32, abs=0.05)
    again = RunConfig(method=Method.ER, device="cpu", runs=1, psf="none",
                      projection=ProjectionConfig(plan="5*ER", shrinkwrap_period=0)).validate()
    start = StartFrom(restart_object(first.obj, first.support, first.align), first.support)
    restarted = reconstruct(off_centre, again, init=start)
    without_ramp = reconstruct(off_centre, again, init=StartFrom(first.obj, first.support))
    assert restarted.metrics["llk_poisson"] < 1.5 * first.metrics["llk_poisson"]
    assert without_ramp.metrics["llk_poisson"] > 3 * first.metrics["llk_poisson"]
    assert np.array_equal(restarted.support, first.support)
    with pytest.raises(ValueError, match="shape"):
        StartFrom(first.obj, first.support[:-1])


# --------------------------------------------------------------------------- one Problem, checked once


def test_the_problem_refuses_arrays_that_do_not_match_the_frame():
    physics = FarField((8, 8))
    with pytest.raises(InvalidInputError, match="frame"):
        Problem.build(torch.ones((8, 9)), torch.ones((8, 8), dtype=torch.bool), physics)
    with pytest.raises(InvalidInputError, match="boolean"):
        Problem.build(torch.ones((8, 8)), torch.ones((8, 8)), physics)
    problem = Problem.build(torch.ones((8, 8)), torch.ones((8, 8), dtype=torch.bool), physics)
    assert problem.held_out is None and not bool(problem.free.any())


# --------------------------------------------------------------------------- one loop, checked against the equations


def test_the_loop_on_the_torch_kernels_is_the_plain_loop_of_the_reference_updates():
    physics = FarField((16, 16))
    generator = torch.Generator().manual_seed(0)
    counts = torch.poisson(torch.rand((16, 16), generator=generator) * 100, generator=generator)
    valid = torch.rand((16, 16), generator=generator) > 0.1
    problem = Problem.build(counts, valid, physics)
    support = torch.zeros((16, 16), dtype=torch.bool)
    support[4:12, 4:12] = True
    x0 = physics.to_fft_order(random_phases(problem, support, rng=torch.Generator().manual_seed(1))).contiguous()
    amplitude = physics.to_fft_order(torch.where(valid, counts.sqrt(), torch.zeros(())))
    valid_f, support_f = physics.to_fft_order(valid), physics.to_fft_order(support)
    plan = parse_plan("5*ER+10*HIO+5*ER")
    state = run_plan(x0, plan, ModulusTarget.build(amplitude, valid_f), physics, FixedSupport(support_f),
                     kernels=TorchBackend(), beta=0.9)
    x = x0
    for step in plan:
        for _ in range(step.iterations):
            field = physics.fft(x)
            projected = physics.ifft(torch.where(valid_f, field * (amplitude / field.abs().clamp_min(1e-12)), field))
            x = (er_update(x, projected, support_f) if step.algorithm == "ER"
                 else hio_update(x, projected, support_f, beta=0.9))
    assert state.iterations == 20 and not state.interrupted
    assert torch.equal(state.x, x)
