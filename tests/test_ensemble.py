"""Ensembles: matching through the symmetries, spread maps, PRTF and resolution."""

from __future__ import annotations

import numpy as np
import pytest

from cdi_dip.ensemble import (
    PRTF_THRESHOLD,
    align_object,
    compare_objects,
    compute_prtf,
    ensemble_statistics,
    match_to_reference,
    object_pixel_size_m,
    pairwise_errors,
    prtf,
    resolution_from_prtf,
    restart_object,
    subpixel_shift,
    twin,
)
from cdi_dip.errors import InvalidInputError
from cdi_dip.io.result_cxi import ensemble_datasets, ensemble_from_datasets, prtf_datasets, prtf_from_datasets
from cdi_dip.simulate import far_field, faceted_crystal
from cdi_dip.types import ScanMeta


def _offsets(shape):
    return np.indices(shape) - np.array([n // 2 for n in shape]).reshape((-1,) + (1,) * len(shape))


def _ramp(obj, ramp_rad_per_px):
    return obj * np.exp(1j * np.tensordot(np.asarray(ramp_rad_per_px, dtype=float), _offsets(obj.shape), axes=1))


def _disguise(obj, *, shift, ramp, phase, is_twin):
    """The inverse of a ``compare_objects`` transform: phase and ramp, then shift, then twin."""
    out = subpixel_shift(_ramp(obj * np.exp(1j * phase), ramp), shift)
    return twin(out) if is_twin else out


def _centred_ifft(field):
    axes = tuple(range(field.ndim))
    return np.fft.fftshift(np.fft.ifftn(np.fft.ifftshift(field, axes=axes), axes=axes, norm="ortho"), axes=axes)


def _radius(shape):
    return np.sqrt(sum(((np.arange(n) - n // 2) / n).reshape([n if a == i else 1 for a in range(len(shape))]) ** 2
                       for i, n in enumerate(shape)))


@pytest.mark.parametrize("is_twin", [False, True])
@pytest.mark.parametrize("shift", [(0.3, -2.45), (-1.5, 3.49)])
def test_an_aligned_object_moved_back_predicts_the_pattern_of_the_unaligned_one(is_twin, shift):
    """Removing the ramp moves the pattern and the sub-pixel shift moves the object beside its support;
    restart_object undoes both, so that the object fits the original intensity on its aligned support."""
    truth = faceted_crystal((32, 32), rng=np.random.default_rng(2)).astype(np.complex128)
    unaligned = _disguise(truth, shift=shift, ramp=(0.4, -0.7), phase=1.0, is_twin=is_twin)
    support = np.abs(unaligned) > 0.1 * np.abs(unaligned).max()
    aligned, aligned_support, info = align_object(unaligned, support)
    pattern = np.abs(np.fft.fftn(unaligned)) ** 2
    restarted = restart_object(aligned, aligned_support, info)
    # not exact: the alignment removed the ramp in two parts around the sub-pixel shift, undone here in one
    assert np.abs(np.abs(np.fft.fftn(restarted)) ** 2 - pattern).sum() < 0.02 * pattern.sum()
    assert np.abs(np.abs(np.fft.fftn(aligned)) ** 2 - pattern).sum() > 0.5 * pattern.sum()  # the ramp moved it
    inside = float(np.sum(np.abs(restarted[aligned_support]) ** 2) / np.sum(np.abs(restarted) ** 2))
    assert inside == pytest.approx(float(np.sum(np.abs(unaligned[support]) ** 2) / np.sum(np.abs(unaligned) ** 2)),
                                   abs=1e-3)


@pytest.fixture(scope="module")
def crystal():
    return faceted_crystal((32, 32), rng=np.random.default_rng(5)).astype(np.complex128)


@pytest.mark.parametrize("shape", [(32, 32), (16, 20, 18)])
@pytest.mark.parametrize("is_twin", [False, True])
def test_a_disguised_copy_comes_back_equal(shape, is_twin):
    truth = faceted_crystal(shape, rng=np.random.default_rng(1)).astype(np.complex128)
    disguised = _disguise(truth, shift=[1.3, -2.6, 0.4][:len(shape)], ramp=[0.1, -0.05, 0.03][:len(shape)],
                          phase=0.7, is_twin=is_twin)
    matched = match_to_reference(disguised.astype(np.complex64), truth)
    assert matched.dtype == np.complex64 and matched.shape == truth.shape
    assert np.linalg.norm(matched - truth) / np.linalg.norm(truth) < 1e-5
    # the twin flag is what compare_objects found, and the magnitudes are those of the far field
    assert compare_objects(disguised, truth).twin == is_twin


def test_match_does_not_rescale(crystal):
    matched = match_to_reference(3.0 * crystal, crystal)
    np.testing.assert_allclose(np.abs(matched), 3.0 * np.abs(crystal), atol=1e-9)


def test_match_crops_a_larger_object_to_the_reference_frame(crystal):
    bigger = np.zeros((40, 40), dtype=np.complex128)
    bigger[4:36, 4:36] = np.roll(crystal, (2, -1), axis=(0, 1))
    matched = match_to_reference(bigger, crystal)
    assert matched.shape == crystal.shape
    assert np.linalg.norm(matched - crystal) / np.linalg.norm(crystal) < 1e-6


def test_ensemble_of_disguised_copies_has_no_spread(crystal):
    support = np.abs(crystal) > 0.1
    disguises = [dict(shift=(0.0, 0.0), ramp=(0.0, 0.0), phase=0.0, is_twin=False),
                 dict(shift=(2.0, -1.0), ramp=(0.05, 0.0), phase=1.0, is_twin=True),
                 dict(shift=(-1.5, 0.5), ramp=(0.0, -0.08), phase=-2.0, is_twin=False)]
    members = [_disguise(crystal, **d) for d in disguises]
    supports = [np.abs(m) > 0.1 for m in members]
    ensemble = ensemble_statistics(members, supports)
    assert ensemble.size == 3 and ensemble.objects.shape == (3, 32, 32)
    assert np.linalg.norm(ensemble.mean - crystal) / np.linalg.norm(crystal) < 1e-5
    assert np.abs(ensemble.amplitude_std).max() < 1e-5
    strong = np.isfinite(ensemble.phase_std_rad)
    assert strong.any() and np.nanmax(ensemble.phase_std_rad) < 1e-4
    assert not strong[np.abs(crystal) < 0.05 * np.abs(crystal).max()].any()  # weak mean amplitude: NaN
    assert ensemble.errors_to_reference.max() < 1e-5
    assert [t.twin for t in ensemble.transforms] == [False, True, False]
    # supports move with their objects: a whole-pixel shift and the twin flip are undone exactly
    assert np.array_equal(ensemble.supports[0], support)
    assert np.array_equal(ensemble.supports[1], support)
    assert np.array_equal(ensemble.support_majority, support)
    assert ensemble.pairwise_errors.shape == (3, 3) and ensemble.pairwise_errors.max() < 1e-5
    assert ensemble.summary()["members"] == 3 and ensemble.summary()["twins"] == 1


def test_spread_maps_see_where_members_disagree(crystal):
    rng = np.random.default_rng(0)
    region = np.zeros(crystal.shape, dtype=bool)
    region[14:18, 14:18] = True
    members = []
    for _ in range(6):
        member = crystal.copy()
        member[region] *= np.exp(1j * rng.uniform(-0.5, 0.5))
        members.append(member)
    ensemble = ensemble_statistics(members, [np.abs(crystal) > 0.1] * 6, pairwise=False)
    assert ensemble.pairwise_errors is None
    inside = np.nanmedian(ensemble.phase_std_rad[region])
    outside = np.nanmedian(ensemble.phase_std_rad[~region & (np.abs(crystal) > 0.5)])
    assert inside > 0.15 and inside > 3 * outside  # the global phase fit spreads a little of it


def test_keep_selects_members_and_validates(crystal):
    members = [crystal, 1j * crystal, -crystal]
    supports = [np.abs(crystal) > 0.1] * 3
    assert ensemble_statistics(members, supports, keep=2, pairwise=False).members == (0, 1)
    assert ensemble_statistics(members, supports, keep=[2, 0], pairwise=False).members == (2, 0)
    with pytest.raises(InvalidInputError, match="keep"):
        ensemble_statistics(members, supports, keep=4)
    with pytest.raises(InvalidInputError, match="shape"):
        ensemble_statistics([crystal, crystal[:30]], supports[:2])


def test_pairwise_errors_are_zero_for_copies_and_large_for_strangers(crystal):
    other = faceted_crystal((32, 32), rng=np.random.default_rng(9), size_fraction=0.3)
    errors = pairwise_errors([crystal, np.roll(crystal, 3, axis=1), other])
    assert errors[0, 1] < 1e-6 and errors[1, 0] < 1e-6
    assert errors[0, 2] > 0.2 and errors[2, 1] > 0.2
    assert np.all(np.diag(errors) == 0)
    assert pairwise_errors([crystal, np.pad(crystal, 4)])[0, 1] < 1e-6  # frames may differ
    with pytest.raises(InvalidInputError, match="at least two"):
        pairwise_errors([crystal])


# -- PRTF ------------------------------------------------------------------------------------
def _framed(obj, frame):
    out = np.zeros(frame, dtype=np.complex128)
    box = tuple(slice(n // 2 - m // 2, n // 2 - m // 2 + m) for n, m in zip(frame, obj.shape))
    out[box] = obj
    return out


def test_identical_members_give_prtf_one_where_there_is_signal(crystal):
    obj = _framed(crystal, (64, 64))
    counts = np.abs(far_field(obj)) ** 2
    valid = np.ones(counts.shape, dtype=bool)
    valid[30:34, 30:34] = False  # a beamstop: never used
    freq, values = prtf([obj, obj, obj], counts, valid)
    assert freq[0] > 0 and np.all(np.diff(freq) > 0) and freq[-1] <= 0.5
    np.testing.assert_allclose(values[np.isfinite(values)], 1.0, atol=1e-9)
    assert resolution_from_prtf(freq, values) is None  # never below 1/e: limited by the detector edge


def test_random_phases_above_a_cutoff_make_the_prtf_fall_there(crystal):
    obj = _framed(crystal, (64, 64))
    spectrum = far_field(obj)
    counts = np.abs(spectrum) ** 2
    cutoff = 0.2  # cycles per pixel
    high = _radius(counts.shape) >= cutoff
    rng = np.random.default_rng(3)
    members = [_centred_ifft(spectrum * np.where(high, np.exp(1j * rng.uniform(-np.pi, np.pi, counts.shape)), 1))
               for _ in range(16)]
    freq, values = prtf(members, counts, np.ones(counts.shape, dtype=bool))
    width = freq[1] - freq[0]
    assert np.all(values[freq + width / 2 <= cutoff] > 0.99)
    assert np.all(values[freq - width / 2 > cutoff] < 0.35)  # ~ sqrt(pi / 4K) = 0.22
    resolution = resolution_from_prtf(freq, values)
    assert abs(1 / (2 * resolution) - cutoff) <= width


def test_prtf_needs_the_ramp_of_an_off_centre_peak_back(crystal):
    obj = _framed(crystal, (64, 64))
    peak_offset = np.array([3, -2])
    measured_obj = _ramp(obj, 2 * np.pi * peak_offset / 64)  # Bragg peak 3 px down, 2 px left
    counts = np.abs(far_field(measured_obj)) ** 2
    aligned, support, info = align_object(measured_obj, np.abs(measured_obj) > 0.1)
    valid = np.ones(counts.shape, dtype=bool)
    _, without = prtf([aligned, aligned], counts, valid)
    _, with_ramp = prtf([aligned, aligned], counts, valid, ramp_rad_per_px=info.ramp_rad_per_px)
    np.testing.assert_allclose(with_ramp, 1.0, atol=0.01)
    assert np.nanmax(np.abs(without - 1)) > 0.3  # a far field displaced from the measured one


def test_resolution_of_a_step_function():
    freq = (np.arange(32) + 0.5) / 64
    values = np.where(freq < 0.25, 0.9, 0.1)
    crossing = freq[freq < 0.25][-1] + (0.9 - PRTF_THRESHOLD) / 0.8 * (freq[1] - freq[0])
    assert resolution_from_prtf(freq, values) == pytest.approx(1 / (2 * crossing))
    assert 1.9 < resolution_from_prtf(freq, values) < 2.1  # half period 1/(2 * 0.25) px
    values_with_gap = values.copy()
    values_with_gap[3] = np.nan  # a shell with no data is skipped
    assert resolution_from_prtf(freq, values_with_gap) == pytest.approx(1 / (2 * crossing))


def test_resolution_in_metres_follows_the_geometry(crystal):
    obj = _framed(crystal, (64, 64))
    spectrum = far_field(obj)
    high = _radius(spectrum.shape) >= 0.25
    rng = np.random.default_rng(4)
    members = [_centred_ifft(spectrum * np.where(high, np.exp(1j * rng.uniform(-np.pi, np.pi, spectrum.shape)), 1))
               for _ in range(12)]
    meta = ScanMeta(wavelength_m=1e-10, distance_m=2.0, pixel_size_m=(50e-6, 50e-6))
    pixel = object_pixel_size_m(meta, (64, 64))
    assert pixel == pytest.approx((1e-10 * 2.0 / (64 * 50e-6),) * 2)
    result = compute_prtf(members, np.abs(spectrum) ** 2, np.ones(spectrum.shape, dtype=bool), meta=meta)
    assert result.resolution_px is not None and result.resolution_m is not None
    assert result.resolution_m == pytest.approx(result.resolution_px * pixel[0], rel=1e-6)
    assert result.summary()["resolution_nm"] == pytest.approx(result.resolution_m * 1e9)
    assert object_pixel_size_m(meta, (8, 64, 64)) is None and object_pixel_size_m(ScanMeta(), (64, 64)) is None
    back = prtf_from_datasets(prtf_datasets(result))
    assert back.resolution_px == result.resolution_px and np.array_equal(back.values, result.values)


def test_prtf_rejects_a_cropped_object(crystal):
    with pytest.raises(InvalidInputError, match="detector frame"):
        prtf([crystal], np.ones((64, 64)), np.ones((64, 64), dtype=bool))


def test_ensemble_datasets_round_trip(crystal):
    ensemble = ensemble_statistics([crystal, twin(crystal)], [np.abs(crystal) > 0.1] * 2)
    back = ensemble_from_datasets(ensemble_datasets(ensemble))
    assert back.size == 2 and back.summary()["twins"] == 1
    assert np.array_equal(back.amplitude_std, ensemble.amplitude_std)
    assert np.array_equal(back.support_majority, ensemble.support_majority)
