"""Counts deconvolved by a Gaussian (cdi_dip.deconvolution), and the deconvolved challengers of --psf compare."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cdi_dip.cli import app
from cdi_dip.config import RunConfig
from cdi_dip.config.psf import parse_challengers
from cdi_dip.deconvolution import (COARSE_WIDTHS_PX, REFINE_FACTOR, WIENER_CONSTANT, blurred_model,
                                   refined_widths, wiener_deconvolved)
from cdi_dip.errors import InvalidInputError

runner = CliRunner()


def _coherent(shape=(64, 64), seed=0) -> np.ndarray:
    """The coherent intensity (centred, 1e5 at the peak) of a random complex object a quarter of the frame wide."""
    rng = np.random.default_rng(seed)
    obj = np.zeros(shape, np.complex128)
    box = tuple(slice(n // 2 - n // 8, n // 2 + n // 8) for n in shape)
    obj[box] = rng.uniform(0.5, 1.0, obj[box].shape) * np.exp(1j * rng.uniform(-1, 1, obj[box].shape))
    intensity = np.abs(np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(obj)))) ** 2
    return intensity * 1e5 / intensity.max()


def _blurred(intensity: np.ndarray, sigma_px: float) -> np.ndarray:
    return blurred_model(torch.from_numpy(intensity.astype(np.float32)), sigma_px).numpy().astype(np.float64)


def _relative_error(estimate: np.ndarray, truth: np.ndarray, where: np.ndarray | None = None) -> float:
    where = np.ones(truth.shape, bool) if where is None else where
    return float(np.linalg.norm((estimate - truth)[where]) / np.linalg.norm(truth[where]))


@pytest.mark.parametrize("sigma_px", [1.3, 2.0])
def test_the_blur_is_a_unit_sum_gaussian_of_its_width(sigma_px):
    """A point blurred by the model: the same total, and the variance sigma^2 along each axis (wide enough
    for the pixels to sample the Gaussian; a point is no pattern of a compact object, and narrower blurs of
    it ring)."""
    point = np.zeros((48, 40), np.float32)
    point[24, 20] = 1.0
    spread = _blurred(point, sigma_px)
    assert spread.sum() == pytest.approx(1.0, abs=1e-3) and spread.min() >= 0
    rows, cols = np.arange(48) - 24, np.arange(40) - 20
    assert (spread.sum(axis=1) * rows**2).sum() == pytest.approx(sigma_px**2, rel=1e-2)
    assert (spread.sum(axis=0) * cols**2).sum() == pytest.approx(sigma_px**2, rel=1e-2)


@pytest.mark.parametrize("sigma_px", [0.4, 0.7, 1.5])
def test_the_blur_keeps_a_pattern_non_negative_with_its_total(sigma_px):
    coherent = _coherent(seed=4)
    blurred = _blurred(coherent, sigma_px)
    assert blurred.min() >= 0 and blurred.sum() == pytest.approx(coherent.sum(), rel=1e-4)


def test_deconvolving_by_the_true_width_undoes_the_blur_and_a_wrong_width_does_not():
    """Noise-free: the object's autocorrelation reaches lags of a quarter of the frame, where a 1 px blur still
    keeps 29 % of it, far above the Wiener constant, so the filter inverts it almost exactly."""
    coherent = _coherent()
    blurred = _blurred(coherent, 1.0)
    valid = np.ones(coherent.shape, bool)
    exact = wiener_deconvolved(blurred, valid, blurred, 1.0)
    assert _relative_error(blurred, coherent) > 0.2
    assert _relative_error(exact, coherent) < 0.02
    for wrong in (0.7, 1.3):
        assert _relative_error(wiener_deconvolved(blurred, valid, blurred, wrong), coherent) > 0.1


def test_deconvolved_counts_are_non_negative_and_keep_their_total():
    rng = np.random.default_rng(1)
    counts = rng.poisson(_blurred(_coherent(seed=1), 1.4)).astype(np.float32)
    valid = np.ones(counts.shape, bool)
    deconvolved = wiener_deconvolved(counts, valid, counts, 1.4)
    assert deconvolved.dtype == np.float32 and deconvolved.shape == counts.shape and deconvolved.min() >= 0
    assert deconvolved.sum() == pytest.approx(counts.sum(), rel=0.02)  # clipping the noise's dips adds a little


def test_unmeasured_pixels_take_the_fill_so_a_beamstop_does_not_ring_into_the_rest():
    """A masked centre filled with zeros rings through the whole pattern; filled with a model it does not."""
    coherent = _coherent(seed=2)
    blurred = _blurred(coherent, 1.0)
    rows, cols = np.indices(coherent.shape)
    valid = (rows - 32) ** 2 + (cols - 32) ** 2 > 9
    good = wiener_deconvolved(np.where(valid, blurred, 0), valid, blurred, 1.0)
    zeros = wiener_deconvolved(np.where(valid, blurred, 0), valid, np.zeros_like(blurred), 1.0)
    assert _relative_error(good, coherent, valid) < 0.02 < 0.1 < _relative_error(zeros, coherent, valid)


def test_the_widths_tried_cover_the_corpus_blur_and_the_refinement_falls_between_neighbours():
    assert COARSE_WIDTHS_PX[0] <= 0.5 and COARSE_WIDTHS_PX[-1] >= 1.9
    steps = np.diff(np.log(COARSE_WIDTHS_PX))
    assert np.all(steps > 0)
    for best in COARSE_WIDTHS_PX:
        low, high = refined_widths(best)
        assert low < best < high and high / best == pytest.approx(REFINE_FACTOR, rel=1e-2)
        assert np.log(high / best) < steps.max()  # between the best and its neighbour
    with pytest.raises(ValueError):
        wiener_deconvolved(np.ones((8, 8)), np.ones((8, 8), bool), np.ones((8, 8)), 0.0)
    assert 0 < WIENER_CONSTANT < 0.01


@pytest.mark.parametrize("text, parsed", [("kernel", ("kernel",)), ("deconvolved", ("deconvolved",)),
                                          (" Deconvolved , kernel", ("kernel", "deconvolved"))])
def test_the_challengers_parse(text, parsed):
    assert parse_challengers(text) == parsed
    assert RunConfig(psf_challengers=text).validate().psf_challengers == text


@pytest.mark.parametrize("text", ["", "kernal", "kernel,wiener"])
def test_unknown_challengers_are_refused(text):
    with pytest.raises(InvalidInputError, match="psf_challengers"):
        RunConfig(psf_challengers=text).validate()


@pytest.mark.parametrize("text", ["refined", "kernel,refined"])
def test_refining_a_deconvolved_challenger_needs_the_deconvolved_ones(text):
    with pytest.raises(InvalidInputError, match="name deconvolved too"):
        RunConfig(psf_challengers=text).validate()
    assert parse_challengers(text + ",deconvolved")[-1] == "refined"  # it runs after the deconvolved ones


def test_an_unknown_challenger_in_a_config_file_is_one_line_and_exit_2(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('psf_challengers = "wiener"\n')
    pattern = tmp_path / "p.npy"
    np.save(pattern, np.ones((16, 16), np.float32))
    result = runner.invoke(app, ["reconstruct", str(pattern), "--out", str(tmp_path / "out"), "--config", str(config)])
    assert result.exit_code == 2 and "psf_challengers" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def _blurred_pattern(tmp_path, sigma_px: float) -> str:
    """A 48x48 pattern of a strained rectangle, 1e5 photons at the peak, blurred by a Gaussian of sigma_px."""
    obj = np.zeros((48, 48), np.complex128)
    obj[17:31, 18:30] = np.exp(0.6j * np.linspace(-1, 1, 12))[None, :]
    coherent = np.abs(np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(obj)))) ** 2
    rate = _blurred(coherent * 1e5 / coherent.max(), sigma_px)
    path = tmp_path / "blurred.npy"
    np.save(path, np.random.default_rng(3).poisson(rate).astype(np.float32))
    return str(path)


def _reconstruct(tmp_path, pattern: str, challengers: str):
    config = tmp_path / "challengers.toml"
    config.write_text(f'psf_challengers = "{challengers}"\nframe_margin = 1.0\nbackground = "none"\n')  # coherence alone
    return runner.invoke(app, ["reconstruct", pattern, "--out", str(tmp_path / "out"), "--json", "--device", "cpu",
                               "--method", "hio", "--iterations", "600", "--runs", "3", "--seed", "0",
                               "--config", str(config)])


def test_deconvolved_challengers_try_every_width_and_keep_the_lowest_free_deviance(tmp_path):
    """A 1.5 px blur at 1e5 photons: the coherent model cannot fit the held-out pixels; a coherent object of
    the counts deconvolved near the true width, blurred back, fits them far better."""
    result = _reconstruct(tmp_path, _blurred_pattern(tmp_path, 1.5), "deconvolved")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    record = summary["method_choice"]["coherence"]
    scores = record["free_llk_poisson"]
    deconvolved = {float(label.split()[1]): value for label, value in scores.items() if label.startswith("deconv")}
    assert record["compared"] and "coherent" in scores and "fitted kernel" not in scores
    assert set(COARSE_WIDTHS_PX) <= set(deconvolved) and len(deconvolved) == len(COARSE_WIDTHS_PX) + 2
    coarse_best = min(COARSE_WIDTHS_PX, key=deconvolved.get)
    assert set(refined_widths(coarse_best)) <= set(deconvolved)
    best = min((label for label in scores if label.startswith("deconv")), key=scores.get)
    assert 1.0 < float(best.split()[1]) < 2.2 and scores[best] < scores["coherent"]  # near the true 1.5 px, better
    assert record["chosen"] in ("coherent", best)  # kept where better by the margin's two standard errors
    assert summary["metrics"]["free_llk_poisson"] == pytest.approx(scores[record["chosen"]])


def test_the_best_deconvolved_challenger_refined_against_the_counts_fits_them_better(tmp_path):
    """ER under the blur of the best width, from that challenger's object on its support, fits the measured
    counts where the deconvolved run fitted the deconvolved ones: its free deviance is lower."""
    result = _reconstruct(tmp_path, _blurred_pattern(tmp_path, 1.5), "deconvolved,refined")
    assert result.exit_code == 0, result.output
    scores = json.loads(result.output)["method_choice"]["coherence"]["free_llk_poisson"]
    deconvolved = {label: value for label, value in scores.items() if label.startswith("deconvolved")}
    refined = [label for label in scores if label.startswith("refined")]
    best = min(deconvolved, key=deconvolved.get)
    assert refined == [f"refined {best.split()[1]} px"]
    assert scores[refined[0]] < deconvolved[best]


def test_a_signal_during_the_deconvolved_challengers_keeps_the_best_finished_candidate(tmp_path, monkeypatch):
    from cdi_dip import reconstruction

    run_method = reconstruction._run_method
    started = []

    def interrupted_at_the_third(measurement, cfg, *args, **kwargs):
        if cfg.psf == "none":  # a deconvolved challenger
            started.append(cfg)
            if len(started) == 3:
                raise KeyboardInterrupt
        return run_method(measurement, cfg, *args, **kwargs)

    monkeypatch.setattr(reconstruction, "_run_method", interrupted_at_the_third)
    result = _reconstruct(tmp_path, _blurred_pattern(tmp_path, 1.5), "deconvolved")
    summary = json.loads(result.output[result.output.index("{"):])
    record = summary["method_choice"]["coherence"]
    assert summary["interrupted"] and record["interrupted"]
    assert set(record["free_llk_poisson"]) == {"coherent", *(f"deconvolved {w:g} px" for w in COARSE_WIDTHS_PX[:2])}
    finished = record["free_llk_poisson"]
    assert record["chosen"] in ("coherent", min(finished, key=finished.get))  # the best, or none by the margin


def test_the_result_line_names_the_deconvolved_challengers_once_with_their_best_width():
    from cdi_dip.config.psf import deconvolved_label
    from cdi_dip.report.lines import method_choice_line

    scores = {"coherent": 109.7, "fitted kernel": 40.2, deconvolved_label(0.4): 44.9, deconvolved_label(0.88): 13.6,
              deconvolved_label(1.14): 91.6}
    line = method_choice_line({"compared": True, "chosen": deconvolved_label(0.88), "free_llk_poisson": scores})
    assert line.startswith("deconvolved 0.88 px kept") and "coherent 109.7" in line and "fitted kernel 40.2" in line
    assert "deconvolved at 3 widths, best 13.6 at 0.88 px" in line and "44.9" not in line
    assert "significantly" not in line
    kept = method_choice_line({"compared": True, "chosen": "coherent", "free_llk_poisson": scores, "margin_z": 1.4})
    assert kept.startswith("coherent kept") and kept.endswith("(the lowest not significantly lower: z 1.40)")


def test_a_signal_between_two_challengers_keeps_the_best_finished_candidate(tmp_path, monkeypatch):
    """Ctrl-C while the counts are being deconvolved for the second width, outside any reconstruction."""
    from cdi_dip import reconstruction

    deconvolve = reconstruction.wiener_deconvolved
    calls = []

    def interrupted_at_the_second(*args, **kwargs):
        calls.append(args)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return deconvolve(*args, **kwargs)

    monkeypatch.setattr(reconstruction, "wiener_deconvolved", interrupted_at_the_second)
    result = _reconstruct(tmp_path, _blurred_pattern(tmp_path, 1.5), "deconvolved")
    summary = json.loads(result.output[result.output.index("{"):])
    record = summary["method_choice"]["coherence"]
    assert summary["interrupted"] and record["interrupted"]
    assert set(record["free_llk_poisson"]) == {"coherent", f"deconvolved {COARSE_WIDTHS_PX[0]:g} px"}
