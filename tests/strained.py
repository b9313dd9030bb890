"""A crystal with a known displacement field, in the detector frame of a Bragg scan (shared by the strain tests)."""

import numpy as np

from cdi_dip.geometry import lab_vectors, q_norm_per_m, real_space_basis, scattering_angle_rad
from cdi_dip.types import ScanMeta


def quadratic_crystal(meta: ScanMeta, shape, *, radius_px=9.0, strain=1e-3):
    """A ball of ``radius_px`` voxels with ``u(r) = r^T M r`` along Q, and its strain ``2 Q^T M r``.

    Returns (object complex64, support bool, strain float64): the phase is ``|Q| u``, wrapped, and spans several
    turns; ``M`` is scaled so the strain reaches about ``strain`` at the ball's edge.
    """
    basis = real_space_basis(meta, shape)
    index = np.indices(shape, dtype=np.float64).reshape(len(shape), -1)
    centre = (np.asarray(shape, dtype=np.float64) // 2)[:, None]
    r = basis @ (index - centre)  # lab positions, m
    radius_m = radius_px * np.linalg.norm(basis, axis=0).min()
    rng = np.random.default_rng(3)
    m = rng.normal(size=(3, 3))
    m = (m + m.T) / 2
    q_hat = lab_vectors(*meta.detector_angles_deg)["q"]
    m *= strain / (2 * np.linalg.norm(q_hat @ m) * radius_m)
    u = np.einsum("in,ij,jn->n", r, m, r)
    q_norm = q_norm_per_m(meta.wavelength_m, scattering_angle_rad(*meta.detector_angles_deg))
    support = (((index - centre) ** 2).sum(axis=0) <= radius_px ** 2).reshape(shape)
    amplitude = np.where(support, 1.0, 0.0)
    obj = (amplitude * np.exp(1j * q_norm * u.reshape(shape))).astype(np.complex64)
    return obj, support, (2 * q_hat @ m @ r).reshape(shape)


def erode(mask, steps):
    """``mask`` less ``steps`` layers of face neighbours (an eroded support, where derivatives are central)."""
    for _ in range(steps):
        inner = mask.copy()
        for axis in range(mask.ndim):
            inner &= np.roll(mask, 1, axis) & np.roll(mask, -1, axis)
        mask = inner
    return mask


def lab_positions(meta: ScanMeta, shape):
    """Lab positions (3, M), metres, of the voxels of a detector-frame array (relative to its centre ``N // 2``)."""
    index = np.indices(shape, dtype=np.float64).reshape(len(shape), -1)
    centre = (np.asarray(shape, dtype=np.float64) // 2)[:, None]
    return real_space_basis(meta, shape) @ (index - centre)


def lab_crystal(meta: ScanMeta, shape, *, radius_m, centre_m=(0.0, 0.0, 0.0), strain=1e-3, seed=3):
    """A lab-frame ball with ``u(r) = r^T M r`` along Q, sampled at the detector-frame voxel positions.

    Returns (object complex64, support bool, strain_at): ``strain_at(r)`` is the analytic strain along Q,
    ``2 Q^T M r``, at lab positions ``r`` (3, M) in metres; ``M`` is scaled so it reaches about ``strain`` at
    the ball's edge.
    """
    r = lab_positions(meta, shape)
    centre = np.asarray(centre_m, dtype=np.float64)[:, None]
    m = np.random.default_rng(seed).normal(size=(3, 3))
    m = (m + m.T) / 2
    q_hat = lab_vectors(*meta.detector_angles_deg, meta.extra.get("pixel_orientation", "y-,x+"))["q"]
    m *= strain / (2 * np.linalg.norm(q_hat @ m) * radius_m)
    q_norm = q_norm_per_m(meta.wavelength_m, scattering_angle_rad(*meta.detector_angles_deg))
    support = (((r - centre) ** 2).sum(axis=0) <= radius_m ** 2).reshape(shape)
    u = np.einsum("in,ij,jn->n", r, m, r).reshape(shape)
    obj = (support * np.exp(1j * q_norm * u)).astype(np.complex64)
    return obj, support, lambda positions: 2 * q_hat @ m @ positions
