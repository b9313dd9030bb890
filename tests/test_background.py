"""An incoherent background under the pattern: the radial fit and ``--background compare``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cdi_dip.background import fit_background, shell_basis, subtracted
from cdi_dip.cli import app
from cdi_dip.physics import FarField
from cdi_dip.reconstruction import paired_deviance_margin
from cdi_dip.report.lines import method_choice_line

runner = CliRunner()


def _coherent(shape=(48, 48), peak=2e4):
    """The coherent intensity (photons, centred) of a strained rectangle half the frame's size."""
    obj = np.zeros(shape, np.complex64)
    obj[14:34, 16:32] = np.exp(0.5j * np.linspace(-1, 1, 16))[None, :]
    intensity = FarField(shape).intensity(torch.from_numpy(obj)).numpy().astype(np.float64)
    return intensity * peak / intensity.max()


@pytest.mark.parametrize("shape", [(32, 40), (12, 14, 16)])
def test_the_shells_are_a_partition_of_unity_peaking_at_the_centre_and_the_corner(shape):
    basis = shell_basis(shape, 5)
    assert basis.shape == (5,) + shape and basis.min() >= 0
    np.testing.assert_allclose(basis.sum(axis=0), 1.0, atol=1e-12)
    centre = tuple(n // 2 for n in shape)
    assert basis[(0,) + centre] == 1.0 and basis[(4,) + (0,) * len(shape)] == 1.0


def test_the_fit_recovers_a_radial_background_under_a_known_model():
    """Given the object's exact intensity, the Poisson EM fit finds a background the counts carry: a falling
    radial profile of 1-3 photons per pixel, to within 10 % of its mean (36 pixels per photon of noise)."""
    coherent = _coherent()
    radius = np.hypot(*np.meshgrid(*[np.arange(48) - 24] * 2, indexing="ij")) / 34
    background = 1.0 + 2.0 * np.exp(-radius**2)
    counts = np.random.default_rng(0).poisson(coherent + background).astype(np.float32)
    fitted = fit_background(counts, coherent, np.ones(counts.shape, bool))
    assert fitted.min() >= 0
    assert abs(fitted.mean() / background.mean() - 1) < 0.1
    assert fitted[24, 24] > fitted[0, 0]  # it falls off as the true one does


def test_no_background_is_fitted_to_counts_without_one():
    coherent = _coherent()
    counts = np.random.default_rng(1).poisson(coherent).astype(np.float32)
    assert fit_background(counts, coherent, np.ones(counts.shape, bool)).mean() < 0.05


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
    path = tmp_path / "pattern.npy"
    np.save(path, counts)
    result = runner.invoke(app, ["reconstruct", str(path), "--out", str(tmp_path / "out"), "--json", "--device",
                                 "cpu", "--method", "hio", "--iterations", "200", "--runs", "2", "--seed", "0",
                                 "--psf", "none", *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_background_compare_records_the_test_and_the_kept_model_fits_the_measured_counts(tmp_path):
    counts = np.random.default_rng(3).poisson(_coherent() + 3.0).astype(np.float32)
    summary = _summary(tmp_path, counts, "--background", "compare")
    record = summary["method_choice"]["background"]
    assert record["level_photons"] > 0 and record["test_z"] is not None
    assert record["test_z"] >= 2 and record["compared"]  # 3 photons per pixel at 2e4 at the peak: detectable
    scores = record["free_llk_poisson"]
    assert set(scores) == {"no background", "background"} and record["chosen"] in scores
    assert summary["metrics"]["free_llk_poisson"] == pytest.approx(scores[record["chosen"]], rel=1e-4)
    assert method_choice_line(record).startswith(f"{record['chosen']} kept: free Poisson LLK")


def test_without_the_option_nothing_is_tested(tmp_path):
    counts = np.random.default_rng(4).poisson(_coherent()).astype(np.float32)
    assert "background" not in (_summary(tmp_path, counts).get("method_choice") or {})


def test_an_unknown_background_mode_is_one_line_and_exit_2(tmp_path):
    path = tmp_path / "pattern.npy"
    np.save(path, np.ones((16, 16), np.float32))
    result = runner.invoke(app, ["reconstruct", str(path), "--out", str(tmp_path / "out"), "--background", "flat"])
    assert result.exit_code == 2
    assert "background (--background) = 'flat'" in result.output
    assert not (tmp_path / "out").exists()
