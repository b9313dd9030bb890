import math

import numpy as np
import pytest
import torch

from cdi_dip.config import DipConfig, DipLoss, DipParam, Method, RunConfig
from cdi_dip.errors import InvalidInputError, ReconstructionError
from cdi_dip.physics import FarField, pad_to_frame
from cdi_dip.solvers import dip as dip_module
from cdi_dip.solvers import dip_warmstart
from cdi_dip.config import NoiseModel
from cdi_dip.solvers import Problem
from cdi_dip.solvers.dip import (DipRun, check_device_memory, data_loss, estimate_dip_memory_bytes, loss_kind,
                                 object_shape, solve_dip)
from cdi_dip.solvers.nets import DoubleDip, Generator, level_shapes
from cdi_dip.support import dilate_mask, object_extent_px


def _solve_dip(counts, valid, physics, cfg, *, generator, free=None, on_iter=None):
    """The double DIP on plain arrays: the tests' shorthand for a Problem and the run's options."""
    return solve_dip(Problem.build(counts, valid, physics, free=free), DipRun.from_config(cfg), rng=generator,
                     on_iter=on_iter)


def _warm_start(counts, valid, free, physics, shape, *, generator, **options):
    """The warm start on plain arrays."""
    return dip_warmstart.warm_start(Problem.build(counts, valid, physics, free=free), shape, rng=generator, **options)


def _crystal(shape, seed=0):
    """A small faceted object with a smooth phase, centred in a half-size box."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.arange(n) - n / 2 + 0.5 for n in shape], indexing="ij")
    radius = min(shape) * 0.35
    inside = np.ones(shape, bool)
    for _ in range(6):
        normal = rng.normal(size=len(shape))
        normal /= np.linalg.norm(normal)
        inside &= sum(c * g for c, g in zip(normal, grids)) <= radius
    phase = 0.8 * np.sin(grids[-1] / radius) + 0.4 * grids[0] / radius
    return (inside * np.exp(1j * phase)).astype(np.complex64)


def _data(frame_shape, seed=0, peak=1e4):
    physics = FarField(frame_shape)
    obj = torch.from_numpy(_crystal(object_shape(frame_shape), seed))
    intensity = physics.intensity(pad_to_frame(obj, frame_shape))
    intensity = intensity * (peak / intensity.max())
    counts = torch.poisson(intensity, generator=torch.Generator().manual_seed(seed)).float()
    rng = np.random.default_rng(seed)
    free = torch.from_numpy(rng.random(frame_shape) < 0.05)
    return counts, ~free, free, physics


def _cfg(iterations=40, **dip):
    """A tiny double DIP: one warm-start run, a short pre-fit; ``warm_start_runs=0`` for probes."""
    settings = {"warm_start_runs": 1, "prefit_iterations": 20, "warmup_iterations": 5, "probes": 2,
                "probe_iterations": 10, "channels": 8, "depth": 2, "polish_iterations": 10,
                "learning_rate": 0.02, "patience": 1000}
    settings.update(dip)
    return RunConfig(method=Method.DIP, iterations=iterations, dip=DipConfig(**settings)).validate()


def _outside_box(frame_shape, box_shape=None):
    box_shape = object_shape(frame_shape) if box_shape is None else tuple(box_shape)
    inside = pad_to_frame(torch.ones(box_shape, dtype=torch.bool), frame_shape).numpy()
    return ~inside


@pytest.mark.parametrize("shape", [(16, 16), (15, 17), (8, 6, 10)])
def test_generator_output_shape(shape):
    net = Generator(shape, 3, channels=4, depth=2, generator=torch.Generator().manual_seed(0))
    assert net().shape == (1, 3, *shape)


def test_generator_levels_double_exactly_on_multiples_and_end_on_the_box():
    assert level_shapes((64, 32), 4) == [(4, 2), (8, 4), (16, 8), (32, 16), (64, 32)]
    assert level_shapes((12, 12, 12), 4) == [(2, 2, 2), (2, 2, 2), (3, 3, 3), (6, 6, 6), (12, 12, 12)]
    net = Generator((12, 20), 1, channels=4, depth=4, generator=torch.Generator().manual_seed(0))
    upsampled = [tuple(m.size) for m in net.body if isinstance(m, torch.nn.Upsample)]
    assert upsampled[-1] == (12, 20)  # the head works on the box itself, nothing is cropped away
    assert net.z.shape[2:] == (2, 2)


@pytest.mark.parametrize("shape", [(16, 16), (8, 8, 8)])
@pytest.mark.parametrize("head", ["unit", "tanh"])
def test_mag_phase_object_ranges(shape, head):
    net = DoubleDip(shape, DipParam.MAG_PHASE, channels=4, depth=2, generator=torch.Generator().manual_seed(1),
                    phase_head=head)
    with torch.no_grad():
        net.log_scale.fill_(math.log(3.0))
        obj = net()
        raw_magnitude = torch.sigmoid(net.raw()[0][0, 0])
    assert obj.shape == shape and obj.dtype == torch.complex64
    # The amplitude is the non-negative magnitude head, scaled; the phase lies in (-pi, pi].
    assert torch.allclose(obj.abs(), 3.0 * raw_magnitude, rtol=1e-4, atol=1e-6)
    phase = obj.angle()
    assert bool((phase > -math.pi).all() and (phase <= math.pi).all())


@pytest.mark.parametrize("shape", [(16, 16), (8, 8, 8)])
def test_real_imag_object_has_non_negative_real_part(shape):
    net = DoubleDip(shape, DipParam.REAL_IMAG, channels=4, depth=2, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        obj = net()
    assert obj.shape == shape
    assert bool((obj.real >= 0).all())
    assert bool((obj.imag < 0).any() and (obj.imag > 0).any())


def test_networks_come_from_the_generator_only():
    before = torch.random.get_rng_state()
    a = DoubleDip((16, 16), DipParam.MAG_PHASE, channels=4, depth=2, generator=torch.Generator().manual_seed(5))
    b = DoubleDip((16, 16), DipParam.MAG_PHASE, channels=4, depth=2, generator=torch.Generator().manual_seed(5))
    assert torch.equal(torch.random.get_rng_state(), before)
    with torch.no_grad():
        assert torch.equal(a(), b())


@pytest.mark.parametrize("kind", list(DipLoss))
def test_loss_ignores_excluded_pixels(kind):
    gen = torch.Generator().manual_seed(3)
    physics = FarField((16, 16))
    counts = torch.poisson(torch.full((16, 16), 20.0), generator=gen)
    valid = torch.ones(16, 16, dtype=torch.bool)
    valid[8, 8] = valid[3, 5] = False
    obj = torch.randn(16, 16, dtype=torch.complex64, generator=gen)

    def loss_and_grad(measured):
        x = obj.clone().requires_grad_(True)
        loss = data_loss(physics.intensity(x), measured, valid, kind)
        loss.backward()
        return loss.detach(), x.grad

    reference = loss_and_grad(counts)
    changed = counts.clone()
    changed[8, 8], changed[3, 5] = 1e6, float("nan")
    other = loss_and_grad(changed)
    assert torch.equal(reference[0], other[0])
    assert torch.equal(reference[1], other[1])


def test_solver_ignores_counts_at_excluded_pixels():
    counts, valid, free, physics = _data((16, 16), seed=4)
    valid[8, 8] = valid[2, 3] = False
    free[8, 8] = free[2, 3] = False
    cfg = _cfg(iterations=15, probes=1, polish_iterations=5)
    changed = counts.clone()
    changed[8, 8], changed[2, 3] = 1e9, float("nan")
    outputs = [_solve_dip(data, valid, physics, cfg, generator=torch.Generator().manual_seed(0), free=free)
               for data in (counts, changed)]
    assert np.array_equal(outputs[0].obj, outputs[1].obj)
    assert np.isfinite(outputs[1].obj).all()


@pytest.mark.parametrize("warm_start_runs", [1, 0])
def test_fit_lowers_the_loss_and_returns_frame_shaped_object(warm_start_runs):
    counts, valid, free, physics = _data((32, 32), seed=0)
    cfg = _cfg(iterations=60, warm_start_runs=warm_start_runs)
    output = _solve_dip(counts, valid, physics, cfg, generator=torch.Generator().manual_seed(0), free=free)
    losses = [entry["loss"] for entry in output.history]
    assert losses[-1] < 0.5 * losses[0]
    assert output.extra["best_free_loss"] < output.history[0]["free_loss"]
    assert output.obj.shape == (32, 32) and output.obj.dtype == np.complex64
    assert output.support.shape == (32, 32) and output.support.dtype == bool
    # The object lives in its box (half the frame, or more where the autocorrelation needs it): zero outside.
    box = output.extra["object_shape"]
    assert all(16 <= n <= 24 for n in box)
    assert np.all(output.obj[_outside_box((32, 32), box)] == 0)
    assert set(output.extra["parameters"]) == {"g1", "g2"}
    if warm_start_runs:
        assert len(output.extra["warm_start_scores"]) == 1
    else:
        assert len(output.extra["probe_losses"]) == 2


def test_box_is_half_the_frame_unless_the_object_needs_more():
    assert object_shape((64, 48)) == (32, 24)
    assert object_shape((64, 48), (20.0, 30.0)) == (32, 32)  # 30 + 2 px margin > 24
    assert object_shape((64, 48), (60.0, 47.0)) == (48, 36)  # capped at 3/4 of the frame


@pytest.mark.parametrize("oversampling", [1.7, 1.85, 3.0])
def test_object_extent_from_the_autocorrelation(oversampling):
    """The extent estimate is within 20 % of a crystal's true extent, also below an oversampling of 2."""
    n = 64
    extent = int(round(n / oversampling))
    inside = np.zeros((n, n), bool)
    start = (n - extent) // 2
    grids = np.meshgrid(*[np.arange(n) - n // 2] * 2, indexing="ij")
    inside[start:start + extent, start:start + extent] = True
    inside &= np.abs(grids[0] + grids[1]) < 0.6 * extent  # facets cut two corners
    physics = FarField((n, n))
    intensity = physics.intensity(torch.from_numpy(inside.astype(np.complex64)))
    counts = torch.poisson(intensity * (1e6 / intensity.max()), generator=torch.Generator().manual_seed(0))
    estimate = object_extent_px(counts, torch.ones(n, n, dtype=torch.bool), physics)
    assert all(0.8 * extent <= e <= 1.25 * extent for e in estimate), (estimate, extent)


def test_warm_start_keeps_the_support_in_the_box_and_the_best_run():
    counts, valid, free, physics = _data((32, 32), seed=7)
    shape = object_shape((32, 32))
    start = _warm_start(counts, valid, free, physics, shape, runs=3, threshold=0.08,
                                     generator=torch.Generator().manual_seed(0))
    support = start.support.numpy()
    assert support.any() and not support[_outside_box((32, 32))].any()
    assert np.all(start.obj.numpy()[~support] == 0)
    assert len(start.scores) == 3 and start.score == min(start.scores) == start.scores[start.run]


def test_fit_masks_the_object_with_the_dilated_warm_start_support(monkeypatch):
    counts, valid, free, physics = _data((32, 32), seed=8)
    seen = {}
    original = dip_warmstart.warm_start

    def recording_warm_start(*args, **kwargs):
        seen["start"] = original(*args, **kwargs)
        return seen["start"]

    monkeypatch.setattr(dip_warmstart, "warm_start", recording_warm_start)
    cfg = _cfg(iterations=30, support_margin_px=1, polish_iterations=0)
    output = _solve_dip(counts, valid, physics, cfg, generator=torch.Generator().manual_seed(0), free=free)
    allowed = dilate_mask(seen["start"].support).numpy()
    assert np.abs(output.obj).max() > 0
    assert np.all(output.obj[~allowed] == 0)


def test_fit_3d():
    counts, valid, free, physics = _data((16, 16, 16), seed=1)
    output = _solve_dip(counts, valid, physics, _cfg(iterations=20, probes=1, polish_iterations=5),
                       generator=torch.Generator().manual_seed(0), free=free)
    assert output.obj.shape == (16, 16, 16)
    assert np.isfinite(output.obj).all()
    assert output.history[-1]["loss"] < output.history[0]["loss"]


def test_same_seed_repeats_exactly():
    counts, valid, free, physics = _data((32, 32), seed=2)
    cfg = _cfg(iterations=25, param=DipParam.REAL_IMAG, loss=DipLoss.POISSON)
    runs = [_solve_dip(counts, valid, physics, cfg, generator=torch.Generator().manual_seed(seed), free=free)
            for seed in (7, 7, 8)]
    assert np.array_equal(runs[0].obj, runs[1].obj)
    assert runs[0].history == runs[1].history
    assert not np.array_equal(runs[0].obj, runs[2].obj)


def test_keyboard_interrupt_from_callback_returns_best_iterate():
    counts, valid, free, physics = _data((32, 32), seed=3)
    seen = []

    def on_iter(info):
        seen.append(info)
        if len(seen) == 4:
            raise KeyboardInterrupt

    output = _solve_dip(counts, valid, physics, _cfg(iterations=200, warm_start_runs=0), generator=torch.Generator().manual_seed(0),
                       free=free, on_iter=on_iter)
    assert output.interrupted
    assert output.obj.shape == (32, 32) and np.isfinite(output.obj).all()
    assert np.abs(output.obj).max() > 0
    assert {"iteration", "total", "loss", "free_loss", "stage"} <= set(seen[0])
    assert seen[0]["stage"] == "probe"


@pytest.mark.parametrize("stage", ["warm-start", "prefit"])
def test_keyboard_interrupt_in_warm_start_or_prefit_returns_a_valid_object(stage):
    counts, valid, free, physics = _data((32, 32), seed=3)
    calls = []

    def on_iter(info):
        calls.append(info["stage"])
        if info["stage"] == stage and calls.count(stage) == 3:
            raise KeyboardInterrupt

    cfg = _cfg(iterations=200, warm_start_runs=2, prefit_iterations=400)
    output = _solve_dip(counts, valid, physics, cfg, generator=torch.Generator().manual_seed(0),
                       free=free, on_iter=on_iter)
    assert output.interrupted and calls[-1] == stage
    assert output.obj.shape == (32, 32) and np.isfinite(output.obj).all()
    assert np.abs(output.obj).max() > 0
    assert np.all(output.obj[_outside_box((32, 32), output.extra["object_shape"])] == 0)


def test_non_finite_loss_restores_best_iterate(monkeypatch):
    counts, valid, free, physics = _data((32, 32), seed=5)
    calls = {"n": 0}
    original = dip_module.loss_map

    def breaking_loss(*args):
        calls["n"] += 1
        values = original(*args)
        return values * float("nan") if calls["n"] > 25 else values

    monkeypatch.setattr(dip_module, "loss_map", breaking_loss)
    output = _solve_dip(counts, valid, physics, _cfg(iterations=60, probes=1, polish_iterations=0),
                       generator=torch.Generator().manual_seed(0), free=free)
    assert "non_finite_at" in output.extra
    assert np.isfinite(output.obj).all() and np.abs(output.obj).max() > 0
    assert output.extra["stop_iteration"] <= 25


def test_no_finite_iterate_raises(monkeypatch):
    counts, valid, free, physics = _data((16, 16), seed=6)
    monkeypatch.setattr(dip_module, "loss_map", lambda intensity, counts, kind: intensity * float("inf"))
    with pytest.raises(ReconstructionError):
        _solve_dip(counts, valid, physics, _cfg(iterations=20, warm_start_runs=0, probes=1),
                  generator=torch.Generator().manual_seed(0), free=free)


def test_non_finite_fit_falls_back_to_the_warm_start(monkeypatch):
    counts, valid, free, physics = _data((16, 16), seed=6)
    monkeypatch.setattr(dip_module, "loss_map", lambda intensity, counts, kind: intensity * float("inf"))
    output = _solve_dip(counts, valid, physics, _cfg(iterations=20, polish_iterations=0),
                       generator=torch.Generator().manual_seed(0), free=free)
    assert "non_finite_at" in output.extra
    assert np.isfinite(output.obj).all() and np.abs(output.obj).max() > 0


@pytest.mark.parametrize("bad", [float("inf"), float("nan"), -1.0])
def test_non_finite_or_negative_counts_on_valid_pixels_are_refused(bad):
    counts, valid, free, physics = _data((16, 16), seed=6)
    counts[8, 8] = bad
    with pytest.raises(InvalidInputError, match="valid pixels"):
        _solve_dip(counts, valid, physics, _cfg(iterations=5), generator=torch.Generator().manual_seed(0), free=free)


def test_memory_estimate_grows_with_size_and_channels():
    cfg = RunConfig(method=Method.DIP)
    small = estimate_dip_memory_bytes((64, 64), cfg)
    assert small > 0
    assert estimate_dip_memory_bytes((128, 128), cfg) > small
    assert estimate_dip_memory_bytes((64, 64, 64), cfg) > estimate_dip_memory_bytes((64, 64), cfg)
    wide = RunConfig(method=Method.DIP, dip=DipConfig(channels=2 * cfg.dip.channels))
    assert estimate_dip_memory_bytes((64, 64), wide) > small


def test_memory_check_refuses_a_run_that_cannot_fit(monkeypatch):
    cfg = RunConfig(method=Method.DIP)
    needed = estimate_dip_memory_bytes((64, 64, 64), cfg)
    monkeypatch.setattr(dip_module, "_cuda_free_bytes", lambda device: needed // 2)
    with pytest.raises(InvalidInputError, match="GiB free.*--max-size.*dip.channels.*--device cpu"):
        check_device_memory((64, 64, 64), cfg, torch.device("cuda"))
    monkeypatch.setattr(dip_module, "_cuda_free_bytes", lambda device: 2 * needed)
    check_device_memory((64, 64, 64), cfg, torch.device("cuda"))
    # The CPU is never refused.
    monkeypatch.setattr(dip_module, "_cuda_free_bytes", lambda device: 0)
    check_device_memory((64, 64, 64), cfg, torch.device("cpu"))


@pytest.mark.gpu
def test_tiny_fit_on_cuda():
    counts, valid, free, physics = _data((32, 32), seed=0)
    device = torch.device("cuda")
    output = _solve_dip(counts.to(device), valid.to(device), physics, _cfg(iterations=60),
                       generator=torch.Generator(device=device).manual_seed(0), free=free.to(device))
    losses = [entry["loss"] for entry in output.history]
    assert losses[-1] < 0.5 * losses[0]
    assert output.obj.shape == (32, 32) and np.isfinite(output.obj).all()


def test_noise_model_selects_the_dip_loss():
    assert loss_kind(RunConfig(dip=DipConfig(loss=DipLoss.POISSON))) is DipLoss.POISSON
    for noise in NoiseModel:
        cfg = RunConfig(noise=noise, dip=DipConfig(loss=DipLoss.AMPLITUDE))
        assert loss_kind(cfg) is DipLoss(noise.value)


@pytest.mark.parametrize("kind", list(DipLoss))
def test_each_loss_is_smallest_at_noise_free_intensity(kind):
    # Without noise every loss is minimised (zero gradient) by the true intensity, pixel by pixel.
    counts = torch.tensor([0.0, 0.5, 3.0, 40.0, 900.0])
    truth = counts.clone().requires_grad_(True)
    loss = data_loss(truth, counts, torch.ones_like(counts, dtype=torch.bool), kind)
    loss.backward()
    assert torch.all(truth.grad[1:].abs() < 1e-3)
    for factor in (0.8, 1.25):
        assert data_loss(counts[1:] * factor, counts[1:], torch.ones(4, dtype=torch.bool), kind) > \
            data_loss(counts[1:], counts[1:], torch.ones(4, dtype=torch.bool), kind)


def _pattern(obj: np.ndarray, peak: float, seed: int) -> torch.Tensor:
    physics = FarField(obj.shape)
    intensity = physics.intensity(torch.from_numpy(obj.astype(np.complex64)))
    intensity = intensity * (peak / float(intensity.max()))
    return torch.poisson(intensity, generator=torch.Generator().manual_seed(seed))


def _blob(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    obj = np.zeros((48, 48))
    obj[16:32, 18:30] = 0.5 + rng.random((16, 12))
    return obj


def _strained_blob(seed: int) -> np.ndarray:
    """The blob's support with a non-linear (strain-like) phase that is odd about the support's centre beyond
    a ramp: a pattern without Friedel symmetry about any centre. (A phase even about the centre, such as a
    quadratic one, times a ramp, gives a pattern symmetric about a centre off the pixel.)"""
    yy, xx = np.mgrid[:48, :48]
    v, u = (yy - 23.5) / 8.0, (xx - 23.5) / 8.0
    return (_blob(seed) > 0) * np.exp(1j * 2.5 * (v**3 + u * v**2 + 0.5 * v * v))


def test_parameterisation_follows_the_pattern_symmetry():
    # A real, non-negative specimen has a centrosymmetric pattern: real-imag with positivity.
    # A strained crystal (a non-linear phase) has not: mag-phase, no specimen constraints.
    specimen, crystal = _blob(1), _strained_blob(1)
    physics = FarField((48, 48))
    cfg = RunConfig(method=Method.DIP)
    valid = torch.ones((48, 48), dtype=torch.bool)
    param, constraints = dip_module.choose_parameterisation(_pattern(specimen, 1e6, 2), valid, physics, cfg)
    assert param is DipParam.REAL_IMAG and constraints is not None and constraints.positivity
    param, constraints = dip_module.choose_parameterisation(_pattern(crystal, 1e6, 2), valid, physics, cfg)
    assert param is DipParam.MAG_PHASE and constraints is None
    forced = RunConfig(method=Method.DIP, dip=DipConfig(param=DipParam.MAG_PHASE))
    assert dip_module.choose_parameterisation(_pattern(specimen, 1e6, 2), valid, physics, forced)[0] \
        is DipParam.MAG_PHASE


def test_specimen_warm_start_keeps_a_non_negative_real_part():
    counts = _pattern(_blob(3), 1e5, 4)
    physics = FarField((48, 48))
    valid = torch.ones((48, 48), dtype=torch.bool)
    _, constraints = dip_module.choose_parameterisation(counts, valid, physics, RunConfig(method=Method.DIP))
    warm = _warm_start(counts, valid, None, physics, (24, 24), runs=1, threshold=0.08,
                                    generator=torch.Generator().manual_seed(0), specimen=constraints)
    assert float(warm.obj.real.min()) >= 0.0
    box = dip_warmstart.object_box((48, 48), (24, 24), torch.device("cpu"))
    assert bool(warm.support.any()) and not bool((warm.support & ~box).any())


def test_auto_method_is_dip_for_a_crystal_and_hio_for_a_specimen():
    from cdi_dip.solvers import choose_method
    from cdi_dip.types import Measurement

    specimen, crystal = _blob(5), _strained_blob(5)
    valid = np.ones((48, 48), dtype=bool)

    def method_for(obj, cfg):
        counts = _pattern(obj, 1e6, 6).numpy()
        return choose_method(Measurement(intensity=counts, valid=valid, name="x"), cfg.validate(),
                             torch.device("cpu"))

    assert method_for(crystal, RunConfig()) is Method.DIP
    assert method_for(specimen, RunConfig()) is Method.HIO
    assert method_for(crystal, RunConfig(method=Method.RAAR)) is Method.RAAR
    planned = RunConfig()
    planned.projection.plan = "20*HIO+10*ER"
    assert method_for(crystal, planned) is Method.HIO


def test_auto_method_keeps_large_frames_off_the_cpu_dip(monkeypatch):
    from cdi_dip.solvers import choice
    from cdi_dip.types import Measurement

    measurement = Measurement(intensity=_pattern(_strained_blob(5), 1e6, 6).numpy(), valid=np.ones((48, 48), bool),
                              name="x")
    monkeypatch.setattr(choice, "AUTO_DIP_MAX_CPU_VOXELS", 48 * 48 - 1)
    assert choice.choose_method(measurement, RunConfig().validate(), torch.device("cpu")) is Method.HIO
    assert choice.choose_method(measurement, RunConfig().validate(), torch.device("meta")) is Method.DIP
