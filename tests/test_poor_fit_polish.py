"""A projection method's poor fit polished by Poisson maximum likelihood before anything challenges it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from cdi_dip.config import Method, ProjectionConfig, RunConfig
from cdi_dip.pipeline import reconstruct
from cdi_dip.poor_fit_polish import POLISH_FREE_DEVIANCE, wants_polish
from cdi_dip.prepare.stages import prepare
from cdi_dip.report.lines import likelihood_polish_line
from cdi_dip.simulate import simulate_scan


@pytest.fixture(scope="module")
def bright():
    """A bright 2D crystal (1e7 photons at the peak) and a short HIO run on it that fits it poorly."""
    scan = simulate_scan("crystal", (32, 32), rng=np.random.default_rng(5), peak_counts=1e7)
    measurement = prepare(scan.to_measurement("polish"), RunConfig().prep)
    cfg = RunConfig(method=Method.HIO, device="cpu", runs=1, psf="none", poor_fit_starts=0, frame_margin=1.0,
                    projection=ProjectionConfig(plan="20*HIO+5*ER")).validate()
    return measurement, cfg, reconstruct(measurement, cfg)


def test_a_poor_fit_is_polished_to_a_significantly_better_fit_of_the_held_out_pixels(bright):
    measurement, cfg, plain = bright
    assert plain.metrics["free_llk_poisson"] > POLISH_FREE_DEVIANCE  # the premise: a poor fit
    assert "likelihood_polish" not in plain.solver  # the setting off: nothing done
    polished = reconstruct(measurement, dataclasses.replace(cfg, polish_poor_fits=True))
    record = polished.solver["likelihood_polish"]
    assert record["kept"] and record["margin_z"] > 2
    assert record["free_llk_poisson"]["as solved"] == pytest.approx(plain.metrics["free_llk_poisson"], rel=1e-6)
    assert polished.metrics["free_llk_poisson"] == pytest.approx(record["free_llk_poisson"]["polished"])
    assert polished.metrics["free_llk_poisson"] < plain.metrics["free_llk_poisson"]
    assert np.array_equal(polished.free, plain.free)  # judged on the same held-out pixels
    assert polished.obj_std is None and polished.wall_s > record["seconds"]
    assert likelihood_polish_line(record).startswith("kept: free Poisson LLK")


def test_a_good_fit_a_blurred_model_and_the_double_dip_are_not_polished(bright):
    _, cfg, plain = bright
    on = dataclasses.replace(cfg, polish_poor_fits=True)
    assert wants_polish(plain, on) and not wants_polish(plain, cfg)
    good = dataclasses.replace(plain, metrics={**plain.metrics, "free_llk_poisson": 1.2})
    assert not wants_polish(good, on)
    assert not wants_polish(plain, dataclasses.replace(on, psf="gaussian,1.0"))  # a coherent polish would not fit it
    assert not wants_polish(dataclasses.replace(plain, method=Method.DIP.value), on)
    assert not wants_polish(dataclasses.replace(plain, interrupted=True), on)
    assert likelihood_polish_line(None) is None
