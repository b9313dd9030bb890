"""--psf compare's pixel challenger: a reconstruction whose model integrates the intensity over the pixels."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from cdi_dip.cli import app
from cdi_dip.coherence import PIXEL_TEST_RATIO, pixel_test
from cdi_dip.ensemble import compare_objects
from cdi_dip.io.readers import read_object
from cdi_dip.simulate import pixel_integrated_intensity

runner = CliRunner()


def _object(shape, seed: int) -> np.ndarray:
    """A random compact complex object filling a quarter of the frame per axis (oversampled 4 times)."""
    rng = np.random.default_rng(seed)
    obj = np.zeros(shape, np.complex128)
    box = tuple(slice(n // 2 - n // 8, n // 2 + n // 8) for n in shape)
    obj[box] = rng.uniform(0.5, 1.0, obj[box].shape) * np.exp(1j * rng.uniform(-1, 1, obj[box].shape))
    return obj


def _point_sampled(obj: np.ndarray) -> np.ndarray:
    """``|F x|^2`` at the pixels' centres, centred."""
    return np.abs(np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(obj)))) ** 2


def _counts(expected: np.ndarray, reference: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Poisson counts of ``expected`` given ``reference``'s total photons, scaled so that ``reference``'s peak holds
    1e5 photons, and 5 % held out."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(expected * (reference.sum() / expected.sum()) * 1e5 / reference.max()).astype(np.float32)
    return counts, rng.random(expected.shape) < 0.05


def test_the_pixel_test_finds_no_integration_in_point_samples_it_was_given_the_true_model_of():
    """Integrating the exact model of point-sampled counts over the pixels only washes out their speckle."""
    coherent = _point_sampled(_object((64, 64), seed=1))
    counts, free = _counts(coherent, coherent, seed=2)
    test = pixel_test(coherent * 1e5 / coherent.max(), counts, free)
    assert not test["integrating"] and test["ratio"] > 1 and test["margin_z"] < 0
    assert test["free_llk_poisson_integrated"] > test["free_llk_poisson_coherent"]


@pytest.mark.parametrize("shape", [(64, 64), (24, 20, 28)])
def test_the_pixel_test_finds_pixels_that_integrate(shape):
    """Counts averaged over each pixel, and the point-sampled model of the same object: integrated, the model is
    their expectation and fits the held-out pixels far better."""
    obj = _object(shape, seed=3)
    coherent = _point_sampled(obj)
    counts, free = _counts(pixel_integrated_intensity(obj), coherent, seed=4)
    test = pixel_test(coherent * 1e5 / coherent.max(), counts, free)
    assert test["integrating"] and test["ratio"] < PIXEL_TEST_RATIO and test["margin_z"] > 0
    assert test["free_llk_poisson_integrated"] < test["free_llk_poisson_coherent"]


def _rectangle(rows: int = 24, cols: int = 22) -> np.ndarray:
    """A strained rectangle on a 48x48 frame (24x22: oversampled 2 and 2.2 times, as crystals often are)."""
    obj = np.zeros((48, 48), np.complex128)
    obj[24 - rows // 2:24 + rows - rows // 2, 24 - cols // 2:24 + cols - cols // 2] = (
        np.exp(0.6j * np.linspace(-1, 1, cols))[None, :])
    return obj


def _pattern(tmp_path, obj: np.ndarray, integrated: bool) -> str:
    """``obj``'s counts at 1e5 photons at the peak, recorded by integrating pixels or sampled at their centres."""
    expected = pixel_integrated_intensity(obj) if integrated else _point_sampled(obj)
    path = tmp_path / f"pattern_{'integrated' if integrated else 'sampled'}.npy"
    np.save(path, np.random.default_rng(5).poisson(expected * 1e5 / expected.max()).astype(np.float32))
    return str(path)


def _summary(tmp_path, pattern: str, challengers: str, *extra: str) -> dict:
    config = tmp_path / "challengers.toml"
    config.write_text(f'psf_challengers = "{challengers}"\nbackground = "none"\n')
    out = tmp_path / ("out" + "".join(extra))
    result = runner.invoke(app, ["reconstruct", pattern, "--out", str(out), "--json", "--device", "cpu",
                                 "--method", "hio", "--iterations", "600", "--runs", "2", "--seed", "0",
                                 "--config", str(config), *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _error(summary: dict) -> float:
    """The written object's symmetry-adjusted error against the rectangle."""
    return compare_objects(read_object(summary["output"]), _rectangle()).error


def test_integrating_pixels_keep_the_pixel_challenger_and_say_why(tmp_path):
    """At 1e5 photons the pixels' averaging changes the pattern far beyond the counting noise: the model that
    integrates over them fits the held-out pixels better, and its result is kept."""
    summary = _summary(tmp_path, _pattern(tmp_path, _rectangle(), integrated=True), "pixel")
    record = summary["method_choice"]["coherence"]
    scores = record["free_llk_poisson"]
    assert record["compared"] and set(scores) == {"coherent", "integrating pixels"}
    assert record["chosen"] == "integrating pixels" and scores["integrating pixels"] < scores["coherent"]
    assert record["blur_test"]["pixel_test"]["integrating"] or "poor fit" in record["blur_test"]["challenged_because"]
    assert summary["metrics"]["free_llk_poisson"] == pytest.approx(scores["integrating pixels"])
    coherent_only = _summary(tmp_path, _pattern(tmp_path, _rectangle(), integrated=True), "pixel", "--psf", "none")
    assert _error(summary) < 0.5 * _error(coherent_only)  # the coherent model bends the object to fit


def test_point_samples_leave_the_coherent_result_unchallenged_by_the_pixels(tmp_path):
    """A pattern sampled at the pixels' centres (of a rectangle HIO reconstructs in these few iterations):
    integrating the coherent model only loses its speckle, so no challenger runs and the reason names the pixel
    test."""
    summary = _summary(tmp_path, _pattern(tmp_path, _rectangle(14, 12), integrated=False), "pixel")
    record = summary["method_choice"]["coherence"]
    assert not record["compared"] and record["chosen"] == "coherent"
    assert not record["blur_test"]["pixel_test"]["integrating"]
    assert "integrating it over the pixels does not lower it by" in record["reason"]


def test_the_pixel_test_is_made_by_default_and_not_without_the_pixel_challenger(tmp_path):
    pattern = _pattern(tmp_path, _rectangle(14, 12), integrated=False)
    result = runner.invoke(app, ["reconstruct", pattern, "--out", str(tmp_path / "default"), "--json", "--device",
                                 "cpu", "--method", "hio", "--iterations", "600", "--runs", "2", "--seed", "0"])
    assert result.exit_code == 0, result.output
    assert "pixel_test" in json.loads(result.output)["method_choice"]["coherence"]["blur_test"]
    summary = _summary(tmp_path, pattern, "kernel")
    assert "pixel_test" not in summary["method_choice"]["coherence"]["blur_test"]
