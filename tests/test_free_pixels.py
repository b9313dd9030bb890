import numpy as np
import pytest

from cdi_dip.errors import InvalidInputError
from cdi_dip.prepare.free_pixels import select_free_islands
from cdi_dip._ndimage import dilate, label


def _beamstop_and_gap(shape):
    valid = np.ones(shape, dtype=bool)
    grids = np.indices(shape)
    valid &= sum((g - n // 2) ** 2 for g, n in zip(grids, shape)) > 5**2
    valid[..., shape[-1] // 2 + 10: shape[-1] // 2 + 13] = False
    return valid


@pytest.mark.parametrize("shape", [(64, 64), (24, 24, 24)])
def test_free_islands_are_valid_separated_and_near_the_fraction(shape):
    valid = _beamstop_and_gap(shape)
    free = select_free_islands(valid, 0.05, 2, np.random.default_rng(3))
    assert not (free & ~valid).any()
    assert 0.04 < free.sum() / valid.sum() < 0.06
    labels, count = label(free)
    sizes = np.bincount(labels.ravel())[1:]
    assert (sizes == 2 ** len(shape)).all()  # whole islands of 2 px per side
    # separated: no island touches another, not even at a corner
    for island in range(1, count + 1):
        own = labels == island
        assert not (dilate(own, 1) & free & ~own).any()


def test_the_zero_frequency_is_never_held_out():
    valid = np.ones((32, 32), dtype=bool)
    free = select_free_islands(valid, 0.5, 1, np.random.default_rng(0))
    grids = np.indices(valid.shape)
    near_centre = sum((g - 16) ** 2 for g in grids) <= 9
    assert not (free & near_centre).any()


def test_same_seed_same_pixels_other_seed_other_pixels():
    valid = np.ones((48, 48), dtype=bool)
    first = select_free_islands(valid, 0.05, 2, np.random.default_rng(5))
    again = select_free_islands(valid, 0.05, 2, np.random.default_rng(5))
    other = select_free_islands(valid, 0.05, 2, np.random.default_rng(6))
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_zero_fraction_holds_out_nothing_and_bad_arguments_are_refused():
    valid = np.ones((16, 16), dtype=bool)
    assert not select_free_islands(valid, 0.0, 2, np.random.default_rng(0)).any()
    with pytest.raises(InvalidInputError, match="fraction"):
        select_free_islands(valid, 0.7, 2, np.random.default_rng(0))
    with pytest.raises(InvalidInputError, match="island"):
        select_free_islands(valid, 0.05, 0, np.random.default_rng(0))
