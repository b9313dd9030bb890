import numpy as np
import pytest

from cdi_dip.prepare.corrections import (
    apply_roi,
    bin_frames,
    correct_measurement,
    flat_field,
    parse_roi,
    subtract_dark,
    threshold_photons,
)
from cdi_dip.errors import InvalidInputError
from cdi_dip.types import Measurement


def test_parse_roi_reads_four_or_six_numbers_and_refuses_the_rest():
    assert parse_roi("0,256, 10,20") == [(0, 256), (10, 20)]
    assert parse_roi("0,5,0,256,0,256") == [(0, 5), (0, 256), (0, 256)]
    for text in ("0,256", "a,b,c,d", "5,2,0,3"):
        with pytest.raises(InvalidInputError, match="roi"):
            parse_roi(text)


def test_apply_roi_cuts_the_detector_region_and_refuses_one_beyond_it():
    detector = np.arange(64).reshape(8, 8)
    assert np.array_equal(apply_roi(detector, [(2, 4), (1, 3)]), detector[2:4, 1:3])
    assert np.array_equal(apply_roi(detector, [(0, 9), (2, 4), (1, 3)]), detector[2:4, 1:3])  # frame range ignored
    with pytest.raises(InvalidInputError, match="does not fit"):
        apply_roi(detector, [(0, 9), (0, 8)])


def test_dark_is_subtracted_clipped_at_zero_and_hot_dark_pixels_excluded():
    frames = np.full((3, 4, 4), 5.0)
    dark = np.zeros((4, 4))
    dark[0, 0] = 7.0  # counts without beam: hot
    dark[1, 1] = 0.5
    corrected, excluded = subtract_dark(frames, dark, hot_counts=1.0)
    assert excluded[:, 0, 0].all() and excluded.sum() == 3
    assert (corrected[:, 0, 0] == 0).all()
    assert np.allclose(corrected[:, 1, 1], 4.5)
    assert (corrected >= 0).all()


def test_full_detector_dark_needs_the_roi_of_the_frames():
    frames = np.ones((2, 4, 4))
    with pytest.raises(InvalidInputError, match="--roi"):
        subtract_dark(frames, np.zeros((8, 8)))
    corrected, _ = subtract_dark(frames, np.zeros((8, 8)), roi=[(4, 8), (0, 4)])
    assert corrected.shape == frames.shape


def test_flat_field_keeps_average_pixels_and_applies_the_beamline_rule():
    rng = np.random.default_rng(0)
    flat = rng.normal(1000.0, 50.0, size=(32, 32))
    flat[3, 4] = 700.0  # far below mean - 3 std
    frames = np.full((32, 32), 10.0)
    corrected, excluded = flat_field(frames, flat)
    mean, std = flat.mean(), flat.std()
    assert np.array_equal(excluded, flat < mean - 3 * std)
    assert excluded[3, 4]
    assert np.allclose(corrected[~excluded], 10.0 * mean / flat[~excluded])
    _, excluded_relative = flat_field(frames, flat, min_relative=0.5)
    assert not excluded_relative.any()


def test_flat_mean_is_taken_over_the_whole_detector_before_the_roi():
    flat = np.ones((8, 8))
    flat[:4] = 3.0  # the frames see the less sensitive half
    corrected, _ = flat_field(np.ones((4, 8)), flat, roi=[(4, 8), (0, 8)], min_relative=0.1)
    assert np.allclose(corrected, 2.0)  # mean 2 / flat 1


def test_binning_sums_counts_and_drops_blocks_with_an_excluded_pixel():
    frames = np.arange(16, dtype=float).reshape(4, 4)
    valid = np.ones((4, 4), dtype=bool)
    valid[0, 0] = False
    binned, binned_valid = bin_frames(frames, valid, 2)
    assert binned.shape == (2, 2)
    assert not binned_valid[0, 0] and binned[0, 0] == 0
    assert binned[1, 1] == frames[2:, 2:].sum()
    stack, _ = bin_frames(np.ones((3, 4, 6)), np.ones((3, 4, 6), bool), [2, 3])
    assert stack.shape == (3, 2, 2) and (stack == 6).all()


def test_threshold_zeroes_low_counts_only():
    assert np.array_equal(threshold_photons(np.array([0.5, 1.0, 3.0]), 1.0), [0.0, 1.0, 3.0])
    with pytest.raises(InvalidInputError):
        threshold_photons(np.ones(3), -1)


def test_correct_measurement_records_each_pixel_once_under_its_reason():
    frames = np.full((2, 4, 4), 4.0, dtype=np.float32)
    valid = np.ones(frames.shape, dtype=bool)
    valid[:, 3, 3] = False
    dark = np.zeros((4, 4))
    dark[0, 0] = dark[3, 3] = 5.0
    flat = np.full((4, 4), 100.0)
    flat[0, 0] = flat[1, 2] = 1.0
    measurement = Measurement(intensity=frames, valid=valid, masks={"file_mask": ~valid},
                              excluded={"file_mask": 2})
    corrected = correct_measurement(measurement, dark=dark, flat=flat, min_flat_relative=0.5)
    assert corrected.excluded == {"file_mask": 2, "dark": 2, "flat": 2}
    assert corrected.masks["dark"][:, 0, 0].all() and corrected.masks["flat"][:, 1, 2].all()
    assert not (corrected.intensity[~corrected.valid]).any()
    assert measurement.valid[:, 0, 0].all()  # the input is untouched
