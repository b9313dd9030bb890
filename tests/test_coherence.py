"""Partial coherence: --psf parsing, the blurred model, the Richardson-Lucy kernel fit, the projection."""

import numpy as np
import pytest
import torch

from cdi_dip.coherence import PartialCoherence, blur_with, floor_weight
from cdi_dip.config import RunConfig, config_from_dict
from cdi_dip.config.psf import PsfChoice, parse_psf
from cdi_dip.errors import InvalidInputError
from cdi_dip.physics import FarField
from cdi_dip.simulate import expected_intensity, pixel_integrated_intensity
from cdi_dip.solvers import Problem
from cdi_dip.solvers.dip import DipRun, solve_dip
from cdi_dip.solvers.projections import ProjectionRun, solve_projections

CPU = torch.device("cpu")


@pytest.mark.parametrize("text, expected", [
    (None, PsfChoice()), ("none", PsfChoice()), ("auto", PsfChoice("fit", 1.0)),
    ("auto,0.7", PsfChoice("fit", 0.7)), ("gaussian,1.5", PsfChoice("fixed", 1.5)),
    ("select", PsfChoice("select", 1.0)), ("pixel", PsfChoice("pixel")),
])
def test_parse_psf(text, expected):
    assert parse_psf(text) == expected


@pytest.mark.parametrize("text", ["gaussian", "gaussian,-1", "auto,nan", "lorentz,1", "auto,100", "pixel,2"])
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


def _pixel_averaged(obj: np.ndarray, sub: int = 9) -> np.ndarray:
    """The far-field intensity of ``obj`` (centred) averaged over each pixel by the midpoint rule: ``sub``
    (odd) samples per axis at offsets ``j / sub``, ``|j| <= sub // 2``, from a transform ``sub`` times finer.
    Returns the centred frame."""
    padded = np.pad(obj, [((sub * n) // 2 - n // 2, (sub * n) - (sub * n) // 2 - n + n // 2) for n in obj.shape])
    fine = np.abs(np.fft.fftn(np.fft.ifftshift(padded))) ** 2  # FFT order, pixel k's centre at index sub * k
    offsets = np.arange(sub) - sub // 2
    averaged = np.zeros(obj.shape)
    for shift in np.stack(np.meshgrid(*[offsets] * obj.ndim, indexing="ij"), -1).reshape(-1, obj.ndim):
        averaged += np.roll(fine, tuple(-s for s in shift), axis=tuple(range(obj.ndim)))[
            tuple(slice(None, None, sub) for _ in obj.shape)]
    return np.fft.fftshift(averaged / sub**obj.ndim)


def test_the_pixel_kernel_is_the_detector_pixels_average_of_the_intensity():
    """A detector pixel integrates the intensity over its width. Averaged over each pixel on a transform nine
    times finer, the pattern of an object oversampled about 3 times is what the pixel kernel makes of its
    point-sampled pattern (to the kernel box's truncation), and differs from the point samples by far more."""
    rng = np.random.default_rng(4)
    obj = np.zeros((64, 64), np.complex128)
    obj[22:42, 24:41] = rng.random((20, 17)) * np.exp(1j * rng.random((20, 17)))
    averaged = _pixel_averaged(obj)
    point = torch.from_numpy(np.fft.fftshift(np.abs(np.fft.fftn(np.fft.ifftshift(obj))) ** 2)).float()
    kernel = PartialCoherence((64, 64), PsfChoice("pixel"), CPU)
    modelled = blur_with(kernel.compact(), point).numpy()
    scale = averaged.max()
    assert np.abs(modelled - averaged).max() < 2e-3 * scale
    assert np.abs(point.numpy() - averaged).max() > 2e-2 * scale
    assert float(kernel.kernel.sum()) == pytest.approx(1.0, rel=1e-5)
    assert float(kernel.kernel.min()) < 0  # a box's transform: negative lobes, which the floor allows for


@pytest.mark.parametrize("shape, box", [((32, 32), (slice(6, 26), slice(8, 24))),
                                        ((16, 16, 16), (slice(5, 11), slice(4, 12), slice(5, 12)))])
def test_the_simulated_detector_averages_the_intensity_over_each_pixel(shape, box):
    """``pixel_integrated_intensity`` (exact, on a frame twice as large) against the brute-force average on a
    transform nine times finer; the point samples differ from both by far more."""
    rng = np.random.default_rng(5)
    obj = np.zeros(shape, np.complex128)
    obj[box] = rng.random(obj[box].shape) * np.exp(1j * rng.random(obj[box].shape))
    averaged = _pixel_averaged(obj) / np.prod(shape)  # as the unitary transform
    simulated = pixel_integrated_intensity(obj)
    scale = averaged.max()
    assert np.abs(simulated - averaged).max() < 5e-3 * scale
    assert np.abs(expected_intensity(obj) - averaged).max() > 3e-2 * scale
    assert simulated.sum() == pytest.approx(expected_intensity(obj).sum(), rel=1e-9)


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


@pytest.mark.parametrize("choice", [PsfChoice("fit", 1.0), PsfChoice("pixel")])
def test_the_blurred_model_never_falls_below_the_kernels_centre_times_the_coherent_one(choice):
    """A pattern with 1e7 photons at its peak and dark pixels far out: in float32 the FFT's rounding alone
    would leave a dark pixel's blurred value at zero, and the modulus step dividing by it overflowed."""
    shape = (256, 256)
    coherence = PartialCoherence(shape, choice, CPU)
    floor = floor_weight(coherence.kernel)
    rng = np.random.default_rng(0)
    field = torch.complex(torch.from_numpy(rng.normal(size=shape).astype(np.float32)),
                          torch.from_numpy(rng.normal(size=shape).astype(np.float32))) * 1e-3
    field[0, 0] = 3.0e3  # about 1e7 photons
    intensity = field.real.square() + field.imag.square()
    blurred = coherence.blur(intensity)
    assert float(floor) > 0
    assert bool((blurred >= intensity * floor * (1 - 1e-6)).all())
    amplitude = torch.sqrt(intensity * 10)
    projected = coherence.project_(field.clone(), amplitude, torch.ones(shape, dtype=torch.bool))
    assert bool(torch.isfinite(torch.view_as_real(projected)).all())
    assert float(projected.abs().max()) <= float((amplitude / floor.sqrt()).max()) * 1.001
