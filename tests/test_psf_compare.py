"""--psf compare: a coherent reconstruction challenged by one with a fitted kernel."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cdi_dip.cli import app
from cdi_dip.coherence import BLUR_TEST_SIGMAS_PX, PartialCoherence, blur_test, blur_with
from cdi_dip.config import Method, RunConfig
from cdi_dip.config.psf import PsfChoice, parse_psf
from cdi_dip.physics import FarField
from cdi_dip.reconstruction import COHERENCE_CHALLENGER_RUNS, coherence_challenger_config

runner = CliRunner()


def test_compare_parses_a_start_width_and_runs_solvers_coherent():
    from cdi_dip.config.psf import for_run

    assert not parse_psf("compare").enabled and for_run(parse_psf("compare"), 1) == PsfChoice()
    assert parse_psf("compare") == PsfChoice("compare", 1.0)
    assert parse_psf("compare,0.6") == PsfChoice("compare", 0.6)


@pytest.mark.parametrize("asked, ran, expected", [
    ("auto", Method.DIP, "hio"),  # the double DIP is challenged by HIO with a fitted kernel
    ("auto", Method.HIO, "hio"),
    ("raar", Method.RAAR, "raar"),
])
def test_the_challenger_is_a_projection_method_on_half_the_runs(asked, ran, expected):
    cfg = RunConfig(method=asked).validate()
    challenger = coherence_challenger_config(cfg, ran, parse_psf("compare,0.8"))
    assert challenger.method.value == expected and challenger.psf == "auto,0.8"
    full = cfg.with_method(Method(expected)).runs
    assert challenger.runs == max(1, round(full * COHERENCE_CHALLENGER_RUNS))


@pytest.mark.parametrize("data", [{"method": "dip"}, {"method": "net"},
                                  {"method": "hio", "projection": {"plan": "50*HIO+10*ER"}}])
def test_no_challenger_for_an_explicit_dip_net_or_plan(data):
    from cdi_dip.config import config_from_dict

    cfg = config_from_dict(data)
    assert coherence_challenger_config(cfg, Method(cfg.method), parse_psf("compare")) is None


def _pattern(tmp_path, sigma_px: float) -> str:
    """A 48x48 pattern of a strained rectangle, 1e5 photons at the peak, blurred by a Gaussian of sigma_px."""
    physics = FarField((48, 48))
    obj = np.zeros((48, 48), np.complex64)
    obj[17:31, 18:30] = np.exp(0.6j * np.linspace(-1, 1, 12))[None, :]
    intensity = physics.intensity(torch.from_numpy(obj))
    if sigma_px > 0:
        kernel = PartialCoherence((48, 48), PsfChoice("fixed", sigma_px), torch.device("cpu")).compact()
        intensity = blur_with(kernel, intensity)
    rate = intensity.numpy() * 1e5 / float(intensity.max())
    path = tmp_path / f"pattern_{sigma_px:g}.npy"
    np.save(path, np.random.default_rng(3).poisson(rate).astype(np.float32))
    return str(path)


def _summary(tmp_path, pattern: str, *extra: str) -> dict:
    result = runner.invoke(app, ["reconstruct", pattern, "--out", str(tmp_path / "out"), "--json", "--device", "cpu",
                                 "--method", "hio", "--iterations", "600", "--runs", "2", "--seed", "0", *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _kernel_only(tmp_path):
    """A configuration whose only challenger is the fitted kernel (the deconvolved ones: test_deconvolution.py)."""
    path = tmp_path / "kernel_only.toml"
    path.write_text('psf_challengers = "kernel"\n')
    return str(path)


def _challenged_for_a_reason(blur_test: dict) -> bool:
    """The coherent fit showed the blur, or fitted the held-out pixels too poorly to tell (a coherent run that
    missed the basin can hide the blur; which happens depends on how the CPU's FFTs round)."""
    return blur_test["blurred"] or blur_test.get("challenged_because", "").startswith("a poor fit")


def test_a_blurred_pattern_keeps_the_fitted_kernel_and_says_why(tmp_path):
    """A 1 px blur washes the fringes out far beyond the counting noise at 1e5 photons: the coherent
    model cannot fit the held-out pixels as well as a fitted kernel does."""
    summary = _summary(tmp_path, _pattern(tmp_path, 1.0), "--psf", "compare", "--config", _kernel_only(tmp_path))
    record = summary["method_choice"]["coherence"]
    scores = record["free_llk_poisson"]
    assert record["compared"] and set(scores) == {"coherent", "fitted kernel"}
    assert record["chosen"] == "fitted kernel" and scores["fitted kernel"] < scores["coherent"]
    assert _challenged_for_a_reason(record["blur_test"])
    assert summary["metrics"]["free_llk_poisson"] == pytest.approx(scores["fitted kernel"])


def test_compare_is_the_default_and_none_turns_it_off(tmp_path):
    pattern = _pattern(tmp_path, 0.0)
    assert "blur_test" in _summary(tmp_path / "default", pattern)["method_choice"]["coherence"]
    assert "coherence" not in _summary(tmp_path / "none", pattern, "--psf", "none").get("method_choice", {})


def _speckle(shape, sigma_px: float, seed: int):
    """The coherent intensity of a random compact object (a quarter of the frame per axis) at 1e5 photons at
    the peak, its Poisson counts blurred by a Gaussian of sigma_px (none at 0), and held-out pixels."""
    rng = np.random.default_rng(seed)
    obj = np.zeros(shape, np.complex64)
    box = tuple(slice(n // 2 - n // 8, n // 2 + n // 8) for n in shape)
    obj[box] = rng.uniform(0.5, 1.0, obj[box].shape) * np.exp(1j * rng.uniform(-1, 1, obj[box].shape))
    coherent = np.abs(np.fft.fftshift(np.fft.fftn(obj))) ** 2
    coherent *= 1e5 / coherent.max()
    expected = coherent
    if sigma_px > 0:
        kernel = PartialCoherence(shape, PsfChoice("fixed", sigma_px), torch.device("cpu")).compact()
        expected = blur_with(kernel, torch.from_numpy(coherent.astype(np.float32))).numpy()
    counts = rng.poisson(expected).astype(np.float32)
    free = rng.random(shape) < 0.05
    return coherent.astype(np.float32), counts, free


def test_the_blur_test_finds_no_blur_in_coherent_data_it_was_given_the_true_model_of():
    """Blurring the exact coherent model of coherent counts can only wash out speckle the counts have."""
    coherent, counts, free = _speckle((64, 64), 0.0, seed=1)
    test = blur_test(coherent, counts, free)
    assert not test["blurred"] and test["best_sigma_px"] == 0.0 and test["ratio"] == 1.0


@pytest.mark.parametrize("sigma_px", [0.7, 1.4])
def test_the_blur_test_finds_a_blur_near_its_width(sigma_px):
    """Counts blurred by sigma: the coherent model blurred by the nearest tried width fits them best."""
    coherent, counts, free = _speckle((64, 64), sigma_px, seed=2)
    test = blur_test(coherent, counts, free)
    assert test["blurred"] and test["ratio"] < 0.5
    assert test["best_sigma_px"] == min(BLUR_TEST_SIGMAS_PX, key=lambda s: abs(s - sigma_px))


def test_compare_keeps_a_coherent_result_unchallenged_when_the_blur_test_finds_none(tmp_path):
    summary = _summary(tmp_path, _pattern(tmp_path, 0.0), "--psf", "compare")
    record = summary["method_choice"]["coherence"]
    assert not record["compared"] and record["chosen"] == "coherent" and not record["blur_test"]["blurred"]
    assert "without a challenger" in record["reason"] and "free_llk_poisson" not in record
    assert ("no width lowers it" in record["reason"]) == (record["blur_test"]["best_sigma_px"] == 0)
    assert record["blur_test"]["free_llk_poisson_by_sigma_px"]["0"] == pytest.approx(
        summary["metrics"]["free_llk_poisson"], rel=1e-4)


def test_without_held_out_pixels_the_coherent_result_stands_unchallenged(tmp_path):
    """No free pixels: neither the blur test nor the choice between models could be made."""
    record = _summary(tmp_path, _pattern(tmp_path, 1.0), "--config", str(_no_free_pixels(tmp_path)))
    coherence = record["method_choice"]["coherence"]
    assert not coherence["compared"] and coherence["chosen"] == "coherent" and "no held-out pixels" in coherence["reason"]


def _no_free_pixels(tmp_path):
    path = tmp_path / "no_free.toml"
    path.write_text("[prep]\nfree_fraction = 0.0\n")
    return path



def test_a_challenger_that_fails_leaves_the_coherent_result(tmp_path, monkeypatch):
    """The fitted-kernel run going wrong (here made to raise) costs nothing but its time."""
    from cdi_dip import reconstruction
    from cdi_dip.errors import ReconstructionError

    run_method = reconstruction._run_method

    def failing_challenger(measurement, cfg, *args, **kwargs):
        if cfg.psf is not None and cfg.psf.startswith("auto"):
            raise ReconstructionError("every run failed; the first: the ER iterate became NaN")
        return run_method(measurement, cfg, *args, **kwargs)

    monkeypatch.setattr(reconstruction, "_run_method", failing_challenger)
    summary = _summary(tmp_path, _pattern(tmp_path, 1.0), "--psf", "compare", "--config", _kernel_only(tmp_path))
    record = summary["method_choice"]["coherence"]
    assert not record["compared"] and record["chosen"] == "coherent" and _challenged_for_a_reason(record["blur_test"])
    assert "challenger failed" in record["reason"] and "NaN" in record["reason"]


def test_a_poor_coherent_fit_is_challenged_even_without_a_sign_of_blur(tmp_path, monkeypatch):
    """A coherent reconstruction that failed on blurred data can show no sign of blur; its free deviance far
    above the counting noise is reason enough to try the challengers (here the blur test is made to find none)."""
    from cdi_dip import reconstruction

    blur_evidence = reconstruction._blur_evidence
    monkeypatch.setattr(reconstruction, "_blur_evidence",
                        lambda result: {**blur_evidence(result), "blurred": False})
    summary = _summary(tmp_path, _pattern(tmp_path, 1.0), "--psf", "compare", "--config", _kernel_only(tmp_path))
    record = summary["method_choice"]["coherence"]
    coherent = record["free_llk_poisson"]["coherent"]
    assert coherent > reconstruction.CHALLENGE_FREE_DEVIANCE
    assert record["compared"] and record["blur_test"]["challenged_because"].startswith("a poor fit")


def _fit(model, counts, free):
    from types import SimpleNamespace

    return SimpleNamespace(model_intensity=model, free=free, measurement=SimpleNamespace(intensity=counts))


def test_a_challenger_must_fit_the_held_out_pixels_significantly_better():
    """The margin is the paired difference of the two models' Poisson deviances over the held-out pixels, in
    standard errors: large for the counts' true expectation against a model 30 % off, small for two models that
    differ by less than the counting noise shows."""
    from cdi_dip.reconstruction import CHALLENGE_SIGNIFICANCE, free_deviance_margin

    rng = np.random.default_rng(0)
    expected = rng.uniform(50, 500, (48, 48))
    counts = rng.poisson(expected).astype(np.float64)
    free = rng.random(expected.shape) < 0.05
    truth, off = _fit(expected, counts, free), _fit(1.3 * expected, counts, free)
    nearly = _fit(expected * (1 + 0.002 * rng.standard_normal(expected.shape)), counts, free)
    assert free_deviance_margin(off, truth) > 5 * CHALLENGE_SIGNIFICANCE
    assert free_deviance_margin(truth, off) < -5 * CHALLENGE_SIGNIFICANCE
    assert abs(free_deviance_margin(truth, nearly)) < CHALLENGE_SIGNIFICANCE
    assert free_deviance_margin(truth, truth) is None  # no difference at all: nothing to weigh
    assert free_deviance_margin(_fit(expected, counts, np.zeros_like(free)), truth) is None
