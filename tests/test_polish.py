"""The likelihood polish: an object and a Gaussian width per axis fitted together to blurred counts."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cdi_dip.cli import app
from cdi_dip.deconvolution import blurred_model
from cdi_dip.ensemble import compare_objects
from cdi_dip.physics import FarField
from cdi_dip.polish import polish

runner = CliRunner()

SHAPE = (32, 32)


def _object() -> np.ndarray:
    """A 10x8 px rectangle with a smooth phase, centred in a 32x32 frame (oversampling 3-4)."""
    obj = np.zeros(SHAPE, np.complex128)
    obj[11:21, 12:20] = np.exp(0.8j * np.linspace(-1, 1, 8))[None, :]
    return obj


def _blurred_counts(obj: np.ndarray, sigma_px: float, peak: float, seed: int) -> np.ndarray:
    """Poisson counts of the object's intensity blurred by ``sigma_px``, ``peak`` photons at the brightest pixel;
    the object is rescaled in place of the counts so that ``|F obj|^2`` is the coherent expectation."""
    coherent = FarField(SHAPE).intensity(torch.from_numpy(obj)).double()
    rate = blurred_model(coherent, sigma_px).double().numpy()
    return np.random.default_rng(seed).poisson(rate * peak / rate.max()).astype(np.float64), peak / rate.max()


def test_the_polish_finds_the_width_and_moves_a_perturbed_object_towards_the_truth():
    truth = _object()
    counts, scale = _blurred_counts(truth, 0.8, 1e6, seed=0)
    truth = truth * np.sqrt(scale)
    support = np.abs(truth) > 0
    rng = np.random.default_rng(1)
    start = truth + 0.1 * np.abs(truth).max() * support * (rng.normal(size=SHAPE) + 1j * rng.normal(size=SHAPE))
    fit = np.ones(SHAPE, bool)
    polished = polish(start, support, counts, fit, [0.4], iterations=300)
    assert polished is not None
    assert polished.widths_px == pytest.approx((0.8, 0.8), rel=0.05)  # from a start half as wide
    before, after = polished.fit_deviance
    assert after < 0.01 * before  # (about 1 per pixel is counting noise alone; L-BFGS gets there slowly)
    assert compare_objects(polished.obj, truth).error < 0.6 * compare_objects(start, truth).error
    assert polished.support.sum() > support.sum()  # grown by a pixel
    assert not np.any(polished.obj[~polished.support])


def test_without_widths_the_polish_fits_a_coherent_model_and_the_object_alone():
    truth = _object()
    counts, scale = _blurred_counts(truth, 0.0, 1e6, seed=4)  # coherent counts
    truth = truth * np.sqrt(scale)
    support = np.abs(truth) > 0
    rng = np.random.default_rng(5)
    start = truth + 0.1 * np.abs(truth).max() * support * (rng.normal(size=SHAPE) + 1j * rng.normal(size=SHAPE))
    polished = polish(start, support, counts, np.ones(SHAPE, bool), None, iterations=300)
    assert polished is not None and polished.widths_px == ()
    coherent = FarField(SHAPE).intensity(torch.from_numpy(polished.obj)).numpy()
    assert polished.model_intensity == pytest.approx(np.maximum(coherent, 1e-9), rel=1e-3, abs=1e-4)
    before, after = polished.fit_deviance
    assert after < 0.01 * before
    assert compare_objects(polished.obj, truth).error < 0.6 * compare_objects(start, truth).error


def test_the_held_out_pixels_are_not_fitted():
    truth = _object()
    counts, _ = _blurred_counts(truth, 0.6, 1e5, seed=2)
    fit = np.ones(SHAPE, bool)
    fit[:, :16] = False  # half the frame held out: by Friedel symmetry the other half still fixes the object
    poisoned = counts.copy()
    poisoned[~fit] = 1e9  # nonsense where nothing is fitted
    support = np.abs(truth) > 0
    first = polish(truth, support, counts, fit, [0.6], iterations=50)
    second = polish(truth, support, poisoned, fit, [0.6], iterations=50)
    assert first is not None and second is not None
    np.testing.assert_allclose(first.obj, second.obj, rtol=1e-4, atol=1e-4 * np.abs(first.obj).max())


def test_a_width_per_axis_or_one_for_all():
    with pytest.raises(ValueError, match="widths_px"):
        polish(_object(), np.abs(_object()) > 0, np.ones(SHAPE), np.ones(SHAPE, bool), [0.5, 0.5, 0.5])


def test_compare_records_a_polished_candidate_with_its_width(tmp_path):
    obj = _object()
    counts, _ = _blurred_counts(obj, 1.0, 1e6, seed=3)
    pattern = tmp_path / "blurred.npy"
    np.save(pattern, counts.astype(np.float32))
    config = tmp_path / "polished.toml"
    config.write_text('psf_challengers = "kernel,polished"\n')
    result = runner.invoke(app, ["reconstruct", str(pattern), "--out", str(tmp_path / "out"), "--json", "--device",
                                 "cpu", "--method", "hio", "--iterations", "200", "--runs", "2", "--seed", "0",
                                 "--config", str(config)])
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)["method_choice"]["coherence"]
    scores = record["free_llk_poisson"]
    assert set(scores) == {"coherent", "fitted kernel", "polished fitted kernel"}  # the best before it, polished
    assert scores["polished fitted kernel"] < 0.1 * scores["coherent"]  # a blurred model: far better than coherent
    assert record["chosen"] in scores and scores[record["chosen"]] == min(scores.values())


def test_positivity_keeps_the_real_part_non_negative():
    truth = _object().real.astype(np.complex128)  # a real, non-negative specimen
    counts, scale = _blurred_counts(truth, 0.7, 1e5, seed=4)
    support = np.abs(truth) > 0
    start = truth * np.sqrt(scale) * np.where(np.arange(32)[None, :] % 2, 1.0, -0.5)  # negative columns
    polished = polish(start, support, counts, np.ones(SHAPE, bool), [0.7], positivity=True, iterations=50)
    assert polished is not None and polished.obj.real.min() >= 0
