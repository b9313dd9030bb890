"""Readers: every input format, masks, excluded pixels, and every bad-input error."""

from __future__ import annotations

import os
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile

from cdi_dip.errors import InvalidInputError
from cdi_dip.io import read_array, read_measurement, read_object, write_measurement_cxi
from cdi_dip.io.cxi import energy_j_from_wavelength
from cdi_dip.types import ScanMeta

REAL_FRAMES = Path(__file__).resolve().parents[2] / "shared" / "data" / "aps34idc_scan54" / "frames"


@pytest.fixture
def counts(rng) -> np.ndarray:
    """A 3D stack of Poisson counts with no zero-only frame."""
    return rng.poisson(20.0, size=(4, 16, 16)).astype(np.int32) + 1


def _raises(spec: str, *fragments: str, **kwargs) -> InvalidInputError:
    """Assert reading ``spec`` fails with one line holding every fragment."""
    with pytest.raises(InvalidInputError) as info:
        read_measurement(spec, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    return info.value


# --------------------------------------------------------------------------- CXI


def test_cxi_with_mask_and_geometry(tmp_path, counts):
    valid = np.ones(counts.shape, dtype=bool)
    valid[:, 0, :3] = False
    meta = ScanMeta(wavelength_m=1.4e-10, distance_m=0.5, pixel_size_m=(55e-6, 75e-6))
    path = tmp_path / "scan54.cxi"
    write_measurement_cxi(path, counts, valid=valid, meta=meta)

    m = read_measurement(str(path))

    assert m.intensity.dtype == np.float32 and m.shape == counts.shape
    np.testing.assert_array_equal(m.valid, valid)
    np.testing.assert_array_equal(m.intensity[valid], counts[valid])
    assert np.all(m.intensity[~valid] == 0)
    assert m.excluded == {"file_mask": int((~valid).sum())}
    assert m.meta.wavelength_m == pytest.approx(1.4e-10)
    assert m.meta.distance_m == pytest.approx(0.5)
    assert m.meta.pixel_size_m == pytest.approx((55e-6, 75e-6))
    assert m.name == "scan54" and m.source == str(path)
    assert m.roi == [(0, 4), (0, 16), (0, 16)]


def test_cxi_wavelength_from_energy_and_fallback_data_path(tmp_path, counts):
    path = tmp_path / "other.cxi"
    with h5py.File(path, "w") as f:
        f["/entry_1/image_1/data"] = counts.astype(np.float64)
        f["/entry_1/instrument_1/source_1/energy"] = energy_j_from_wavelength(1.0e-10)
    m = read_measurement(str(path))
    np.testing.assert_array_equal(m.intensity, counts)
    assert m.meta.wavelength_m == pytest.approx(1.0e-10, rel=1e-9)
    assert m.meta.distance_m is None and m.meta.pixel_size_m is None


def test_cxi_data_1_link_is_followed(tmp_path, counts):
    path = tmp_path / "linked.cxi"
    with h5py.File(path, "w") as f:
        f["/entry_1/somewhere/frames"] = counts
        f["/entry_1/data_1/data"] = h5py.SoftLink("/entry_1/somewhere/frames")
    np.testing.assert_array_equal(read_measurement(str(path)).intensity, counts)


# --------------------------------------------------------------------------- HDF5


def test_hdf5_with_dataset_path(tmp_path, counts):
    path = tmp_path / "raw.h5"
    with h5py.File(path, "w") as f:
        f["/measurement/frames"] = counts
        f["/measurement/dark"] = np.zeros((16, 16))
    m = read_measurement(f"{path}:/measurement/frames")
    np.testing.assert_array_equal(m.intensity, counts)
    assert m.name == "raw"


def test_hdf5_only_dataset_with_two_or_more_dims(tmp_path, counts):
    path = tmp_path / "raw.nxs"
    with h5py.File(path, "w") as f:
        f["/entry/frames"] = counts[0]
        f["/entry/angles"] = np.arange(4.0)  # 1D: not a candidate
        f["/entry/energy"] = 9.0
    np.testing.assert_array_equal(read_measurement(str(path)).intensity, counts[0])


def test_hdf5_several_candidates_lists_them(tmp_path, counts):
    path = tmp_path / "raw.h5"
    with h5py.File(path, "w") as f:
        f["/a"] = counts
        f["/b"] = counts[0]
    _raises(str(path), "raw.h5", "/a (4, 16, 16)", "/b (16, 16)", f"{path}:/a")


def test_hdf5_nexus_default_resolves_several_candidates(tmp_path, counts):
    path = tmp_path / "raw.nxs"
    with h5py.File(path, "w") as f:
        f.attrs["default"] = "entry"
        entry = f.create_group("entry")
        entry.attrs["default"] = "data"
        data = entry.create_group("data")
        data.attrs["signal"] = "counts"
        data["counts"] = counts
        f["/entry/dark"] = np.zeros((16, 16))
    np.testing.assert_array_equal(read_measurement(str(path)).intensity, counts)


# --------------------------------------------------------------------------- TIFF


def test_single_page_tiff_is_2d(tmp_path, counts):
    path = tmp_path / "frame.tif"
    tifffile.imwrite(path, counts[0])
    m = read_measurement(str(path))
    assert m.shape == (16, 16)
    np.testing.assert_array_equal(m.intensity, counts[0])


def test_multi_page_tiff_is_3d(tmp_path, counts):
    path = tmp_path / "stack.tiff"
    tifffile.imwrite(path, counts, photometric="minisblack")
    m = read_measurement(str(path))
    assert m.shape == (4, 16, 16)
    np.testing.assert_array_equal(m.intensity, counts)


def _write_frames(directory: Path, counts: np.ndarray) -> None:
    """Frames named so that plain string order differs from natural order."""
    directory.mkdir()
    for index, frame in enumerate(counts):
        tifffile.imwrite(directory / f"scan_{index * 5}.tif", frame)
    (directory / "notes.txt").write_text("not a frame")


def test_tiff_directory_in_natural_name_order(tmp_path, counts):
    frames = tmp_path / "scan7"
    _write_frames(frames, counts)  # scan_0, scan_5, scan_10, scan_15
    m = read_measurement(str(frames))
    np.testing.assert_array_equal(m.intensity, counts)
    assert m.name == "scan7"


def test_tiff_glob_in_natural_name_order(tmp_path, counts):
    frames = tmp_path / "scan8"
    _write_frames(frames, counts)
    spec = str(frames / "scan_*.tif")
    m = read_measurement(spec)
    np.testing.assert_array_equal(m.intensity, counts)
    assert m.name == "scan8" and m.source == spec


def test_single_frame_stack_is_squeezed(tmp_path, counts):
    path = tmp_path / "one.npy"
    np.save(path, counts[:1])
    assert read_measurement(str(path)).shape == (16, 16)


# --------------------------------------------------------------------------- NumPy


def test_npy(tmp_path, counts):
    path = tmp_path / "scan.npy"
    np.save(path, counts.astype(np.float64))
    m = read_measurement(str(path))
    np.testing.assert_array_equal(m.intensity, counts)
    assert m.valid.all() and m.excluded == {}


def test_npz_data_and_mask(tmp_path, counts):
    mask = np.zeros(counts.shape, dtype=np.uint8)
    mask[1, 2, 3] = 7
    path = tmp_path / "scan.npz"
    np.savez(path, data=counts, mask=mask, angles=np.arange(4))
    m = read_measurement(str(path))
    assert m.excluded == {"file_mask": 1}
    assert not m.valid[1, 2, 3] and m.intensity[1, 2, 3] == 0


def test_npz_only_array_and_key(tmp_path, counts):
    path = tmp_path / "scan.npz"
    np.savez(path, frames=counts)
    np.testing.assert_array_equal(read_measurement(str(path)).intensity, counts)
    two = tmp_path / "two.npz"
    np.savez(two, a=counts, b=counts[0])
    _raises(str(two), "two.npz", "a, b")
    np.testing.assert_array_equal(read_measurement(f"{two}:b").intensity, counts[0])


# --------------------------------------------------------------------------- masks and excluded pixels


def test_mask_files_are_combined_with_or(tmp_path, counts):
    first = np.zeros(counts.shape, dtype=np.int16)
    first[0, 0, 0] = 1
    second = np.zeros(counts.shape[1:], dtype=np.float32)  # one frame: applies to all
    second[5, 5] = 1.0
    np.save(tmp_path / "first.npy", first)
    tifffile.imwrite(tmp_path / "second.tif", second)
    np.save(tmp_path / "data.npy", counts)
    m = read_measurement(str(tmp_path / "data.npy"), mask_specs=[str(tmp_path / "first.npy"), str(tmp_path / "second.tif")])
    expected = (first != 0) | (second != 0)[None]
    np.testing.assert_array_equal(m.valid, ~expected)
    assert m.excluded == {"mask_file": int(expected.sum())}


def test_cxi_as_mask_file_gives_its_mask(tmp_path, counts):
    valid = np.ones(counts.shape[1:], dtype=bool)
    valid[3, 4] = False
    write_measurement_cxi(tmp_path / "detector.cxi", np.ones(counts.shape[1:], np.float32), valid=valid)
    np.save(tmp_path / "data.npy", counts)
    m = read_measurement(str(tmp_path / "data.npy"), mask_specs=[str(tmp_path / "detector.cxi")])
    assert m.excluded == {"mask_file": counts.shape[0]}
    assert not m.valid[:, 3, 4].any()


def test_mask_shape_mismatch(tmp_path, rng):
    np.save(tmp_path / "data.npy", rng.poisson(5.0, (128, 128)) + 1)
    np.save(tmp_path / "mask.npy", np.zeros((128, 120)))
    _raises(str(tmp_path / "data.npy"), "mask.npy", "mask shape (128, 120) does not match data shape (128, 128)",
            mask_specs=[str(tmp_path / "mask.npy")])


def test_nan_inf_negative_are_excluded_and_counted(tmp_path, counts):
    data = counts.astype(np.float32)
    data[0, 0, :2] = np.nan
    data[1, 1, :3] = np.inf
    data[2, 2, 0] = -np.inf
    data[3, 3, :4] = -2.0
    path = tmp_path / "bad.npy"
    np.save(path, data)
    m = read_measurement(str(path))
    assert m.excluded == {"nan": 2, "inf": 4, "negative": 4}
    assert (~m.valid).sum() == 10
    assert np.all(m.intensity[~m.valid] == 0) and np.all(np.isfinite(m.intensity))


def test_excluded_reasons_count_each_pixel_once(tmp_path, counts):
    data = counts.astype(np.float32)
    data[0, 0, 0] = np.nan
    mask = np.zeros(counts.shape, dtype=bool)
    mask[0, 0, :2] = True  # overlaps the NaN pixel
    np.savez(tmp_path / "scan.npz", data=data, mask=mask)
    m = read_measurement(str(tmp_path / "scan.npz"))
    assert m.excluded == {"nan": 1, "file_mask": 1}
    assert sum(m.excluded.values()) == (~m.valid).sum()


# --------------------------------------------------------------------------- errors


def test_complex_data_is_rejected(tmp_path, counts):
    np.save(tmp_path / "obj.npy", counts.astype(np.complex64))
    _raises(str(tmp_path / "obj.npy"), "obj.npy", "complex")


def test_non_numeric_data_is_rejected(tmp_path):
    np.save(tmp_path / "text.npy", np.array([["a", "b"], ["c", "d"]]))
    _raises(str(tmp_path / "text.npy"), "text.npy", "not numbers")


@pytest.mark.parametrize("shape", [(16,), (2, 2, 4, 4)])
def test_wrong_dimensions_are_rejected(tmp_path, shape):
    np.save(tmp_path / "odd.npy", np.ones(shape))
    _raises(str(tmp_path / "odd.npy"), "odd.npy", "dimensions")


def test_missing_file(tmp_path):
    _raises(str(tmp_path / "nope.cxi"), "nope.cxi", "no such file")
    _raises(f"{tmp_path / 'nope.h5'}:/data", "nope.h5", "no such file")


def test_not_hdf5(tmp_path):
    (tmp_path / "fake.h5").write_text("hello, not HDF5\n")
    _raises(str(tmp_path / "fake.h5"), "fake.h5", "not a valid HDF5 file")


def test_unknown_format(tmp_path):
    (tmp_path / "data.txt").write_text("1 2 3\n")
    _raises(str(tmp_path / "data.txt"), "data.txt", "unrecognised file format")


def test_missing_dataset_and_group(tmp_path, counts):
    path = tmp_path / "raw.h5"
    with h5py.File(path, "w") as f:
        f["/group/data"] = counts
    _raises(f"{path}:/group/nothing", "raw.h5", "no dataset /group/nothing")
    _raises(f"{path}:/group", "raw.h5", "is a group")


def test_hdf5_without_frames(tmp_path):
    path = tmp_path / "empty.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.arange(3)
    _raises(str(path), "empty.h5", "no dataset with 2 or more dimensions")


def test_empty_file(tmp_path):
    (tmp_path / "empty.cxi").touch()
    _raises(str(tmp_path / "empty.cxi"), "empty.cxi", "empty")


def test_truncated_files(tmp_path, counts):
    cxi = tmp_path / "full.cxi"
    write_measurement_cxi(cxi, counts.astype(np.float32))
    tif = tmp_path / "full.tif"
    tifffile.imwrite(tif, counts, photometric="minisblack")
    npy = tmp_path / "full.npy"
    np.save(npy, counts)
    for source in (cxi, tif, npy):
        blob = source.read_bytes()
        cut = tmp_path / f"cut{source.suffix}"
        cut.write_bytes(blob[: len(blob) // 2])
        _raises(str(cut), "cut")


def test_frames_of_different_shapes(tmp_path, counts):
    frames = tmp_path / "frames"
    frames.mkdir()
    tifffile.imwrite(frames / "f1.tif", counts[0])
    tifffile.imwrite(frames / "f2.tif", counts[1, :8])
    _raises(str(frames), "f2.tif", "(8, 16)", "(16, 16)")


def test_directory_without_frames(tmp_path):
    (tmp_path / "nothing").mkdir()
    _raises(str(tmp_path / "nothing"), "nothing", "no .tif/.tiff frames")


def test_glob_without_match(tmp_path):
    _raises(str(tmp_path / "*.tif"), "*.tif", "no file matches")


def test_all_zero_data(tmp_path):
    np.save(tmp_path / "zeros.npy", np.zeros((8, 8), dtype=np.uint16))
    _raises(str(tmp_path / "zeros.npy"), "zeros.npy", "zero")


def test_everything_masked(tmp_path, counts):
    np.savez(tmp_path / "masked.npz", data=counts, mask=np.ones(counts.shape, dtype=bool))
    _raises(str(tmp_path / "masked.npz"), "masked.npz", "every pixel is excluded")


def test_everything_nan(tmp_path):
    np.save(tmp_path / "nan.npy", np.full((8, 8), np.nan))
    _raises(str(tmp_path / "nan.npy"), "nan.npy", "every pixel is excluded")


# --------------------------------------------------------------------------- objects and arrays


def test_read_array_keeps_complex(tmp_path, rng):
    obj = (rng.normal(size=(8, 8)) + 1j * rng.normal(size=(8, 8))).astype(np.complex64)
    np.save(tmp_path / "obj.npy", obj)
    np.testing.assert_array_equal(read_array(str(tmp_path / "obj.npy")), obj)


def test_read_object_from_ground_truth_and_npz(tmp_path, counts, rng):
    truth = (rng.normal(size=(2, 8, 8)) + 1j * rng.normal(size=(2, 8, 8))).astype(np.complex64)
    path = tmp_path / "sim.cxi"
    write_measurement_cxi(path, counts, ground_truth=truth)
    np.testing.assert_array_equal(read_object(f"{path}:/entry_1/sample_1/ground_truth"), truth)
    np.testing.assert_array_equal(read_object(str(path)), truth)
    np.savez(tmp_path / "obj.npz", data=truth)
    np.testing.assert_array_equal(read_object(str(tmp_path / "obj.npz")), truth)


def test_read_object_without_object_fails(tmp_path, counts):
    path = tmp_path / "meas.cxi"
    write_measurement_cxi(path, counts)
    with pytest.raises(InvalidInputError, match="no object"):
        read_object(str(path))


# --------------------------------------------------------------------------- inputs are never modified


def _fingerprint(paths):
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in paths}


def test_inputs_are_not_modified(tmp_path, counts):
    cxi = tmp_path / "scan.cxi"
    write_measurement_cxi(cxi, counts, valid=counts > 2, meta=ScanMeta(1e-10, 1.0, (5e-5, 5e-5)))
    frames = tmp_path / "frames"
    _write_frames(frames, counts)
    mask = tmp_path / "mask.npy"
    np.save(mask, np.zeros(counts.shape[1:]))
    files = [cxi, mask, *frames.iterdir()]
    before = _fingerprint(files)
    time.sleep(0.01)
    read_measurement(str(cxi), mask_specs=[str(mask)])
    read_measurement(str(frames), mask_specs=[str(mask)])
    read_array(str(cxi))
    assert _fingerprint(files) == before
    assert sorted(os.listdir(tmp_path)) == ["frames", "mask.npy", "scan.cxi"]


# --------------------------------------------------------------------------- real data


def test_real_aps_frames_directory():
    if not REAL_FRAMES.is_dir():
        pytest.skip(f"real data not present at {REAL_FRAMES}")
    start = time.perf_counter()
    m = read_measurement(str(REAL_FRAMES))
    seconds = time.perf_counter() - start
    assert m.shape == (201, 256, 256)
    assert m.intensity.dtype == np.float32 and m.valid.all()
    # the Bragg peak is in the middle of the rocking curve, near the frame centre
    peak = np.unravel_index(np.argmax(m.intensity), m.shape)
    assert 80 < peak[0] < 120 and abs(peak[1] - 128) < 10 and abs(peak[2] - 128) < 10
    assert seconds < 10.0
