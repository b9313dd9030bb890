"""Friedel asymmetry about a sub-pixel centre: a real object's pattern off the pixel grid is still symmetric."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cdi_dip.config import Method, RunConfig
from cdi_dip.corpus import corpus_cases, moved_off_centre
from cdi_dip.simulate import cell_specimen, expected_intensity, faceted_crystal, offset_ramp
from cdi_dip.solvers import decide_method
from cdi_dip.solvers.friedel import centre_offset_px, friedel_asymmetry, pixel_asymmetry
from cdi_dip.types import Measurement

THRESHOLD = RunConfig().projection.positivity_max_asymmetry


def _counts(obj: np.ndarray, offset: tuple[float, ...], *, peak: float = 1e6, seed: int = 0,
            beamstop_px: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Poisson counts of ``obj`` with its zero frequency ``offset`` pixels from the centre pixel, and the mask."""
    intensity = expected_intensity(obj * offset_ramp(obj.shape, offset))
    counts = np.random.default_rng(seed).poisson(intensity * peak / intensity.max()).astype(np.float32)
    grids = np.meshgrid(*[np.arange(n) - n // 2 for n in obj.shape], indexing="ij")
    valid = sum(g.astype(float) ** 2 for g in grids) > beamstop_px**2 if beamstop_px else np.ones(obj.shape, bool)
    counts[~valid] = 0
    return torch.from_numpy(counts), torch.from_numpy(valid)


def _specimen(shape=(48, 48), seed=2) -> np.ndarray:
    return cell_specimen(shape, rng=np.random.default_rng(seed)).real.astype(np.complex128)


@pytest.mark.parametrize("offset", [(0.3, -0.4), (0.5, 0.5), (-0.2, 0.1)])
def test_a_real_object_off_the_pixel_reads_as_symmetric_about_its_own_centre(offset):
    counts, valid = _counts(_specimen(), offset)
    assert pixel_asymmetry(counts, valid).value > 2 * THRESHOLD  # mirrored about the pixel it looks strained
    found = friedel_asymmetry(counts, valid)
    assert found.value + 2 * found.standard_error < THRESHOLD
    assert np.allclose(found.centre_offset_px, offset, atol=0.05)
    assert np.allclose(centre_offset_px(counts, valid), offset, atol=0.05)  # the Patterson ramp alone


def test_a_masked_beamstop_over_the_peak_does_not_hide_the_symmetry():
    counts, valid = _counts(_specimen(), (0.35, -0.25), beamstop_px=2)
    found = friedel_asymmetry(counts, valid)
    assert found.value + 2 * found.standard_error < THRESHOLD


def test_a_strained_crystal_stays_asymmetric_wherever_its_centre_falls():
    crystal = faceted_crystal((48, 48), rng=np.random.default_rng(4), dislocation=True)
    for offset in [(0.0, 0.0), (0.4, -0.3)]:
        counts, valid = _counts(crystal, offset)
        assert friedel_asymmetry(counts, valid).value > 5 * THRESHOLD


def test_a_centred_pattern_keeps_the_measure_about_the_pixel():
    counts, valid = _counts(_specimen(), (0.0, 0.0))
    assert friedel_asymmetry(counts, valid).value <= pixel_asymmetry(counts, valid).value


def test_auto_calls_an_off_centre_specimen_a_specimen_and_records_why():
    counts, valid = _counts(_specimen(), (0.4, 0.3))
    measurement = Measurement(intensity=counts.numpy(), valid=valid.numpy(), name="x")
    method, record = decide_method(measurement, RunConfig().validate(), torch.device("cpu"))
    assert method is Method.HIO and record["kind"] == "specimen"
    assert record["friedel_asymmetry"] < record["threshold"] == THRESHOLD
    assert np.allclose(record["centre_offset_px"], (0.4, 0.3), atol=0.05)
    assert "centrosymmetric" in record["reason"] and "from the centre pixel" in record["reason"]
    named, none = decide_method(measurement, RunConfig(method=Method.DIP).validate(), torch.device("cpu"))
    assert named is Method.DIP and none == {}


def test_the_corpus_off_centre_condition_puts_the_zero_frequency_inside_its_pixel():
    case = next(corpus_cases("tuning", dims=(2,), quick=True, families=["cell"], conditions=["off-centre"]))
    offset = case.settings.centre_offset_px[:2]
    assert all(abs(d) <= 0.5 for d in offset) and any(abs(d) > 0.05 for d in offset)
    counts, valid = torch.from_numpy(case.counts), torch.from_numpy(case.valid)
    assert np.allclose(friedel_asymmetry(counts, valid).centre_offset_px, offset, atol=0.05)


def test_any_corpus_case_can_be_moved_off_its_centre_pixel():
    case = next(corpus_cases("tuning", dims=(2,), quick=True, families=["lithography"], conditions=["hot"]))
    moved = moved_off_centre(case)
    offset = moved.settings.centre_offset_px[:2]
    assert moved.label == case.label + "+off-centre" and np.array_equal(moved.truth, case.truth)
    assert all(abs(d) <= 0.5 for d in offset) and moved.settings.hot_pixels == case.settings.hot_pixels
    assert moved_off_centre(case).settings == moved.settings  # seeded by the case
    assert pixel_asymmetry(torch.from_numpy(moved.counts), torch.from_numpy(moved.valid)).value > \
        pixel_asymmetry(torch.from_numpy(case.counts), torch.from_numpy(case.valid)).value


def test_the_same_pattern_is_measured_once_and_another_pattern_afresh(monkeypatch):
    from cdi_dip.solvers import friedel

    counts, valid = _counts(_specimen(), (0.3, 0.2))
    calls = []
    measure = friedel.measure_friedel_asymmetry
    monkeypatch.setattr(friedel, "measure_friedel_asymmetry", lambda *a, **k: calls.append(1) or measure(*a, **k))
    first = friedel_asymmetry(counts, valid)
    assert friedel_asymmetry(counts.clone(), valid.clone()) == first and len(calls) == 1  # same contents
    other = counts.clone()
    other[3, 5] += 7
    friedel_asymmetry(other, valid)
    fewer = valid.clone()
    fewer[10, 10] = False
    friedel_asymmetry(counts, fewer)
    assert len(calls) == 3
