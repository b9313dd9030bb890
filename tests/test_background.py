"""An incoherent background under the pattern: the estimate from the counts, ``--background subtract`` and
``compare``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cdi_dip import background as bg
from cdi_dip.background import subtracted
from cdi_dip.cli import app
from cdi_dip.deconvolution import blurred_model
from cdi_dip.physics import FarField
from cdi_dip.metrics import paired_deviance_margin
from cdi_dip.reconstruction import BACKGROUND_FLOOR_PHOTONS
from cdi_dip.report.lines import method_choice_line

runner = CliRunner()


def _coherent(shape=(48, 48), peak=2e4):
    """The coherent intensity (photons, centred) of a strained rectangle half the frame's size."""
    obj = np.zeros(shape, np.complex64)
    obj[14:34, 16:32] = np.exp(0.5j * np.linspace(-1, 1, 16))[None, :]
    intensity = FarField(shape).intensity(torch.from_numpy(obj)).numpy().astype(np.float64)
    return intensity * peak / intensity.max()


def test_the_subtracted_counts_are_never_negative():
    out = subtracted(np.array([0.0, 1.0, 5.0]), np.array([2.0, 0.5, 1.0]))
    np.testing.assert_allclose(out, [0.0, 0.5, 4.0])
    assert out.dtype == np.float32


def test_the_paired_margin_says_which_model_fits_the_held_out_counts():
    coherent = _coherent()
    counts = np.random.default_rng(2).poisson(coherent + 2.0).astype(np.float32)
    free = np.zeros(counts.shape, bool)
    free[::3, ::3] = True
    assert paired_deviance_margin(counts, coherent, coherent + 2.0, free) > 2.0
    assert paired_deviance_margin(counts, coherent + 2.0, coherent, free) < -2.0
    assert paired_deviance_margin(counts, coherent, coherent, free) is None  # alike at every pixel


def _summary(tmp_path, counts: np.ndarray, *extra: str) -> dict:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "pattern.npy"
    np.save(path, counts)
    result = runner.invoke(app, ["reconstruct", str(path), "--out", str(tmp_path / "out"), "--json", "--device",
                                 "cpu", "--method", "hio", "--iterations", "600", "--runs", "2", "--seed", "0",
                                 "--psf", "none", *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_background_compare_records_the_test_and_the_kept_model_fits_the_measured_counts(tmp_path):
    counts = np.random.default_rng(3).poisson(_coherent() + 3.0).astype(np.float32)
    summary = _summary(tmp_path, counts, "--background", "compare")
    record = summary["method_choice"]["background"]
    assert record["level_photons"] >= BACKGROUND_FLOOR_PHOTONS and record["compared"]  # 3 photons per pixel
    scores = record["free_llk_poisson"]
    assert set(scores) == {"no background", "background"} and record["chosen"] in scores
    assert summary["metrics"]["free_llk_poisson"] == pytest.approx(scores[record["chosen"]], rel=1e-4)
    assert method_choice_line(record).startswith(f"{record['chosen']} kept: free Poisson LLK")


def test_background_subtract_takes_the_estimate_off_and_scores_the_model_with_it(tmp_path):
    """A 3-photon background under 2e4 photons at the peak: taken off, and the model written fits the counts
    as measured better than the same method's model without it (which cannot lift the dark pixels)."""
    counts = np.random.default_rng(3).poisson(_coherent() + 3.0).astype(np.float32)
    taken_off = _summary(tmp_path / "subtract", counts, "--background", "subtract")
    record = taken_off["method_choice"]["background"]
    assert record["chosen"] == "background" and record["level_photons"] >= BACKGROUND_FLOOR_PHOTONS
    assert record["reason"].startswith("background taken off")
    as_measured = _summary(tmp_path / "none", counts, "--background", "none")
    assert taken_off["metrics"]["free_llk_poisson"] < as_measured["metrics"]["free_llk_poisson"]


def test_the_blur_guard_leaves_a_blurred_pattern_unchallenged_by_a_background(tmp_path):
    """Blur lifts the speckle's minima: at 1e6 photons a 1.2 px blur reads as about 3 photons of background.
    With ``background_blur_guard`` the pattern is left to the partial-coherence challengers; by default
    (the guard off) it is compared."""
    rate = blurred_model(torch.from_numpy(_coherent(peak=1e6)), 1.2).double().numpy()
    counts = np.random.default_rng(3).poisson(rate).astype(np.float32)
    guarded = tmp_path / "guard.toml"
    guarded.write_text("background_blur_guard = true\n")
    record = _summary(tmp_path / "guard", counts, "--background", "compare",
                      "--config", str(guarded))["method_choice"]["background"]
    assert record["level_photons"] >= BACKGROUND_FLOOR_PHOTONS and not record["compared"]
    assert record["chosen"] == "no background" and "blur" in record["reason"]
    test = record["blur_test"]
    assert test["blurred"]  # and blurring the model explains the held-out pixels better than lifting it:
    assert min(test["free_llk_poisson_by_sigma_px"].values()) < test["free_llk_poisson_with_background"]
    assert _summary(tmp_path / "default", counts, "--background", "compare")["method_choice"]["background"]["compared"]


def test_counts_without_a_background_are_not_challenged(tmp_path):
    counts = np.random.default_rng(4).poisson(_coherent()).astype(np.float32)
    record = _summary(tmp_path, counts, "--background", "compare")["method_choice"]["background"]
    assert not record["compared"] and record["chosen"] == "no background"
    assert record["level_photons"] < BACKGROUND_FLOOR_PHOTONS and "below" in record["reason"]


def test_background_none_tests_nothing(tmp_path):
    counts = np.random.default_rng(4).poisson(_coherent() + 3.0).astype(np.float32)
    assert "background" not in (_summary(tmp_path, counts, "--background", "none").get("method_choice") or {})


def test_an_unknown_background_mode_is_one_line_and_exit_2(tmp_path):
    path = tmp_path / "pattern.npy"
    np.save(path, np.ones((16, 16), np.float32))
    result = runner.invoke(app, ["reconstruct", str(path), "--out", str(tmp_path / "out"), "--background", "flat"])
    assert result.exit_code == 2
    assert "background (--background) = 'flat'" in result.output
    assert not (tmp_path / "out").exists()


def _speckle(shape=(64, 64), peak=40.0, seed=0):
    """The intensity (photons, centred) of a random complex object filling the middle half of the frame:
    fully developed speckle, exponentially spread in every shell, a few photons a pixel."""
    rng = np.random.default_rng(seed)
    obj = np.zeros(shape, np.complex64)
    inner = tuple(slice(n // 4, 3 * n // 4) for n in shape)
    obj[inner] = rng.normal(size=obj[inner].shape) + 1j * rng.normal(size=obj[inner].shape)
    intensity = FarField(shape).intensity(torch.from_numpy(obj)).numpy().astype(np.float64)
    return intensity * peak / intensity.max()


def test_the_shell_likelihood_peaks_at_the_background_of_a_speckle_mixture():
    """Counts drawn as Poisson(b + I), I exponential of mean m: the most likely level is b (within the
    spread 4000 pixels allow), and a background-free sample peaks at zero."""
    rng = np.random.default_rng(3)
    levels = np.linspace(0.0, 4.9, 50)
    for true_level, speckle in ((2.0, 3.0), (0.0, 3.0)):
        counts = rng.poisson(true_level + rng.exponential(speckle, 4000))
        usable = levels[levels < counts.mean()]
        best = usable[int(np.argmax(bg.shell_likelihood(counts, usable)))]
        assert abs(best - true_level) < 0.4


def test_the_counts_alone_give_the_background_under_speckle_and_none_without_one():
    intensity = _speckle()
    valid = np.ones(intensity.shape, bool)
    rng = np.random.default_rng(4)
    clean = bg.background_from_counts(rng.poisson(intensity).astype(np.float32), valid)
    assert clean.mean() < 0.2
    lifted = bg.background_from_counts(rng.poisson(intensity + 3.0).astype(np.float32), valid)
    # On exponential speckle the shells' likelihood is unbiased, so the estimate is the true level divided by
    # the calibration for less speckled objects (LOW_BIAS).
    assert abs(lifted.mean() * bg.LOW_BIAS / 3.0 - 1) < 0.25
    assert lifted.min() >= 0 and lifted.dtype == np.float32


def test_masked_pixels_and_an_empty_frame_give_no_background_estimate():
    intensity = _speckle(shape=(32, 32))
    counts = np.random.default_rng(5).poisson(intensity + 2.0).astype(np.float32)
    nothing = np.zeros(counts.shape, bool)
    assert not bg.background_from_counts(counts, nothing).any()
    assert not bg.background_from_counts(np.zeros((32, 32), np.float32), np.ones((32, 32), bool)).any()
