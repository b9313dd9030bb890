"""Data preparation from the command line: detector corrections, defects, masks in the result, inspect."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from cdi_dip.cli import app
from cdi_dip.simulate import plant_defects, simulate_scan

runner = CliRunner()


@pytest.fixture(scope="module")
def raw_frames(tmp_path_factory):
    """A 3D rocking curve as TIFF frames, the region 8:40, 4:36 of a 48x40 detector, with its dark and flat."""
    folder = tmp_path_factory.mktemp("raw")
    rng = np.random.default_rng(5)
    counts = simulate_scan("crystal", (24, 32, 32), rng=rng, peak_counts=2e4).counts
    dark = np.zeros((48, 40), dtype=np.int32)
    dark[8 + 3, 4 + 5] = 4  # counts without beam
    flat = np.full((48, 40), 1000.0, dtype=np.float32) + rng.normal(0, 10, (48, 40)).astype(np.float32)
    flat[8 + 20, 4 + 2] = 100.0  # an insensitive pixel
    frames = folder / "frames"
    frames.mkdir()
    for index, frame in enumerate(counts):
        tifffile.imwrite(frames / f"scan_{index:03d}.tif", frame.astype(np.int32))
    tifffile.imwrite(folder / "dark.tif", dark)
    tifffile.imwrite(folder / "flat.tif", flat)
    return frames, folder / "dark.tif", folder / "flat.tif"


def test_reconstruct_corrects_the_frames_and_writes_the_masks_by_reason(raw_frames, tmp_path):
    frames, dark, flat = raw_frames
    result = runner.invoke(app, ["reconstruct", str(frames), "--dark", str(dark), "--flat", str(flat),
                                 "--roi", "8,40,4,36", "--out", str(tmp_path), "--json", "--device", "cpu",
                                 "--plan", "20*HIO+10*ER", "--runs", "1", "--noise", "amplitude"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["excluded"]["dark"] > 0 and summary["excluded"]["flat"] > 0
    assert {"llk_amplitude", "free_llk_amplitude", "llk_poisson"} <= summary["metrics"].keys()
    (y0, y1), (x0, x1) = summary["roi"][1:]
    assert 8 <= y0 < y1 <= 40 and 4 <= x0 < x1 <= 36  # detector pixels
    with h5py.File(summary["output"], "r") as file:
        masks = file["/entry_1/image_1/process_1/masks"]
        assert {"valid", "free", "excluded"} <= set(masks)
        dark_mask = masks["excluded/dark"][()].astype(bool)
        valid = masks["valid"][()].astype(bool)
        assert dark_mask.any() and not (dark_mask & valid).any()
        assert dark_mask.shape == valid.shape == tuple(summary["shape"])


def test_inspect_finds_the_defects_and_draws_them(tmp_path):
    rng = np.random.default_rng(2)
    counts = simulate_scan("crystal", (96, 96), rng=rng, peak_counts=1e5, offset_px=(2, -1)).counts
    planted = plant_defects(counts, rng=rng, beamstop_radius_px=3, gap_px=2, hot=5, saturated_regions=2)
    path = tmp_path / "faulty.npy"
    np.save(path, planted.counts)
    png = tmp_path / "masks.png"
    result = runner.invoke(app, ["inspect", str(path), "--json", "--png", str(png)])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    for reason, truth in planted.truth.items():
        assert info["excluded"][reason] >= truth.sum(), reason
    assert info["excluded"]["hot"] == 5 and info["excluded"]["gap"] == 2 * 96
    assert info["preparation"]["clipping_plateau_counts"] == planted.saturation_counts
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args, needle", [
    (["--roi", "1,2,3"], "--roi"),
    (["--bin", "x"], "--bin"),
    (["--aliens", "maybe"], "aliens"),
    (["--noise", "cauchy"], "noise"),
    (["--dark", "missing_dark.tif"], "missing_dark.tif"),
])
def test_bad_preparation_options_are_one_line_and_exit_2(raw_frames, tmp_path, args, needle):
    frames, _, _ = raw_frames
    result = runner.invoke(app, ["reconstruct", str(frames), "--out", str(tmp_path / "out"), *args])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()
