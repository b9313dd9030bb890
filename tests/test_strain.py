"""Unwrapping, displacement and strain along Q (cdi_dip.strain) against a crystal whose strain is known."""

import numpy as np
import pytest

from cdi_dip.geometry import q_norm_per_m, scattering_angle_rad, strain_weights_per_m, wavelength_m_from_kev
from cdi_dip.strain import axis_derivative, displacement_m, strain_along, unwrap_phase, wrap
from cdi_dip.types import ScanMeta

from strained import erode, quadratic_crystal

META = ScanMeta(wavelength_m=wavelength_m_from_kev(9.0), distance_m=0.5, pixel_size_m=(55e-6, 55e-6),
                rocking_step_deg=0.02, detector_angles_deg=(32.174, 12.6346))


def test_wrap_range():
    assert wrap(np.array([np.pi, -np.pi, 3 * np.pi, 0.5])) == pytest.approx([np.pi, np.pi, np.pi, 0.5])


def test_unwrap_recovers_a_ramp_of_several_turns_in_2d():
    y, x = np.indices((40, 40))
    truth = 0.9 * x + 0.3 * y  # 0.9 rad per pixel, about 8 turns across
    support = (y - 20) ** 2 + (x - 20) ** 2 < 18 ** 2
    unwrapped = unwrap_phase(wrap(truth), support)
    offset = truth[support] - unwrapped[support]
    assert np.ptp(offset) == pytest.approx(0.0, abs=1e-9)
    assert np.isnan(unwrapped[~support]).all()


def test_unwrap_leaves_unconnected_parts_nan():
    support = np.zeros((5, 9), dtype=bool)
    support[:, :3] = support[:, 6:] = True
    weight = np.zeros(support.shape)
    weight[2, 1] = 1
    out = unwrap_phase(np.zeros(support.shape), support, weight=weight)
    assert np.isfinite(out[:, :3]).all() and np.isnan(out[:, 6:]).all()


def test_axis_derivative_one_sided_at_edges():
    field = np.array([np.nan, 1.0, 3.0, 6.0, np.nan])
    assert axis_derivative(field, 0)[1:4] == pytest.approx([2.0, 2.5, 3.0])
    assert np.isnan(axis_derivative(field, 0)[[0, 4]]).all()


def test_strain_of_a_quadratic_displacement_field():
    shape = (24, 28, 28)
    obj, support, expected = quadratic_crystal(META, shape)
    q_norm = q_norm_per_m(META.wavelength_m, scattering_angle_rad(*META.detector_angles_deg))
    phase = unwrap_phase(np.angle(obj), support, weight=np.abs(obj))
    assert np.ptp(phase[support]) > 4 * np.pi  # several turns were unwrapped
    strain = strain_along(displacement_m(phase, q_norm), strain_weights_per_m(META, shape))
    inner = erode(support, 2)
    rms = np.sqrt(np.mean((strain[inner] - expected[inner]) ** 2))
    assert np.abs(expected[inner]).max() > 1e-3
    # Central differences of a quadratic are exact: only rounding is left (measured 2.6e-11 for 1.1e-3 at most).
    assert rms < 1e-6, rms


def test_interior_figures_leave_out_the_surface_and_detached_fragments():
    from cdi_dip.strain import StrainMaps, interior_mask

    z, y, x = np.mgrid[:20, :20, :20] - 10
    ball = x ** 2 + y ** 2 + z ** 2 <= 49
    fragment = np.zeros_like(ball)
    fragment[0:2, 0:2, 0:2] = True
    support = ball | fragment
    interior = interior_mask(support)
    assert not (interior & fragment).any() and interior.sum() < ball.sum()
    assert (interior <= ball).all() and interior[10, 10, 10]
    # Strain 1e-4 inside, 1e-2 on the surface layer and the fragment: the interior RMS is the inside's.
    strain = np.where(support, 1e-2, np.nan)
    strain[interior_mask(ball, depth=1)] = 1e-4
    maps = StrainMaps(phase_rad=strain, displacement_m=strain, strain=strain, support=support,
                      q_norm_per_m=1.0, weights_per_m=np.zeros(3))
    record = maps.summary()
    assert record["interior_strain_rms"] == pytest.approx(1e-4)
    assert record["strain_rms"] > 10 * record["interior_strain_rms"]


def test_crystal_extent_leaves_out_a_faint_tail_of_the_support():
    """A 10-voxel cube with a 10-voxel tail at 5 % of its amplitude: the crystal is the cube."""
    from cdi_dip.strain import CRYSTAL_AMPLITUDE_FRACTION, crystal_extent_nm

    support = np.zeros((32, 16, 16), dtype=bool)
    support[5:15, 3:13, 3:13] = True
    support[15:25, 7:9, 7:9] = True  # the tail, attached to the cube
    amplitude = np.where(support, 1.0, 0.0)
    amplitude[15:25] *= 0.2 * CRYSTAL_AMPLITUDE_FRACTION
    voxel = (2.0, 1.0, 1.0)
    assert crystal_extent_nm(support, voxel)[0] == (40.0, 10.0, 10.0)
    extent, detached = crystal_extent_nm(support, voxel, amplitude)
    assert extent == (20.0, 10.0, 10.0) and detached == 0
