"""The extended specimen of forward-CDI speckle benchmarks and tests."""

import numpy as np
import pytest

from cdi_dip.errors import InvalidInputError
from cdi_dip.simulate import extended_specimen


@pytest.mark.parametrize("greyscale", [True, False])
def test_extended_specimen_is_non_negative_sharp_and_within_its_extent(greyscale):
    obj = extended_specimen((64, 64), rng=np.random.default_rng(0), extent_fraction=0.7, greyscale=greyscale)
    density = obj.real
    assert density.min() >= 0 and not obj.imag[density == 0].any() and 0 < obj.imag.max() <= 0.075 + 1e-6
    levels = {round(float(v), 5) for v in np.unique(density[density > 0])}
    assert levels <= ({0.3, 0.6, 1.0} if greyscale else {1.0})  # no edge ramp: sharp edges
    inside = np.abs(np.arange(64) - 32) < 0.7 * 64 / 2
    assert not density[~inside, :].any() and not density[:, ~inside].any()
    assert 0.1 < (density > 0).mean() < 0.5


def test_extended_specimen_refuses_an_extent_beyond_three_quarters():
    with pytest.raises(InvalidInputError):
        extended_specimen((64, 64), rng=np.random.default_rng(0), extent_fraction=0.8)
