"""``--init RESULT.cxi``: every run starts from a previous result (cdi_dip.previous_result)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cdi_dip.cli.app import app
from cdi_dip.config.init_choice import parse_init
from cdi_dip.errors import InvalidInputError
from cdi_dip.learned.initialiser import perturbed
from cdi_dip.ensemble.fourier import centred_fft
from cdi_dip.previous_result import ResultStart, result_start


def _reconstruct(*args: str) -> dict:
    result = CliRunner().invoke(app, ["reconstruct", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def first(scan, tmp_path_factory):
    """One HIO run's written result (a single run: its object is a fixed point the ER steps keep)."""
    out = tmp_path_factory.mktemp("first")
    return _reconstruct(str(scan), "--out", str(out), "--method", "hio", "-n", "200", "--runs", "1",
                        "--psf", "none", "--background", "none")


@pytest.mark.parametrize("text, kind", [("random", "random"), ("learned", "learned"),
                                        ("learned:m.pt", "learned"), ("out/c/c.cxi", "result"),
                                        ("out/c", "result")])
def test_parse_init_names_every_kind(text, kind):
    assert parse_init(text)[0] == kind


@pytest.mark.parametrize("text", ["", "  ", "learned:"])
def test_parse_init_refuses_an_empty_choice(text):
    with pytest.raises(InvalidInputError, match="give random, learned"):
        parse_init(text)


def test_er_from_the_result_keeps_its_fit_where_er_from_random_phases_does_not(scan, first, tmp_path):
    common = [str(scan), "--method", "er", "-n", "5", "--runs", "1", "--psf", "none", "--background", "none"]
    refined = _reconstruct(*common, "--out", str(tmp_path / "a"), "--init", first["output"])
    fresh = _reconstruct(*common, "--out", str(tmp_path / "b"))
    r_first, r_refined = first["metrics"]["r_factor"], refined["metrics"]["r_factor"]
    assert refined["config"]["init"] == first["output"]
    # ER only projects: from a converged object on its own support, five steps barely move the fit.
    assert r_refined <= 1.2 * r_first + 0.01
    assert r_refined < 0.5 * fresh["metrics"]["r_factor"]


def test_projection_methods_hold_the_results_support(scan, first, tmp_path):
    refined = _reconstruct(str(scan), "--out", str(tmp_path), "--method", "hio", "-n", "60", "--runs", "1",
                           "--psf", "none", "--background", "none", "--init", first["output"])
    import h5py

    with h5py.File(refined["output"]) as f:
        solver = json.loads(f["entry_1/image_1/process_1/results/solver"][()])
        support = f["entry_1/image_1/mask"][()] != 0
    with h5py.File(first["output"]) as f:
        held = f["entry_1/image_1/mask"][()] != 0
    assert solver["initial_support"] == "previous result, held" and solver["shrinkwrap"] == "off"
    assert support.sum() == held.sum()  # moved by alignment at most, never reshaped


def test_the_start_is_the_restored_object_scaled_to_the_counts_then_perturbed(first):
    start = result_start(first["output"], (32, 32))
    counts = torch.rand(32, 32) * 100
    problem = type("P", (), {"counts": counts, "fit": torch.ones(32, 32, dtype=torch.bool),
                             "device": torch.device("cpu")})()
    support = start.initial_support(problem)
    rng = torch.Generator().manual_seed(0)
    one = start(problem, support, rng=rng)
    assert not bool(one[~support].abs().any())
    magnitude = torch.from_numpy(np.abs(centred_fft(one.numpy())))
    # least-squares scale: sum sqrt(n) |F x| = sum |F x|^2
    assert float((counts.sqrt() * magnitude).sum()) == pytest.approx(float(magnitude.square().sum()), rel=1e-3)
    two = start(problem, support, rng=rng)
    relative = float((two - one).abs().square().sum() / one.abs().square().sum()) ** 0.5
    assert 0.1 < relative < 0.3  # 20 % of its RMS inside the support


def test_no_perturbation_draws_nothing():
    obj, support = torch.ones(4, 4, dtype=torch.complex64), torch.ones(4, 4, dtype=torch.bool)
    a, b = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    perturbed(obj, support, 0.0, rng=a)
    assert torch.equal(torch.rand(3, generator=a), torch.rand(3, generator=b))


def test_on_another_frame_the_far_field_is_kept_on_the_shared_pixels():
    rng = np.random.default_rng(0)
    obj = np.zeros((16, 16), complex)
    obj[5:11, 6:10] = rng.normal(size=(6, 4)) + 1j * rng.normal(size=(6, 4))
    wider = ResultStart(obj, np.abs(obj) > 0, source="x.cxi").on_frame((24, 24))
    field = centred_fft(wider._obj)[4:20, 4:20]
    np.testing.assert_allclose(field, centred_fft(obj), atol=1e-4 * np.abs(field).max())
    assert wider.frame == (24, 24) and wider._support.sum() > 0


def test_a_result_of_another_dimensionality_is_refused(first):
    with pytest.raises(InvalidInputError, match="2D result but the data is 3D"):
        result_start(first["output"], (8, 8, 8))


@pytest.mark.parametrize("which", ["missing", "scan"])
def test_a_missing_or_foreign_start_exits_2_before_anything_is_written(which, scan, tmp_path):
    start = tmp_path / "nothere.cxi" if which == "missing" else scan
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["reconstruct", str(scan), "--out", str(out), "--init", str(start)])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "--init" in result.stderr and "Traceback" not in result.output
    assert not out.exists() or not any(out.iterdir())


def test_a_result_folder_that_would_replace_the_start_is_refused(scan, first, tmp_path):
    out = tmp_path / "out"
    _reconstruct(str(scan), "--out", str(out), "--method", "er", "-n", "2", "--runs", "1", "--psf", "none",
                 "--init", first["output"])
    written = next((out / "c").glob("*.cxi"))
    before = written.read_bytes()
    result = CliRunner().invoke(app, ["reconstruct", str(scan), "--out", str(out), "--method", "er", "-n", "2",
                                      "--init", str(written)])
    assert result.exit_code == 2 and "holds the input" in result.stderr
    assert written.read_bytes() == before


def test_method_net_does_not_start_from_a_result(scan, first, tmp_path):
    result = CliRunner().invoke(app, ["reconstruct", str(scan), "--out", str(tmp_path), "--method", "net",
                                      "--init", first["output"]])
    assert result.exit_code == 2 and "--method net" in result.stderr
