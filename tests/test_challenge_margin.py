"""The significance of a challenger's better fit: the paired mean and Wilcoxon's signed ranks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cdi_dip.metrics import challenge_margin, paired_deviance_margin, poisson_deviance_map, signed_rank_margin


def test_signed_ranks_of_known_differences():
    # five positive differences: W+ = 15 of an expected 7.5, variance 5 * 6 * 11 / 24
    assert signed_rank_margin(np.array([1.0, 2.0, 3.0, 4.0, 5.0])) == pytest.approx(7.5 / math.sqrt(13.75))
    assert signed_rank_margin(-np.array([1.0, 2.0, 3.0, 4.0, 5.0])) == pytest.approx(-7.5 / math.sqrt(13.75))
    # tied magnitudes of both signs balance; zeros are dropped
    assert signed_rank_margin(np.array([1.0, -1.0, 2.0, -2.0, 0.0, 0.0])) == pytest.approx(0.0)
    assert signed_rank_margin(np.array([0.0, 3.0])) is None


def test_signed_ranks_are_a_normal_score_for_symmetric_heavy_tailed_differences():
    rng = np.random.default_rng(4)
    scores = np.array([signed_rank_margin(rng.standard_t(2, size=150)) for _ in range(400)])
    assert abs(scores.mean()) < 0.15 and 0.85 < scores.std() < 1.15


def _bright_peak_case(seed: int):
    """Counts about a bright peak: most pixels faint, a few at 1e6 photons."""
    rng = np.random.default_rng(seed)
    expected = rng.uniform(5.0, 50.0, 400)
    expected[:4] = 1e6
    counts = rng.poisson(expected).astype(np.float64)
    free = np.ones(expected.shape, bool)
    return expected, counts, free


def test_a_challenger_better_almost_everywhere_is_significant_however_heavy_the_tails():
    expected, counts, free = _bright_peak_case(1)
    incumbent = expected * 1.3
    incumbent[0] = 3e6  # one bright pixel far off rules the mean's spread
    challenger = expected.copy()
    challenger[0] = 1.2e6
    mean_z = paired_deviance_margin(counts, incumbent, challenger, free)
    assert mean_z < 2.0  # the mean alone cannot tell
    assert challenge_margin(counts, incumbent, challenger, free) > 5.0


def test_ranks_do_not_rescue_a_challenger_whose_total_is_worse():
    expected, counts, free = _bright_peak_case(2)
    incumbent = expected * 1.05
    challenger = expected.copy()
    challenger[:4] = 1.3e6  # better on the faint pixels, far worse on the bright ones
    differences = poisson_deviance_map(incumbent, counts) - poisson_deviance_map(challenger, counts)
    assert signed_rank_margin(differences) > 2.0  # most pixels are better
    margin = challenge_margin(counts, incumbent, challenger, free)
    assert margin == paired_deviance_margin(counts, incumbent, challenger, free) and margin < 0


def test_alike_models_have_no_margin():
    expected, counts, free = _bright_peak_case(3)
    assert challenge_margin(counts, expected, expected, free) is None

