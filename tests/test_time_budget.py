"""A time budget: past it no challenger of the result starts, and the result says what was not tried."""

from __future__ import annotations

import numpy as np
import pytest

from cdi_dip import reconstruction
from cdi_dip.config import Method, RunConfig
from cdi_dip.config.psf import parse_psf
from cdi_dip.report.lines import more_starts_line
from cdi_dip.time_budget import budget_spent, time_budget

from challenged import fake_result, poor_fit


def test_a_budget_is_spent_only_inside_it_and_an_outer_earlier_deadline_stays():
    assert not budget_spent()  # no budget open
    with time_budget(None):
        assert not budget_spent()
    with time_budget(3600):
        assert not budget_spent()
    with time_budget(0):
        assert budget_spent()
        with time_budget(3600):  # a reconstruction inside another keeps the outer, earlier deadline
            assert budget_spent()
    with time_budget(3600):
        with time_budget(0):
            assert budget_spent()
        assert not budget_spent()
    assert not budget_spent()


def _no_reconstruction(*args, **kwargs):
    raise AssertionError("a challenger started after the time budget was spent")


@pytest.mark.parametrize("challenge, key", [("_more_starts_challenge", "starts"), ("_margin_challenge", "margin")])
def test_a_spent_budget_starts_no_challenger_of_a_poor_fit(monkeypatch, challenge, key):
    measurement, _, result = poor_fit(3)
    monkeypatch.setattr(reconstruction, "_reconstruct_frame", _no_reconstruction)
    cfg = RunConfig(device="cpu", method=Method.HIO, poor_fit_starts=12, frame_margin=1.5).validate()
    with time_budget(0):
        kept = getattr(reconstruction, challenge)(result, measurement, cfg, cfg.to_dict(), None, None)
    assert kept is result and not kept.interrupted
    record = kept.method_choice[key]
    assert not record["compared"] and record["reason"].startswith("not tried: the time budget of 0 s")


def test_a_spent_budget_starts_no_partial_coherence_challenger(monkeypatch):
    measurement, _, result = poor_fit(4)  # a poor fit sets every challenger of --psf compare off
    monkeypatch.setattr(reconstruction, "_run_method", _no_reconstruction)
    cfg = RunConfig(device="cpu", method=Method.HIO, psf="compare").validate()
    with time_budget(0):
        kept = reconstruction._coherence_challenge(result, measurement, cfg, parse_psf(cfg.psf), cfg.to_dict(), None,
                                                   None, None)
    record = kept.method_choice["coherence"]
    assert kept is result and record["chosen"] == "coherent"
    assert "not tried: the time budget of 0 s" in record["reason"]


def test_with_budget_left_the_challengers_run(monkeypatch):
    measurement, expected, result = poor_fit(3)
    seen = []

    def better_frame(frame_measurement, cfg, *args):
        seen.append(cfg)
        return fake_result(frame_measurement, expected, result.free, 1.1)

    monkeypatch.setattr(reconstruction, "_reconstruct_frame", better_frame)
    cfg = RunConfig(device="cpu", method=Method.HIO, poor_fit_starts=12).validate()
    with time_budget(3600):
        kept = reconstruction._more_starts_challenge(result, measurement, cfg, cfg.to_dict(), None, None)
    record = kept.method_choice["starts"]
    assert len(seen) == 1 and record["compared"] and record["chosen"] == "more starts"
    assert np.array_equal(kept.model_intensity, expected)
    assert 0 <= record["started_s"] < 60 and 0 <= record["seconds"] < 60  # when it started, how long it took
    assert more_starts_line(record).endswith(f", in {record['seconds']:.0f} s")
