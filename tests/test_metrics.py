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
