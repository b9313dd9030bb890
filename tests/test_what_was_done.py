"""The summary says what was done: runs asked, kept, averaged and why the others were dropped; the
double DIP's early stop, polish and iterations; a warning when the fit sits far above the noise (issue 19)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cdi_dip.config import DipConfig, Method, ProjectionConfig, RunConfig
from cdi_dip.io.result_cxi import read_result_cxi
from cdi_dip.io.summary import dip_summary, fit_warning, make_summary, tight_support_hint
from cdi_dip.io.writers import write_result_cxi
from cdi_dip.pipeline import reconstruct
from cdi_dip.prepare.stages import prepare
from cdi_dip.report.html import write_report_html
from cdi_dip.simulate import simulate_scan


@pytest.fixture(scope="module")
def measurement():
    scan = simulate_scan("crystal", (32, 32), rng=np.random.default_rng(2), peak_counts=1e5)
    return prepare(scan.to_measurement("tiny"), RunConfig().prep)


def _hio(measurement, **settings):
    cfg = RunConfig(device="cpu", method=Method.HIO, projection=ProjectionConfig(plan="20*HIO+10*ER"),
                    **settings).validate()
    return reconstruct(measurement, cfg)


def test_two_hio_runs_record_asked_kept_averaged_and_why_one_was_dropped(measurement, tmp_path):
    result = _hio(measurement, runs=2, keep=2, keep_max_error=0.0)  # nobody agrees exactly with the best
    selection = result.selection
    assert (selection["asked"], selection["finished"], selection["kept"], selection["averaged"]) == (2, 2, 2, 1)
    assert selection["solver_iterations"] == sum(run["work_iterations"] for run in result.runs) == 60
    [dropped] = selection["dropped"]
    assert dropped["reason"] == "disagreed" and dropped["error"] > 0.0 and "keep_max_error 0" in dropped["detail"]
    assert [run.get("dropped") for run in result.runs if not run["averaged"]] == ["disagreed"]
    summary = make_summary(result, tmp_path, [])
    assert summary["selection"] == selection and "dip" not in summary
    # stored in the result file and read back, so `cdi-dip report` shows it too
    path = tmp_path / "tiny.cxi"
    write_result_cxi(path, result, command_line="", version="0")
    assert json.loads(json.dumps(read_result_cxi(path).result.selection)) == json.loads(json.dumps(selection))
    page = write_report_html(tmp_path / "report.html", summary).read_text()
    assert "What was done" in page and "Runs: 2 asked, 2 finished, 2 kept, 1 averaged" in page
    assert f"run {dropped['run']} (disagreed" in page


def test_a_run_beyond_the_best_k_is_dropped_as_such(measurement):
    result = _hio(measurement, runs=2, keep=1)
    selection = result.selection
    assert (selection["kept"], selection["averaged"]) == (1, 1)
    assert [entry["reason"] for entry in selection["dropped"]] == ["not among the best 1"]


def test_a_double_dip_run_records_its_early_stop_polish_and_warm_start_iterations(measurement, tmp_path):
    dip = DipConfig(warm_start_runs=1, prefit_iterations=5, warmup_iterations=2, probes=1, probe_iterations=5,
                    channels=4, depth=1, polish_iterations=5, patience=1000)
    cfg = RunConfig(device="cpu", method=Method.DIP, iterations=20, runs=1, dip=dip).validate()
    result = reconstruct(measurement, cfg)
    summary = make_summary(result, tmp_path, [])
    record = summary["dip"]
    assert record["polish"] in ("kept", "discarded") and record["polish"] == (
        "kept" if result.solver["polish_kept"] else "discarded")
    assert 0 <= record["stop_iteration"] <= record["iterations_budget"]
    assert record["work_iterations"] > 20  # the warm start's HIO and the polish count too
    assert summary["selection"]["solver_iterations"] == record["work_iterations"]
    page = write_report_html(tmp_path / "report.html", summary).read_text()
    assert "Double DIP: kept the iterate of iteration" in page and f"polish {record['polish']}" in page


def test_dip_summary_without_a_polish():
    assert dip_summary({"stop_iteration": 3, "work_iterations": 9}) == {"stop_iteration": 3, "work_iterations": 9,
                                                                       "polish": "not run"}
    assert dip_summary({}) == {}
    assert dip_summary({"stop_iteration": 3, "loss": "poisson"})["loss"] == "poisson"


def test_a_fit_far_above_the_noise_is_flagged(tmp_path):
    assert fit_warning({"free_llk_poisson": 1.1, "llk_poisson": 9.0}) is None  # the free pixels decide
    warning = fit_warning({"free_llk_poisson": 3.5})
    assert "free pixel 3.5, about 1" in warning
    assert "fitted pixel" in fit_warning({"llk_poisson": 4.0, "free_llk_poisson": float("nan")})
    assert fit_warning({}) is None
    page = write_report_html(tmp_path / "r.html", {"method": "hio", "fit_warning": warning}).read_text()
    assert "FIT WARNING" in page


def test_a_faint_pattern_is_judged_against_what_its_counts_allow():
    """Where most pixels expect a fraction of a photon a good model scores well below 1 per pixel: a deviance of
    0.87 against the 0.33 a good model would score is a poor fit (a low-flux tuning pattern's wrong object), one of
    0.5 against 0.4 is not."""
    warning = fit_warning({"free_llk_poisson": 0.87, "free_llk_poisson_expected": 0.325})
    assert "free pixel 0.87, 2.7 times the 0.33" in warning
    assert fit_warning({"free_llk_poisson": 0.5, "free_llk_poisson_expected": 0.4}) is None
    assert fit_warning({"free_llk_poisson": 1.9, "free_llk_poisson_expected": 1.002}) is None  # bright: as before


def test_a_fit_warning_says_when_the_best_run_left_much_power_outside_its_support():
    runs = [{"run": 0, "score": 4.0, "kept": True, "outside_fraction": 0.42},
            {"run": 1, "score": 4.5, "kept": True, "outside_fraction": 0.1},
            {"run": 2, "score": 3.0, "kept": False, "outside_fraction": 0.05}]  # better score, but not kept
    hint = tight_support_hint(runs, {"projection": {"final_support_margin_px": 0}})
    assert "42%" in hint and "final_support_margin_px = 2" in hint
    warning = fit_warning({"free_llk_poisson": 4.05}, hint)
    assert warning.startswith("the fit sits far above") and warning.endswith(hint)
    assert fit_warning({"free_llk_poisson": 1.2}, hint) is None  # a good fit needs no hint
    # No hint below the threshold, when the margin is already on, or without a projection run (the DIP).
    assert tight_support_hint([{**runs[0], "outside_fraction": 0.2}], {}) is None
    assert tight_support_hint(runs, {"projection": {"final_support_margin_px": 2}}) is None
    assert tight_support_hint([{"run": 0, "score": 1.0, "kept": True}], {}) is None


def test_auto_says_what_it_read_from_the_data_in_the_summary_the_page_and_the_terminal(measurement, tmp_path, capsys):
    from cdi_dip.cli.render import render_summary
    from cdi_dip.report.lines import auto_decision_line

    cfg = RunConfig(device="cpu", projection=ProjectionConfig(plan="20*HIO+10*ER"), runs=1).validate()
    result = reconstruct(measurement, cfg)  # auto with a plan: HIO, and the record says why
    summary = make_summary(result, tmp_path, [])
    record = summary["method_choice"]["auto"]
    assert record == {"kind": "unknown", "method": "hio", "reason": "a projection plan was given"}
    assert auto_decision_line(summary["method_choice"]) == "a projection plan was given"
    page = write_report_html(tmp_path / "report.html", summary).read_text()
    assert "Data: a projection plan was given." in page
    render_summary(summary)
    assert "a projection plan was given" in capsys.readouterr().out
    assert auto_decision_line({}) is None and auto_decision_line({"auto": "x"}) is None


def test_the_table_says_what_the_counts_allow_beside_a_faint_patterns_free_deviance():
    from cdi_dip.report.lines import free_deviance_text

    assert free_deviance_text({"free_llk_poisson": 0.8724, "free_llk_poisson_expected": 0.325}) == \
        "0.8724 (the counts allow 0.325)"
    assert free_deviance_text({"free_llk_poisson": 1.2, "free_llk_poisson_expected": 1.002}) == "1.2000"
    assert free_deviance_text({}) == "nan"
