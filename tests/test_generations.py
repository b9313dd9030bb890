"""Generations of projection runs bred with the best one (guided HIO)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from cdi_dip.config import Method, ProjectionConfig, RunConfig
from cdi_dip.ensemble import compare_objects
from cdi_dip.ensemble.align import subpixel_shift, twin
from cdi_dip.generations import aligned_to, bred, next_generation
from cdi_dip.pipeline import reconstruct
from cdi_dip.prepare.stages import prepare
from cdi_dip.report.html import _selection_line
from cdi_dip.simulate import simulate_scan


def smooth_object(shape=(32, 32), seed=0) -> np.ndarray:
    """A band-limited complex blob with a varying phase, centred (sub-pixel shifts are exact on it)."""
    rng = np.random.default_rng(seed)
    spectrum = np.zeros(shape, dtype=complex)
    spectrum[:5, :5] = rng.normal(size=(5, 5)) + 1j * rng.normal(size=(5, 5))
    obj = np.fft.ifft2(spectrum) * shape[0] * shape[1]
    yy, xx = np.indices(shape) - np.array(shape)[:, None, None] // 2
    return np.fft.fftshift(obj) * np.exp(-(yy**2 + xx**2) / 40.0)


def test_the_best_bred_with_itself_is_itself():
    best = smooth_object()
    np.testing.assert_allclose(bred(best, best), best, rtol=1e-5, atol=1e-6 * np.abs(best).max())


def test_a_child_has_the_geometric_mean_amplitude_and_the_phase_between_its_parents():
    child = bred(np.array([4 * np.exp(0.2j), 3.0 + 0j]), np.array([1 * np.exp(0.6j), 0j]))
    assert abs(child[0]) == pytest.approx(2.0, rel=1e-6)
    assert np.angle(child[0]) == pytest.approx(0.4, abs=1e-6)
    assert child[1] == 0  # nothing where a parent is empty
    across_the_branch_cut = bred(np.array([np.exp(3.0j)]), np.array([np.exp(-3.0j)]))
    assert abs(np.angle(across_the_branch_cut[0])) == pytest.approx(np.pi, abs=1e-6)  # not the 0 of a naive mean


def test_a_twin_moved_and_rephased_run_is_aligned_back_onto_the_best():
    best = smooth_object()
    run = np.exp(0.9j) * subpixel_shift(twin(best), (2.4, -1.7))
    assert compare_objects(run, best, ramp=False).error < 1e-3  # the same object up to the symmetries
    np.testing.assert_allclose(aligned_to(run, best), best, atol=1e-3 * np.abs(best).max())


def test_the_next_generation_starts_from_the_best_and_the_children_on_the_best_support():
    best, other = smooth_object(seed=0), smooth_object(seed=1)
    support = np.abs(best) > 0.1 * np.abs(best).max()
    starts = next_generation([best, other], support)
    assert len(starts) == 2
    for start in starts:
        assert np.array_equal(start._support, support)
    np.testing.assert_allclose(starts[0]._obj, best.astype(np.complex64))
    np.testing.assert_allclose(np.abs(starts[1]._obj), np.sqrt(np.abs(best) * np.abs(aligned_to(other, best))),
                               rtol=1e-4, atol=1e-6)


@pytest.fixture(scope="module")
def measurement():
    scan = simulate_scan("crystal", (32, 32), rng=np.random.default_rng(3), peak_counts=1e5)
    return prepare(scan.to_measurement("generations"), RunConfig().prep)


def test_later_generations_run_from_new_seeds_and_never_lose_the_best_run(measurement):
    cfg = RunConfig(method=Method.HIO, device="cpu", runs=2, keep=1, psf="none", poor_fit_starts=0,
                    frame_margin=1.0, projection=ProjectionConfig(plan="30*HIO+10*ER")).validate()
    one = reconstruct(measurement, cfg)
    three = reconstruct(measurement, dataclasses.replace(cfg, generations=3))
    assert sorted(run["run"] for run in one.runs) == [0, 1]
    indexes = [run["run"] for run in three.runs]
    assert len(indexes) == 3 and {4, 5} <= set(indexes)  # the last generation's runs...
    assert len(set(indexes) - {4, 5} & set(range(4))) == 1  # ...and the best run before them
    assert {run["seed"] for run in three.runs if run["run"] >= 4} == {4, 5}
    assert min(run["score"] for run in three.runs) <= min(run["score"] for run in one.runs)
    assert one.selection["generations"] == 1 and three.selection["generations"] == 3
    assert "the last of 3 generations" in _selection_line(three.selection)
    assert "generations" not in _selection_line(one.selection)


def test_the_double_dip_runs_one_generation_whatever_is_asked():
    from cdi_dip.restarts import bred_generations
    assert bred_generations(RunConfig(method=Method.DIP, generations=3).validate()) == 1
    assert bred_generations(RunConfig(method=Method.RAAR, generations=3).validate()) == 3


def test_a_stop_in_a_later_generation_keeps_every_run_finished_so_far(measurement, monkeypatch):
    from cdi_dip.solvers import SOLVERS, SolverEntry
    from cdi_dip.solvers.projections import solve_projections
    calls = []

    def stopped_in_the_second_generation(problem, options, *, init, rng, on_iter=None):
        calls.append(type(init).__name__)
        if len(calls) == 3:  # the first bred run
            raise KeyboardInterrupt
        return solve_projections(problem, options, init=init, rng=rng, on_iter=on_iter)

    entry = SOLVERS[Method.HIO]
    monkeypatch.setitem(SOLVERS, Method.HIO, SolverEntry(stopped_in_the_second_generation, options=entry.options,
                                                         runs=entry.runs, memory=entry.memory))
    cfg = RunConfig(method=Method.HIO, device="cpu", runs=2, keep=1, psf="none", poor_fit_starts=0, generations=3,
                    frame_margin=1.0, projection=ProjectionConfig(plan="30*HIO+10*ER")).validate()
    result = reconstruct(measurement, cfg)
    assert calls == ["function", "function", "BredStart"]  # random starts, then a child
    assert result.interrupted and sorted(run["run"] for run in result.runs) == [0, 1]
