"""More random starts where a projection method's result fits its held-out pixels poorly."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from cdi_dip import reconstruction
from cdi_dip.config import DEFAULT_POOR_FIT_DIP_STARTS, DEFAULT_RUNS, Method, RunConfig
from cdi_dip.errors import ReconstructionError
from cdi_dip.report.lines import more_starts_line
from cdi_dip.simulate import simulate_scan
from cdi_dip.types import Measurement

from challenged import fake_result, poor_fit


class FakeFrames:
    """Stands in for the reconstruction of one frame: records the measurement and configuration, returns a
    result whose model is ``model``."""

    def __init__(self, model: np.ndarray, free_llk: float, error: BaseException | None = None):
        self.model, self.free_llk, self.error, self.seen = model, free_llk, error, []

    def __call__(self, measurement, cfg, requested, init, on_iter):
        self.seen.append((measurement, cfg))
        if self.error is not None:
            raise self.error
        return fake_result(measurement, self.model, measurement.fixed_free, self.free_llk)


@pytest.mark.parametrize("challenger_fits", [True, False])
def test_a_poor_fit_is_challenged_by_more_starts_on_the_same_free_pixels(monkeypatch, challenger_fits):
    measurement, expected, result = poor_fit(3)
    frames = FakeFrames(expected if challenger_fits else 1.4 * expected, 1.1 if challenger_fits else 9.0)
    monkeypatch.setattr(reconstruction, "_reconstruct_frame", frames)
    cfg = RunConfig(device="cpu", method=Method.HIO, seed=7, poor_fit_starts=12).validate()  # the default 4 runs
    first_pass = {"compared": True, "chosen": "hio", "auto": {"kind": "crystal"}}  # how the first pass was chosen
    result.method_choice = dict(first_pass)
    kept = reconstruction._more_starts_challenge(result, measurement, cfg, cfg.to_dict(), None, None)
    ((seen, challenger_cfg),) = frames.seen
    assert {key: kept.method_choice[key] for key in first_pass} == first_pass  # the kept result's story stays whole
    assert np.array_equal(seen.fixed_free, result.free)
    assert challenger_cfg.seed == 11  # seeds 11-22: none of the first starts'
    assert (challenger_cfg.runs, challenger_cfg.generations) == (4, 3)  # by default bred: 4 runs in 3 generations
    record = kept.method_choice["starts"]
    assert record["compared"] and kept.wall_s == 2.0
    assert record["seeds"] == {"first starts": [7, 10], "more starts": [11, 22]}
    assert record["chosen"] == ("more starts" if challenger_fits else "first starts")
    assert (kept is not result) == challenger_fits
    if challenger_fits:
        assert record["margin_z"] > reconstruction.CHALLENGE_SIGNIFICANCE
        assert more_starts_line(record) == (f"the 12 more starts kept: free Poisson LLK 9 from the first 4 starts, "
                                            f"1.1 from 12 more bred in 3 generations, z {record['margin_z']:.2f}")
    else:
        assert record["margin_z"] is None  # the same model on every held-out pixel: nothing to weigh
        assert more_starts_line(record).startswith("the first 4 starts kept: free Poisson LLK 9")


def test_a_good_fit_the_double_dip_and_the_setting_off_are_not_challenged(monkeypatch):
    frames = FakeFrames(np.ones((20, 24)), 1.0)
    monkeypatch.setattr(reconstruction, "_reconstruct_frame", frames)
    cfg = RunConfig(device="cpu", method=Method.HIO, poor_fit_starts=12, poor_fit_dip_starts=0).validate()
    measurement, _, good = poor_fit(3)
    good.metrics["free_llk_poisson"] = 1.3
    assert reconstruction._more_starts_challenge(good, measurement, cfg, cfg.to_dict(), None, None) is good
    _, _, dip = poor_fit(3, "dip")
    assert reconstruction._more_starts_challenge(dip, measurement, cfg, cfg.to_dict(), None, None) is dip
    off = dataclasses.replace(cfg, poor_fit_starts=0)
    _, _, poor = poor_fit(3)
    assert reconstruction._more_starts_challenge(poor, measurement, off, off.to_dict(), None, None) is poor
    asked = RunConfig(device="cpu", method=Method.HIO, runs=2, poor_fit_starts=12).validate()  # --runs 2: two runs
    assert reconstruction._more_starts_challenge(poor, measurement, asked, asked.to_dict(), None, None) is poor
    assert not frames.seen and "starts" not in good.method_choice | dip.method_choice | poor.method_choice


@pytest.mark.parametrize("method", [Method.DIP, Method.AUTO])
def test_a_poor_double_dip_fit_is_challenged_by_more_of_its_runs(monkeypatch, method):
    measurement, expected, result = poor_fit(3, "dip")
    frames = FakeFrames(expected, 1.1)
    monkeypatch.setattr(reconstruction, "_reconstruct_frame", frames)
    cfg = RunConfig(device="cpu", method=method, seed=5, poor_fit_starts=12, poor_fit_dip_starts=2).validate()
    kept = reconstruction._more_starts_challenge(result, measurement, cfg, cfg.to_dict(), None, None)
    ((seen, challenger_cfg),) = frames.seen
    assert challenger_cfg.method is Method.DIP and challenger_cfg.runs == 2 and challenger_cfg.seed == 6
    assert np.array_equal(seen.fixed_free, result.free)
    assert kept is not result and kept.method_choice["starts"]["seeds"] == {"first starts": [5, 5],
                                                                            "more starts": [6, 7]}
    off = dataclasses.replace(cfg, poor_fit_dip_starts=0)
    _, _, again = poor_fit(3, "dip")
    assert reconstruction._more_starts_challenge(again, measurement, off, off.to_dict(), None, None) is again


def test_the_double_dips_more_starts_default_by_the_frames_dimensions():
    cfg = RunConfig(device="cpu", method=Method.DIP, poor_fit_starts=12).validate()
    _, _, flat = poor_fit(3, "dip")
    volume = dataclasses.replace(flat, measurement=Measurement(np.ones((4, 5, 6), np.float32),
                                                               np.ones((4, 5, 6), bool)))
    assert reconstruction.more_starts_count(flat, cfg) == DEFAULT_POOR_FIT_DIP_STARTS[2]
    assert reconstruction.more_starts_count(volume, cfg) == DEFAULT_POOR_FIT_DIP_STARTS[3]
    assert reconstruction.more_starts_count(flat, dataclasses.replace(cfg, poor_fit_dip_starts=5)) == 5
    assert reconstruction.more_starts_count(poor_fit(3, "hio")[2], cfg) == 12


def test_auto_is_challenged_with_the_method_it_chose():
    _, _, result = poor_fit(3, "hio")
    cfg = RunConfig(device="cpu", method=Method.AUTO, poor_fit_starts=6, poor_fit_generations=1, seed=3).validate()
    challenger = reconstruction.more_starts_config(result, cfg)
    assert challenger.method is Method.HIO and challenger.runs == 6
    assert challenger.seed == 3 + DEFAULT_RUNS[Method.HIO]


@pytest.mark.parametrize("error", [ReconstructionError("every run diverged"), KeyboardInterrupt()])
def test_a_challenger_that_fails_or_is_interrupted_leaves_the_first_starts(monkeypatch, error):
    measurement, expected, result = poor_fit(3)
    monkeypatch.setattr(reconstruction, "_reconstruct_frame", FakeFrames(expected, 1.0, error))
    cfg = RunConfig(device="cpu", method=Method.HIO, poor_fit_starts=4).validate()
    kept = reconstruction._more_starts_challenge(result, measurement, cfg, cfg.to_dict(), None, None)
    assert kept is result
    if isinstance(error, KeyboardInterrupt):
        assert kept.interrupted
    else:
        assert "could not run (every run diverged)" in kept.method_choice["starts"]["reason"]


def test_a_reconstruction_challenged_by_more_starts_keeps_one_set_of_free_pixels(monkeypatch):
    """End to end on a small simulated crystal, every fit counted as poor: the challenger ran HIO from the later
    seeds on the first pass's free pixels, and whichever result was kept scores them."""
    monkeypatch.setattr(reconstruction, "CHALLENGE_FREE_DEVIANCE", 0.0)
    scan = simulate_scan("crystal", (32, 32), rng=np.random.default_rng(5), peak_counts=1e5)
    measurement = Measurement(scan.counts.astype(np.float32), scan.valid)
    cfg = RunConfig(device="cpu", method=Method.HIO, iterations=60, poor_fit_starts=2, poor_fit_generations=1,
                    frame_margin=1.0, psf="none", background="none").validate()
    first = reconstruction._reconstruct_frame(measurement, cfg, cfg.to_dict(), reconstruction.initialiser_for(
        cfg, measurement), None)
    kept = reconstruction.reconstruct(measurement, cfg)
    record = kept.method_choice["starts"]
    assert record["compared"] and record["seeds"] == {"first starts": [0, 3], "more starts": [4, 5]}
    assert np.array_equal(kept.free, first.free)
    scores = record["free_llk_poisson"]
    assert scores["first starts"] == pytest.approx(first.metrics["free_llk_poisson"])
    assert kept.metrics["free_llk_poisson"] == pytest.approx(scores[record["chosen"]])


@pytest.mark.parametrize("method, free_llk, expected, challenged", [
    ("dip", 1.5, 0.5, True),    # three times what faint counts allow: a missed basin
    ("dip", 0.9, 0.5, False),   # under twice it
    ("hio", 1.5, 0.5, False),   # a projection's modulus step fits faint noise: its own trigger only
    ("hio", 2.5, 1.0, True),    # above 2 per pixel, any method
    ("dip", 1.5, None, False),  # a result written before the expectation was recorded: the deviance itself
])
def test_a_faint_double_dip_fit_is_judged_against_what_its_counts_allow(method, free_llk, expected, challenged):
    measurement, model, result = poor_fit(5, method)
    result.metrics = {"free_llk_poisson": free_llk,
                      **({} if expected is None else {"free_llk_poisson_expected": expected})}
    assert reconstruction.poor_fit_for_more_starts(result) is challenged
    if challenged:
        reason = reconstruction.poor_fit_description(result, free_llk)
        assert (f"{free_llk / expected:.3g} times what the counts allow" in reason) == (free_llk <= 2)


def test_a_faint_double_dip_fit_sets_off_its_more_starts(monkeypatch):
    measurement, expected, result = poor_fit(6, "dip")
    result.metrics = {"free_llk_poisson": 1.5, "free_llk_poisson_expected": 0.5}
    frames = FakeFrames(expected, 0.6)
    monkeypatch.setattr(reconstruction, "_reconstruct_frame", frames)
    cfg = RunConfig(device="cpu", method=Method.DIP, poor_fit_dip_starts=2).validate()
    kept = reconstruction._more_starts_challenge(result, measurement, cfg, cfg.to_dict(), None, None)
    ((_, challenger_cfg),) = frames.seen
    assert challenger_cfg.runs == 2
    assert "3 times what the counts allow" in kept.method_choice["starts"]["reason"]


def test_the_more_starts_of_a_projection_method_can_be_bred_in_generations():
    measurement, _, result = poor_fit(7, "hio")
    cfg = RunConfig(device="cpu", method=Method.HIO, seed=3, poor_fit_starts=12, poor_fit_generations=3).validate()
    bred = reconstruction.more_starts_config(result, cfg)
    assert (bred.runs, bred.generations, bred.seed) == (4, 3, 7)  # 12 runs of work, after the first 4 seeds
    plain = reconstruction.more_starts_config(result, dataclasses.replace(cfg, poor_fit_generations=1))
    assert (plain.runs, plain.generations) == (12, 1)
    _, _, dip = poor_fit(7, "dip")
    dip_cfg = RunConfig(device="cpu", method=Method.DIP, poor_fit_dip_starts=2, poor_fit_generations=3).validate()
    assert reconstruction.more_starts_config(dip, dip_cfg).generations == 1  # the double DIP breeds nothing


def test_bred_more_starts_are_counted_and_said_as_generations(monkeypatch):
    measurement, expected, result = poor_fit(8)
    frames = FakeFrames(expected, 1.1)
    monkeypatch.setattr(reconstruction, "_reconstruct_frame", frames)
    cfg = RunConfig(device="cpu", method=Method.HIO, seed=0, poor_fit_starts=12, poor_fit_generations=3).validate()
    kept = reconstruction._more_starts_challenge(result, measurement, cfg, cfg.to_dict(), None, None)
    record = kept.method_choice["starts"]
    assert record["runs"]["more starts"] == 12 and record["generations"] == 3
    assert record["seeds"]["more starts"] == [4, 15]
    assert "12 more starts in 3 generations fit" in record["reason"]
    assert more_starts_line(record).endswith(f"1.1 from 12 more bred in 3 generations, z {record['margin_z']:.2f}")
