import numpy as np
import pytest

from cdi_dip.config import CentreMethod, PrepConfig
from cdi_dip.errors import InvalidInputError
from cdi_dip.prepare.stages import (
    centred_window,
    extract_window,
    fft_friendly_above,
    fft_friendly_below,
    find_centre,
    friedel_centre,
    is_fft_friendly,
    prepare,
)
from cdi_dip.types import Measurement


def _speckle_pattern(shape, centre, rng):
    """A centro-symmetric pattern about ``centre`` (|FT| of a real object)."""
    obj = np.zeros(shape)
    box = tuple(slice(n // 2 - n // 8, n // 2 + n // 8) for n in shape)
    obj[box] = rng.uniform(0.5, 1.0, size=obj[box].shape)
    intensity = np.abs(np.fft.fftshift(np.fft.fftn(obj))) ** 2
    shift = [c - n // 2 for c, n in zip(centre, shape)]
    return np.roll(intensity, shift, axis=tuple(range(len(shape)))).astype(np.float32)


def test_fft_friendly_sizes():
    assert is_fft_friendly(128) and is_fft_friendly(210) and is_fft_friendly(250)
    assert not is_fft_friendly(254) and not is_fft_friendly(127) and not is_fft_friendly(22)
    assert fft_friendly_below(254) == 252
    assert fft_friendly_above(129) == 140


def test_friedel_centre_found_behind_a_beamstop(rng):
    shape, centre = (64, 64), (30, 35)
    intensity = _speckle_pattern(shape, centre, rng)
    valid = np.ones(shape, dtype=bool)
    yy, xx = np.indices(shape)
    valid[(yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= 9] = False
    intensity[~valid] = 0
    assert friedel_centre(intensity, valid) == centre
    # auto notices the beamstop touching the brightest valid pixel
    assert find_centre(intensity, valid, CentreMethod.AUTO) == centre


def _two_domain_pattern(shape, centre):
    """The pattern of a crystal of two equal domains of opposite phase (+1 and -1), centred at ``centre``.

    Its far field vanishes at the zero frequency (the domains cancel there), so the brightest pixel is a
    lobe beside it; the object is real, so the pattern is centro-symmetric about ``centre``.
    """
    obj = np.zeros(shape)
    rows = slice(shape[0] // 2 - 6, shape[0] // 2 + 6)
    obj[rows, shape[1] // 2 - 8:shape[1] // 2] = 1.0
    obj[rows, shape[1] // 2:shape[1] // 2 + 8] = -1.0
    intensity = np.abs(np.fft.fftshift(np.fft.fftn(obj))) ** 2
    shift = [c - n // 2 for c, n in zip(centre, shape)]
    return np.roll(intensity, shift, axis=(0, 1)).astype(np.float32)


def test_auto_centre_in_2d_is_the_centre_of_symmetry_not_the_brightest_lobe():
    shape, centre = (64, 64), (31, 34)
    intensity = _two_domain_pattern(shape, centre)
    valid = np.ones(shape, dtype=bool)
    assert intensity[centre] < 1e-6 * intensity.max()
    assert find_centre(intensity, valid, CentreMethod.MAX) != centre
    assert find_centre(intensity, valid, CentreMethod.AUTO) == centre


def test_auto_centre_in_3d_is_the_brightest_pixel_without_a_beamstop(rng):
    intensity = _speckle_pattern((16, 20, 24), (7, 11, 12), rng)
    intensity[7, 11, 13] = 2 * intensity.max()  # a bright pixel beside the centre: 3D auto takes it
    valid = np.ones(intensity.shape, dtype=bool)
    assert find_centre(intensity, valid, CentreMethod.AUTO) == (7, 11, 13)


def test_max_centre_in_3d(rng):
    intensity = _speckle_pattern((16, 20, 24), (7, 11, 12), rng)
    valid = np.ones(intensity.shape, dtype=bool)
    assert find_centre(intensity, valid, CentreMethod.MAX) == (7, 11, 12)


def test_window_keeps_the_detector_size_or_pads():
    # Peak near the middle: the frame keeps the axis length (and so the object
    # pixel size), shifted to centre the peak.
    assert centred_window(127, 256, None) == (127 - 128, 127 + 128)
    assert centred_window(61, 128, None) == (61 - 64, 61 + 64)
    start, stop = centred_window(127, 256, 128)
    assert (start, stop) == (63, 191)
    # peak near an edge: pad rather than lose most of the axis
    start, stop = centred_window(10, 100, None)
    assert stop - start >= 180 and start + (stop - start) // 2 == 10


def test_extract_window_fills_outside():
    array = np.arange(10.0)
    out = extract_window(array, [(-2, 4)], -1.0)
    assert out.tolist() == [-1, -1, 0, 1, 2, 3]


def test_prepare_centres_the_peak_and_records_the_roi(rng):
    shape, centre = (60, 70), (26, 37)
    intensity = _speckle_pattern(shape, centre, rng)
    meas = Measurement(intensity=intensity, valid=np.ones(shape, dtype=bool), source="x", name="x")
    prepared = prepare(meas, PrepConfig(max_size=32))
    assert prepared.shape == (32, 32)
    assert np.unravel_index(np.argmax(prepared.intensity), prepared.shape) == (16, 16)
    (r0, r1), (c0, c1) = prepared.roi
    assert np.array_equal(prepared.intensity, intensity[r0:r1, c0:c1])


def test_prepare_rejects_empty_data():
    meas = Measurement(intensity=np.zeros((16, 16), np.float32), valid=np.ones((16, 16), bool), source="empty")
    with pytest.raises(InvalidInputError, match="empty"):
        prepare(meas, PrepConfig())


# -- detector conditioning -------------------------------------------------------------
from cdi_dip.config import AlienHandling, DetectorConfig  # noqa: E402
from cdi_dip.prepare.stages import bin_measurement, condition_detector, detector_roi  # noqa: E402
from cdi_dip.simulate import plant_defects, simulate_scan  # noqa: E402


def _stack(rng, shape=(12, 32, 32)):
    counts = simulate_scan("crystal", shape, rng=rng, peak_counts=1e4).counts
    return Measurement(intensity=counts, valid=np.ones(shape, bool), source="stack", roi=[(0, n) for n in shape])


def test_the_roi_places_the_frames_on_the_detector_and_cuts_dark_and_flat(rng):
    measurement = _stack(rng)
    dark = np.zeros((64, 64))
    dark[10 + 3, 20 + 4] = 9.0  # hot without beam, inside the frames' region
    flat = np.ones((64, 64))
    cfg = DetectorConfig(roi=[10, 42, 20, 52], flat_min_relative=0.5)
    conditioned = condition_detector(measurement, cfg, dark=dark, flat=flat)
    assert conditioned.roi == [(0, 12), (10, 42), (20, 52)]
    assert conditioned.masks["dark"][:, 3, 4].all() and conditioned.excluded["dark"] == 12
    framed = prepare(conditioned, PrepConfig(max_size=16))
    (z0, z1), (y0, y1), (x0, x1) = framed.roi
    assert 10 <= y0 and y1 <= 42 and 20 <= x0 and x1 <= 52  # detector pixels, not array pixels
    with pytest.raises(InvalidInputError, match="roi"):
        condition_detector(measurement, DetectorConfig(roi=[0, 16, 0, 32]))


def test_saturation_is_found_on_raw_counts_before_the_flat_field(rng):
    counts = simulate_scan("crystal", (64, 64), rng=rng, peak_counts=1e5).counts
    planted = plant_defects(counts, rng=rng, saturated_regions=2)
    measurement = Measurement(intensity=planted.counts, valid=np.ones(counts.shape, bool), source="clipped")
    flat = rng.normal(1.0, 0.02, size=counts.shape)  # breaks the plateau if applied first
    conditioned = condition_detector(measurement, DetectorConfig(), flat=flat)
    assert np.array_equal(conditioned.masks["saturated"], planted.truth["saturated"])
    assert conditioned.notes["clipping_plateau_counts"] == planted.saturation_counts


def test_aliens_reported_but_kept_or_off():
    rng = np.random.default_rng(7)
    counts = simulate_scan("crystal", (48, 48, 48), rng=rng, peak_counts=1e5).counts
    counts[30:35, 8:13, 36:41] += rng.poisson(30.0, (5, 5, 5))
    measurement = Measurement(intensity=counts, valid=np.ones(counts.shape, bool), source="alien")
    masked = condition_detector(measurement, DetectorConfig())
    reported = condition_detector(measurement, DetectorConfig(aliens=AlienHandling.REPORT))
    off = condition_detector(measurement, DetectorConfig(aliens=AlienHandling.OFF))
    assert masked.excluded["alien"] >= 125
    assert "alien" not in reported.excluded and reported.notes["aliens_kept_px"] == masked.excluded["alien"]
    assert "alien" not in off.excluded and "aliens_kept_px" not in off.notes


def test_binning_keeps_reasons_counts_and_maps_back_to_detector_pixels(rng):
    measurement = _stack(rng, (8, 16, 16))
    hot = np.zeros(measurement.shape, bool)
    hot[:, 5, 6] = True
    measurement = measurement.exclude("hot", hot)
    binned = bin_measurement(measurement, [2, 2])
    assert binned.shape == (8, 8, 8) and binned.binning == (1, 2, 2)
    assert binned.masks["hot"][:, 2, 3].all() and binned.excluded["hot"] == 8
    lost = measurement.intensity[:, 4:6, 6:8].sum()  # the other pixels of the blocks holding the hot one
    assert binned.intensity.sum() == pytest.approx(measurement.intensity.sum() - lost)
    assert detector_roi(binned, [(0, 8), (2, 6), (1, 5)]) == [(0, 8), (4, 12), (2, 10)]


def test_prepare_carries_the_masks_by_reason_into_the_frame(rng):
    measurement = _stack(rng, (8, 24, 30))
    hot = np.zeros(measurement.shape, bool)
    hot[4, 12, 15] = True
    framed = prepare(measurement.exclude("hot", hot), PrepConfig())
    for reason, mask in framed.masks.items():
        assert mask.shape == framed.shape and not (mask & framed.valid).any()
        assert framed.excluded[reason] == mask.sum()
    assert framed.excluded["hot"] == 1
