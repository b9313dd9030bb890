"""Robust at the beamline (issue 8): every malformed input is one line on stderr, exit code 2,
nothing written and the input untouched; random file contents never give a traceback."""

from __future__ import annotations

import hashlib
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays
from typer.testing import CliRunner

from cdi_dip.cli import app

runner = CliRunner()
FAST = ["--device", "cpu", "--plan", "10*HIO+5*ER", "--runs", "1"]


def _pattern(shape=(32, 32)) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.poisson(50.0, size=shape).astype(np.float32)


def _cxi(path: Path, data: np.ndarray, mask: np.ndarray | None = None) -> Path:
    with h5py.File(path, "w") as file:
        file["/entry_1/instrument_1/detector_1/data"] = data
        if mask is not None:
            file["/entry_1/instrument_1/detector_1/mask"] = mask
    return path


def _not_hdf5(tmp):
    (tmp / "scan.h5").write_text("this is not HDF5\n")
    return [str(tmp / "scan.h5")], "not"


def _empty(tmp):
    (tmp / "scan.cxi").write_bytes(b"")
    return [str(tmp / "scan.cxi")], "empty"


def _truncated(tmp):
    _cxi(tmp / "full.cxi", _pattern((64, 64)))
    data = (tmp / "full.cxi").read_bytes()
    (tmp / "scan.cxi").write_bytes(data[: len(data) // 2])
    return [str(tmp / "scan.cxi")], "scan.cxi"


def _missing_dataset(tmp):
    _cxi(tmp / "scan.h5", _pattern())
    return [f"{tmp / 'scan.h5'}:/entry_1/nothing"], "nothing"


def _one_d(tmp):
    np.save(tmp / "scan.npy", np.ones(100))
    return [str(tmp / "scan.npy")], "dimensions"


def _four_d(tmp):
    np.save(tmp / "scan.npy", np.ones((2, 2, 8, 8)))
    return [str(tmp / "scan.npy")], "dimensions"


def _strings(tmp):
    np.save(tmp / "scan.npy", np.array([["a", "b"], ["c", "d"]]))
    return [str(tmp / "scan.npy")], "numeric"


def _complex(tmp):
    np.save(tmp / "scan.npy", _pattern().astype(np.complex64))
    return [str(tmp / "scan.npy")], "complex"


def _all_zero(tmp):
    np.save(tmp / "scan.npy", np.zeros((32, 32)))
    return [str(tmp / "scan.npy")], "zero"


def _all_nan(tmp):
    np.save(tmp / "scan.npy", np.full((32, 32), np.nan))
    return [str(tmp / "scan.npy")], "excluded"


def _mask_shape(tmp):
    np.save(tmp / "scan.npy", _pattern())
    np.save(tmp / "mask.npy", np.zeros((16, 32)))
    return [str(tmp / "scan.npy"), "--mask", str(tmp / "mask.npy")], "mask shape"


def _all_masked(tmp):
    _cxi(tmp / "scan.cxi", _pattern(), mask=np.ones((32, 32), np.uint32))
    return [str(tmp / "scan.cxi")], "excluded"


def _tiff_shapes(tmp):
    (tmp / "frames").mkdir()
    tifffile.imwrite(tmp / "frames" / "a_000.tif", _pattern((32, 32)))
    tifffile.imwrite(tmp / "frames" / "a_001.tif", _pattern((32, 30)))
    return [str(tmp / "frames")], "a_001.tif"


def _unreadable_tiff(tmp):
    (tmp / "scan.tif").write_bytes(b"II*\x00garbage that is not a TIFF at all")
    return [str(tmp / "scan.tif")], "scan.tif"


def _no_frames(tmp):
    (tmp / "frames").mkdir()
    (tmp / "frames" / "notes.txt").write_text("no frames here")
    return [str(tmp / "frames")], "frames"


def _missing(tmp):
    return [str(tmp / "missing.cxi")], "missing.cxi"


def _too_small(tmp):
    np.save(tmp / "scan.npy", _pattern((6, 6)))
    return [str(tmp / "scan.npy")], "small"


def _bad_config(tmp):
    np.save(tmp / "scan.npy", _pattern())
    (tmp / "run.toml").write_text("method = 'hio'\n[projection]\nshrinkwrap_thresh = 0.2\n")
    return [str(tmp / "scan.npy"), "--config", str(tmp / "run.toml")], "shrinkwrap_thresh"


def _bad_dark(tmp):
    np.save(tmp / "scan.npy", _pattern())
    np.save(tmp / "dark.npy", np.zeros((8, 8)))
    return [str(tmp / "scan.npy"), "--dark", str(tmp / "dark.npy")], "dark"


CASES = [_not_hdf5, _empty, _truncated, _missing_dataset, _one_d, _four_d, _strings, _complex, _all_zero,
         _all_nan, _mask_shape, _all_masked, _tiff_shapes, _unreadable_tiff, _no_frames, _missing, _too_small,
         _bad_config, _bad_dark]


def _fingerprint(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case", CASES, ids=[c.__name__.strip("_") for c in CASES])
def test_bad_input_is_one_line_exit_2_nothing_written_input_untouched(case, tmp_path):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    args, needle = case(inputs)
    before = _fingerprint(inputs)
    out = tmp_path / "out"
    result = runner.invoke(app, ["reconstruct", *args, "--out", str(out), *FAST])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("cdi-dip: error:"), result.stderr
    assert needle.lower() in lines[0].lower(), lines[0]
    assert "Traceback" not in result.output and result.stdout == ""
    assert not out.exists() or not any(out.iterdir())
    assert _fingerprint(inputs) == before


def test_output_below_a_file_is_exit_2(tmp_path):
    np.save(tmp_path / "scan.npy", _pattern())
    (tmp_path / "file").write_text("x")
    result = runner.invoke(app, ["reconstruct", str(tmp_path / "scan.npy"), "--out", str(tmp_path / "file" / "o"),
                                 *FAST])
    assert result.exit_code == 2 and "output directory" in result.stderr


def test_a_few_bad_pixels_are_excluded_and_reported_not_fatal(tmp_path):
    data = _pattern((32, 32))
    data[3, 4], data[5, 6], data[7, 8] = np.nan, np.inf, -3
    np.save(tmp_path / "scan.npy", data)
    result = runner.invoke(app, ["reconstruct", str(tmp_path / "scan.npy"), "--out", str(tmp_path / "o"), "--json",
                                 *FAST])
    assert result.exit_code == 0, result.output
    import json

    excluded = json.loads(result.stdout)["excluded"]
    assert excluded["nan"] == 1 and excluded["inf"] == 1 and excluded["negative"] == 1


def _check_outcome(result, out: Path) -> None:
    """Random content: success with a complete result, or one clear line with exit 2 and nothing written."""
    assert "Traceback" not in result.output
    assert result.exit_code in (0, 2), result.output
    if result.exit_code == 2:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("cdi-dip: error:")
        assert not out.exists() or not any(out.iterdir())
    else:
        folders = [p for p in out.iterdir() if not p.name.startswith(".")]
        assert len(folders) == 1 and (folders[0] / "summary.json").exists()


_shapes = array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=12)
random_arrays = st.one_of(
    arrays(dtype=st.sampled_from([np.uint8, np.int16, np.int32]), shape=_shapes),
    arrays(dtype=st.sampled_from([np.float32, np.float64]), shape=_shapes,
           elements=st.one_of(st.floats(-5, 1e4, width=32), st.sampled_from([np.nan, np.inf, 0.0]))),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(array=random_arrays, container=st.sampled_from(["npy", "h5", "tif"]))
def test_random_file_contents_never_give_a_traceback(tmp_path_factory, array, container):
    folder = tmp_path_factory.mktemp("random")
    if container == "npy":
        path = folder / "scan.npy"
        np.save(path, array)
    elif container == "h5":
        path = folder / "scan.h5"
        with h5py.File(path, "w") as file:
            file["data"] = array
    else:
        path = folder / "scan.tif"
        try:
            tifffile.imwrite(path, array, photometric="minisblack")  # a detector stack, never RGB
        except Exception:  # tifffile refuses some shapes; then the file is whatever bytes it left
            path.write_bytes(array.tobytes())
    out = folder / "out"
    result = runner.invoke(app, ["reconstruct", str(path), "--out", str(out), *FAST])
    _check_outcome(result, out)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(min_size=0, max_size=2048), suffix=st.sampled_from([".cxi", ".h5", ".tif", ".npy", ".npz"]))
def test_random_bytes_never_give_a_traceback(tmp_path_factory, data, suffix):
    folder = tmp_path_factory.mktemp("bytes")
    path = folder / f"scan{suffix}"
    path.write_bytes(data)
    out = folder / "out"
    result = runner.invoke(app, ["reconstruct", str(path), "--out", str(out), *FAST])
    _check_outcome(result, out)
    assert path.read_bytes() == data
