"""The full step along support modes a masked centre hides (issue 15): the modes against their
definition, the step against the least-squares step it stands for, and when the solver takes it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cdi_dip.config import Method, ProjectionConfig, RunConfig
from cdi_dip.physics import FarField
from cdi_dip.simulate import expected_intensity, faceted_crystal
from cdi_dip.solvers import Problem
from cdi_dip.solvers.hidden_modes import MODE_FRACTION, HiddenModeStep
from cdi_dip.solvers.projections import ProjectionRun, solve_projections

SHAPE = (32, 32)


def _centred_disc(radius_px: float) -> np.ndarray:
    grids = np.meshgrid(*[np.arange(n) - n // 2 for n in SHAPE], indexing="ij")
    return np.sqrt(sum(g ** 2 for g in grids)) <= radius_px


def _fft_order(centred: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.fft.ifftshift(centred)))


@pytest.fixture(params=[(6.0, 3.0), (3.5, 4.5)], ids=["more-support-pixels", "more-masked-pixels"])
def hidden(request):
    """A disc support behind a masked disc (FFT order), and its step: both eigenproblems of the modes."""
    support_radius, mask_radius = request.param
    physics = FarField(SHAPE)
    valid = _fft_order(~_centred_disc(mask_radius))
    support = _fft_order(_centred_disc(support_radius))
    step = HiddenModeStep.build(valid, physics, floor=1e-3)
    frame = torch.zeros(SHAPE, dtype=torch.complex64)
    step.apply(frame.clone(), frame, support)  # builds the modes of this support
    return physics, valid, support, step


def _on_frame(step: HiddenModeStep, support: torch.Tensor, k: int) -> torch.Tensor:
    frame = torch.zeros(SHAPE, dtype=torch.complex64)
    frame[support] = step.modes[k]  # numpy.nonzero order is row-major, as boolean indexing is
    return frame


def test_every_mode_hides_the_fraction_it_is_given_and_the_modes_are_orthonormal(hidden):
    physics, valid, support, step = hidden
    assert step.modes_used >= 2
    assert np.all(step.fractions > MODE_FRACTION)
    gram = (step.modes.conj() @ step.modes.T).numpy()
    np.testing.assert_allclose(gram, np.eye(step.modes_used), atol=1e-5)
    for k in range(step.modes_used):
        field = physics.fft(_on_frame(step, support, k))
        masked = float(field[~valid].abs().square().sum() / field.abs().square().sum())
        assert masked == pytest.approx(step.fractions[k], abs=1e-4)


def test_the_step_along_a_hidden_mode_is_the_full_least_squares_step(hidden):
    """Far-field phases right: the plain step leaves ``g`` of the error along a mode, the full one none."""
    physics, valid, support, step = hidden
    k = int(np.argmax(np.where(step.fractions < 1 - 10 * step.floor, step.fractions, 0)))
    truth = torch.where(support, torch.exp(1j * torch.linspace(0, 3, support.numel()).reshape(SHAPE)),
                        torch.zeros((), dtype=torch.complex64)).to(torch.complex64)
    error = 0.3 * _on_frame(step, support, k)
    x = truth + error
    target = physics.fft(truth)
    projected = physics.ifft(torch.where(valid, target, physics.fft(x)))  # the modulus step with the phases right
    plain = torch.where(support, projected, torch.zeros((), dtype=torch.complex64)) - truth
    full = torch.where(support, step.apply(projected.clone(), x, support),
                       torch.zeros((), dtype=torch.complex64)) - truth
    kept = float(plain.abs().square().sum() / error.abs().square().sum()) ** 0.5
    assert kept == pytest.approx(step.fractions[k], rel=1e-3)
    assert float(full.abs().square().sum() / error.abs().square().sum()) ** 0.5 < 1e-3


def test_the_step_is_capped_by_its_floor(hidden):
    physics, valid, support, _ = hidden
    step = HiddenModeStep.build(valid, physics, floor=0.5)
    x = torch.zeros(SHAPE, dtype=torch.complex64)
    projected = x.clone()
    step.apply(projected, x, support)
    projected[support] = step.modes[-1]  # a step of unit length along the most hidden mode
    out = step.apply(projected.clone(), x, support)
    assert float(out.abs().square().sum()) ** 0.5 == pytest.approx(2.0, rel=1e-4)  # 1 / floor, not 1 / (1 - g)


def test_a_measured_centre_gives_no_step():
    assert HiddenModeStep.build(torch.ones(SHAPE, dtype=torch.bool), FarField(SHAPE), floor=0.05) is None


def _crystal_behind_a_beamstop(radius_px: float):
    obj = faceted_crystal(SHAPE, rng=np.random.default_rng(4), size_fraction=0.4, strain_rad=1.0)
    intensity = expected_intensity(obj) * (1e7 / float(np.sum(np.abs(obj) ** 2)))
    counts = torch.from_numpy(np.random.default_rng(5).poisson(intensity).astype(np.float32))
    return counts, torch.from_numpy(~_centred_disc(radius_px))


@pytest.mark.parametrize("radius_px, projection, psf, expected", [
    (3.0, {}, "none", True),
    (3.0, {"positivity": True}, "none", False),  # a real specimen: the step is left out
    (3.0, {"hidden_mode_floor": 0.0}, "none", False),
    (0.0, {}, "none", False),  # the centre measured
    (3.0, {}, "pixel", True),  # the pixels' integration alone: still a coherent model
    (3.0, {}, "gaussian,1.0", False),  # partial coherence: left out
])
def test_the_solver_takes_the_step_only_behind_a_masked_centre_without_positivity(radius_px, projection, psf,
                                                                                 expected):
    counts, valid = _crystal_behind_a_beamstop(radius_px)
    cfg = RunConfig(method=Method.HIO, iterations=40, seed=0, psf=psf, projection=ProjectionConfig(**projection))
    out = solve_projections(Problem.build(counts * valid, valid, FarField(SHAPE)), ProjectionRun.from_config(cfg),
                            rng=torch.Generator().manual_seed(0))
    assert ("hidden_mode_step" in out.extra) is expected
    if expected:
        assert out.extra["hidden_mode_step"]["floor"] == 0.05
    assert np.isfinite(out.obj).all()


def test_an_eigenproblem_over_the_limit_leaves_the_step_plain(hidden, monkeypatch):
    physics, valid, support, _ = hidden
    monkeypatch.setattr("cdi_dip.solvers.hidden_modes.MAX_EIGENPROBLEM", 10)
    step = HiddenModeStep.build(valid, physics, floor=0.05)
    x = torch.zeros(SHAPE, dtype=torch.complex64)
    projected = torch.randn(SHAPE, dtype=torch.complex64, generator=torch.Generator().manual_seed(1))
    assert torch.equal(step.apply(projected.clone(), x, support), projected)
    assert step.modes_used == 0


@pytest.mark.parametrize("radius_px, changes", [(3.0, True), (0.0, False)])
def test_the_double_dips_warm_start_takes_the_step_only_behind_a_masked_centre(radius_px, changes):
    from cdi_dip.solvers.dip_warmstart import hio_in_box, object_box

    counts, valid = _crystal_behind_a_beamstop(radius_px)
    problem = Problem.build(counts * valid, valid, FarField(SHAPE))
    box = object_box(SHAPE, (16, 16), problem.device)
    runs = [hio_in_box(problem, box, threshold=0.1, rng=torch.Generator().manual_seed(0), hidden_mode_floor=floor)[0]
            for floor in (0.0, 0.05)]
    assert torch.equal(runs[0], runs[1]) is not changes
