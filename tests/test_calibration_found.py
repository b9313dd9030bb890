"""The dark and flat beside a folder of raw frames, and the detector region from metadata.json."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from cdi_dip.cli import app
from cdi_dip.config import RunConfig
from cdi_dip.io.calibration import find_calibration, resolve_calibration
from cdi_dip.io.metadata import read_metadata
from cdi_dip.pipeline import scan_inputs
from cdi_dip.simulate import far_field, simulate_scan

runner = CliRunner()

DETECTOR = (48, 40)
REGION = (8, 40, 4, 36)  # y0, y1, x0, x1 of the frames on the detector


def _gain_map(rng: np.random.Generator) -> np.ndarray:
    """Pixel sensitivities around 1 with a 20 % spread (a Timepix's is about that)."""
    return np.clip(rng.normal(1.0, 0.2, DETECTOR), 0.5, 1.5)


def _scan_folder(root, *, with_metadata: bool = True, gain: np.ndarray | None = None, seed: int = 5):
    """``root/frames/*.tif`` (a 16x32x32 rocking curve read from REGION of the detector), dark.tif and
    whitefield.tif beside the frames folder, and a metadata.json naming the region."""
    rng = np.random.default_rng(seed)
    scan = simulate_scan("crystal", (16, 32, 32), rng=rng, peak_counts=2e4)
    expected = np.abs(far_field(scan.ground_truth)) ** 2
    y0, y1, x0, x1 = REGION
    gain = np.ones(DETECTOR) if gain is None else gain
    counts = rng.poisson(expected * gain[y0:y1, x0:x1])
    frames = root / "frames"
    frames.mkdir(parents=True)
    for index, frame in enumerate(counts):
        tifffile.imwrite(frames / f"scan_{index:03d}.tif", frame.astype(np.int32))
    dark = np.zeros(DETECTOR, dtype=np.int32)
    dark[y0 + 3, x0 + 5] = 4  # a pixel counting without beam
    tifffile.imwrite(root / "dark.tif", dark)
    tifffile.imwrite(root / "whitefield.tif", (1000.0 * gain).astype(np.float32))
    if with_metadata:
        (root / "metadata.json").write_text(json.dumps({"detector_roi_start_size": [y0, y1 - y0, x0, x1 - x0]}))
    return frames


def test_found_beside_a_frames_folder_never_among_the_frames(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    for name in ("a_001.tif", "a_002.tif", "dark.tif"):  # a dark.tif among the frames is a frame
        tifffile.imwrite(frames / name, np.zeros((4, 4), np.int32))
    tifffile.imwrite(tmp_path / "WhiteField.TIF", np.ones((4, 4), np.float32))
    found = find_calibration(str(frames))
    assert found == {"flat": str(tmp_path / "WhiteField.TIF")}
    assert find_calibration(str(frames / "a_*.tif")) == {"dark": str(frames / "dark.tif"),
                                                          "flat": str(tmp_path / "WhiteField.TIF")}


def test_not_looked_for_beside_a_single_file(tmp_path):
    np.save(tmp_path / "scan.npy", np.zeros((8, 8)))
    tifffile.imwrite(tmp_path / "dark.tif", np.zeros((8, 8), np.int32))
    assert find_calibration(str(tmp_path / "scan.npy")) == {}


def test_two_candidates_for_one_role_are_ambiguous(tmp_path, caplog):
    frames = tmp_path / "frames"
    frames.mkdir()
    tifffile.imwrite(frames / "a_001.tif", np.zeros((4, 4), np.int32))
    for name in ("flat.tif", "whitefield.npy"):
        (tmp_path / name).write_bytes(b"")
    with caplog.at_level(logging.WARNING):
        assert "flat" not in find_calibration(str(frames))
    assert "could each be the flat" in caplog.text


def test_given_files_win_and_none_turns_the_search_off(tmp_path):
    frames = _scan_folder(tmp_path)
    found = resolve_calibration(str(frames), None, None)
    assert found.dark == str(tmp_path / "dark.tif") and found.flat == str(tmp_path / "whitefield.tif")
    assert set(found.found) == {"dark", "flat"}
    given = resolve_calibration(str(frames), "other_dark.tif", "none")
    assert (given.dark, given.flat, given.found) == ("other_dark.tif", None, {})
    cfg = RunConfig()
    assert scan_inputs(str(frames), cfg) == [str(frames), str(tmp_path / "dark.tif"), str(tmp_path / "whitefield.tif")]


@pytest.mark.parametrize("record, region", [
    ({"detector_roi_start_size": [8, 32, 4, 32]}, (8, 40, 4, 36)),
    ({"detector_roi": [8, 40, 4, 36]}, (8, 40, 4, 36)),
    ({"detector_roi_start_size": [8, 0, 4, 32]}, None),
    ({"detector_roi_start_size": [8.5, 32, 4, 32]}, None),
    ({"detector_roi": [8, 40, 4]}, None),
])
def test_detector_region_from_metadata(tmp_path, record, region):
    path = tmp_path / "metadata.json"
    path.write_text(json.dumps(record))
    assert read_metadata(path).detector_roi == region


def _inspect(frames, *args):
    result = runner.invoke(app, ["inspect", str(frames), "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_inspect_applies_the_found_calibration_cut_to_the_metadata_region(tmp_path):
    frames = _scan_folder(tmp_path)
    info = _inspect(frames)
    note = info["preparation"]["calibration"]
    assert note["used"] and note["detector_region"] == [[8, 40], [4, 36]]
    assert info["excluded_detector_px"]["dark"] == 1
    skipped = _inspect(frames, "--dark", "none", "--flat", "none")
    assert "calibration" not in skipped["preparation"] and "dark" not in skipped["excluded"]


def test_found_calibration_that_does_not_fit_is_left_out_with_a_reason(tmp_path):
    frames = _scan_folder(tmp_path, with_metadata=False)  # 48x40 calibration, 32x32 frames, no region
    note = _inspect(frames)["preparation"]["calibration"]
    assert note["used"] is False and "does not match" in note["why"]
    given = runner.invoke(app, ["inspect", str(frames), "--dark", str(tmp_path / "dark.tif")])
    assert given.exit_code == 2  # a file the user named must fit


def test_the_found_flat_brings_the_fit_to_the_noise_level(tmp_path):
    """Counts recorded with 20 % pixel-to-pixel sensitivity: the coherent model fits them only once the
    flat found beside the frames divides it out. A 20 % gain error on a pixel of I counts adds about
    0.04 I to its deviance, thousands of counts near the peak; corrected, the fit comes near the
    noise level (a free deviance per pixel of order 1)."""
    frames = _scan_folder(tmp_path, gain=_gain_map(np.random.default_rng(11)))
    common = ["--json", "--device", "cpu", "--plan", "200*HIO+50*ER", "--runs", "2", "--seed", "0"]
    llk = {}
    for label, extra in (("found", []), ("none", ["--flat", "none"])):
        result = runner.invoke(app, ["reconstruct", str(frames), "--out", str(tmp_path / label), *common, *extra])
        assert result.exit_code == 0, result.output
        llk[label] = json.loads(result.output)["metrics"]["free_llk_poisson"]
    assert llk["found"] < 3 and llk["found"] < 0.5 * llk["none"], llk


def test_the_real_scan_folder_gives_its_calibration_and_region():
    """The 34-ID-C layout: frames/, dark.tif and whitefield.tif beside it, metadata.json naming 0:256, 0:256."""
    from pathlib import Path

    from cdi_dip.io.metadata import find_metadata

    frames = Path(__file__).resolve().parents[2] / "shared" / "data" / "aps34idc_scan54" / "frames"
    if not frames.is_dir():
        pytest.skip(f"real data not present at {frames}")
    calibration = resolve_calibration(str(frames), None, None)
    assert (Path(calibration.dark).name, Path(calibration.flat).name) == ("dark.tif", "whitefield.tif")
    assert read_metadata(find_metadata(frames)).detector_roi == (0, 256, 0, 256)


def test_an_ambiguous_calibration_is_reported_once_per_scan(tmp_path, caplog):
    frames = _scan_folder(tmp_path)
    np.save(tmp_path / "flat.npy", np.ones(DETECTOR, np.float32))  # a second flat beside whitefield.tif
    with caplog.at_level(logging.WARNING):
        result = runner.invoke(app, ["reconstruct", str(frames), "--out", str(tmp_path / "out"), "--json",
                                     "--device", "cpu", "--plan", "5*ER", "--runs", "1", "--seed", "0"])
    assert result.exit_code == 0, result.output
    assert caplog.text.count("could each be the flat") == 1
