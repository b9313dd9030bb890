"""ES-WMV early stopping of the double DIP (cdi_dip.solvers.early_stop) and its use in the fit."""

import math

import numpy as np
import pytest
import torch

from cdi_dip.config import DipConfig, EarlyStop, Method, RunConfig
from cdi_dip.io.summary import dip_summary
from cdi_dip.physics import FarField, pad_to_frame
from cdi_dip.solvers import Problem
from cdi_dip.solvers.dip import DipRun, estimate_dip_memory_bytes, object_shape, solve_dip
from cdi_dip.solvers.early_stop import WindowedVariance, align_global_phase, window_variance_map


def _object(shape=(8, 8), seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.complex(torch.rand(shape, generator=generator), torch.rand(shape, generator=generator))


def _values(sequence, window=4, patience=100):
    criterion = WindowedVariance(window, patience)
    values = []
    for iteration, obj in enumerate(sequence):
        criterion.update(obj, iteration)
        values.append(criterion.value)
    return values


def test_constant_sequence_has_zero_variance():
    obj = _object()
    values = _values([obj] * 6)
    assert all(math.isnan(v) for v in values[:3])  # the window fills first
    assert values[3:] == [0.0, 0.0, 0.0]


def test_growing_noise_raises_the_variance():
    obj = _object()
    generator = torch.Generator().manual_seed(1)
    sequence = [obj + 0.01 * k * torch.randn(obj.shape, dtype=torch.complex64, generator=generator)
                for k in range(16)]
    values = _values(sequence)[3:]
    assert all(later > earlier for earlier, later in zip(values[::3], values[3::3]))


def test_global_phase_drift_alone_gives_zero_variance():
    obj = _object()
    sequence = [obj * complex(math.cos(0.4 * k), math.sin(0.4 * k)) for k in range(8)]
    assert max(_values(sequence)[3:]) < 1e-12
    assert torch.allclose(align_global_phase(sequence[5], obj), obj, atol=1e-6)
    assert float(window_variance_map(sequence).max()) < 1e-12


def test_stops_after_patience_updates_without_a_new_minimum_and_keeps_the_minimum():
    obj = _object()
    generator = torch.Generator().manual_seed(2)
    noise = [1.0, 0.5, 0.2, 0.05, 0.05, 0.3, 0.5, 0.7, 0.9, 1.1, 1.3, 1.5]  # quiet around iterates 3-4
    sequence = [obj + s * torch.randn(obj.shape, dtype=torch.complex64, generator=generator) for s in noise]
    criterion = WindowedVariance(window=2, patience=3)
    stopped_at = None
    for iteration, x in enumerate(sequence):
        criterion.update(x, iteration)
        if criterion.stop:
            stopped_at = iteration
            break
    assert criterion.min_iteration == 4  # the window (3, 4) is the quietest
    assert stopped_at == criterion.min_iteration + 3
    assert torch.equal(criterion.min_object, sequence[4])
    assert criterion.min_std.shape == obj.shape and float(criterion.min_std.min()) >= 0


def test_rejects_a_window_of_one():
    with pytest.raises(ValueError):
        WindowedVariance(1, 5)


def _tiny_problem(frame=(16, 16), seed=0):
    physics = FarField(frame)
    box = object_shape(frame)
    grids = np.meshgrid(*[np.arange(n) - n / 2 + 0.5 for n in box], indexing="ij")
    inside = (grids[0] ** 2 + grids[1] ** 2) < (0.35 * box[0]) ** 2
    obj = torch.from_numpy((inside * np.exp(0.5j * grids[1] / box[1])).astype(np.complex64))
    intensity = physics.intensity(pad_to_frame(obj, frame))
    counts = torch.poisson(intensity * (1e4 / intensity.max()), generator=torch.Generator().manual_seed(seed))
    free = torch.from_numpy(np.random.default_rng(seed).random(frame) < 0.05)
    return Problem.build(counts.float(), ~free, physics, free=free)


def _tiny_run(early_stop, iterations=300, **dip):
    settings = {"warm_start_runs": 1, "prefit_iterations": 10, "warmup_iterations": 0, "channels": 4, "depth": 1,
                "polish_iterations": 0, "learning_rate": 0.02, "patience": 10_000, "early_stop": early_stop,
                "variance_window": 3, "variance_patience": 30}
    settings.update(dip)
    cfg = RunConfig(method=Method.DIP, iterations=iterations, dip=DipConfig(**settings)).validate()
    return solve_dip(_tiny_problem(), DipRun.from_config(cfg), rng=torch.Generator().manual_seed(0))


def test_variance_early_stop_ends_a_tiny_run_and_records_it():
    output = _tiny_run("variance")
    extra = output.extra
    assert extra["early_stop_criterion"] == "variance" and extra["stopped_by"] == "variance"
    assert extra["variance_stop_iteration"] < 300
    assert extra["stop_iteration"] == extra["variance_min_iteration"]  # the kept iterate is the minimum's
    assert extra["variance_stop_iteration"] >= extra["variance_min_iteration"] + 30
    assert output.obj_std is not None and output.obj_std.shape == output.obj.shape
    assert np.isfinite(output.obj_std).all() and output.obj_std.max() > 0
    summary = dip_summary(extra)["early_stop"]
    assert summary["stopped_by"] == "variance"
    assert summary["variance_stop_iteration"] == extra["variance_stop_iteration"]


def test_free_early_stop_is_the_default_and_computes_no_variance():
    assert DipConfig().early_stop is EarlyStop.FREE
    output = _tiny_run("free", iterations=30)
    assert output.extra["early_stop_criterion"] == "free" and "variance_stop_iteration" not in output.extra
    assert output.obj_std is None


def test_both_stops_at_the_first_and_keeps_the_best_free_iterate():
    output = _tiny_run("both", patience=40)
    extra = output.extra
    first = min(i for i in (extra["free_stop_iteration"], extra["variance_stop_iteration"]) if i is not None)
    assert extra["stopped_by"] in ("free", "variance") and extra[f"{extra['stopped_by']}_stop_iteration"] == first
    assert extra["stop_iteration"] <= first
    free_losses = {int(h["iteration"]): h["free_loss"] for h in output.history if "free_loss" in h}
    assert extra["best_free_loss"] == min(free_losses.values())


def test_the_memory_estimate_counts_the_variance_window():
    frame = (128, 128, 128)
    free = estimate_dip_memory_bytes(frame, RunConfig(dip=DipConfig(early_stop="free")).validate())
    variance = estimate_dip_memory_bytes(frame, RunConfig(dip=DipConfig(early_stop="variance",
                                                                         variance_window=20)).validate())
    box = math.prod(object_shape(frame))
    assert variance - free >= 8 * box * 24
