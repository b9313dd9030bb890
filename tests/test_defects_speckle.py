"""Hot pixels in fully developed speckle: real single-pixel speckles stay, planted hot pixels go."""

import numpy as np
import pytest

from cdi_dip.prepare.defects import DefectOptions, detect_defects, find_hot_pixels
from cdi_dip.simulate import expected_intensity, extended_specimen, faceted_crystal, plant_defects


def _speckle(shape, seed, photons=1e8, offset=(2, -1)):
    """Counts of an extended specimen spanning 0.75 of every axis: single-pixel speckles."""
    rng = np.random.default_rng(seed)
    specimen = extended_specimen(shape, rng=rng, extent_fraction=0.75)
    expected = expected_intensity(specimen, offset_px=offset[: len(shape)])
    counts = rng.poisson(expected * (photons / expected.max())).astype(np.float32)
    return counts, tuple(n // 2 + k for n, k in zip(shape, offset))


@pytest.fixture(scope="module")
def speckle_2d():
    return _speckle((128, 128), 0)


def test_single_pixel_speckles_look_hot_to_the_neighbour_test_alone(speckle_2d):
    counts, _ = speckle_2d
    assert find_hot_pixels(counts, None, friedel=False).sum() > 0  # what flagged 226 real speckles of a 512^2 frame


def test_a_clean_speckle_pattern_has_no_hot_pixels(speckle_2d):
    counts, centre = speckle_2d
    assert not find_hot_pixels(counts, None).any()  # centre of symmetry found in the pattern
    assert not find_hot_pixels(counts, None, centre=centre).any()
    found = detect_defects(counts, options=DefectOptions(peak=centre))
    assert not any(mask.any() for mask in found.values())


def test_a_clean_speckle_pattern_behind_a_masked_beamstop_has_no_hot_pixels(speckle_2d):
    counts, centre = speckle_2d
    shadow = plant_defects(counts, rng=np.random.default_rng(0), peak=centre, beamstop_radius_px=5)
    valid = ~shadow.truth["beamstop"]
    assert not find_hot_pixels(shadow.counts, valid).any()


def test_planted_hot_pixels_in_speckle_are_found_exactly(speckle_2d):
    counts, centre = speckle_2d
    planted = plant_defects(counts, rng=np.random.default_rng(1), peak=centre, beamstop_radius_px=5, hot=8)
    valid = ~planted.truth["beamstop"]
    assert np.array_equal(find_hot_pixels(planted.counts, valid), planted.truth["hot"])


def test_a_hot_pixel_whose_mirror_is_masked_must_stand_further_above_its_neighbours(speckle_2d):
    counts, centre = speckle_2d
    row, col = centre[0] + 30, centre[1] + 20
    mirror_masked = np.ones(counts.shape, dtype=bool)
    mirror_masked[2 * centre[0] - row - 1:2 * centre[0] - row + 2, 2 * centre[1] - col - 1:2 * centre[1] - col + 2] = 0
    around = float(np.delete(counts[row - 1:row + 2, col - 1:col + 2].ravel(), 4).max())
    for factor, hot in ((7.0, False), (12.0, True)):
        spiked = counts.copy()
        spiked[row, col] = factor * around + 50
        assert find_hot_pixels(spiked, mirror_masked)[row, col] == hot, factor


def test_coarsely_sampled_3d_crystal_has_no_hot_voxels_and_planted_ones_are_found():
    rng = np.random.default_rng(4)
    crystal = faceted_crystal((32, 64, 64), rng=rng, size_fraction=0.4)
    expected = expected_intensity(crystal)[:, ::2, ::2]  # crystal 0.8 of the frame across the detector
    counts = rng.poisson(expected * (1e8 / expected.max())).astype(np.float32)
    assert not find_hot_pixels(counts, None).any()
    planted = plant_defects(counts, rng=rng, hot=5)
    assert np.array_equal(find_hot_pixels(planted.counts, None), planted.truth["hot"])


def test_asymmetric_fringes_of_a_strained_crystal_are_not_aliens_but_a_bright_stray_spot_is():
    from cdi_dip.prepare.defects import find_aliens
    from cdi_dip.simulate import simulate_scan

    counts = simulate_scan("crystal", (40, 40, 40), rng=np.random.default_rng(2), peak_counts=1e8,
                           dislocation=True).counts
    peak = tuple(int(i) for i in np.unravel_index(int(np.argmax(counts)), counts.shape))
    assert find_aliens(counts, None, peak=peak, shell_quantile=0).any()  # strain: fringes without a partner
    assert not find_aliens(counts, None, peak=peak).any()  # ... but no brighter than the pattern around them
    spot = np.zeros(counts.shape, dtype=bool)
    spot[4:8, 30:34, 3:7] = True
    level = np.quantile(counts, 0.999)
    found = find_aliens(counts + spot * level, None, peak=peak)
    assert found[spot].all()
    from cdi_dip._ndimage import label

    assert label(found)[1] == 1  # the spot, with the unpaired fringes it touches at the lowest level


def _strained_crystal_counts(shape=(64, 64), photons=1e6):
    """A strained 2D crystal's counts: a pattern that is not centrosymmetric."""
    rng = np.random.default_rng(4)
    crystal = faceted_crystal(shape, rng=rng)
    expected = expected_intensity(crystal)
    return rng.poisson(expected * (photons / expected.max())).astype(np.float64)


def _neighbours_max(counts, r):
    window = counts[r[0] - 1:r[0] + 2, r[1] - 1:r[1] + 2].copy()
    window[1, 1] = -np.inf
    return float(window.max())


def test_a_hot_pixel_whose_mirror_holds_a_bright_speckle_is_still_hot():
    """Ten times every neighbour, but only 3-4 times its (asymmetric) partner: hot all the same."""
    counts = _strained_crystal_counts()
    centre = np.array(counts.shape) // 2
    def partner(r):  # the brightest pixel of the mirror window, as the Friedel test takes it
        m = 2 * centre - r
        return float(counts[m[0] - 1:m[0] + 2, m[1] - 1:m[1] + 2].max())

    def mirror_much_brighter(r):
        brightest = _neighbours_max(counts, r)
        return 50 < brightest and 2.5 * brightest < partner(r) < 3.3 * brightest

    candidates = [(y, x) for y in range(4, 60) for x in range(4, 60) if mirror_much_brighter((y, x))]
    assert candidates, "the pattern has no pixel whose mirror is much brighter"
    r = candidates[len(candidates) // 2]
    planted = counts.copy()
    planted[r] = 10 * _neighbours_max(counts, r) + 50
    assert 2.5 * partner(r) < planted[r] < 5 * partner(r)  # the partner test alone would let it through
    assert find_hot_pixels(planted, None, centre=tuple(centre))[r]
    assert not find_hot_pixels(counts, None, centre=tuple(centre)).any()


def test_a_single_pixel_peak_level_with_its_partner_is_not_hot():
    """A real single-pixel speckle (or a streak's end) far above its neighbours has a partner as bright."""
    counts = _strained_crystal_counts()
    centre = np.array(counts.shape) // 2
    r = (centre[0] + 20, centre[1] - 17)
    mirror = tuple(2 * centre - r)
    for pixel in (r, mirror):
        counts[pixel] = 16 * max(_neighbours_max(counts, pixel), 10.0)
    level = max(counts[r], counts[mirror])
    counts[r] = counts[mirror] = level
    hot = find_hot_pixels(counts, None, centre=tuple(centre))
    assert not hot[r] and not hot[mirror]
