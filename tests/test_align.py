"""Alignment and symmetry-adjusted comparison: known shifts, ramps, twins and phases are recovered."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdi_dip.ensemble import (
    align_object,
    centre_of_mass,
    centring_weights,
    compare_objects,
    crop_to_support,
    pad_or_crop,
    remove_phase_offset,
    remove_phase_ramp,
    subpixel_shift,
    symmetry_adjusted_error,
    twin,
)
from cdi_dip.errors import InvalidInputError
from cdi_dip.simulate import cell_specimen, far_field, faceted_crystal


def _ramp(obj: np.ndarray, ramp_rad_per_px) -> np.ndarray:
    """``obj * exp(i g . (r - n // 2))``, written independently of the module."""
    grids = np.indices(obj.shape) - np.array([n // 2 for n in obj.shape]).reshape((-1,) + (1,) * obj.ndim)
    return obj * np.exp(1j * np.tensordot(np.asarray(ramp_rad_per_px, dtype=float), grids, axes=1))


def _smooth_object(shape, seed: int = 0) -> np.ndarray:
    """A band-limited, compact complex object (a super-Gaussian blob with a smooth phase)."""
    rng = np.random.default_rng(seed)
    offsets = np.indices(shape) - np.array([n // 2 for n in shape]).reshape((-1,) + (1,) * len(shape))
    radius = np.sqrt(sum((o / (n / 9)) ** 2 for o, n in zip(offsets, shape)))
    amplitude = np.exp(-radius**4) * (1 + 0.3 * np.cos(offsets[0] / 2.5 + rng.uniform(0, 6)))
    phase = 0.8 * np.sin(offsets[-1] / 4.0 + rng.uniform(0, 6)) + 0.02 * offsets[0] ** 2
    return amplitude * np.exp(1j * phase)


@pytest.fixture(scope="module")
def crystal_2d() -> np.ndarray:
    return faceted_crystal((32, 32), rng=np.random.default_rng(7)).astype(np.complex128)


@pytest.fixture(scope="module")
def crystal_3d() -> np.ndarray:
    return faceted_crystal((16, 16, 16), rng=np.random.default_rng(8)).astype(np.complex128)


# -- building blocks ----------------------------------------------------------------
def test_twin_keeps_the_centre_and_the_diffraction_magnitudes(crystal_2d):
    twinned = twin(crystal_2d)
    assert np.allclose(np.abs(far_field(twinned)), np.abs(far_field(crystal_2d)), atol=1e-9)
    assert twinned[16, 16] == np.conj(crystal_2d[16, 16])
    assert np.allclose(twin(twinned), crystal_2d)


@pytest.mark.parametrize("shape", [(15, 15), (9, 8, 7)])
def test_twin_maps_the_centre_to_itself_for_odd_sizes(shape):
    obj = np.random.default_rng(0).normal(size=shape) + 0j
    centre = tuple(n // 2 for n in shape)
    assert twin(obj)[centre] == obj[centre]


def test_subpixel_shift_integer_is_a_roll_and_fractions_round_trip():
    obj = _smooth_object((24, 24))
    assert np.array_equal(subpixel_shift(obj, (2, -3)), np.roll(obj, (2, -3), axis=(0, 1)))
    back = subpixel_shift(subpixel_shift(obj, (0.4, -1.7)), (-0.4, 1.7))
    assert np.allclose(back, obj, atol=1e-12)


def test_subpixel_shift_moves_the_centre_of_mass():
    amplitude = np.abs(_smooth_object((32, 32)))
    before = np.array(centre_of_mass(amplitude))
    after = np.array(centre_of_mass(subpixel_shift(amplitude, (1.25, -0.5))))
    assert np.allclose(after - before, (1.25, -0.5), atol=0.01)


def test_centre_of_mass_of_an_object_straddling_the_frame_edge():
    weights = np.zeros((20, 20))
    weights[[18, 19, 0, 1], 5] = 1.0  # centred on 19.5, wrapped around
    assert centre_of_mass(weights)[0] == pytest.approx(19.5)


@pytest.mark.parametrize("ramp", [(0.3, -0.2), (2.5, -1.9), (2 * np.pi * 5 / 48, 0.0)])
def test_remove_phase_ramp_recovers_a_known_ramp_even_when_it_wraps(ramp):
    obj = faceted_crystal((48, 48), rng=np.random.default_rng(1), strain_rad=0.0)
    support = np.abs(obj) > 0
    flat, found = remove_phase_ramp(_ramp(obj, ramp), support)
    assert np.allclose(found, ramp, atol=1e-6)
    assert np.abs(np.angle(flat[support])).max() < 1e-6


def test_remove_phase_ramp_in_3d():
    obj = faceted_crystal((16, 16, 16), rng=np.random.default_rng(2), strain_rad=0.0)
    support = np.abs(obj) > 0
    _, found = remove_phase_ramp(_ramp(obj, (0.2, -0.7, 1.1)), support)
    assert np.allclose(found, (0.2, -0.7, 1.1), atol=1e-6)


def test_remove_phase_offset_zeroes_the_weighted_mean_phase(crystal_2d):
    support = np.abs(crystal_2d) > 0
    out, offset = remove_phase_offset(crystal_2d * np.exp(2.0j), support)
    assert abs(np.angle(np.sum(out[support]))) < 1e-9
    assert abs(np.angle(np.exp(1j * offset) / np.sum(crystal_2d[support] * np.exp(2.0j)))) < 1e-9


# -- align_object ----------------------------------------------------------------------
@pytest.mark.parametrize("shape, shift, ramp", [
    ((48, 48), (6.3, -8.6), (0.5, -1.1)),
    ((48, 48), (20.0, -22.0), (0.4, 0.1)),  # wraps around the frame edge
    ((32, 32, 32), (2.4, -3.7, 1.5), (0.3, 0.0, -0.6)),
])
def test_align_object_centres_and_removes_ramp_and_offset(shape, shift, ramp):
    # Band-limited on purpose: for an object with sharp edges a sub-pixel
    # (Fourier) shift and a phase ramp commute only approximately on a grid.
    truth = _smooth_object(shape, seed=4)
    moved = subpixel_shift(_ramp(truth, ramp), shift) * np.exp(1.3j)
    support = np.abs(moved) > 0.05 * np.abs(moved).max()
    obj, support_out, info = align_object(moved.astype(np.complex64), support)
    assert obj.dtype == np.complex64 and support_out.dtype == bool and support_out.sum() == support.sum()
    centre = np.array([n // 2 for n in shape])
    assert np.allclose(centre_of_mass(centring_weights(obj, support_out)), centre, atol=0.05)
    _, residual_ramp = remove_phase_ramp(obj, support_out)
    assert np.abs(residual_ramp).max() < 1e-4
    assert abs(np.angle(np.sum(obj[support_out]))) < 1e-4
    assert len(info.shift_px) == len(shape) and len(info.ramp_rad_per_px) == len(shape)
    # Alignment only removes trivial symmetries.
    assert symmetry_adjusted_error(obj, truth) < 0.01


@pytest.mark.parametrize("shape, dislocation, seed", [
    ((64, 64), False, 2), ((64, 64), True, 2), ((64, 64), True, 5), ((32, 32, 32), True, 1),
])
def test_align_object_removes_a_subpixel_ramp_from_a_crystal(shape, dislocation, seed):
    # A Bragg peak off the frame centre by whole bins and a fraction; a dislocation splits the peak.
    # (The ramp goes on after the shift: a sharp-edged crystal's spectrum fills the frame, and a ramp
    # first would wrap it round before the Fourier shift.)
    truth = faceted_crystal(shape, rng=np.random.default_rng(seed), dislocation=dislocation).astype(np.complex128)
    bins = np.array([1.37, -0.61, 2.2][:len(shape)])
    moved = _ramp(subpixel_shift(truth, [1.3] * len(shape)), 2 * np.pi * bins / np.array(shape)) * np.exp(0.4j)
    obj, _, info = align_object(moved, np.abs(moved) > 0.1 * np.abs(moved).max())
    as_written = compare_objects(obj, truth, ramp=False).error
    assert as_written - compare_objects(obj, truth).error < 0.01
    assert np.allclose(info.ramp_rad_per_px, 2 * np.pi * bins / np.array(shape), atol=2e-3)


def test_align_object_without_support_uses_the_strong_pixels():
    truth = faceted_crystal((32, 32), rng=np.random.default_rng(5))
    obj, support, _ = align_object(np.roll(truth, 3, axis=1), None)
    assert support.any() and np.allclose(centre_of_mass(centring_weights(obj, support)), (16, 16), atol=0.05)


def test_align_object_rejects_a_mismatched_support():
    with pytest.raises(InvalidInputError, match="support shape"):
        align_object(np.ones((8, 8), complex), np.ones((8, 9), bool))


def test_crop_to_support_keeps_the_support_and_a_margin():
    support = np.zeros((20, 20), bool)
    support[5:9, 10:15] = True
    obj, cropped = crop_to_support(np.arange(400.0).reshape(20, 20), support, margin_px=2)
    assert cropped.shape == (8, 9) and cropped.sum() == support.sum()
    assert obj[0, 0] == 3 * 20 + 8


# -- compare_objects ------------------------------------------------------------------
def _disguise(obj, *, shift, ramp, is_twin, phase=2.1, scale=0.37):
    """The object with every trivial symmetry applied: ramp, shift, twin, global phase and scale."""
    moved = subpixel_shift(_ramp(obj, ramp), shift)
    if is_twin:
        moved = twin(moved)
    return scale * np.exp(1j * phase) * moved


@pytest.mark.parametrize("is_twin", [False, True])
@pytest.mark.parametrize("shift", [(3, -5), (1.4, -2.3)])
def test_compare_removes_every_symmetry_2d(crystal_2d, is_twin, shift):
    ramp = (0.3, -0.2)
    figures = compare_objects(_disguise(crystal_2d, shift=shift, ramp=ramp, is_twin=is_twin), crystal_2d)
    assert figures.error < 1e-3
    assert figures.twin is is_twin
    assert figures.phase_error_rad < 1e-3
    if not is_twin:
        assert np.allclose(figures.shift_px, -np.array(shift), atol=0.05)
        assert figures.scale == pytest.approx(1 / 0.37, rel=1e-3)


@pytest.mark.parametrize("is_twin", [False, True])
def test_compare_removes_every_symmetry_3d(crystal_3d, is_twin):
    disguised = _disguise(crystal_3d, shift=(1.4, -2.3, 0.6), ramp=(0.3, -0.2, 0.1), is_twin=is_twin)
    figures = compare_objects(disguised, crystal_3d)
    assert figures.error < 1e-3 and figures.twin is is_twin


def test_compare_without_ramp_removal_sees_the_ramp(crystal_2d):
    disguised = _disguise(crystal_2d, shift=(1.4, -2.3), ramp=(0.0, 0.0), is_twin=True)
    assert compare_objects(disguised, crystal_2d, ramp=False).error < 1e-3
    ramped = _ramp(crystal_2d, (0.05, -0.08))
    kept = compare_objects(ramped, crystal_2d, ramp=False)
    assert kept.error > 0.2 and kept.ramp_rad_per_px == (0.0, 0.0)
    assert compare_objects(ramped, crystal_2d).error < 1e-3


def test_compare_with_ramp_after_a_subpixel_shift_of_a_bandlimited_object():
    # The other order of ramp and sub-pixel shift: equal only for band-limited objects.
    obj = _smooth_object((64, 64), seed=3)
    disguised = twin(_ramp(subpixel_shift(obj, (2.3, -1.6)), (0.25, -0.4))) * np.exp(0.5j)
    assert symmetry_adjusted_error(disguised, obj) < 0.01


@settings(max_examples=12, deadline=None)
@given(
    shift=st.tuples(st.integers(-6, 6), st.integers(-6, 6)),
    fraction=st.tuples(st.floats(-0.5, 0.5), st.floats(-0.5, 0.5)),
    ramp=st.tuples(st.floats(-0.8, 0.8), st.floats(-0.8, 0.8)),
    phase=st.floats(-np.pi, np.pi),
    scale=st.floats(0.01, 100.0),
    is_twin=st.booleans(),
)
def test_compare_property_any_trivial_symmetry_scores_zero(shift, fraction, ramp, phase, scale, is_twin):
    obj = cell_specimen((32, 32), rng=np.random.default_rng(11)).astype(np.complex128)
    total_shift = tuple(s + f for s, f in zip(shift, fraction))
    disguised = _disguise(obj, shift=total_shift, ramp=ramp, is_twin=is_twin, phase=phase, scale=scale)
    assert symmetry_adjusted_error(disguised, obj) < 1e-3


def test_identical_is_zero_and_error_is_symmetric(crystal_2d):
    other = faceted_crystal((32, 32), rng=np.random.default_rng(99))
    assert symmetry_adjusted_error(crystal_2d, crystal_2d) < 1e-12
    forward = symmetry_adjusted_error(other, crystal_2d)
    backward = symmetry_adjusted_error(crystal_2d, other)
    assert forward == pytest.approx(backward, abs=0.02)


def test_unrelated_objects_score_high(crystal_2d):
    noise = np.random.default_rng(3).normal(size=(32, 32)) + 1j * np.random.default_rng(4).normal(size=(32, 32))
    noise *= np.abs(crystal_2d) > 0
    assert symmetry_adjusted_error(noise, crystal_2d) > 0.8
    other = faceted_crystal((32, 32), rng=np.random.default_rng(12), strain_rad=3.0)
    assert symmetry_adjusted_error(other, crystal_2d) > 0.3
    assert symmetry_adjusted_error(np.zeros((32, 32)), crystal_2d) == 1.0


def test_compare_objects_of_different_frame_sizes():
    truth = faceted_crystal((32, 32), rng=np.random.default_rng(6)).astype(np.complex128)
    big = pad_or_crop(_disguise(truth, shift=(2, -1), ramp=(0.1, 0.2), is_twin=True), (64, 64))
    assert compare_objects(big, truth).error < 1e-3
    assert compare_objects(truth, big).error < 1e-3


def test_compare_on_a_support_ignores_what_lies_outside(crystal_2d):
    support = np.abs(crystal_2d) > 0
    noisy = crystal_2d + 1.0 * (~support) * np.random.default_rng(2).normal(size=crystal_2d.shape)
    assert symmetry_adjusted_error(noisy, crystal_2d) > 0.5
    assert symmetry_adjusted_error(noisy, crystal_2d, support=support) < 1e-6


def test_compare_rejects_bad_inputs():
    with pytest.raises(InvalidInputError, match="2D"):
        compare_objects(np.ones((8, 8)), np.ones((8, 8, 8)))
    with pytest.raises(InvalidInputError, match="zero"):
        compare_objects(np.ones((8, 8)), np.zeros((8, 8)))
    with pytest.raises(InvalidInputError, match="NaN"):
        compare_objects(np.full((8, 8), np.nan), np.ones((8, 8)))
