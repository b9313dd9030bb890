"""The double DIP's iterate spread (``SolverOutput.obj_std``) reaches the user, aligned with the object."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile

from cdi_dip.config import DipConfig, Method, ProjectionConfig, RunConfig
from cdi_dip.ensemble import align_map, align_object
from cdi_dip.io.cxi import IMAGE_DATA, ITERATE_STD
from cdi_dip.io.result_cxi import read_result_cxi
from cdi_dip.io.writers import ITERATE_STD_UNITS
from cdi_dip.pipeline import reconstruct_scan
from cdi_dip.simulate import simulate_scan, write_simulated_scan
from cdi_dip.types import AlignInfo


def _smooth_object(skew: float) -> np.ndarray:
    """A smooth, off-centre 32x32 blob with a phase ramp; ``skew`` decides which twin the alignment keeps."""
    yy, xx = np.mgrid[:32, :32].astype(float)
    amplitude = np.exp(-((yy - 8.3) ** 2 / 8 + (xx - 20.6) ** 2 / 18)) * (1 + skew * 0.6 * np.tanh((xx - 20.6) / 3))
    return (amplitude * np.exp(1j * (0.3 * xx + 0.1 * yy))).astype(np.complex64)


@pytest.mark.parametrize("skew", [1.0, -1.0])
def test_align_map_moves_a_magnitude_map_as_the_object_moved(skew):
    obj = _smooth_object(skew)
    aligned, _, info = align_object(obj, np.abs(obj) > 0.05 * np.abs(obj).max())
    moved = align_map(np.abs(obj), info)
    assert moved.dtype == np.float32 and moved.shape == obj.shape and (moved >= 0).all()
    np.testing.assert_allclose(moved, np.abs(aligned), atol=1e-3)
    assert info.twin == (skew > 0)  # both branches (flip and no flip) are exercised


def test_align_map_without_a_move_is_the_identity():
    values = np.random.default_rng(0).random((6, 7)).astype(np.float32)
    np.testing.assert_array_equal(align_map(values, AlignInfo(shift_px=(0.0, 0.0))), values)


# --------------------------------------------------------------------------- through the pipeline


def _scan(folder: Path) -> str:
    scan = simulate_scan("crystal", (32, 32), rng=np.random.default_rng(3), peak_counts=1e5)
    path = folder / "tiny.cxi"
    write_simulated_scan(path, scan)
    return str(path)


def _written(summary: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, dict]:
    """The written object, support, iterate_std (None when absent) and its attributes."""
    with h5py.File(summary["output"], "r") as file:
        node = file.get(ITERATE_STD)
        std = None if node is None else node[()]
        attrs = {} if node is None else dict(node.attrs)
        return file[IMAGE_DATA][()], file["/entry_1/image_1/mask"][()] > 0, std, attrs


@pytest.fixture(scope="module")
def dip_run(tmp_path_factory):
    """One tiny double DIP with the variance early stop, written by ``reconstruct_scan``."""
    folder = tmp_path_factory.mktemp("dip")
    dip = DipConfig(warm_start_runs=1, prefit_iterations=10, warmup_iterations=0, probes=1, probe_iterations=5,
                    channels=4, depth=1, polish_iterations=0, learning_rate=0.02, patience=10_000,
                    early_stop="variance", variance_window=3, variance_patience=10)
    cfg = RunConfig(device="cpu", method=Method.DIP, iterations=40, runs=1, seed=0, dip=dip).validate()
    return reconstruct_scan(_scan(folder), cfg, folder / "out")


def test_a_double_dip_writes_its_iterate_spread_beside_the_object(dip_run):
    obj, _, std, attrs = _written(dip_run)
    assert std is not None and std.shape == obj.shape and std.dtype == np.float32
    assert np.isfinite(std).all() and (std >= 0).all() and std.max() > 0
    assert attrs["units"] == ITERATE_STD_UNITS and "standard deviation" in attrs["description"]
    stored = read_result_cxi(Path(dip_run["output"])).result.obj_std
    np.testing.assert_array_equal(stored, std)
    folder = Path(dip_run["output"]).parent
    assert str(folder / "tiny_iterate_std.tif") in dip_run["files"]
    np.testing.assert_array_equal(tifffile.imread(folder / "tiny_iterate_std.tif"), std)
    assert "iterate_std" in (folder / "tiny.vti").read_text(errors="replace")


def test_the_summary_gives_the_median_relative_spread_inside_the_support(dip_run):
    obj, support, std, _ = _written(dip_run)
    figure = json.loads((Path(dip_run["output"]).parent / "summary.json").read_text())["dip"][
        "iterate_spread_median_relative"]
    inside = support & (np.abs(obj) > 0)
    assert figure == pytest.approx(float(np.median(std[inside] / np.abs(obj[inside]))), rel=1e-5)
    assert 0 < figure < 10


def test_the_spread_is_aligned_with_the_written_object(dip_run):
    _, support, std, _ = _written(dip_run)
    inside = std[support].sum() / std.sum()
    assert inside > 0.7 and support.mean() < 0.3  # most of the spread on a small support
    back = [-int(round(s)) for s in dip_run["alignment"]["shift_px"]]
    assert any(back)  # the alignment moved the object: the test can tell
    unaligned = np.roll(support, back, axis=(0, 1))  # where the support was before the alignment's shift
    assert inside > std[unaligned].sum() / std.sum()


def test_hio_writes_no_iterate_spread(tmp_path):
    cfg = RunConfig(device="cpu", method=Method.HIO, projection=ProjectionConfig(plan="20*HIO+10*ER"), runs=1,
                    seed=0).validate()
    summary = reconstruct_scan(_scan(tmp_path), cfg, tmp_path / "out")
    assert _written(summary)[2] is None
    assert not any(name.endswith("_iterate_std.tif") for name in summary["files"])
    assert "iterate_spread_median_relative" not in summary.get("dip", {})
    assert read_result_cxi(Path(summary["output"])).result.obj_std is None
