"""A frame with an unmeasured margin: the measurement embedded, the challenge run where the fit is poor."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cdi_dip import reconstruction
from cdi_dip.config import Method, RunConfig
from cdi_dip.errors import InvalidInputError
from cdi_dip.physics import FarField
from cdi_dip.previous_result import ResultStart
from cdi_dip.prepare.frame import is_fft_friendly
from cdi_dip.prepare.margin import (MARGIN_REASON, margin_window, measured_part, measured_region, seen_on_frame,
                                    with_unmeasured_margin)
from cdi_dip.report.lines import frame_margin_line
from cdi_dip.solvers import random_phases
from cdi_dip.types import Measurement, Result

from challenged import fake_result, poor_fit


def small_measurement(shape=(20, 24), seed=0) -> Measurement:
    rng = np.random.default_rng(seed)
    counts = rng.poisson(100.0, shape).astype(np.float32)
    valid = np.ones(shape, bool)
    valid[0, :3] = False
    counts[~valid] = 0
    hot = ~valid
    return Measurement(counts, valid, masks={"hot": hot}, excluded={"hot": int(hot.sum())},
                       roi=[(100, 100 + shape[0]), (40, 40 + shape[1])])


def test_the_frame_with_a_margin_is_fft_friendly_and_keeps_the_zero_frequency_at_its_centre():
    for shape in [(20, 24), (22, 38, 14)]:
        window = margin_window(shape, 1.5)
        for n, (start, stop) in zip(shape, window):
            size = stop - start
            assert is_fft_friendly(size) and size >= 1.5 * n
            assert n // 2 - start == size // 2  # the measured centre pixel is the larger frame's centre pixel


def test_the_measurement_is_embedded_unmeasured_and_its_free_pixels_kept():
    measurement = small_measurement()
    free = np.zeros(measurement.shape, bool)
    free[5:8, 5:8] = True
    provisional = np.zeros(measurement.shape, bool)
    provisional[10, 12] = True
    measurement.provisional = provisional
    wider = with_unmeasured_margin(measurement, free, 1.5)
    assert wider.shape == (30, 36)
    assert np.array_equal(measured_part(wider.intensity, measurement.shape), measurement.intensity)
    assert np.array_equal(measured_part(wider.valid, measurement.shape), measurement.valid)
    margin = wider.masks[MARGIN_REASON]
    assert not wider.valid[margin].any() and not (wider.intensity[margin] != 0).any()
    assert wider.excluded[MARGIN_REASON] == 30 * 36 - 20 * 24 and wider.excluded["hot"] == 3
    assert np.array_equal(measured_part(wider.masks["hot"], measurement.shape), measurement.masks["hot"])
    assert np.array_equal(measured_part(wider.fixed_free, measurement.shape), free) and wider.fixed_free.sum() == 9
    assert wider.provisional.sum() == 1 and measured_part(wider.provisional, measurement.shape)[10, 12]
    assert wider.roi == [(95, 125), (34, 70)]  # beyond the measured frame on both sides, as padding is
    assert wider.notes["margin"] == {"measured_shape": [20, 24], "shape": [30, 36], "factor": 1.5}


def test_a_frame_with_a_margin_holds_out_exactly_its_fixed_free_pixels():
    measurement = small_measurement()
    free = np.zeros(measurement.shape, bool)
    free[2:6, 10:14] = True
    free[0, 0] = True  # an invalid pixel is never held out
    wider = with_unmeasured_margin(measurement, free, 1.5)
    problem, held_out = reconstruction.fit_data(wider, RunConfig(device="cpu"), torch.device("cpu"))
    expected = measured_part(held_out, measurement.shape)
    assert held_out.sum() == 16 and expected[2:6, 10:14].all() and not expected[0, 0]
    assert not problem.fit.cpu().numpy()[held_out].any()  # held out of the fit


def test_an_object_seen_on_the_measured_frame_predicts_its_pixels_unchanged():
    rng = np.random.default_rng(1)
    obj = np.zeros((36, 36), complex)
    obj[12:24, 10:26] = rng.random((12, 16)) * np.exp(1j * rng.random((12, 16)))
    wide = FarField((36, 36)).intensity(torch.from_numpy(obj)).numpy()
    small = seen_on_frame(obj, (24, 24))
    narrow = FarField((24, 24)).intensity(torch.from_numpy(small)).numpy()
    np.testing.assert_allclose(measured_part(wide, (24, 24)), narrow, rtol=1e-9, atol=1e-12 * wide.max())
    np.testing.assert_allclose(seen_on_frame(seen_on_frame(small, (36, 36)), (24, 24)), small, atol=1e-12)


class FakeFrames:
    """Stands in for the reconstruction of one frame: records the measurement, returns a result whose model on
    the measured pixels is ``model`` (zero in the margin)."""

    def __init__(self, model: np.ndarray, free_llk: float, error: Exception | None = None):
        self.model, self.free_llk, self.error, self.seen, self.inits = model, free_llk, error, [], []

    def __call__(self, measurement, cfg, requested, init, on_iter):
        self.seen.append(measurement)
        self.inits.append(init)
        if self.error is not None:
            raise self.error
        wide = np.zeros(measurement.shape)
        wide[measured_region(self.model.shape, measurement.shape)] = self.model
        return fake_result(measurement, wide, measurement.fixed_free, self.free_llk)


def test_a_start_from_a_previous_result_is_seen_on_the_larger_frame(monkeypatch):
    measurement, expected, result = poor_fit(2)
    frames = FakeFrames(expected, 1.1)
    monkeypatch.setattr(reconstruction, "_reconstruct_frame", frames)
    obj = np.zeros(measurement.shape, complex)
    obj[8:12, 9:15] = 1.0
    start = ResultStart(obj, np.abs(obj) > 0, source="previous.cxi")
    cfg = RunConfig(device="cpu", method=Method.HIO)
    reconstruction._margin_challenge(result, measurement, cfg, cfg.to_dict(), start, None)
    (wider,), (init,) = frames.seen, frames.inits
    assert isinstance(init, ResultStart) and init.frame == tuple(wider.shape) == (30, 36)


@pytest.mark.parametrize("challenger_fits", [True, False])
def test_a_poor_fit_is_challenged_by_a_frame_with_a_margin(monkeypatch, challenger_fits):
    measurement, expected, result = poor_fit(2)
    frames = FakeFrames(expected if challenger_fits else 1.4 * expected, 1.1 if challenger_fits else 9.0)
    monkeypatch.setattr(reconstruction, "_reconstruct_frame", frames)
    cfg = RunConfig(device="cpu", method=Method.HIO)
    kept = reconstruction._margin_challenge(result, measurement, cfg, cfg.to_dict(), random_phases, None)
    (wider,) = frames.seen
    assert wider.shape == (30, 36) and np.array_equal(measured_part(wider.fixed_free, (20, 24)), result.free)
    record = kept.method_choice["margin"]
    assert record["compared"] and kept.wall_s == 2.0
    assert record["chosen"] == ("with a margin" if challenger_fits else "measured frame")
    assert kept.obj.shape == kept.support.shape == kept.model_intensity.shape == kept.free.shape == (20, 24)
    assert kept.measurement.shape == (20, 24) and MARGIN_REASON not in kept.measurement.masks
    if challenger_fits:  # written on the measured frame: its model of the measured pixels is the challenger's
        np.testing.assert_allclose(kept.model_intensity, expected)
        assert np.array_equal(kept.free, result.free) and kept.measurement.roi == measurement.roi
    if challenger_fits:
        assert record["margin_z"] > reconstruction.CHALLENGE_SIGNIFICANCE
        assert frame_margin_line(record).startswith("the frame with a margin kept: free Poisson LLK 9 on the "
                                                    "measured frame, 1.1 in a 30x36 frame")
    else:
        assert record["margin_z"] is None  # the same model on every held-out pixel: nothing to weigh
        assert frame_margin_line(record).startswith("the measured frame kept")


def test_a_good_fit_is_not_challenged(monkeypatch):
    measurement, expected, result = poor_fit(2)
    result.metrics["free_llk_poisson"] = 1.3
    frames = FakeFrames(expected, 1.0)
    monkeypatch.setattr(reconstruction, "_reconstruct_frame", frames)
    cfg = RunConfig(device="cpu", method=Method.HIO)
    kept = reconstruction._margin_challenge(result, measurement, cfg, cfg.to_dict(), random_phases, None)
    assert kept is result and not frames.seen
    assert kept.method_choice["margin"]["compared"] is False
    assert "1.3 per pixel" in frame_margin_line(kept.method_choice["margin"])
    off = RunConfig(device="cpu", method=Method.HIO, frame_margin=1.0)
    result.metrics["free_llk_poisson"] = 9.0
    result.method_choice = {}
    assert reconstruction._margin_challenge(result, measurement, off, off.to_dict(), random_phases, None).method_choice == {}
    assert not frames.seen


def test_a_challenger_that_cannot_run_leaves_the_measured_frame(monkeypatch):
    measurement, expected, result = poor_fit(2)
    monkeypatch.setattr(reconstruction, "_reconstruct_frame",
                        FakeFrames(expected, 1.0, InvalidInputError("needs 9 GiB, the device has 1 GiB")))
    cfg = RunConfig(device="cpu", method=Method.HIO)
    kept = reconstruction._margin_challenge(result, measurement, cfg, cfg.to_dict(), random_phases, None)
    assert kept is result and not kept.method_choice["margin"]["compared"]
    assert "could not run (needs 9 GiB" in kept.method_choice["margin"]["reason"]


def test_a_signal_during_the_challenger_keeps_the_measured_frame(monkeypatch):
    measurement, expected, result = poor_fit(2)
    monkeypatch.setattr(reconstruction, "_reconstruct_frame", FakeFrames(expected, 1.0, KeyboardInterrupt()))
    cfg = RunConfig(device="cpu", method=Method.HIO)
    kept = reconstruction._margin_challenge(result, measurement, cfg, cfg.to_dict(), random_phases, None)
    assert kept is result and kept.interrupted


def test_a_result_with_a_margin_is_written_on_the_measured_frame_fitting_its_pixels_as_well():
    from cdi_dip.margin_result import on_measured_frame
    from cdi_dip.types import AlignInfo, PrtfResult

    measured = small_measurement((20, 24))
    wider = with_unmeasured_margin(measured, None, 1.5)
    fine = np.zeros(wider.shape, complex)
    fine[9:21, 11:25] = np.exp(0.3j)  # a compact object on the fine voxels
    model = FarField(wider.shape).intensity(torch.from_numpy(fine)).numpy()
    prtf = PrtfResult(frequency_per_px=np.array([0.1, 0.2]), values=np.array([0.9, 0.5]), resolution_px=3.0,
                      resolution_m=6e-9, members=8)
    result = Result(obj=fine.astype(np.complex64), support=np.abs(fine) > 0, measurement=wider, method="hio",
                    model_intensity=model, free=np.zeros(wider.shape, bool), obj_std=np.abs(fine).astype(np.float32),
                    masks={"valid": wider.valid, f"excluded/{MARGIN_REASON}": wider.masks[MARGIN_REASON]},
                    align=AlignInfo(shift_px=(1.5, -3.0), ramp_rad_per_px=(0.02, 0.0)), prtf=prtf)
    written = on_measured_frame(result, measured)
    assert written.obj.shape == written.support.shape == written.obj_std.shape == (20, 24)
    coarse_model = FarField((20, 24)).intensity(torch.from_numpy(written.obj.astype(np.complex128))).numpy()
    np.testing.assert_allclose(coarse_model, measured_part(model, (20, 24)), rtol=1e-4, atol=1e-6 * model.max())
    assert written.support.sum() == pytest.approx(12 * 14 / 1.5**2, rel=0.15)  # the same area in larger voxels
    assert "support_size" not in written.metrics  # only restated where the result had it
    assert set(written.masks) == {"valid"} and written.measurement.roi == measured.roi
    assert written.align.shift_px == (1.0, -2.0) and written.align.ramp_rad_per_px == pytest.approx((0.03, 0.0))
    np.testing.assert_allclose(written.prtf.frequency_per_px, [0.15, 0.3])
    assert written.prtf.resolution_px == pytest.approx(2.0) and written.prtf.resolution_m == 6e-9


def test_an_ensemble_kept_from_a_frame_with_a_margin_is_measured_again_on_the_measured_frame():
    from cdi_dip.ensemble import compare_objects, ensemble_statistics
    from cdi_dip.margin_result import on_measured_frame

    measured = small_measurement((20, 24))
    wider = with_unmeasured_margin(measured, None, 1.5)
    rng = np.random.default_rng(4)
    members = []
    for _ in range(3):
        obj = np.zeros(wider.shape, complex)
        obj[9:21, 11:25] = np.exp(1j * (0.3 + 0.05 * rng.standard_normal((12, 14))))
        members.append(obj)
    ensemble = ensemble_statistics(members, [np.abs(m) > 0 for m in members])
    result = Result(obj=ensemble.mean, support=ensemble.support_majority, measurement=wider, method="hio",
                    ensemble=ensemble)
    written = on_measured_frame(result, measured).ensemble
    assert written.objects.shape == (3, 20, 24) and written.support_majority.shape == (20, 24)
    assert written.members == ensemble.members and len(written.transforms) == 3
    summary = written.summary()  # every map on one frame: the summary is computed without an index error
    assert summary["members"] == 3 and np.isfinite(summary["median_phase_std_rad"])
    assert compare_objects(written.mean, seen_on_frame(ensemble.mean, (20, 24))).error < 1e-3
