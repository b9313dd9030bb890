"""Voxel sizes, |Q| and the detector-frame basis of cdi_dip.geometry, checked by hand."""

import numpy as np
import pytest

from cdi_dip.geometry import (
    detector_voxel_m, lab_vectors, q_norm_per_m, real_space_basis, rocking_voxel_m, scattering_angle_rad,
    strain_weights_per_m, voxel_size_m, wavelength_m_from_kev,
)
from cdi_dip.types import ScanMeta

SCAN54 = ScanMeta(wavelength_m=wavelength_m_from_kev(9.0), distance_m=0.5, pixel_size_m=(55e-6, 55e-6),
                  rocking_step_deg=0.005, detector_angles_deg=(32.174, 12.6346))


def test_wavelength_and_q_of_gold_111_at_9_kev():
    assert wavelength_m_from_kev(9.0) == pytest.approx(1.3776e-10, rel=1e-4)
    two_theta = scattering_angle_rad(32.174, 12.6346)
    assert np.degrees(two_theta) == pytest.approx(34.316, abs=1e-3)  # cos 2t = cos d cos g
    d_111 = 4.07999e-10 / np.sqrt(3)  # Au(111): |Q| = 2 pi / d within 1 % (the angles are the motors')
    assert q_norm_per_m(wavelength_m_from_kev(9.0), two_theta) == pytest.approx(2 * np.pi / d_111, rel=0.01)


def test_voxel_sizes_by_hand():
    # lambda D / (N p): 1e-10 * 1 / (100 * 50e-6) = 20 nm
    assert detector_voxel_m(1e-10, 1.0, 100, 50e-6) == pytest.approx(20e-9)
    # lambda / (2 N dtheta sin(theta_B)): 1e-10 / (2 * 50 * 1e-3 * sin 30 deg) = 2 nm
    assert rocking_voxel_m(1e-10, 50, np.degrees(1e-3), np.radians(60.0)) == pytest.approx(2e-9)
    meta = ScanMeta(1e-10, 1.0, (50e-6, 100e-6), rocking_step_deg=np.degrees(1e-3), detector_angles_deg=(60.0, 0.0))
    assert voxel_size_m(meta, (50, 100, 100)) == pytest.approx((2e-9, 20e-9, 10e-9))
    assert voxel_size_m(meta, (100, 100)) == pytest.approx((20e-9, 10e-9))


def test_voxel_size_unknown_without_full_geometry():
    assert voxel_size_m(None, (8, 8)) is None
    assert voxel_size_m(ScanMeta(1e-10, 1.0, None), (8, 8)) is None
    assert voxel_size_m(ScanMeta(1e-10, 1.0, (5e-5, 5e-5)), (8, 8, 8)) is None  # no step, no angles


def test_scan54_voxels():
    rock, row, col = voxel_size_m(SCAN54, (201, 256, 256))
    assert row == pytest.approx(4.892e-9, rel=1e-3) and col == row
    assert rock == pytest.approx(13.31e-9, rel=1e-3)


def test_basis_is_dual_to_the_reciprocal_steps_in_plane():
    # In-plane scattering, rows vertical: a_row is -y, a_column lies in the plane, a_rocking along k_f.
    meta = ScanMeta(1e-10, 1.0, (50e-6, 50e-6), rocking_step_deg=0.01, detector_angles_deg=(40.0, 0.0))
    basis = real_space_basis(meta, (40, 64, 64))
    vectors = lab_vectors(40.0, 0.0)
    assert np.cross(basis[:, 0], vectors["k_f"]) == pytest.approx(np.zeros(3), abs=1e-20)
    assert basis[:, 1] == pytest.approx(np.array([0, -1, 0]) * detector_voxel_m(1e-10, 1.0, 64, 50e-6))
    theta = np.radians(20.0)  # step vector along k_f = slice spacing / cos(theta_B)
    assert np.linalg.norm(basis[:, 0]) == pytest.approx(
        rocking_voxel_m(1e-10, 40, 0.01, 2 * theta) / np.cos(theta), rel=1e-9)


def test_strain_weights_match_the_dual_basis():
    shape = (40, 64, 48)
    weights = strain_weights_per_m(SCAN54, shape)
    dual = np.linalg.inv(real_space_basis(SCAN54, shape)).T  # columns g_i: g_i . a_j = delta_ij
    expected = lab_vectors(32.174, 12.6346)["q"] @ dual
    assert weights == pytest.approx(expected, abs=1e-9 * np.abs(expected).max())
    assert weights[0] == 0.0
