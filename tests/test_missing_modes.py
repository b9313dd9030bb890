"""Support modes hidden by a masked centre (issue 15): the spectrum against its definition, its
invariances, and the summary's record and warning."""

from __future__ import annotations

import re

import numpy as np
import pytest

from cdi_dip.config import Method, ProjectionConfig, RunConfig
from cdi_dip.io.summary import make_summary
from cdi_dip.io.writers import write_result_cxi
from cdi_dip.missing_modes import (HIDDEN_FRACTION, hidden_fractions, masked_centre_frequencies, missing_modes,
                                   missing_modes_warning)
from cdi_dip.pipeline import reconstruct
from cdi_dip.prepare.stages import prepare
from cdi_dip.report.html import regenerate_report
from cdi_dip.simulate import simulate_scan
from cdi_dip.types import Measurement


def _masked_centre(shape, radius):
    offsets = np.stack(np.meshgrid(*[np.arange(n) - n // 2 for n in shape], indexing="ij"), axis=-1)
    return np.sqrt(np.sum(offsets ** 2, axis=-1)) > radius  # valid: True outside the disc


def _disc(shape, radius, centre=None):
    centre = centre or tuple(n // 2 for n in shape)
    grids = np.meshgrid(*[np.arange(n) - c for n, c in zip(shape, centre)], indexing="ij")
    return np.sqrt(sum(g ** 2 for g in grids)) <= radius


def _explicit_fractions(support, frequencies):
    """The squared singular values of A (masked frequencies x support voxels, unitary DFT): the definition."""
    points = np.argwhere(support)
    phase = sum(np.outer(frequencies[:, a], points[:, a]) / n for a, n in enumerate(support.shape))
    matrix = np.exp(-2j * np.pi * phase) / np.sqrt(support.size)
    return np.sort(np.linalg.svd(matrix, compute_uv=False) ** 2)[::-1]


@pytest.mark.parametrize("support_radius", [2.5, 6.0])  # fewer support voxels than masked pixels, and more
def test_fractions_are_the_squared_singular_values_of_the_masked_fourier_map(support_radius):
    shape = (24, 20)
    valid = _masked_centre(shape, 3.2)
    support = _disc(shape, support_radius, centre=(10, 9))
    frequencies, radius = masked_centre_frequencies(valid)
    assert radius > 3.2 and len(frequencies) == np.count_nonzero(~valid)
    fractions = hidden_fractions(support, frequencies)
    expected = _explicit_fractions(support, frequencies)
    np.testing.assert_allclose(fractions, expected[:len(fractions)], atol=1e-9)
    # the trace of G = A A^H: every entry of A has |a|^2 = 1/N
    assert fractions.sum() == pytest.approx(len(frequencies) * support.sum() / support.size, rel=1e-9)


def test_a_shift_or_twin_of_the_support_hides_the_same_modes():
    shape = (32, 32)
    valid = _masked_centre(shape, 4.0)
    support = _disc(shape, 5.0) | _disc(shape, 3.0, centre=(16, 22))
    frequencies, _ = masked_centre_frequencies(valid)
    reference = hidden_fractions(support, frequencies)
    for moved in (np.roll(support, (3, -5), axis=(0, 1)), np.flip(np.roll(support, 1, axis=(0, 1)))):
        np.testing.assert_allclose(hidden_fractions(moved, frequencies), reference, atol=1e-9)


def test_a_measured_centre_or_a_single_masked_pixel_hides_nothing():
    shape = (32, 32)
    support = _disc(shape, 6.0)
    assert missing_modes(np.ones(shape, dtype=bool), support) is None
    valid = np.ones(shape, dtype=bool)
    valid[16, 16] = False  # a hot pixel at the peak, not a beamstop
    assert missing_modes(valid, support) is None


def test_a_large_masked_centre_hides_modes_of_a_small_support_and_a_small_one_does_not():
    shape = (64, 64)
    support = _disc(shape, 10.0)
    large = missing_modes(_masked_centre(shape, 8.0), support)
    assert large is not None and large.hidden >= 1 and large.largest_fraction > HIDDEN_FRACTION
    small = missing_modes(_masked_centre(shape, 1.6), support)
    # 9 masked pixels x 317 voxels / 4096: the fractions sum to 0.70, so none can exceed 0.9
    assert small is not None and small.masked_pixels == 9 and small.hidden == 0


def test_the_warning_names_the_hidden_modes_and_is_left_out_without_them():
    shape = (64, 64)
    modes = missing_modes(_masked_centre(shape, 8.0), _disc(shape, 10.0))
    text = missing_modes_warning(modes)
    assert text and f"hides {modes.hidden} support mode" in text and "mask fewer pixels" in text
    assert missing_modes_warning(missing_modes(_masked_centre(shape, 1.6), _disc(shape, 10.0))) is None
    assert missing_modes_warning(None) is None


def test_mask_and_support_of_different_frames_are_refused():
    with pytest.raises(ValueError, match="share the frame"):
        missing_modes(np.ones((8, 8), dtype=bool), np.ones((8, 9), dtype=bool))


def test_a_crystal_behind_a_large_masked_beamstop_gets_the_record_and_the_warning(tmp_path):
    scan = simulate_scan("crystal", (48, 48), rng=np.random.default_rng(3), peak_counts=1e6)
    measurement = prepare(scan.to_measurement("stopped"), RunConfig().prep)
    valid = measurement.valid & _masked_centre(measurement.valid.shape, 6.0)
    measurement = Measurement(intensity=measurement.intensity, valid=valid, meta=measurement.meta, name="stopped")
    cfg = RunConfig(device="cpu", method=Method.HIO, runs=1,
                    projection=ProjectionConfig(plan="20*HIO+10*ER", positivity=False)).validate()
    result = reconstruct(measurement, cfg)
    summary = make_summary(result, tmp_path, [])
    record = summary["missing_modes"]
    assert record["masked_pixels"] == np.count_nonzero(~_masked_centre(valid.shape, 6.0))
    assert record["hidden"] >= 1 and record["largest_fraction"] > HIDDEN_FRACTION
    assert re.search(r"hides \d+ support mode", summary["missing_modes_warning"])
    # the record is derived from the stored mask and support: a rebuilt report says it again
    write_result_cxi(tmp_path / "stopped.cxi", result, command_line="test", version="0")
    page = regenerate_report(tmp_path / "stopped.cxi", tmp_path / "again")[1].read_text()
    assert "MISSING DATA" in page and f"hides {record['hidden']} support mode" in page
