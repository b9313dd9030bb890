"""Never lose a scientist's data (issue 16), reading side: sizes checked before reading, regular files only,
HDF5 links followed one at a time and kept inside the input's folder unless --allow-external-links."""

from __future__ import annotations

import errno
import os
import threading
import time
import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from cdi_dip.cli import app
from cdi_dip.config import config_from_dict
from cdi_dip.errors import InvalidInputError
from cdi_dip.io import read_array, read_measurement, read_object
from cdi_dip.io.readers import read_calibration

runner = CliRunner()
FAST = ["--device", "cpu", "--plan", "10*HIO+5*ER", "--runs", "1"]
DETECTOR_DATA = "/entry_1/instrument_1/detector_1/data"
DETECTOR_MASK = "/entry_1/instrument_1/detector_1/mask"
LIMIT = "cdi_dip.io._safety.available_read_bytes"


def _counts(shape=(32, 32), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).poisson(50.0, size=shape).astype(np.float32) + 1


def _raises(call, *fragments: str) -> str:
    """``call()`` raises InvalidInputError with one line holding every fragment; returns the line."""
    with pytest.raises(InvalidInputError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment.lower() in message.lower(), message
    return message


def _one_line_exit_2(result, *fragments: str) -> str:
    """A CLI run that ended with exit code 2 and one ``cdi-dip: error:`` line on stderr."""
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("cdi-dip: error:"), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment.lower() in lines[0].lower(), lines[0]
    return lines[0]


# --------------------------------------------------------------------------- 5: sizes checked before reading


def _forged_npy(path: Path, shape: tuple[int, ...]) -> Path:
    """An .npy header declaring ``shape`` float32, with no data after it."""
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return path


def test_forged_npy_header_is_refused_before_any_allocation(tmp_path, monkeypatch):
    monkeypatch.setattr(LIMIT, lambda: 2**30)
    path = _forged_npy(tmp_path / "huge.npy", (4096, 4096, 4096))
    assert path.stat().st_size < 4096
    _raises(lambda: read_measurement(str(path)), "4096x4096x4096", "256.0 GiB", "1.0 GiB is free", "cropped")


def test_npy_larger_than_free_memory_is_refused(tmp_path, monkeypatch):
    np.save(tmp_path / "scan.npy", _counts())
    monkeypatch.setattr(LIMIT, lambda: 1024)
    _raises(lambda: read_measurement(str(tmp_path / "scan.npy")), "scan.npy", "32x32 float32", "1.0 KiB is free")


def test_hdf5_dataset_larger_than_free_memory_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "scan.cxi"
    with h5py.File(path, "w") as file:  # declares 16 MiB, stores almost nothing (never written chunks)
        file.create_dataset(DETECTOR_DATA, shape=(64, 256, 256), dtype="f4", chunks=(1, 64, 64), compression="gzip")
    monkeypatch.setattr(LIMIT, lambda: 2**20)
    _raises(lambda: read_measurement(str(path)), DETECTOR_DATA, "64x256x256 float32", "16.0 MiB", "is free")


def test_npz_member_larger_than_free_memory_is_refused(tmp_path, monkeypatch):
    np.savez_compressed(tmp_path / "scan.npz", data=np.zeros((128, 128), np.float32))  # a few hundred bytes
    monkeypatch.setattr(LIMIT, lambda: 4096)
    _raises(lambda: read_measurement(str(tmp_path / "scan.npz")), "scan.npz:data", "128x128", "is free")


def test_tiff_larger_than_free_memory_is_refused(tmp_path, monkeypatch):
    tifffile.imwrite(tmp_path / "frame.tif", _counts((64, 64)).astype(np.uint16), compression="zlib")
    monkeypatch.setattr(LIMIT, lambda: 4096)
    _raises(lambda: read_measurement(str(tmp_path / "frame.tif")), "frame.tif", "64x64 uint16", "is free")


def test_folder_of_tiff_frames_larger_than_free_memory_is_refused_before_reading_frames(tmp_path, monkeypatch):
    (tmp_path / "frames").mkdir()
    for index in range(3):
        tifffile.imwrite(tmp_path / "frames" / f"f{index}.tif", _counts(seed=index).astype(np.int32))
    monkeypatch.setattr(LIMIT, lambda: 3 * 32 * 32 * 4)  # the float32 stack alone, no room for the masks
    read = []
    monkeypatch.setattr(tifffile.TiffPageSeries, "asarray", lambda *a, **k: read.append(1))
    _raises(lambda: read_measurement(str(tmp_path / "frames")), "3x32x32 float32", "is free")
    assert not read


def test_the_limit_only_refuses_what_does_not_fit(tmp_path, monkeypatch):
    np.save(tmp_path / "scan.npy", _counts())
    monkeypatch.setattr(LIMIT, lambda: 32 * 32 * 20)  # float32 as stored, the masks: fits
    assert read_measurement(str(tmp_path / "scan.npy")).shape == (32, 32)
    monkeypatch.setattr(LIMIT, lambda: None)  # free memory unknown: no check
    assert read_measurement(str(tmp_path / "scan.npy")).shape == (32, 32)


def test_folder_of_int32_frames_is_read_frame_by_frame_into_float32(tmp_path):
    frames = np.random.default_rng(3).poisson(30.0, size=(40, 64, 64)).astype(np.int32) + 1
    (tmp_path / "rocking").mkdir()
    for index, frame in enumerate(frames):
        tifffile.imwrite(tmp_path / "rocking" / f"img_{index}.tif", frame)
    tracemalloc.start()
    try:
        m = read_measurement(str(tmp_path / "rocking"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(m.intensity, frames)
    assert m.intensity.dtype == np.float32
    # The float32 stack (4 B/voxel) and read_measurement's bool masks: about 8 B/voxel. Stacking the int32
    # frames and then converting the stack to float32 peaked at about 15 B/voxel.
    assert peak < frames.size * 10, peak / frames.size


def test_frames_of_a_wider_type_than_the_first_keep_their_values(tmp_path):
    (tmp_path / "frames").mkdir()
    small = np.full((8, 8), 7, np.uint8)
    wide = np.full((8, 8), 70000, np.int32)
    tifffile.imwrite(tmp_path / "frames" / "f0.tif", small)
    tifffile.imwrite(tmp_path / "frames" / "f1.tif", wide)
    array = read_array(str(tmp_path / "frames"))
    assert array.dtype == np.int32
    np.testing.assert_array_equal(array, np.stack([small, wide]))
    np.testing.assert_array_equal(read_measurement(str(tmp_path / "frames")).intensity, np.stack([small, wide]))


def test_memory_error_while_reading_is_one_line(tmp_path, monkeypatch):
    path = tmp_path / "scan.cxi"
    with h5py.File(path, "w") as file:
        file[DETECTOR_DATA] = _counts()

    def no_memory(*args, **kwargs):
        raise MemoryError("Unable to allocate 256. GiB for an array")

    monkeypatch.setattr(h5py.Dataset, "__getitem__", no_memory)
    _raises(lambda: read_measurement(str(path)), "scan.cxi", "out of memory", "cropped")
    _raises(lambda: read_array(str(path)), "out of memory")
    _raises(lambda: read_object(f"{path}:{DETECTOR_DATA}"), "out of memory")
    result = runner.invoke(app, ["inspect", str(path)])
    _one_line_exit_2(result, "out of memory")


def test_cli_refuses_an_input_larger_than_free_memory_with_exit_2(tmp_path, monkeypatch):
    path = _forged_npy(tmp_path / "huge.npy", (2048, 2048, 2048))
    monkeypatch.setattr(LIMIT, lambda: 2**30)
    out = tmp_path / "out"
    result = runner.invoke(app, ["reconstruct", str(path), "--out", str(out), *FAST])
    _one_line_exit_2(result, "huge.npy", "2048x2048x2048 float32", "32.0 GiB", "is free")
    assert not out.exists() or not any(out.iterdir())


# --------------------------------------------------------------------------- 6: one line, not a traceback


def _cxi(path: Path, data=None, **extra) -> Path:
    with h5py.File(path, "w") as file:
        if data is not None:
            file[DETECTOR_DATA] = data
        for key, value in extra.items():
            file[key.replace("__", "/")] = value
    return path


def test_string_dataset_in_cxi_is_one_line(tmp_path):
    scalar = _cxi(tmp_path / "scalar.cxi", "not frames")
    frames = _cxi(tmp_path / "frames.cxi", np.array([[b"a", b"b"], [b"c", b"d"]]))
    _raises(lambda: read_measurement(str(scalar)), DETECTOR_DATA, "holds string", "numeric")
    _raises(lambda: read_measurement(str(frames)), DETECTOR_DATA, "holds string", "numeric")
    _raises(lambda: read_object(str(scalar) + ":" + DETECTOR_DATA), "holds string")


def test_compound_dataset_in_cxi_is_one_line(tmp_path):
    path = _cxi(tmp_path / "scan.cxi", np.zeros((8, 8), dtype=[("counts", "f4"), ("flag", "i4")]))
    _raises(lambda: read_measurement(str(path)), DETECTOR_DATA, "compound (counts, flag)", "numeric")


def test_string_mask_in_cxi_is_one_line(tmp_path):
    path = _cxi(tmp_path / "scan.cxi", _counts())
    with h5py.File(path, "a") as file:
        file[DETECTOR_MASK] = "none"
    _raises(lambda: read_measurement(str(path)), DETECTOR_MASK, "holds string")


def test_self_referencing_soft_link_at_the_cxi_data_path_is_one_line(tmp_path):
    path = tmp_path / "loop.cxi"
    with h5py.File(path, "w") as file:
        file.require_group("/entry_1/instrument_1/detector_1")
        file[DETECTOR_DATA] = h5py.SoftLink(DETECTOR_DATA)
    _raises(lambda: read_measurement(str(path)), DETECTOR_DATA, "links form a loop")
    _one_line_exit_2(runner.invoke(app, ["inspect", str(path)]), "links form a loop")


def test_soft_link_loops_anywhere_never_give_a_traceback(tmp_path):
    entry = tmp_path / "entry.cxi"
    with h5py.File(entry, "w") as file:
        file["entry_1"] = h5py.SoftLink("/entry_1")
    pair = tmp_path / "pair.h5"
    with h5py.File(pair, "w") as file:
        file["a"] = h5py.SoftLink("/b")
        file["b"] = h5py.SoftLink("a")  # relative: back to /a
        file["frames"] = _counts()
        file.attrs["default"] = "a"
    _raises(lambda: read_measurement(str(entry)), "/entry_1", "links form a loop")
    _raises(lambda: read_measurement(f"{pair}:/a"), "links form a loop")
    assert read_measurement(str(pair)).shape == (32, 32)  # the only dataset; @default through the loop is ignored


def test_broken_soft_link_is_one_line(tmp_path):
    path = tmp_path / "scan.h5"
    with h5py.File(path, "w") as file:
        file["data"] = h5py.SoftLink("/gone")
    _raises(lambda: read_measurement(f"{path}:/data"), "/data", "broken link to /gone")


def test_geometry_behind_a_broken_or_looping_link_is_ignored(tmp_path):
    path = _cxi(tmp_path / "scan.cxi", _counts())
    with h5py.File(path, "a") as file:
        detector = file["/entry_1/instrument_1/detector_1"]
        detector["distance"] = h5py.SoftLink("/entry_1/instrument_1/detector_1/distance")
        detector["x_pixel_size"] = h5py.SoftLink("/nowhere")
        detector["y_pixel_size"] = "55 um"
    m = read_measurement(str(path))
    assert m.meta.distance_m is None and m.meta.pixel_size_m is None


@pytest.fixture
def fifo(tmp_path):
    """A named pipe. A writer thread unblocks a reader that opens it anyway, so a regression fails, not hangs."""
    path = tmp_path / "pipe.npy"
    os.mkfifo(path)
    stop = time.monotonic() + 10

    def unblock():
        while time.monotonic() < stop:
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
            except OSError as exc:
                if exc.errno not in (errno.ENXIO, errno.ENOENT):
                    return
            time.sleep(0.02)

    threading.Thread(target=unblock, daemon=True).start()
    return path


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_named_pipe_as_data_mask_dark_or_flat_is_refused(tmp_path, fifo):
    np.save(tmp_path / "scan.npy", _counts())
    _raises(lambda: read_measurement(str(fifo)), "pipe.npy", "named pipe")
    _raises(lambda: read_measurement(str(tmp_path / "scan.npy"), mask_specs=[str(fifo)]), "named pipe")
    _raises(lambda: read_calibration(str(fifo), "--dark"), "named pipe")
    _raises(lambda: read_array(str(fifo)), "named pipe")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_cli_named_pipe_is_one_line_exit_2(tmp_path, fifo):
    np.save(tmp_path / "scan.npy", _counts())
    result = runner.invoke(app, ["inspect", str(tmp_path / "scan.npy"), "--flat", str(fifo)])
    _one_line_exit_2(result, "pipe.npy", "named pipe")


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_device_file_is_refused():
    _raises(lambda: read_measurement("/dev/zero"), "/dev/zero", "character device")


# --------------------------------------------------------------------------- 13: nothing read from outside


@pytest.fixture
def outside(tmp_path) -> Path:
    """A folder beside the input's, holding a 'secret' file and an HDF5 file of counts."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_bytes(b"root:x:0:0:root:/root:/bin/bash\n" * 8)
    with h5py.File(folder / "frames.h5", "w") as file:
        file["frames"] = _counts()
    return folder


@pytest.fixture
def scan_dir(tmp_path) -> Path:
    folder = tmp_path / "scan"
    folder.mkdir()
    return folder


def test_external_raw_storage_is_refused_unless_allowed(scan_dir, outside):
    path = scan_dir / "crafted.h5"
    with h5py.File(path, "w") as file:
        file.create_dataset("data", shape=(8, 8), dtype="<f4", external=[(str(outside / "secret.txt"), 0, 256)])
    _raises(lambda: read_measurement(str(path)), "crafted.h5:/data", "secret.txt", "--allow-external-links")
    _raises(lambda: read_array(str(path)), "--allow-external-links")
    assert read_array(str(path), allow_external_links=True).shape == (8, 8)


def test_external_link_outside_the_folder_is_refused_unless_allowed(scan_dir, outside):
    path = scan_dir / "scan.cxi"
    with h5py.File(path, "w") as file:
        file.require_group("/entry_1/instrument_1/detector_1")
        file[DETECTOR_DATA] = h5py.ExternalLink(str(outside / "frames.h5"), "/frames")
    _raises(lambda: read_measurement(str(path)), DETECTOR_DATA, "external link", "outside the folder",
            "--allow-external-links")
    m = read_measurement(str(path), allow_external_links=True)
    np.testing.assert_array_equal(m.intensity, _counts())


def test_external_group_link_outside_the_folder_is_refused(scan_dir, outside):
    with h5py.File(outside / "entry.h5", "w") as file:
        file["entry_1/instrument_1/detector_1/data"] = _counts()
    path = scan_dir / "scan.cxi"
    with h5py.File(path, "w") as file:
        file["entry_1"] = h5py.ExternalLink(os.path.relpath(outside / "entry.h5", scan_dir), "/entry_1")
    _raises(lambda: read_measurement(str(path)), "/entry_1", "outside the folder")


def test_symlink_in_the_folder_to_a_file_outside_is_refused(scan_dir, outside):
    (scan_dir / "frames.h5").symlink_to(outside / "frames.h5")
    path = scan_dir / "scan.h5"
    with h5py.File(path, "w") as file:
        file["data"] = h5py.ExternalLink("frames.h5", "/frames")
    _raises(lambda: read_measurement(f"{path}:/data"), "outside the folder")


def test_external_link_inside_the_folder_is_followed(scan_dir):
    with h5py.File(scan_dir / "data_000001.h5", "w") as file:
        file["data"] = _counts()
    path = scan_dir / "master.h5"
    with h5py.File(path, "w") as file:
        file["entry/data/data_000001"] = h5py.ExternalLink("data_000001.h5", "/data")
    np.testing.assert_array_equal(read_measurement(f"{path}:/entry/data/data_000001").intensity, _counts())


def test_external_link_chain_leaving_the_folder_is_refused(scan_dir, outside):
    with h5py.File(scan_dir / "hop.h5", "w") as file:
        file["frames"] = h5py.ExternalLink(str(outside / "frames.h5"), "/frames")
    path = scan_dir / "scan.h5"
    with h5py.File(path, "w") as file:
        file["data"] = h5py.ExternalLink("hop.h5", "/frames")
    _raises(lambda: read_measurement(f"{path}:/data"), "outside the folder")


def _virtual(path: Path, source: Path, shape=(32, 32)) -> Path:
    layout = h5py.VirtualLayout(shape=shape, dtype="f4")
    layout[:] = h5py.VirtualSource(str(source), "frames", shape=shape)
    with h5py.File(path, "w") as file:
        file.create_virtual_dataset("data", layout)
    return path


def test_virtual_dataset_with_sources_outside_the_folder_is_refused_unless_allowed(scan_dir, outside):
    path = _virtual(scan_dir / "vds.h5", outside / "frames.h5")
    _raises(lambda: read_measurement(str(path)), "vds.h5:/data", "virtual dataset", "outside the folder")
    np.testing.assert_array_equal(read_measurement(str(path), allow_external_links=True).intensity, _counts())


def test_virtual_dataset_with_a_missing_source_is_refused(scan_dir):
    with h5py.File(scan_dir / "frames.h5", "w") as file:
        file["frames"] = _counts()
    path = _virtual(scan_dir / "vds.h5", scan_dir / "frames.h5")
    np.testing.assert_array_equal(read_measurement(str(path)).intensity, _counts())  # inside the folder: read
    (scan_dir / "frames.h5").unlink()
    _raises(lambda: read_measurement(str(path)), "frames.h5", "is missing", "zeros")


def test_dangling_external_link_at_the_cxi_mask_is_an_error(scan_dir):
    path = _cxi(scan_dir / "scan.cxi", _counts())
    with h5py.File(path, "a") as file:
        file[DETECTOR_MASK] = h5py.ExternalLink("mask.h5", "/mask")
    _raises(lambda: read_measurement(str(path)), DETECTOR_MASK, "broken external link", "mask.h5")
    with h5py.File(scan_dir / "mask.h5", "w") as file:
        mask = np.zeros((32, 32), np.uint8)
        mask[0, :4] = 1
        file["mask"] = mask
    assert read_measurement(str(path)).excluded == {"file_mask": 4}


def test_geometry_stored_outside_the_file_is_not_read(scan_dir, outside):
    (outside / "secret.bin").write_bytes(np.float64(0.5).tobytes())
    path = _cxi(scan_dir / "scan.cxi", _counts())
    with h5py.File(path, "a") as file:
        file.create_dataset("/entry_1/instrument_1/detector_1/distance", shape=(1,), dtype="<f8",
                            external=[(str(outside / "secret.bin"), 0, 8)])
    assert read_measurement(str(path)).meta.distance_m is None


def _crafted_link(scan_dir: Path, outside: Path) -> Path:
    path = scan_dir / "scan.cxi"
    with h5py.File(path, "w") as file:
        file.require_group("/entry_1/instrument_1/detector_1")
        file[DETECTOR_DATA] = h5py.ExternalLink(str(outside / "frames.h5"), "/frames")
    return path


def test_cli_inspect_refuses_external_links_and_allows_them_on_request(scan_dir, outside):
    path = _crafted_link(scan_dir, outside)
    _one_line_exit_2(runner.invoke(app, ["inspect", str(path)]), "outside the folder", "--allow-external-links")
    result = runner.invoke(app, ["inspect", str(path), "--allow-external-links", "--json"])
    assert result.exit_code == 0, result.output


def test_cli_reconstruct_refuses_external_storage_with_exit_2(scan_dir, outside, tmp_path):
    np.save(scan_dir / "scan.npy", _counts())
    dark = scan_dir / "dark.h5"
    with h5py.File(dark, "w") as file:
        file.create_dataset("dark", shape=(32, 32), dtype="<u1", external=[(str(outside / "secret.txt"), 0, 1024)])
    out = tmp_path / "out"
    result = runner.invoke(app, ["reconstruct", str(scan_dir / "scan.npy"), "--dark", str(dark), "--out", str(out),
                                 *FAST])
    _one_line_exit_2(result, "dark.h5:/dark", "secret.txt", "--allow-external-links")
    assert not out.exists() or not any(out.iterdir())


def test_cli_compare_takes_allow_external_links(scan_dir, outside):
    np.save(scan_dir / "reference.npy", _counts().astype(np.complex64))
    path = scan_dir / "result.h5"
    with h5py.File(path, "w") as file:
        file["object"] = h5py.ExternalLink(str(outside / "frames.h5"), "/frames")
    args = ["compare", f"{path}:/object", str(scan_dir / "reference.npy"), "--json"]
    _one_line_exit_2(runner.invoke(app, args), "outside the folder", "--allow-external-links")
    result = runner.invoke(app, [*args, "--allow-external-links"])
    assert result.exit_code == 0, result.output


def test_cli_batch_takes_allow_external_links(scan_dir, outside, tmp_path):
    path = _crafted_link(scan_dir, outside)
    refused = runner.invoke(app, ["batch", str(path), "--out", str(tmp_path / "a"), "--quiet", *FAST])
    assert refused.exit_code == 1, refused.output
    allowed = runner.invoke(app, ["batch", str(path), "--out", str(tmp_path / "b"), "--quiet",
                                  "--allow-external-links", *FAST])
    assert allowed.exit_code == 0, allowed.output
    import json

    failed = json.loads((tmp_path / "a" / "batch.json").read_text())["scans"][0]
    assert failed["status"] == "failed" and "--allow-external-links" in failed["error"]


def test_allow_external_links_flows_from_toml_and_the_command_line(tmp_path):
    from cdi_dip.cli.common import build_config
    from cdi_dip.cli.options import overrides

    assert build_config(None, overrides({})).input.allow_external_links is False
    assert build_config(None, overrides({"allow_external_links": True})).input.allow_external_links is True
    toml = tmp_path / "run.toml"
    toml.write_text("[input]\nallow_external_links = true\n")
    not_given = overrides({"allow_external_links": False})  # the flag left off: the file stands
    assert build_config(toml, not_given).input.allow_external_links is True
    with pytest.raises(InvalidInputError, match="input.allow_external_links"):
        config_from_dict({"input": {"allow_external_links": "yes"}})
