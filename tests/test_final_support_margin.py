"""The final ER block on a support grown by a margin (``projection.final_support_margin_px``), and the corpus's
``truncated`` condition it was measured on (a frame holding only the centre of the pattern)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cdi_dip.config import ProjectionConfig, RunConfig, config_from_dict
from cdi_dip.corpus import corpus_cases
from cdi_dip.corpus.detector import DetectorSettings, truncate_pattern, truncated_shape
from cdi_dip.errors import InvalidInputError
from cdi_dip.physics import FarField
from cdi_dip.simulate import expected_intensity, far_field, faceted_crystal
from cdi_dip.solvers import Problem
from cdi_dip.solvers.projections import ProjectionRun, solve_projections
from cdi_dip.support import dilate_mask


def _fit(plan: str, **settings):
    truth = faceted_crystal((32, 32), rng=np.random.default_rng(3))
    intensity = expected_intensity(truth)
    counts = torch.from_numpy(np.random.default_rng(3).poisson(intensity * 1e6 / intensity.max()).astype(np.float32))
    cfg = RunConfig(method="hio", device="cpu", projection=ProjectionConfig(plan=plan, metric_period=10,
                                                                            **settings)).validate()
    problem = Problem.build(counts, torch.ones((32, 32), dtype=torch.bool), FarField((32, 32)))
    return solve_projections(problem, ProjectionRun.from_config(cfg), rng=torch.Generator().manual_seed(0))


def test_the_final_er_block_runs_on_the_last_shrinkwrap_support_grown_by_the_margin():
    plain = _fit("20*ER+60*HIO+20*ER")
    grown = _fit("20*ER+60*HIO+20*ER", final_support_margin_px=2)
    margin = grown.extra["final_support_margin"]
    # Same run up to the last shrinkwrap update (same seed): the support before the margin is the plain run's.
    assert margin["pixels"] == 2 and margin["support_px_before"] == int(plain.support.sum())
    # The support written is that outline; the object keeps its fall-off in the margin around it, and only there.
    assert np.array_equal(grown.support, plain.support)
    grown_support = dilate_mask(torch.from_numpy(plain.support), 2).numpy()
    assert margin["support_px"] == int(grown_support.sum()) > margin["support_px_before"]
    assert np.abs(grown.obj[grown_support & ~grown.support]).max() > 0 and not grown.obj[~grown_support].any()
    sizes = {entry["iteration"]: entry["support_size"] for entry in grown.history}
    assert sizes[80] == sizes[90] == sizes[100] == margin["support_px"]  # grown at the last update, iteration 80
    assert "final_support_margin" not in plain.extra


def test_the_margin_wraps_with_the_frame_and_needs_a_final_er_block():
    # A plan without a final ER block after other algorithms has no place for the margin.
    assert "final_support_margin" not in _fit("60*HIO", final_support_margin_px=2).extra
    assert "final_support_margin" not in _fit("40*ER", final_support_margin_px=2).extra
    with pytest.raises(InvalidInputError, match="final_support_margin_px"):
        config_from_dict({"projection": {"final_support_margin_px": -1}})
    assert ProjectionConfig().final_support_margin_px == 0


def test_a_truncated_pattern_is_the_centre_of_the_full_one():
    obj = faceted_crystal((40, 40), rng=np.random.default_rng(5))
    cut = truncate_pattern(obj, 0.6)
    assert cut.shape == truncated_shape(obj.shape, 0.6) == (24, 24)
    # Its far field is exactly the central 24x24 of the object's (the DFT of the cut grid, unitary).
    assert np.allclose(far_field(cut), far_field(obj)[8:32, 8:32], atol=1e-9)
    assert np.array_equal(truncate_pattern(obj, 1.0), obj.astype(np.complex128))
    assert truncated_shape((24, 13, 9), 0.5) == (12, 8, 8)
    with pytest.raises(InvalidInputError, match="kept_fraction"):
        DetectorSettings(peak_counts=1e5, kept_fraction=0.1)


def test_the_truncated_condition_cuts_the_frame_and_keeps_the_object_and_its_oversampling():
    cases = {case.condition: case for case in corpus_cases("tuning", dims=(2,), quick=True, families=["faceted"],
                                                           conditions=["clean", "truncated"])}
    clean, cut = cases["clean"], cases["truncated"]
    assert cut.shape == truncated_shape(clean.shape, cut.settings.kept_fraction) and cut.shape < clean.shape
    # The truth is scaled to the detector's photons: its brightest expected count is the settings' peak.
    assert expected_intensity(cut.truth).max() == pytest.approx(cut.settings.peak_counts, rel=1e-4)
    # The object fills the same fraction of the frame (a pixel or two of rounding on small frames).
    assert np.allclose(cut.oversampling, clean.oversampling, rtol=0.25)
