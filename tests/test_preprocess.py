import numpy as np
import pytest

from cdi_dip.config import CentreMethod, PrepConfig
from cdi_dip.errors import InvalidInputError
from cdi_dip.preprocess import (
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
