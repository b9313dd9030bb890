"""Each defect finder: it finds what was planted, and nothing on clean data."""

import numpy as np
import pytest

from cdi_dip.prepare.defects import (
    REASONS,
    DefectOptions,
    detect_defects,
    find_aliens,
    find_beamstop,
    find_dead_pixels,
    find_gaps,
    find_hot_pixels,
    find_saturated,
    guess_saturation,
)
from cdi_dip.simulate import plant_defects, simulate_scan


def _pattern(shape, seed=0, peak_counts=1e5, kind="crystal"):
    rng = np.random.default_rng(seed)
    offset = tuple(int(v) for v in rng.integers(-3, 4, size=len(shape)))
    return simulate_scan(kind, shape, rng=rng, peak_counts=peak_counts, offset_px=offset).counts


@pytest.fixture(scope="module")
def clean_2d():
    return [_pattern((96, 96), seed) for seed in range(3)] + [_pattern((96, 96), 9, 1e6, "cell")]


@pytest.fixture(scope="module")
def clean_3d():
    return [_pattern((40, 40, 40), seed) for seed in range(2)]


def test_clean_patterns_lose_nothing(clean_2d, clean_3d):
    for counts in clean_2d + clean_3d:
        found = detect_defects(counts)
        assert not any(found[reason].any() for reason in REASONS), {k: int(v.sum()) for k, v in found.items()}


def test_the_bragg_peak_and_speckle_maxima_are_never_hot(clean_2d):
    for counts in clean_2d:
        assert not find_hot_pixels(counts, None).any()


@pytest.mark.parametrize("shape", [(96, 96), (40, 40, 40)])
def test_planted_hot_pixels_are_found_exactly(shape):
    counts = _pattern(shape, 1)
    planted = plant_defects(counts, rng=np.random.default_rng(2), hot=5)
    assert np.array_equal(find_hot_pixels(planted.counts, None), planted.truth["hot"])


def test_a_detector_pixel_hot_in_every_frame_is_found_in_the_sum():
    counts = _pattern((40, 40, 40), 2)
    from cdi_dip._ndimage import box_sum

    quiet = box_sum(counts.sum(axis=0), 1)[2:-2, 2:-2]
    row, col = np.unravel_index(int(np.argmin(quiet)), quiet.shape)
    row, col = row + 2, col + 2
    counts[:, row, col] += 3.0  # weak in each frame, far above its neighbours summed over the rocking curve
    assert not find_hot_pixels(counts[:1], None).any()  # one frame alone does not show it
    hot = find_hot_pixels(counts, None)
    assert hot[:, row, col].all() and hot.sum() == 40


def test_unmasked_beamstop_is_found_with_a_one_pixel_margin():
    counts = _pattern((96, 96), 3)
    peak = np.unravel_index(int(np.argmax(counts)), counts.shape)
    planted = plant_defects(counts, rng=np.random.default_rng(0), peak=peak, beamstop_radius_px=4)
    shadow = find_beamstop(planted.counts, None, peak=peak)
    assert (shadow & planted.truth["beamstop"]).sum() == planted.truth["beamstop"].sum()
    from cdi_dip._ndimage import dilate

    assert not (shadow & ~dilate(planted.truth["beamstop"], 1)).any()


def test_an_unmasked_beamstop_in_a_3d_frame_is_found_by_default():
    counts = _pattern((40, 40, 40), 3)
    peak = np.unravel_index(int(np.argmax(counts)), counts.shape)
    planted = plant_defects(counts, rng=np.random.default_rng(0), peak=peak, beamstop_radius_px=3)
    found = detect_defects(planted.counts)
    assert (found["beamstop"] & planted.truth["beamstop"]).sum() == planted.truth["beamstop"].sum()
    assert not detect_defects(planted.counts, options=DefectOptions(beamstop=False))["beamstop"].any()


def test_a_large_shadow_across_a_masked_gap_is_still_a_beamstop():
    """A masked gap through the shadow joins the dark region; only the shadow's own pixels count towards
    the largest plausible size (a quarter of the frame): here the two together would be a third."""
    counts = _pattern((32, 32), 3)
    centre = (16, 16)
    grids = np.indices(counts.shape)
    disc = sum((g - c) ** 2 for g, c in zip(grids, centre)) <= 8**2  # 197 px: 19 % of the frame
    gap = np.zeros(counts.shape, bool)
    gap[:, 20:24] = True  # 128 px more: 32 % together
    rim = (~disc) & (sum((g - c) ** 2 for g, c in zip(grids, centre)) <= 10**2) & ~gap
    counts = np.where(disc | gap, 0.0, np.maximum(counts, 1.0) + 1e4 * rim)  # the beam's halo lights the rim
    shadow = find_beamstop(counts, ~gap, margin_px=0)
    assert np.array_equal(shadow, disc & ~gap)
    empty = np.zeros(counts.shape)  # a frame with next to nothing in it is still no beamstop
    empty[centre] = 5.0
    assert not find_beamstop(empty, ~gap).any()


def test_a_beamstop_already_masked_adds_nothing_and_a_radius_gives_a_disc(clean_2d):
    counts = clean_2d[0]
    peak = np.unravel_index(int(np.argmax(counts)), counts.shape)
    grids = np.indices(counts.shape)
    disc = sum((g - p) ** 2 for g, p in zip(grids, peak)) <= 16
    assert not find_beamstop(np.where(disc, 0, counts), ~disc, peak=peak).any()
    assert np.array_equal(find_beamstop(counts, None, peak=peak, radius_px=4), disc)


def test_gaps_of_zeros_and_of_a_fill_value_are_found():
    counts = _pattern((96, 96), 4)
    planted = plant_defects(counts, rng=np.random.default_rng(0), gap_px=3)
    assert np.array_equal(find_gaps(planted.counts, None), planted.truth["gap"])
    filled = counts.copy()
    filled[10:12, :] = -1
    assert np.array_equal(find_gaps(filled, None, fill_value=-1)[10:12], np.ones((2, 96), bool))


def test_empty_border_lines_of_a_faint_pattern_are_not_gaps():
    counts = np.zeros((32, 32))
    counts[8:24, 8:24] = np.random.default_rng(0).poisson(0.2, size=(16, 16))  # nothing predicts counts at the border
    assert not find_gaps(counts, None).any()


def test_dead_pixel_in_a_stack_is_found_in_every_frame():
    counts = _pattern((40, 40, 40), 5)
    frame_sum = counts.sum(axis=0)
    row, col = np.unravel_index(int(np.argmax(frame_sum)), frame_sum.shape)
    row, col = row + 2, col + 1  # beside the peak: certainly lit
    counts[:, row, col] = 0
    dead = find_dead_pixels(counts, None)
    assert dead[:, row, col].all() and dead.sum() == counts.shape[0]


def test_saturation_given_or_seen_as_a_clipping_plateau():
    counts = _pattern((96, 96), 6)
    planted = plant_defects(counts, rng=np.random.default_rng(0), saturated_regions=2)
    assert guess_saturation(planted.counts, None) == planted.saturation_counts
    assert guess_saturation(counts, None) is None  # counting noise: the maximum is unique
    found = find_saturated(planted.counts, planted.saturation_counts)
    assert np.array_equal(found, planted.truth["saturated"])


def test_an_alien_blob_without_a_centrosymmetric_partner_is_found():
    counts = _pattern((48, 48, 48), 7)
    peak = np.array(np.unravel_index(int(np.argmax(counts)), counts.shape))
    alien = np.zeros(counts.shape, dtype=bool)
    alien[30:35, 8:13, 36:41] = True  # far from the peak, its mirror dark
    counts = counts + np.where(alien, np.random.default_rng(1).poisson(30.0, counts.shape), 0)
    found = find_aliens(counts, None, peak=tuple(peak))
    assert (found & alien).sum() >= 0.9 * alien.sum()
    from cdi_dip._ndimage import dilate

    assert not (found & ~dilate(alien, 3)).any()


def test_a_symmetric_pair_of_blobs_is_diffraction_not_an_alien():
    counts = _pattern((48, 48, 48), 7)
    peak = np.array(np.unravel_index(int(np.argmax(counts)), counts.shape))
    blob = np.zeros(counts.shape, dtype=bool)
    blob[30:35, 8:13, 36:41] = True
    mirror = np.zeros_like(blob)
    where = 2 * peak[:, None] - np.argwhere(blob).T
    inside = ((where >= 0) & (where < 48)).all(axis=0)
    mirror[tuple(where[:, inside])] = True
    rng = np.random.default_rng(1)
    counts = counts + np.where(blob | mirror, rng.poisson(30.0, counts.shape), 0)
    assert not find_aliens(counts, None, peak=tuple(peak)).any()


def test_planted_defects_are_all_found_and_attributed():
    counts = _pattern((128, 128), 8)
    planted = plant_defects(counts, rng=np.random.default_rng(3), beamstop_radius_px=3, gap_px=3, hot=5,
                            saturated_regions=2)
    found = detect_defects(planted.counts, options=DefectOptions(peak=None))
    for reason in ("gap", "hot", "saturated"):
        assert np.array_equal(found[reason], planted.truth[reason]), reason
    assert (found["beamstop"] >= planted.truth["beamstop"]).all()
    masks = [found[reason] for reason in REASONS]
    assert sum(m.astype(int) for m in masks).max() <= 1  # each pixel under one reason
