"""A time budget: past it no challenger of the result starts, and the result says what was not tried."""

from __future__ import annotations

import numpy as np
import pytest

from cdi_dip import reconstruction
from cdi_dip.config import Method, RunConfig
from cdi_dip.config.psf import parse_psf
from cdi_dip.report.lines import more_starts_line
from cdi_dip.time_budget import budget_spent, challenge_running, count_work, first_pass_goes_on, time_budget

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


def _budget_effect_script():
    """``benchmarks/time_budget_effect.py`` as a module."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "time_budget_effect.py"
    spec = importlib.util.spec_from_file_location("time_budget_effect", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_budgets_effect_is_read_off_the_challenges_start_times():
    script = _budget_effect_script()
    row = {"label": "case", "solve_s": 100.0,
           "coherence": {"challenged": True, "chosen": "fitted kernel", "started_s": 10.0, "seconds": 50.0},
           "starts": {"challenged": True, "chosen": "first starts", "started_s": 60.0, "seconds": 30.0},
           "margin": {"challenged": False, "chosen": "measured frame"}}
    unchallenged = {"label": "other", "solve_s": 20.0, "starts": None}
    assert script.first_pass_s(row) == 10.0 and script.first_pass_s(unchallenged) == 20.0
    late = script.effect([row, unchallenged], "30")  # the more starts began at 60 s: skipped, and they had lost
    assert (late["skipped"], late["wins_lost"], late["seconds_saved"], late["seconds"]) == (1, 0, 30.0, 120.0)
    early = script.effect([row], "5")  # both skipped; the kernel had won
    assert (early["skipped"], early["wins_lost"], early["cases_changed"]) == (2, 1, ["case"])
    relative = script.effect([row], "x2")  # twice the 10 s first pass: the kernel (at 10 s) still runs
    assert (relative["skipped"], relative["wins_lost"]) == (1, 0)


def test_a_challenge_inside_a_skipped_one_goes_with_it():
    script = _budget_effect_script()
    row = {"label": "case", "solve_s": 360.0,  # more starts kept, with their own coherence challenge inside them
           "starts": {"challenged": True, "chosen": "more starts", "started_s": 77.0, "seconds": 100.0},
           "coherence": {"challenged": True, "chosen": "fitted kernel", "started_s": 92.0, "seconds": 80.0},
           "margin": {"challenged": True, "chosen": "measured frame", "started_s": 178.0, "seconds": 180.0}}
    outer = script.effect([row], "60")  # the more starts are skipped, and the kernel inside them with them
    assert (outer["skipped"], outer["wins_lost"], outer["seconds_saved"]) == (2, 1, 280.0)
    inner = script.effect([row], "80")  # the more starts run; the kernel inside them, started at 92 s, does not
    assert (inner["skipped"], inner["wins_lost"], inner["seconds_saved"]) == (2, 1, 260.0)


def test_a_relative_budget_is_read_in_work_and_lets_a_started_challenge_finish_whole():
    script = _budget_effect_script()
    row = {"label": "case", "solve_s": 60.0,  # a frame margin kept, with its own background challenge inside it
           "margin": {"challenged": True, "chosen": "with a margin", "started_s": 20.0, "seconds": 34.0,
                      "started_work": 100.0, "work": 180.0},
           "background": {"challenged": True, "chosen": "background", "started_s": 38.0, "seconds": 16.0,
                          "started_work": 190.0, "work": 80.0},
           "starts": {"challenged": True, "chosen": "first starts", "started_s": 56.0, "seconds": 4.0,
                      "started_work": 280.0, "work": 20.0}}
    assert script.skip_rule("x2", row) == ("started_work", 200.0)  # twice the work before the first challenge
    found = script.effect([row], "x1.5")  # the background (x1.9) runs inside the margin; the more starts do not
    assert (found["skipped"], found["wins_lost"], found["seconds_saved"]) == (1, 0, 4.0)
    seconds = script.effect([row], "30")  # a budget in seconds stops the background inside the margin
    assert (seconds["skipped"], seconds["wins_lost"]) == (2, 1)


class _Clock:
    """A monotonic clock moved by hand (seconds)."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_a_relative_budget_lets_the_first_challenger_start_and_stops_one_past_k_first_passes(monkeypatch):
    from cdi_dip import time_budget as budget_module

    clock = _Clock()
    monkeypatch.setattr(budget_module.time, "monotonic", clock)
    with time_budget(None, 3.0):
        count_work(10e6)  # the first pass transformed 10 M voxels
        clock.now += 1e6  # and the seconds do not count
        assert not budget_spent()  # the first challenger always starts; the limit is now 30 M voxels
        count_work(15e6)
        assert not budget_spent()
        count_work(5e6)
        assert budget_spent()
        with challenge_running():  # a challenge that started finishes: its candidates, its own reconstruction
            assert not budget_spent()
            with time_budget(None, 3.0):
                assert not budget_spent()
        reason = budget_module.not_tried("more starts")
        assert reason == ("not tried: 3 times the first pass's work (10 M voxels transformed) was spent "
                          "(--challenge-time-factor)")
    with time_budget(100.0, 3.0):  # the deadline in seconds holds beside the relative limit
        count_work(50e6)
        assert not budget_spent()
        clock.now += 110.0
        assert budget_spent()
        assert "the time budget of 100 s" in budget_module.not_tried("more starts")
        with challenge_running():  # the budget in seconds holds inside a challenge too
            assert budget_spent()


def test_work_is_counted_by_the_forward_model_inside_a_reconstruction_only():
    import torch

    from cdi_dip.physics import FarField
    from cdi_dip.time_budget import challenge_started, challenge_timing

    physics = FarField((8, 16))
    field = torch.zeros((2, 8, 16), dtype=torch.complex64)  # two runs side by side: 256 voxels a transform
    physics.fft(field)  # outside a reconstruction: nothing to count into
    assert challenge_started() is None
    with time_budget(None):
        physics.ifft(physics.fft(field))
        started = challenge_started()
        assert started.work == 512 / 1e6
        with time_budget(3600):  # a reconstruction inside another counts into the outer one
            physics.fft(field)
        timing = challenge_timing(started)
    assert timing["started_work"] == 512 / 1e6 and timing["work"] == 256 / 1e6


def test_the_same_work_gives_the_same_challenges_however_busy_the_machine(monkeypatch):
    """The relative budget counts work, so a machine that turns busy during the challenges (here, each takes
    ten times the seconds) tries the same challengers as a quiet one: what a seed fixes, the result, stays
    fixed (a budget in seconds tried one challenger fewer on the busy machine)."""
    import torch

    from cdi_dip import time_budget as budget_module
    from cdi_dip.physics import FarField

    physics = FarField((16, 16))
    frame = torch.zeros((16, 16), dtype=torch.complex64)
    clock = _Clock()
    monkeypatch.setattr(budget_module.time, "monotonic", clock)

    def transforms(count: int, seconds_each: float) -> None:
        for _ in range(count):
            physics.fft(frame)
            clock.now += seconds_each

    def challenges(busy: bool) -> list[bool]:
        allowed = []
        with time_budget(None, 3.0):
            transforms(3, 1.0)  # the first pass
            for _ in range(4):  # challengers of three transforms each: two fit in three first passes
                allowed.append(not budget_spent())
                if allowed[-1]:
                    transforms(3, 10.0 if busy else 1.0)
        return allowed

    assert challenges(busy=False) == challenges(busy=True) == [True, True, False, False]


def test_the_relative_budget_defaults_by_dimensions():
    cfg = RunConfig(device="cpu").validate()
    assert reconstruction.challenge_time_factor(cfg, 2) == 3.0
    assert reconstruction.challenge_time_factor(cfg, 3) is None
    off = RunConfig(device="cpu", challenge_time_factor=0).validate()
    assert reconstruction.challenge_time_factor(off, 2) is None
    asked = RunConfig(device="cpu", challenge_time_factor=5).validate()
    assert reconstruction.challenge_time_factor(asked, 3) == 5


def test_a_pass_without_hot_pixels_starts_the_relative_budget_again():
    with time_budget(None, 3.0):
        count_work(10.0)
        assert not budget_spent()  # a challenge of the first pass: the limit is 30
        count_work(25.0)  # the hot pixels found, the frame reconstructed again
        first_pass_goes_on()
        assert not budget_spent()  # the second pass's first challenge: the limit is 3 x 35 now
        count_work(60.0)
        assert not budget_spent()
        count_work(15.0)
        assert budget_spent()
