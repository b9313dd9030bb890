"""A projection method's poor fit polished by Poisson maximum likelihood before anything challenges it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from cdi_dip.config import Method, ProjectionConfig, RunConfig
from cdi_dip.ensemble import compare_objects
from cdi_dip.pipeline import reconstruct
from cdi_dip import reconstruction
from cdi_dip.challenge_rules import CHALLENGE_FREE_DEVIANCE
from cdi_dip.poor_fit_polish import polish_asked, wants_polish
from cdi_dip.prepare.stages import prepare
from cdi_dip.report.lines import likelihood_polish_line
from cdi_dip.simulate import simulate_scan
from cdi_dip.solvers.init import StartFrom


@pytest.fixture(scope="module")
def bright():
    """A bright 2D crystal (1e6 photons at the peak, 64x64), its truth, and the configuration of a short ER
    refinement on the truth's support that fits it poorly from a start near the truth (``near``)."""
    scan = simulate_scan("crystal", (64, 64), rng=np.random.default_rng(5), peak_counts=1e6)
    measurement = prepare(scan.to_measurement("polish"), RunConfig().prep)
    cfg = RunConfig(method=Method.ER, device="cpu", runs=1, psf="none", poor_fit_starts=0, frame_margin=1.0,
                    projection=ProjectionConfig(plan="5*ER", shrinkwrap_period=0)).validate()
    return measurement, scan.ground_truth, cfg


def near(truth: np.ndarray, relative_noise: float) -> StartFrom:
    """A start from ``truth`` with every value off by ``relative_noise`` (Gaussian), on the truth's support."""
    noise = np.random.default_rng(0).normal(size=truth.shape)
    return StartFrom(truth * (1 + relative_noise * noise), np.abs(truth) > 0)


def test_a_poor_fit_in_the_truths_basin_is_polished_to_a_fit_the_counts_allow(bright):
    measurement, truth, cfg = bright
    plain = reconstruct(measurement, cfg, init=near(truth, 0.05))
    assert plain.metrics["free_llk_poisson"] > CHALLENGE_FREE_DEVIANCE  # the premise: a poor fit
    assert "likelihood_polish" not in plain.solver  # the setting off: nothing done
    polished = reconstruct(measurement, dataclasses.replace(cfg, polish_poor_fits=True), init=near(truth, 0.05))
    record = polished.solver["likelihood_polish"]
    assert record["kept"] and record["resolved"] and record["margin_z"] > 2
    assert record["free_llk_poisson"]["as solved"] == pytest.approx(plain.metrics["free_llk_poisson"], rel=1e-6)
    assert polished.metrics["free_llk_poisson"] == pytest.approx(record["free_llk_poisson"]["polished"])
    assert polished.metrics["free_llk_poisson"] <= CHALLENGE_FREE_DEVIANCE
    assert np.array_equal(polished.free, plain.free)  # judged on the same held-out pixels
    assert polished.obj_std is None and polished.wall_s > record["seconds"]
    assert compare_objects(polished.obj, truth).error < compare_objects(plain.obj, truth).error
    assert likelihood_polish_line(record).startswith("kept: free Poisson LLK")


def test_a_polish_that_leaves_the_fit_poor_is_not_kept(bright):
    measurement, truth, cfg = bright
    on = dataclasses.replace(cfg, polish_poor_fits=True)
    result = reconstruct(measurement, on, init=near(truth, 0.1))
    record = result.solver["likelihood_polish"]
    assert record["free_llk_poisson"]["polished"] < record["free_llk_poisson"]["as solved"]  # better, still poor
    assert not record["resolved"] and not record["kept"]
    assert result.metrics["free_llk_poisson"] == pytest.approx(record["free_llk_poisson"]["as solved"])
    assert likelihood_polish_line(record).startswith("not kept")


def test_a_good_fit_a_blurred_model_and_the_double_dip_are_not_polished(bright):
    measurement, truth, cfg = bright
    plain = reconstruct(measurement, cfg, init=near(truth, 0.05))
    on = dataclasses.replace(cfg, polish_poor_fits=True)
    assert wants_polish(plain, on) and not wants_polish(plain, cfg)
    good = dataclasses.replace(plain, metrics={**plain.metrics, "free_llk_poisson": 1.2})
    assert not wants_polish(good, on)
    assert not wants_polish(plain, dataclasses.replace(on, psf="gaussian,1.0"))  # a coherent polish would not fit it
    assert not wants_polish(dataclasses.replace(plain, method=Method.DIP.value), on)
    assert not wants_polish(dataclasses.replace(plain, interrupted=True), on)
    assert likelihood_polish_line(None) is None


def test_by_default_only_3d_frames_are_polished():
    default = RunConfig().validate()
    assert default.polish_poor_fits is None
    assert polish_asked(default, 3) and not polish_asked(default, 2)
    assert polish_asked(dataclasses.replace(default, polish_poor_fits=True), 2)
    assert not polish_asked(dataclasses.replace(default, polish_poor_fits=False), 3)


def test_the_deconvolved_challengers_of_psf_compare_are_not_polished(bright, monkeypatch):
    """Deconvolved counts are an estimate, not counts: a likelihood polish of their fit would fit its noise."""
    measurement, truth, cfg = bright
    on = dataclasses.replace(cfg, polish_poor_fits=True)
    coherent = reconstruct(measurement, cfg, init=near(truth, 0.05))
    asked: list[RunConfig] = []
    monkeypatch.setattr(reconstruction, "_challenger", lambda _measurement, challenger_cfg, *rest: asked.append(
        challenger_cfg))
    reconstruction._deconvolved_challengers([("coherent", coherent)], [], measurement, on, {}, None, None,
                                            torch.device("cpu"))
    assert asked and all(challenger_cfg.polish_poor_fits is False for challenger_cfg in asked)
