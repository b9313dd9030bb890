"""Partial coherence: --psf parsing, the blurred model, the Richardson-Lucy kernel fit, the projection."""

import numpy as np
import pytest
import torch

from cdi_dip.coherence import PartialCoherence, blur_with
from cdi_dip.config import RunConfig, config_from_dict
from cdi_dip.config.psf import PsfChoice, parse_psf
from cdi_dip.errors import InvalidInputError
from cdi_dip.physics import FarField
from cdi_dip.solvers import Problem
from cdi_dip.solvers.dip import DipRun, solve_dip
from cdi_dip.solvers.projections import ProjectionRun, solve_projections

CPU = torch.device("cpu")


@pytest.mark.parametrize("text, expected", [
    (None, PsfChoice()), ("none", PsfChoice()), ("auto", PsfChoice("fit", 1.0)),
    ("auto,0.7", PsfChoice("fit", 0.7)), ("gaussian,1.5", PsfChoice("fixed", 1.5)),
    ("select", PsfChoice("select", 1.0)),
])
def test_parse_psf(text, expected):
    assert parse_psf(text) == expected


@pytest.mark.parametrize("text", ["gaussian", "gaussian,-1", "auto,nan", "lorentz,1", "auto,100"])
def test_bad_psf_is_one_clear_error(text):
    with pytest.raises(InvalidInputError, match="psf"):
        parse_psf(text)
    with pytest.raises(InvalidInputError, match="psf"):
        config_from_dict({"psf": text})


def test_blur_keeps_the_photons_and_spreads_a_delta_by_sigma():
    shape = (32, 32)
    coherence = PartialCoherence(shape, PsfChoice("fixed", 1.5), CPU)
    delta = torch.zeros(shape)
    delta[0, 0] = 100.0
    blurred = coherence.blur(delta)
    assert float(blurred.sum()) == pytest.approx(100.0, rel=1e-5)
    assert coherence.widths_px() == pytest.approx([1.5, 1.5], rel=0.05)
    # The compact kernel blurs a centred image the same way as the FFT-order one.
    centred = torch.fft.fftshift(delta)
    assert torch.allclose(blur_with(coherence.compact(), centred), torch.fft.fftshift(blurred), atol=1e-4)


def _speckle(shape, seed):
    rng = np.random.default_rng(seed)
    obj = np.zeros(shape, np.complex64)
    half = tuple(slice(n // 4, 3 * n // 4) for n in shape)
    obj[half] = np.exp(2j * np.pi * rng.random(obj[half].shape))
    physics = FarField(shape)
    return physics, torch.from_numpy(obj)


def test_richardson_lucy_recovers_the_width_of_a_known_blur():
    physics, obj = _speckle((48, 48), seed=1)
    coherent = physics.fft(obj).abs().square()  # FFT order
    truth = PartialCoherence(physics.shape, PsfChoice("fixed", 1.6), CPU)
    measured = truth.blur(coherent) * 1e4 / float(coherent.max())
    fitted = PartialCoherence(physics.shape, PsfChoice("fit", 0.8), CPU)
    valid = torch.ones(physics.shape, dtype=torch.bool)
    fitted.refine(coherent * 1e4 / float(coherent.max()), measured, valid, steps=60)
    assert fitted.widths_px() == pytest.approx([1.6, 1.6], rel=0.1)


def test_projection_with_a_narrow_kernel_is_the_coherent_one():
    physics, obj = _speckle((32, 32), seed=2)
    field = physics.fft(obj)
    amplitude = torch.rand(physics.shape) * 10
    valid = torch.rand(physics.shape) > 0.2
    narrow = PartialCoherence(physics.shape, PsfChoice("fixed", 0.05), CPU)
    projected = narrow.project_(field.clone(), amplitude, valid)
    assert torch.allclose(projected.abs()[valid], amplitude[valid], rtol=1e-4, atol=1e-4)
    assert torch.equal(projected[~valid], field[~valid])


def test_fitted_kernel_lowers_the_likelihood_on_blurred_data():
    """HIO on a blurred pattern: the fitted kernel's model fits the counts better than the coherent one."""
    physics, _ = _speckle((48, 48), seed=0)
    rng = np.random.default_rng(3)
    obj = np.zeros(physics.shape, np.complex64)
    obj[16:32, 18:30] = 1.0
    obj[20:26, 22:27] = 0.4
    coherent = physics.intensity(torch.from_numpy(obj))  # centred
    blurred = blur_with(PartialCoherence(physics.shape, PsfChoice("fixed", 1.2), CPU).compact(), coherent)
    counts = torch.from_numpy(rng.poisson(blurred.numpy() * 1e5 / float(blurred.max())).astype(np.float32))
    problem = Problem.build(counts, torch.ones(physics.shape, dtype=torch.bool), physics)
    losses = {}
    for psf in ("none", "auto"):
        cfg = RunConfig(method="hio", iterations=300, psf=psf).validate()
        output = solve_projections(problem, ProjectionRun.from_config(cfg), rng=torch.Generator().manual_seed(0))
        losses[psf] = problem.metrics(output.obj, output.psf)[0]["llk_poisson"]
        if psf == "auto":
            assert output.extra["psf"]["width_px"][0] > 0.6
    assert losses["auto"] < 0.8 * losses["none"], losses


def test_double_dip_fits_the_kernel_in_its_warm_start_and_keeps_it():
    physics, _ = _speckle((32, 32), seed=0)
    obj = np.zeros(physics.shape, np.complex64)
    obj[11:21, 12:20] = np.exp(0.5j * np.arange(8) / 8)
    coherent = physics.intensity(torch.from_numpy(obj))
    blurred = blur_with(PartialCoherence(physics.shape, PsfChoice("fixed", 1.0), CPU).compact(), coherent)
    counts = torch.from_numpy(np.random.default_rng(0).poisson(blurred.numpy() * 1e4 / float(blurred.max()))
                              .astype(np.float32))
    problem = Problem.build(counts, torch.ones(physics.shape, dtype=torch.bool), physics)
    cfg = config_from_dict({"method": "dip", "iterations": 20, "psf": "auto", "dip": {
        "warm_start_runs": 1, "prefit_iterations": 5, "channels": 4, "depth": 2, "warmup_iterations": 2,
        "polish_iterations": 5}})
    output = solve_dip(problem, DipRun.from_config(cfg), rng=torch.Generator().manual_seed(0))
    assert output.psf is not None and output.psf.shape == (9, 9)
    assert float(output.psf.sum()) == pytest.approx(1.0, rel=1e-4)
    assert output.extra["psf"]["mode"] == "fit" and output.extra["psf"]["width_px"][0] > 0.3


def test_select_alternates_a_coherent_and_a_fitted_model_between_runs():
    from cdi_dip.config.psf import for_run
    from cdi_dip.restarts import options_for_run

    choice = parse_psf("select,0.8")
    assert [for_run(choice, k) for k in range(3)] == [PsfChoice(), PsfChoice("fit", 0.8), PsfChoice()]
    assert for_run(parse_psf("auto"), 1) == PsfChoice("fit", 1.0)
    options = ProjectionRun.from_config(RunConfig(method="hio", psf="select").validate())
    assert options_for_run(options, 0).psf == PsfChoice()
    assert options_for_run(options, 1).psf == PsfChoice("fit", 1.0)


def test_the_blurred_model_never_falls_below_the_kernels_centre_times_the_coherent_one():
    """A pattern with 1e7 photons at its peak and dark pixels far out: in float32 the FFT's rounding alone
    would leave a dark pixel's blurred value at zero, and the modulus step dividing by it overflowed."""
    shape = (256, 256)
    coherence = PartialCoherence(shape, PsfChoice("fit", 1.0), CPU)
    rng = np.random.default_rng(0)
    field = torch.complex(torch.from_numpy(rng.normal(size=shape).astype(np.float32)),
                          torch.from_numpy(rng.normal(size=shape).astype(np.float32))) * 1e-3
    field[0, 0] = 3.0e3  # about 1e7 photons
    intensity = field.real.square() + field.imag.square()
    blurred = coherence.blur(intensity)
    assert bool((blurred >= intensity * coherence.kernel[0, 0] * (1 - 1e-6)).all())
    amplitude = torch.sqrt(intensity * 10)
    projected = coherence.project_(field.clone(), amplitude, torch.ones(shape, dtype=torch.bool))
    assert bool(torch.isfinite(torch.view_as_real(projected)).all())
    assert float(projected.abs().max()) <= float((amplitude / coherence.kernel[0, 0].sqrt()).max()) * 1.001
