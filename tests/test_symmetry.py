"""Friedel centre, mirror image and centrosymmetric partners."""

import numpy as np

from cdi_dip.prepare.symmetry import friedel_centre, friedel_twice_centre, mirror, partner_counts


def _symmetric(shape, twice_centre, rng):
    """A speckly pattern falling off from ``s / 2``, with ``I(r) = I(s - r)`` wherever both points are in the array."""
    grids = np.indices(shape)
    envelope = np.exp(-sum((g - s / 2) ** 2 for g, s in zip(grids, twice_centre)) / 50)
    values = rng.exponential(size=shape) * envelope
    flipped, present = mirror(values, np.ones(shape, bool), twice_centre)
    return np.where(present, values + flipped, 2 * values)


def test_the_twice_centre_keeps_a_centre_between_pixels(rng):
    pattern = _symmetric((40, 50), (41, 48), rng)
    assert friedel_twice_centre(pattern, np.ones(pattern.shape, bool)) == (41, 48)
    assert friedel_centre(pattern, np.ones(pattern.shape, bool)) == (20, 24)


def test_mirror_through_a_half_pixel_centre_and_beyond_the_edge():
    values = np.arange(5.0)
    valid = np.array([True, True, False, True, True])
    mirrored, present = mirror(values, valid, (5,))  # centre 2.5
    assert mirrored.tolist() == [0, 4, 3, 2, 1]
    assert present.tolist() == [False, True, True, False, True]  # index 0 mirrors to 5 (outside), 3 to 2 (invalid)


def test_partner_is_the_brightest_valid_pixel_around_the_mirror_point():
    counts = np.zeros((9, 9))
    counts[2, 3] = 7.0
    counts[1, 3] = 9.0
    valid = np.ones(counts.shape, bool)
    valid[1, 3] = False
    partner, present = partner_counts(counts, valid, (8, 8))  # centre (4, 4): (6, 5) mirrors to (2, 3)
    assert partner[6, 5] == 7.0 and present[6, 5]
    assert partner[7, 5] == 7.0  # one pixel off the mirror point (1, 3), which is invalid
    _, present = partner_counts(counts, valid, (12, 12))  # centre (6, 6)
    assert not present[0, 0] and present[4, 4]  # (0, 0) mirrors two pixels beyond the corner


def test_a_hot_pixel_beside_the_peak_does_not_move_the_centre():
    from cdi_dip.simulate import simulate_scan

    scan = simulate_scan("crystal", (48, 48), rng=np.random.default_rng(4), peak_counts=1e5)  # peak near (24, 24)
    valid = np.ones(scan.counts.shape, bool)
    centre = friedel_centre(scan.counts, valid)
    counts = scan.counts.astype(np.float64).copy()
    counts[centre[0] + 1, centre[1] + 1] = 10 * counts.max() + 50  # as the corpus plants them: 10x the peak
    assert friedel_centre(counts, valid) == centre


def test_single_bright_pixels_are_limited_for_the_centre_only():
    from cdi_dip.prepare.symmetry import OUTLIER_LIMIT, _outliers_limited

    counts = np.full((7, 7), 10.0)
    counts[3, 3] = 1000.0
    limited = _outliers_limited(counts, np.ones(counts.shape, bool))
    assert limited[3, 3] == OUTLIER_LIMIT * 10.0 and (np.delete(limited.ravel(), 24) == 10.0).all()
