"""The automatic frame: cut to the signal, within a voxel budget, recorded with its reason."""

import math
import re

import numpy as np
import pytest

from cdi_dip.config import PrepConfig
from cdi_dip.prepare.frame import fit_to_budget, oversampled_binning, signal_half_widths
from cdi_dip.prepare.stages import bin_oversampled, is_fft_friendly, prepare
from cdi_dip.types import Measurement


def _stack(shape=(48, 64, 64), width_px=(4.0, 6.0, 6.0), peak=(23, 30, 34), seed=0):
    """Poisson counts of a Gaussian peak (1e5 at its top) over a 0.05-photon background."""
    grids = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    expected = 1e5 * np.exp(-0.5 * sum(((g - p) / w) ** 2 for g, p, w in zip(grids, peak, width_px))) + 0.05
    return np.random.default_rng(seed).poisson(expected).astype(np.float32)


def _measurement(counts):
    return Measurement(intensity=counts, valid=np.ones(counts.shape, bool), source="test", name="test",
                       roi=[(0, n) for n in counts.shape])


def test_signal_extent_follows_the_peak_and_ignores_a_far_hot_pixel():
    counts = _stack(shape=(48, 64, 96))
    counts[23, 30, 90] = 1e6  # a hot pixel 56 px from the peak
    half = signal_half_widths(counts, np.ones(counts.shape, bool), (23, 30, 34))
    # The Gaussian falls below 1 count per pixel at about 4.8 widths from its top.
    for h, w in zip(half, (4.0, 6.0, 6.0)):
        assert 3 * w <= h <= 6 * w + 8
    assert half[2] < 50


def test_a_frame_over_the_budget_is_cut_to_the_signal_and_fits():
    counts = _stack()
    framed = prepare(_measurement(counts), PrepConfig(), voxel_budget=20_000)
    assert math.prod(framed.shape) <= 20_000
    assert all(is_fft_friendly(n) for n in framed.shape)
    assert np.unravel_index(np.argmax(framed.intensity), framed.shape) == tuple(n // 2 for n in framed.shape)
    note = framed.notes["auto_frame"]
    assert note["frame_px"] == list(framed.shape) and "budget" in note["why"]
    assert [stop - start for start, stop in framed.roi] == list(framed.shape)


def test_a_frame_within_the_budget_or_with_max_size_is_left_alone():
    counts = _stack()
    full = prepare(_measurement(counts), PrepConfig())
    assert prepare(_measurement(counts), PrepConfig(), voxel_budget=10**9).shape == full.shape
    capped = prepare(_measurement(counts), PrepConfig(max_size=32), voxel_budget=1000)
    assert capped.shape == (32, 32, 32) and "auto_frame" not in capped.notes


@pytest.mark.parametrize("sizes, budget", [((200, 256, 240), 2**20), ((512, 512), 2**16), ((64, 48, 40), 10**6)])
def test_fit_to_budget_shrinks_evenly_to_fft_friendly_sizes(sizes, budget):
    fitted = fit_to_budget(sizes, budget)
    assert math.prod(fitted) <= budget
    assert all(is_fft_friendly(n) and n <= s for n, s in zip(fitted, sizes))
    if math.prod(sizes) > budget:  # nothing is cut by more than the even factor needs (and a rounding step)
        factor = (budget / math.prod(sizes)) ** (1 / len(sizes))
        assert all(n >= 0.8 * factor * s for n, s in zip(fitted, sizes))
    else:
        assert fitted == tuple(sizes)


def test_the_summary_table_says_which_frame_was_chosen_and_why(capsys):
    from cdi_dip.cli.render import render_summary

    why = "the full 200x256x256 frame exceeds the 1048576-voxel budget of this device"
    render_summary({"method": "hio", "shape": [84, 112, 100], "metrics": {},
                    "preparation": {"auto_frame": {"frame_px": [84, 112, 100], "why": why},
                                    "auto_bin": {"factors": [3, 1, 1], "why": "binned by 3x1x1 before any cut"}},
                    "fit_warning": "the fit sits far above the noise level"})
    text = " ".join(re.sub(r"[│┃┌┐└┘├┤┬┴┼─━╭╮╰╯]", " ", capsys.readouterr().out).split())
    assert "frame" in text and "1048576-voxel budget" in text
    assert "binning binned by 3x1x1 before any cut" in text
    assert "warning the fit sits far above the noise level" in text


@pytest.mark.parametrize("sizes, oversampling, budget, expected", [
    ((200, 256, 216), (8.9, 4.84, 3.79), 2**20, (3, 1, 1)),  # the 34-ID-C scan's: only the rocking axis has room
    ((64, 64), (8.0, 8.0), 4096, (1, 1)),  # it fits: nothing binned
    ((64, 64), (2.4, 3.0), 1024, (1, 1)),  # no axis can keep 2.5
    ((64, 64), (8.0, 6.0), 1024, (2, 2)),  # the most oversampled first, then the other
])
def test_oversampled_binning_bins_the_axes_with_room_until_the_frame_fits(sizes, oversampling, budget, expected):
    factors = oversampled_binning(sizes, oversampling, budget, 2.5)
    assert factors == expected
    assert all(o / f >= 2.5 for o, f in zip(oversampling, factors) if f > 1)


def _thin_object_pattern(seed=0):
    """Counts (1e6 at the peak) of a 4x16 px object on a 64x64 frame: oversampled about 16 and 4 times."""
    obj = np.zeros((64, 64), complex)
    obj[30:34, 24:40] = np.exp(0.2j * np.arange(16))
    intensity = np.abs(np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(obj)))) ** 2
    return np.random.default_rng(seed).poisson(1e6 * intensity / intensity.max()).astype(np.float32)


def test_an_oversampled_axis_is_binned_before_the_frame_is_cut():
    measurement = _measurement(_thin_object_pattern())
    cfg = PrepConfig(bin_min_oversampling=2.5)
    binned = bin_oversampled(measurement, cfg, voxel_budget=1024)
    note = binned.notes["auto_bin"]
    assert binned.binning[0] >= 2 and binned.binning[1] == 1 and note["factors"] == list(binned.binning)
    assert note["oversampling"][0] > 2.5 * binned.binning[0] - 1e-9 and "budget" in note["why"]
    framed = prepare(binned, cfg, voxel_budget=1024)
    cut = prepare(measurement, PrepConfig(bin_min_oversampling=None), voxel_budget=1024)
    assert math.prod(framed.shape) <= 1024
    # binned, the frame reaches further out in the pattern (finer voxels) than the frame cut alone
    reach = [stop - start for start, stop in framed.roi]
    assert reach[0] > cut.roi[0][1] - cut.roi[0][0] and reach[1] >= cut.roi[1][1] - cut.roi[1][0]
    # without the setting, with --max-size, or within the budget nothing is binned
    assert bin_oversampled(measurement, PrepConfig(), voxel_budget=1024) is measurement  # off by default
    assert bin_oversampled(measurement, PrepConfig(bin_min_oversampling=2.5, max_size=32), voxel_budget=1024) \
        is measurement
    assert bin_oversampled(measurement, cfg, voxel_budget=4096) is measurement


def test_inspect_bins_an_oversampled_pattern_over_the_budget_when_asked_unless_bin_is_given(tmp_path):
    import json

    from typer.testing import CliRunner

    from cdi_dip.cli.app import app

    path, config = tmp_path / "thin.npy", tmp_path / "bin.toml"
    np.save(path, _thin_object_pattern())
    config.write_text("[prep]\nbin_min_oversampling = 2.5\n")
    runs = {}
    for label, extra in (("auto", []), ("bin 1", ["--bin", "1"])):
        result = CliRunner().invoke(app, ["inspect", str(path), "--json", "--max-voxels", "1024", "--config",
                                          str(config), *extra])
        assert result.exit_code == 0, result.output
        runs[label] = json.loads(result.stdout)
    assert runs["auto"]["preparation"]["auto_bin"]["factors"][1] == 1
    assert "auto_bin" not in runs["bin 1"]["preparation"]
    # the binned frame reaches further out along the binned axis
    reach = [[stop - start for start, stop in runs[label]["suggested_roi"]] for label in runs]
    assert reach[0][0] > reach[1][0]
