"""Orthogonalisation of a detector-frame Bragg object (cdi_dip.orthogonal) and the strain on the lab/crystal grid."""

import numpy as np
import pytest

from cdi_dip.geometry import q_direction, q_norm_per_m, real_space_basis, scattering_angle_rad, wavelength_m_from_kev
from cdi_dip.orthogonal import (frame_rotation, nyquist_voxel_m, orthogonal_grid, orthogonalise, phase_ramp,
                                q_strain_weights_per_m, trilinear)
from cdi_dip.strain import orthogonal_strain_maps
from cdi_dip.types import ScanMeta

from strained import erode, lab_crystal, lab_positions

# APS 34-ID-C: 9 keV, 0.5 m, 55 um pixels, 0.005 deg rocking step; a (48, 32, 32) frame has steps of 63, 40 and
# 40 nm, sheared (the rocking step vector is 57 deg off the detector plane).
META = ScanMeta(wavelength_m=wavelength_m_from_kev(9.0), distance_m=0.5, pixel_size_m=(55e-6, 55e-6),
                rocking_step_deg=0.005, detector_angles_deg=(32.174, 12.6346), extra={"pixel_orientation": "x+,y-"})
SHAPE = (48, 32, 32)
Q_NORM = q_norm_per_m(META.wavelength_m, scattering_angle_rad(*META.detector_angles_deg))
Q_HAT = q_direction(META)
BASIS = real_space_basis(META, SHAPE)


def test_lab_frame_axes_are_z_y_x():
    assert frame_rotation("lab", Q_HAT) == pytest.approx(np.array([[0, 0, 1], [0, 1, 0], [1, 0, 0]]))


def test_crystal_frame_is_right_handed_with_q_along_axis_0():
    rotation = frame_rotation("crystal", Q_HAT)
    assert rotation @ rotation.T == pytest.approx(np.eye(3), abs=1e-12)
    assert rotation[0] == pytest.approx(Q_HAT)
    assert np.linalg.det(rotation[::-1]) == pytest.approx(1.0)  # (x', y', z') right-handed like the lab's (x, y, z)
    assert rotation[1] @ np.array([0, 1, 0]) > 0  # y' keeps "up"
    assert frame_rotation("crystal", [0, 1, 0])[0] == pytest.approx([0, 1, 0])  # Q vertical: still a frame
    with pytest.raises(ValueError):
        frame_rotation("sample", Q_HAT)


def test_crystal_weights_differentiate_along_axis_0_only():
    _, support, _ = lab_crystal(META, SHAPE, radius_m=300e-9)
    grid = orthogonal_grid(BASIS, support, "crystal", Q_HAT)
    assert q_strain_weights_per_m(grid, Q_HAT) == pytest.approx([1 / grid.voxel_m, 0, 0])
    assert q_strain_weights_per_m(grid, Q_HAT)[1:].tolist() == [0.0, 0.0]


def test_nyquist_voxel_of_a_cubic_grid_is_its_step_and_shear_makes_it_finer():
    assert nyquist_voxel_m(np.eye(3) * 5e-9, frame_rotation("lab", Q_HAT)) == pytest.approx(5e-9)
    voxel = nyquist_voxel_m(BASIS, frame_rotation("lab", Q_HAT))
    assert voxel < np.linalg.norm(BASIS, axis=0).min()
    assert voxel == pytest.approx(29.3e-9, rel=1e-2)


def test_trilinear_is_exact_for_a_linear_field_and_zero_beyond_the_edges():
    rng = np.random.default_rng(0)
    n = np.indices((4, 5, 6), dtype=np.float64)
    field = 1.0 + 2.0 * n[0] - 0.5 * n[1] + 0.25j * n[2]
    points = rng.uniform(0, 3, size=(3, 50))
    assert trilinear(field, points) == pytest.approx(1.0 + 2.0 * points[0] - 0.5 * points[1] + 0.25j * points[2])
    assert trilinear(np.ones((4, 5, 6)), np.array([[-2.0, 10.0], [0.0, 0.0], [0.0, 0.0]])) == pytest.approx([0, 0])


def test_phase_ramp_finds_a_uniform_phase_step():
    n = np.indices((6, 7, 8), dtype=np.float64)
    obj = np.exp(1j * (0.9 * n[0] - 2.5 * n[1] + 0.1 * n[2]))
    assert phase_ramp(obj, np.ones(obj.shape, dtype=bool)) == pytest.approx([0.9, -2.5, 0.1])


@pytest.mark.parametrize("frame", ["lab", "crystal"])
def test_strain_on_the_orthogonal_grid_matches_the_analytic_strain(frame):
    # u = r^T M r in the lab frame, strain 2 Q^T M r up to 1e-3 at the ball's edge, phase steps up to 1.2 rad.
    obj, support, strain_at = lab_crystal(META, SHAPE, radius_m=350e-9, strain=1e-3)
    grid = orthogonal_grid(BASIS, support, frame, Q_HAT)
    maps, _ = orthogonal_strain_maps(obj, support, grid, Q_NORM, Q_HAT)
    # Inside, away from the voxels whose interpolation stencil (one detector step, 63 nm) reaches outside.
    depth = int(np.ceil(np.linalg.norm(BASIS, axis=0).max() / grid.voxel_m))
    inner = erode(maps.support, depth)
    truth = strain_at(grid.lab_positions_m(np.flatnonzero(inner)))
    rms = float(np.sqrt(np.mean((maps.strain[inner] - truth) ** 2)))
    assert inner.sum() > 1000 and np.abs(truth).max() > 5e-4
    # Trilinear interpolation reproduces a linear phase (uniform strain or tilt) exactly once the mean ramp is off;
    # the phase's curvature Q.u'' leaves h^2 |phi''| / 8 inside each detector cell (h = 63 nm), which finite
    # differences over the orthogonal voxel v (29 nm) turn into strain errors of at most (h^2 / 8 v) |grad strain|
    # = 17 nm * 1e-3 / 350 nm = 5e-5. Measured RMS: 6.7e-6 (lab), 6.1e-6 (crystal), against 4e-4 RMS strain.
    assert rms < 2e-5, rms


def test_uniform_strain_and_tilt_are_exact_on_the_lab_grid():
    r = lab_positions(META, SHAPE)
    support = ((r ** 2).sum(axis=0) <= (300e-9) ** 2).reshape(SHAPE)
    gradient = 1e-3 * np.array([0.3, -0.8, 0.5])  # phase steps up to 0.9 rad per detector voxel
    obj = (support * np.exp(1j * Q_NORM * (gradient @ r)).reshape(SHAPE)).astype(np.complex64)
    grid = orthogonal_grid(BASIS, support, "lab", Q_HAT)
    maps, _ = orthogonal_strain_maps(obj, support, grid, Q_NORM, Q_HAT)
    inner = erode(maps.support, 3)
    assert maps.strain[inner] == pytest.approx(np.full(inner.sum(), Q_HAT @ gradient), abs=1e-8)


@pytest.mark.parametrize("frame", ["lab", "crystal"])
def test_an_off_centre_lab_sphere_stays_a_sphere_in_its_place(frame):
    centre = np.array([100e-9, -60e-9, 80e-9])  # lab x, y, z
    radius = 250e-9
    obj, support, _ = lab_crystal(META, SHAPE, radius_m=radius, centre_m=centre)
    grid = orthogonal_grid(BASIS, support, frame, Q_HAT)
    _, inside = orthogonalise(obj, support, grid)
    points = np.stack(np.nonzero(inside)).astype(np.float64)
    frame_positions = grid.origin_m[:, None] + grid.voxel_m * points
    expected_centre = grid.rotation @ centre
    if frame == "lab":
        assert expected_centre == pytest.approx([80e-9, -60e-9, 100e-9])  # array axes (z, y, x)
    assert frame_positions.mean(axis=1) == pytest.approx(expected_centre, abs=0.25 * grid.voxel_m)
    distance = np.linalg.norm(frame_positions - expected_centre[:, None], axis=0)
    assert distance.max() < radius + grid.voxel_m
    equivalent = (3 * inside.sum() / (4 * np.pi)) ** (1 / 3) * grid.voxel_m
    assert equivalent == pytest.approx(radius, abs=grid.voxel_m)
    axes = np.meshgrid(*grid.axes_m(), indexing="ij")
    everywhere = np.linalg.norm(np.stack(axes) - expected_centre[:, None, None, None], axis=0)
    assert inside[everywhere < radius - grid.voxel_m].all()
