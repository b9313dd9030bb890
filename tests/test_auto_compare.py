"""``auto`` on a crystal runs the double DIP, then HIO, and keeps the lower free Poisson deviance."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from cdi_dip.config import DipConfig, Method, RunConfig
from cdi_dip.io.result_cxi import read_result_cxi
from cdi_dip.pipeline import reconstruct_scan
from cdi_dip.reconstruction import _better_by_free_likelihood
from cdi_dip.simulate import simulate_scan, write_simulated_scan

TINY_DIP = DipConfig(warm_start_runs=1, prefit_iterations=10, warmup_iterations=0, probes=1, probe_iterations=5,
                     channels=4, depth=1, polish_iterations=0, learning_rate=0.02)


def _fake(method: str, free_llk: float | None, wall_s: float = 1.0) -> SimpleNamespace:
    metrics = {} if free_llk is None else {"free_llk_poisson": free_llk}
    return SimpleNamespace(method=method, metrics=metrics, wall_s=wall_s, method_choice={})


@pytest.mark.parametrize("dip_llk, hio_llk, chosen", [(1.2, 3.4, "dip"), (5.0, 1.1, "hio"), (2.0, 2.0, "dip")])
def test_the_lower_free_deviance_wins_and_both_are_recorded(dip_llk, hio_llk, chosen):
    winner = _better_by_free_likelihood(_fake("dip", dip_llk, 10.0), _fake("hio", hio_llk, 2.0))
    assert winner.method == chosen
    assert winner.wall_s == 12.0  # the user waited for both
    assert winner.method_choice["compared"] and winner.method_choice["chosen"] == chosen
    assert winner.method_choice["free_llk_poisson"] == {"dip": dip_llk, "hio": hio_llk}


def test_without_free_pixels_the_first_result_stands():
    winner = _better_by_free_likelihood(_fake("dip", None), _fake("hio", 0.5))
    assert winner.method == "dip" and "no free-pixel deviance" in winner.method_choice["reason"]


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    path = tmp_path_factory.mktemp("scan") / "tiny.cxi"
    write_simulated_scan(path, simulate_scan("crystal", (32, 32), rng=np.random.default_rng(3), peak_counts=1e5))
    return str(path)


def test_auto_on_a_crystal_compares_and_says_so(scan, tmp_path):
    cfg = RunConfig(device="cpu", iterations=30, seed=0, dip=TINY_DIP, psf="none", poor_fit_starts=0,
                    frame_margin=1.0).validate()  # the methods only: no challenger of a poor fit
    summary = reconstruct_scan(scan, cfg, tmp_path)
    choice = summary["method_choice"]
    assert choice["compared"] and set(choice["free_llk_poisson"]) == {"dip", "hio"}
    assert choice["auto"]["kind"] == "crystal" and choice["auto"]["method"] == "dip"
    assert choice["auto"]["friedel_asymmetry"] > choice["auto"]["threshold"]
    scores = choice["free_llk_poisson"]
    assert choice["chosen"] == summary["method"] == min(scores, key=scores.get)
    assert summary["metrics"]["free_llk_poisson"] == pytest.approx(scores[summary["method"]])
    assert read_result_cxi(Path(summary["output"])).result.method_choice == choice
    assert json.loads((Path(summary["output"]).parent / "summary.json").read_text())["method_choice"] == choice


def test_no_comparison_when_switched_off_or_a_method_is_named(scan, tmp_path):
    off = RunConfig(device="cpu", iterations=30, seed=0, dip=TINY_DIP, auto_compare=False, psf="none",
                    background="none", poor_fit_dip_starts=0).validate()  # methods only
    summary = reconstruct_scan(scan, off, tmp_path / "off")
    # what auto read, no comparison of methods (the frame-margin challenge is a decision of its own)
    assert summary["method"] == "dip" and set(summary["method_choice"]) - {"margin"} == {"auto"}
    assert summary["method_choice"]["auto"]["kind"] == "crystal"
    named = RunConfig(device="cpu", method=Method.DIP, iterations=30, seed=0, dip=TINY_DIP, background="none",
                      poor_fit_dip_starts=0).validate()
    assert set(reconstruct_scan(scan, named, tmp_path / "named").get("method_choice", {})) <= {"margin"}


def test_the_summary_table_names_the_method_kept_and_both_deviances():
    from cdi_dip.report.lines import method_choice_line

    line = method_choice_line({"compared": True, "chosen": "hio", "free_llk_poisson": {"dip": 5.0, "hio": 1.25},
                               "reason": "lower free Poisson deviance per pixel (held-out pixels)"})
    assert line == "hio kept: free Poisson LLK dip 5, hio 1.25"
    assert method_choice_line({}) is None and method_choice_line(None) is None
    assert "interrupted" in method_choice_line({"compared": False, "reason": "interrupted during the HIO comparison"})


def test_a_failed_hio_comparison_keeps_the_double_dips_result(scan, tmp_path, monkeypatch):
    from cdi_dip import reconstruction
    from cdi_dip.errors import ReconstructionError

    run_method = reconstruction._run_method

    def failing_hio(measurement, cfg, *args, **kwargs):
        if cfg.method is Method.HIO:
            raise ReconstructionError("every run failed; the first: the HIO iterate became NaN")
        return run_method(measurement, cfg, *args, **kwargs)

    monkeypatch.setattr(reconstruction, "_run_method", failing_hio)
    cfg = RunConfig(device="cpu", iterations=30, seed=0, dip=TINY_DIP, psf="none").validate()
    summary = reconstruct_scan(scan, cfg, tmp_path)
    choice = summary["method_choice"]
    assert summary["method"] == "dip" and not choice["compared"] and "HIO comparison failed" in choice["reason"]
    assert choice["auto"]["kind"] == "crystal"
