import math

import numpy as np
import pytest
import torch

from cdi_dip.metrics import chi_square, data_metrics, poisson_deviance, poisson_deviance_map, r_factor


def _poisson_data(seed=0, mean=50.0, n=20000):
    gen = np.random.default_rng(seed)
    model = gen.uniform(0.5, 2.0, size=n) * mean
    counts = gen.poisson(model).astype(np.float32)
    return torch.from_numpy(model), torch.from_numpy(counts)


def test_perfect_fit_scores_zero():
    counts = torch.tensor([4.0, 9.0, 16.0])
    mask = torch.ones(3, dtype=torch.bool)
    assert r_factor(counts, counts, mask) == 0.0
    assert abs(poisson_deviance(counts, counts, mask)) < 1e-12


def test_noise_level_fit_has_deviance_and_chi2_near_one():
    # For Poisson counts around 50 photons, the deviance and chi^2 of the
    # true model are ~1 per pixel.
    model, counts = _poisson_data()
    mask = torch.ones_like(counts, dtype=torch.bool)
    assert 0.9 < poisson_deviance(model, counts, mask) < 1.1
    assert 0.9 < chi_square(model, counts, mask) < 1.1
    assert poisson_deviance(model * 1.5, counts, mask) > 3


def test_masked_pixels_do_not_count():
    model, counts = _poisson_data(n=100)
    mask = torch.ones_like(counts, dtype=torch.bool)
    mask[0] = False
    spoiled = counts.clone()
    spoiled[0] = 1e9
    assert r_factor(model, counts, mask) == r_factor(model, spoiled, mask)
    assert poisson_deviance(model, counts, mask) == poisson_deviance(model, spoiled, mask)


def test_data_metrics_reports_free_figures_only_with_free_pixels():
    model, counts = _poisson_data(n=100)
    valid = torch.ones_like(counts, dtype=torch.bool)
    assert "free_llk_poisson" not in data_metrics(model, counts, valid)
    free = torch.zeros_like(valid)
    free[:10] = True
    figures = data_metrics(model, counts, valid & ~free, free)
    assert {"r_factor", "llk_poisson", "chi2", "free_llk_poisson", "free_r_factor"} <= figures.keys()


@pytest.mark.parametrize("fraction_valid", [0.0, 0.3, 1.0])
def test_masked_figures_are_the_deviance_and_r_factor(fraction_valid):
    from cdi_dip.metrics import MaskedFigures

    generator = torch.Generator().manual_seed(12)
    shape = (24, 20)
    counts = torch.poisson(torch.rand(shape, generator=generator) * 3)  # many zero counts
    mask = torch.rand(shape, generator=generator) < fraction_valid
    figures = MaskedFigures(counts, mask)
    for model in (counts.clone(), torch.rand(shape, generator=generator) * 5, torch.zeros(shape)):
        deviance, r = figures(model)
        if not mask.any():
            assert math.isnan(deviance) and math.isnan(r)
            continue
        assert deviance == pytest.approx(poisson_deviance(model, counts, mask), rel=1e-9, abs=1e-12)
        assert r == pytest.approx(r_factor(model, counts, mask), rel=1e-9, abs=1e-12)


def test_deviance_map_averages_to_the_deviance_and_is_zero_only_where_the_model_is_the_count():
    rng = np.random.default_rng(3)
    model = rng.uniform(0.1, 20.0, (16, 16))
    counts = rng.poisson(model).astype(np.float64)
    mask = rng.random((16, 16)) < 0.7
    terms = poisson_deviance_map(model, counts)
    assert terms.shape == model.shape and (terms >= 0).all()
    mean = poisson_deviance(torch.from_numpy(model), torch.from_numpy(counts), torch.from_numpy(mask))
    assert terms[mask].mean() == pytest.approx(mean, rel=1e-9)
    assert np.abs(poisson_deviance_map(counts + 1e-12, counts)).max() < 1e-8
    assert poisson_deviance_map(np.array([2.0]), np.array([0.0]))[0] == pytest.approx(4.0)


@pytest.mark.parametrize("mean", [1e-3, 0.05, 0.3, 1.0, 4.0, 30.0, 250.0])
def test_expected_deviance_is_what_poisson_counts_of_the_model_score(mean):
    from cdi_dip.metrics import expected_deviance_terms

    rng = np.random.default_rng(0)
    model = torch.full((400_000,), mean, dtype=torch.float64)
    counts = torch.from_numpy(rng.poisson(mean, size=400_000).astype(np.float64))
    drawn = poisson_deviance(model, counts, torch.ones(400_000, dtype=torch.bool))
    expected = float(expected_deviance_terms(torch.tensor([mean]))[0])
    assert expected == pytest.approx(drawn, rel=0.02, abs=2e-4)


def test_expected_deviance_tends_to_one_for_bright_pixels_and_to_zero_for_dark_ones():
    from cdi_dip.metrics import expected_deviance_terms

    values = expected_deviance_terms(torch.tensor([1e-12, 1e-7, 1e4, 1e9])).tolist()
    assert values[0] < 1e-10 and values[1] < 1e-5
    assert values[2] == pytest.approx(1 + 1 / 6e4, rel=1e-6) and values[3] == pytest.approx(1.0, rel=1e-8)


def test_deviance_excess_is_near_one_for_a_faint_model_that_is_right_and_large_for_one_that_is_wrong():
    """On a faint pattern (0.3 photons a pixel) the true model's deviance sits well below 1 and a wrong model's near
    it, where a test against 1 cannot tell them apart; against its expectation the true one scores 1 and the wrong
    one about twice that."""
    from cdi_dip.metrics import data_metrics, deviance_excess

    rng = np.random.default_rng(1)
    truth = torch.from_numpy(rng.exponential(0.3, size=(300, 300)))  # speckle of 0.3 photons a pixel on average
    counts = torch.from_numpy(rng.poisson(truth.numpy()).astype(np.float64))
    valid = torch.ones(truth.shape, dtype=torch.bool)
    free = torch.from_numpy(rng.random(truth.shape) < 0.2)
    right = data_metrics(truth, counts, valid & ~free, free)
    wrong = data_metrics(torch.from_numpy(rng.permutation(truth.numpy().ravel()).reshape(truth.shape)), counts,
                         valid & ~free, free)  # the same intensities in the wrong places
    assert right["free_llk_poisson"] < 0.8 and wrong["free_llk_poisson"] < 1.5
    assert deviance_excess(right) == pytest.approx(1.0, abs=0.05)
    assert deviance_excess(wrong) > 1.7
    assert "llk_poisson_expected" in data_metrics(truth, counts, valid)
