import math

import numpy as np
import pytest
import torch

from cdi_dip.config import DipConfig, DipLoss, DipParam, Method, RunConfig
from cdi_dip.errors import ReconstructionError
from cdi_dip.physics import FarField, pad_to_frame
from cdi_dip.solvers import dip as dip_module
from cdi_dip.solvers.dip import data_loss, estimate_dip_memory_bytes, object_shape, solve_dip
from cdi_dip.solvers.nets import DoubleDip, Generator


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
    settings = {"probes": 2, "probe_iterations": 10, "channels": 8, "depth": 2, "polish_iterations": 10,
                "learning_rate": 0.02, "patience": 1000}
    settings.update(dip)
    return RunConfig(method=Method.DIP, iterations=iterations, dip=DipConfig(**settings)).validate()


@pytest.mark.parametrize("shape", [(16, 16), (15, 17), (8, 6, 10)])
def test_generator_output_shape(shape):
    net = Generator(shape, 3, channels=4, depth=2, generator=torch.Generator().manual_seed(0))
    assert net().shape == (1, 3, *shape)


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
    outputs = [solve_dip(data, valid, physics, cfg, generator=torch.Generator().manual_seed(0), free=free)
               for data in (counts, changed)]
    assert np.array_equal(outputs[0].obj, outputs[1].obj)
    assert np.isfinite(outputs[1].obj).all()


def test_fit_lowers_the_loss_and_returns_frame_shaped_object():
    counts, valid, free, physics = _data((32, 32), seed=0)
    output = solve_dip(counts, valid, physics, _cfg(iterations=60), generator=torch.Generator().manual_seed(0),
                       free=free)
    losses = [entry["loss"] for entry in output.history]
    assert losses[-1] < 0.5 * losses[0]
    assert output.extra["best_free_loss"] < output.history[0]["free_loss"]
    assert output.obj.shape == (32, 32) and output.obj.dtype == np.complex64
    assert output.support.shape == (32, 32) and output.support.dtype == bool
    # The object lives in the central half of the frame: zero outside.
    outside = np.ones((32, 32), bool)
    outside[8:24, 8:24] = False
    assert np.all(output.obj[outside] == 0)
    assert len(output.extra["probe_losses"]) == 2
    assert set(output.extra["parameters"]) == {"g1", "g2"}


def test_fit_3d():
    counts, valid, free, physics = _data((16, 16, 16), seed=1)
    output = solve_dip(counts, valid, physics, _cfg(iterations=20, probes=1, polish_iterations=5),
                       generator=torch.Generator().manual_seed(0), free=free)
    assert output.obj.shape == (16, 16, 16)
    assert np.isfinite(output.obj).all()
    assert output.history[-1]["loss"] < output.history[0]["loss"]


def test_same_seed_repeats_exactly():
    counts, valid, free, physics = _data((32, 32), seed=2)
    cfg = _cfg(iterations=25, param=DipParam.REAL_IMAG, loss=DipLoss.POISSON)
    runs = [solve_dip(counts, valid, physics, cfg, generator=torch.Generator().manual_seed(seed), free=free)
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

    output = solve_dip(counts, valid, physics, _cfg(iterations=200), generator=torch.Generator().manual_seed(0),
                       free=free, on_iter=on_iter)
    assert output.interrupted
    assert output.obj.shape == (32, 32) and np.isfinite(output.obj).all()
    assert np.abs(output.obj).max() > 0
    assert {"iteration", "total", "loss", "free_loss", "stage"} <= set(seen[0])
    assert seen[0]["stage"] == "probe"


def test_non_finite_loss_restores_best_iterate(monkeypatch):
    counts, valid, free, physics = _data((32, 32), seed=5)
    calls = {"n": 0}
    original = dip_module.loss_map

    def breaking_loss(*args):
        calls["n"] += 1
        values = original(*args)
        return values * float("nan") if calls["n"] > 25 else values

    monkeypatch.setattr(dip_module, "loss_map", breaking_loss)
    output = solve_dip(counts, valid, physics, _cfg(iterations=60, probes=1, polish_iterations=0),
                       generator=torch.Generator().manual_seed(0), free=free)
    assert "non_finite_at" in output.extra
    assert np.isfinite(output.obj).all() and np.abs(output.obj).max() > 0
    assert output.extra["stop_iteration"] <= 25


def test_no_finite_iterate_raises():
    counts, valid, free, physics = _data((16, 16), seed=6)
    counts[8, 8] = float("inf")  # a valid pixel with an infinite count: every loss is infinite
    with pytest.raises(ReconstructionError):
        solve_dip(counts, valid, physics, _cfg(iterations=20, probes=1), generator=torch.Generator().manual_seed(0),
                  free=free)


def test_memory_estimate_grows_with_size_and_channels():
    cfg = RunConfig(method=Method.DIP)
    small = estimate_dip_memory_bytes((64, 64), cfg)
    assert small > 0
    assert estimate_dip_memory_bytes((128, 128), cfg) > small
    assert estimate_dip_memory_bytes((64, 64, 64), cfg) > estimate_dip_memory_bytes((64, 64), cfg)
    wide = RunConfig(method=Method.DIP, dip=DipConfig(channels=2 * cfg.dip.channels))
    assert estimate_dip_memory_bytes((64, 64), wide) > small
