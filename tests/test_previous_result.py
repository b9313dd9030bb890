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
from cdi_dip.io.cxi import write_measurement_cxi
from cdi_dip.io.result_cxi import read_result_cxi
from cdi_dip.previous_result import (ResultStart, resampled, result_file, result_start, same_array_pixels,
                                     voxel_scale)
from cdi_dip.types import Measurement, ScanMeta


def _frame(shape: tuple[int, ...], roi: list[tuple[int, int]] | None = None,
           meta: ScanMeta | None = None) -> Measurement:
    """A prepared measurement of ``shape`` (no counts needed) on the detector region ``roi``."""
    return Measurement(intensity=np.zeros(shape, np.float32), valid=np.ones(shape, bool), meta=meta or ScanMeta(),
                       roi=roi or [])


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
    start = result_start(first["output"], read_result_cxi(first["output"]).result.measurement)
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
        result_start(first["output"], _frame((8, 8, 8)))


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


def _disc(shape: tuple[int, ...], radius: float) -> np.ndarray:
    grid = np.indices(shape) - np.array([n // 2 for n in shape]).reshape((-1,) + (1,) * len(shape))
    return np.sqrt((grid.astype(float) ** 2).sum(axis=0)) <= radius


def test_resampling_keeps_the_centre_and_scales_the_extent():
    coarse = _disc((32, 32), 6.0).astype(float)
    fine = resampled(coarse, (2.0, 2.0), (64, 64))
    assert fine.shape == (64, 64) and fine[32, 32] == pytest.approx(1.0)
    # a disc of radius 6 coarse voxels is the disc of radius 12 fine ones, to a pixel at its edge
    inside, truth = fine >= 0.5, _disc((64, 64), 12.0)
    assert (inside & truth).sum() / (inside | truth).sum() > 0.85
    np.testing.assert_allclose(resampled(coarse, (1.0, 1.0), (32, 32)), coarse)
    # beyond the array it is zero, not its edge repeated
    assert resampled(np.ones((4, 4)), (1.0, 1.0), (8, 8))[0, 0] == 0.0


def test_the_voxel_scale_comes_from_the_geometry_then_the_detector_regions():
    ours = _frame((32, 32), roi=[(0, 32), (0, 32)])
    binned = _frame((16, 16), roi=[(0, 32), (0, 32)])  # the same detector pixels, summed two by two
    scale, evidence = voxel_scale(binned, (16, 16), ours)
    assert evidence == "detector regions" and scale == pytest.approx((1.0, 1.0))
    assert not same_array_pixels(scale, (16, 16), (32, 32))  # same voxels, half the frame: not a frame cut
    cut = _frame((16, 16), roi=[(8, 24), (8, 24)])  # the centre of the same detector, unbinned
    scale, _ = voxel_scale(cut, (16, 16), ours)
    assert scale == pytest.approx((2.0, 2.0)) and same_array_pixels(scale, (16, 16), (32, 32))
    near, far = (ScanMeta(wavelength_m=1e-10, distance_m=d, pixel_size_m=(5e-5, 5e-5)) for d in (1.0, 2.0))
    scale, evidence = voxel_scale(_frame((32, 32), meta=far), (32, 32), _frame((32, 32), meta=near))
    assert evidence == "geometry" and scale == pytest.approx((2.0, 2.0))  # twice the distance: twice the voxel
    assert voxel_scale(_frame((16, 16)), (16, 16), _frame((32, 32)))[1] == "assumed"


@pytest.fixture(scope="module")
def small_crystal(tmp_path_factory):
    """A 32x32 pattern of a crystal 8 px across (oversampled about 4 times: twice still, binned 2x2)."""
    rng = np.random.default_rng(3)
    obj = np.zeros((32, 32), complex)
    yy, xx = np.indices((8, 8)) - 3.5
    obj[12:20, 12:20] = (np.abs(yy) + np.abs(xx) <= 5.5) * np.exp(0.3j * yy)
    counts = rng.poisson(1e6 * np.abs(centred_fft(obj)) ** 2 / (np.abs(centred_fft(obj)) ** 2).max())
    path = tmp_path_factory.mktemp("small") / "small.cxi"
    write_measurement_cxi(path, counts.astype(np.float32), ground_truth=obj)
    return path


def test_a_result_of_the_scan_binned_starts_it_unbinned(small_crystal, tmp_path):
    scan = small_crystal
    binned = _reconstruct(str(scan), "--out", str(tmp_path / "binned"), "--bin", "2", "--method", "hio", "-n", "200",
                          "--runs", "1", "--psf", "none", "--background", "none")
    common = [str(scan), "--method", "er", "-n", "5", "--runs", "1", "--psf", "none", "--background", "none"]
    refined = _reconstruct(*common, "--out", str(tmp_path / "a"), "--init", binned["output"])
    fresh = _reconstruct(*common, "--out", str(tmp_path / "b"))
    assert refined["metrics"]["r_factor"] < 0.5 * fresh["metrics"]["r_factor"]
    start = result_start(binned["output"], read_result_cxi(fresh["output"]).result.measurement)
    assert start.frame == (32, 32)
    # binned 2x2 on a frame half as wide, its voxels are this frame's: the support keeps its size
    written = read_result_cxi(binned["output"]).result.support.sum()
    assert written <= start._support.sum() <= 2 * written + 4 * np.sqrt(written) + 4


def test_a_bragg_results_folder_is_read_past_its_strain_file(tmp_path):
    (tmp_path / "scan.cxi").write_bytes(b"")
    (tmp_path / "strain.cxi").write_bytes(b"")  # what cdi-dip strain (and --strain auto) writes beside it
    assert result_file(tmp_path) == tmp_path / "scan.cxi"
    (tmp_path / "other.cxi").write_bytes(b"")
    with pytest.raises(InvalidInputError, match="2 .cxi files"):
        result_file(tmp_path)
