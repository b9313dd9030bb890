"""Resampling a detector-frame 3D Bragg object onto an orthogonal grid (lab or crystal frame).

Voxel ``n`` of a detector-frame array of shape ``N`` sits at the lab position
``r = sum_i (n_i - N_i // 2) a_i`` (metres; ``a_i`` the columns of
:func:`cdi_dip.geometry.real_space_basis`, the array centre ``N // 2`` at
the origin). An orthogonal *frame* is a rotation ``R`` whose row ``k`` is the
lab unit vector of array axis ``k``: grid point ``m`` sits at the frame
coordinates ``c = origin + m * voxel``, i.e. at ``r = R^T c``
(:class:`OrthogonalGrid`).

Frames (:func:`frame_rotation`):

* ``lab``: array axes ``(z, y, x)`` of the lab frame (``z`` along the
  incident beam, ``y`` up, ``x`` horizontal; :mod:`cdi_dip.geometry`). A C
  array ``[z, y, x]`` runs ``x`` fastest, which is how VTK, ParaView, Fiji
  and the ``[z, y, x]`` convention of bcdi read a volume, so ``x, y, z``
  shown by a viewer are the lab ``x, y, z``.
* ``crystal``: array axes ``(z', y', x')`` with ``z' = Q/|Q|`` (array axis
  0), ``y'`` the lab vertical's part perpendicular to ``Q`` (the lab ``z``'s
  when ``Q`` is nearly vertical) and ``x' = y' x z'``, so ``(x', y', z')`` is
  right-handed like the lab ``(x, y, z)``. The strain along ``Q`` is the
  derivative along array axis 0.

The object is interpolated trilinearly as a complex field (real and
imaginary parts), as bcdi and PyNX do: the phase of a strained crystal wraps
many times, so interpolating a wrapped phase would smear its ``2 pi`` jumps,
an unwrapped phase is undefined outside the support (where the complex field
is simply small) and has branch cuts at dislocations (where the complex field
is continuous). Interpolating ``e^{i phi}`` bends the phase between two
voxels whose phases differ by ``Delta``: for a uniform ramp of 0.9 rad per
voxel the strain comes out a few per cent wrong. So the object's mean phase
ramp (:func:`phase_ramp`, from wrapped differences, no unwrapping) is taken
off before and put back exactly after, which makes a uniform strain or tilt
exact; what is left is the curvature of the phase. The phase is unwrapped
afterwards, on the orthogonal grid. The support is interpolated the same way
and kept where the interpolated fraction is at least 0.5.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["FRAMES", "ORTHOGONAL_FRAMES", "OrthogonalGrid", "detector_indices", "frame_rotation", "nyquist_voxel_m",
           "orthogonal_grid", "orthogonalise", "phase_ramp", "q_strain_weights_per_m", "trilinear"]

FRAMES = ("detector", "lab", "crystal")
"""Frames a strain map can be written in: the detector frame as reconstructed, or an orthogonal one."""

ORTHOGONAL_FRAMES = ("lab", "crystal")

_CHUNK = 1 << 20
"""Grid points interpolated at once (bounds the temporary arrays to a few tens of MB)."""


def frame_rotation(frame: str, q_hat: Sequence[float]) -> np.ndarray:
    """The rotation of an orthogonal frame: row ``k`` is the lab unit vector of array axis ``k``.

    Parameters
    ----------
    frame : {"lab", "crystal"}
        ``lab``: rows ``z, y, x`` of the lab frame. ``crystal``: rows ``z' =
        Q/|Q|``, ``y'`` (the lab ``y`` made perpendicular to ``Q``; the lab
        ``z`` when ``|Q/|Q| . y| > 0.99``) and ``x' = y' x z'``.
    q_hat : sequence of 3 float
        ``Q`` in the lab frame (x, y, z); normalised here.

    Returns
    -------
    numpy.ndarray, float64, shape (3, 3)
        Orthonormal; ``frame coordinates = R @ lab position``.

    Raises
    ------
    ValueError
        An unknown frame, or a zero ``Q``.
    """
    if frame == "lab":
        return np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    if frame != "crystal":
        raise ValueError(f"frame {frame!r}: give one of {', '.join(ORTHOGONAL_FRAMES)}")
    z = np.asarray(q_hat, dtype=np.float64)
    if not np.linalg.norm(z) > 0:
        raise ValueError("Q is zero: no crystal frame")
    z = z / np.linalg.norm(z)
    reference = np.array([0.0, 1.0, 0.0]) if abs(z[1]) <= 0.99 else np.array([0.0, 0.0, 1.0])
    y = reference - (reference @ z) * z
    y /= np.linalg.norm(y)
    return np.stack([z, y, np.cross(y, z)])


def nyquist_voxel_m(basis_m: np.ndarray, rotation: np.ndarray) -> float:
    """The isotropic voxel that still samples the whole measured reciprocal-space box, metres.

    The data fill the reciprocal parallelepiped ``sum_j t_j N_j b_j`` (``t_j``
    in ``[0, 1)``), whose edges ``N_j b_j / (2 pi) = g_j`` are the rows of
    ``inv(basis)``. Along a frame axis ``e_k`` it spans ``2 pi sum_j |g_j .
    e_k|``, so a step ``1 / sum_j |g_j . e_k|`` along ``e_k`` is the largest
    that keeps the data's band without aliasing (bcdi's default voxel per lab
    axis). The isotropic voxel is the smallest of the three: finer than the
    detector-frame steps' projections, so nothing measured is lost, at the
    cost of more voxels (about 3x for 34-ID-C's shear).

    Parameters
    ----------
    basis_m : numpy.ndarray, shape (3, 3)
        Column ``i`` is the detector-frame step ``a_i`` (lab x, y, z), metres.
    rotation : numpy.ndarray, shape (3, 3)
        :func:`frame_rotation`.

    Returns
    -------
    float
        Metres.
    """
    spans = np.abs(np.linalg.inv(basis_m) @ np.asarray(rotation).T).sum(axis=0)
    return float(1.0 / spans.max())


@dataclass(frozen=True)
class OrthogonalGrid:
    """An orthogonal grid and how it sits on a detector-frame array.

    Attributes
    ----------
    frame : str
        ``lab`` or ``crystal`` (:func:`frame_rotation`).
    rotation : numpy.ndarray, float64, shape (3, 3)
        Row ``k``: lab unit vector of array axis ``k``.
    voxel_m : float
        Isotropic voxel, metres.
    shape : tuple of 3 int
        Grid shape.
    origin_m : numpy.ndarray, float64, shape (3,)
        Frame coordinates of grid point ``[0, 0, 0]``, metres, relative to
        the detector-frame array centre ``N // 2`` (which is a grid point).
    basis_m : numpy.ndarray, float64, shape (3, 3)
        Detector-frame steps ``a_i`` as columns (lab x, y, z), metres.
    detector_shape : tuple of 3 int
        Shape of the detector-frame array.
    """

    frame: str
    rotation: np.ndarray
    voxel_m: float
    shape: tuple[int, int, int]
    origin_m: np.ndarray
    basis_m: np.ndarray
    detector_shape: tuple[int, int, int]

    def axes_m(self) -> list[np.ndarray]:
        """Frame coordinates of the grid along each array axis, metres (three 1D arrays)."""
        return [self.origin_m[k] + self.voxel_m * np.arange(n) for k, n in enumerate(self.shape)]

    def lab_positions_m(self, flat_index: np.ndarray) -> np.ndarray:
        """Lab positions ``(x, y, z)`` of grid points given by flat (C-order) index, shape (3, M), metres."""
        m = np.stack(np.unravel_index(flat_index, self.shape)).astype(np.float64)
        frame = self.origin_m[:, None] + self.voxel_m * m
        return self.rotation.T @ frame


def _frame_positions_m(basis_m: np.ndarray, rotation: np.ndarray, indices: np.ndarray,
                       shape: Sequence[int]) -> np.ndarray:
    """Frame coordinates (3, M), metres, of detector-frame voxels given as integer indices (M, 3)."""
    centre = np.asarray(shape, dtype=np.float64) // 2
    return rotation @ basis_m @ (indices.astype(np.float64) - centre).T


def orthogonal_grid(basis_m: np.ndarray, support: np.ndarray, frame: str, q_hat: Sequence[float], *,
                    voxel_m: float | None = None, margin: int = 2) -> OrthogonalGrid:
    """The orthogonal grid that covers a detector-frame support.

    Parameters
    ----------
    basis_m : numpy.ndarray, shape (3, 3)
        :func:`cdi_dip.geometry.real_space_basis`, metres.
    support : numpy.ndarray, bool, shape (n_rocking, ny, nx)
        Detector-frame support; its voxel centres' bounding box in the frame,
        plus ``margin`` voxels on each side, is covered.
    frame : {"lab", "crystal"}
    q_hat : sequence of 3 float
        ``Q`` direction, lab (x, y, z).
    voxel_m : float, optional
        Isotropic voxel, metres; default :func:`nyquist_voxel_m`.
    margin : int
        Extra grid points beyond the bounding box on each side.

    Returns
    -------
    OrthogonalGrid
        The detector array's centre is a grid point.

    Raises
    ------
    ValueError
        An empty support, a non-positive voxel, an unknown frame.
    """
    support = np.asarray(support, dtype=bool)
    if support.ndim != 3 or not support.any():
        raise ValueError("orthogonalisation needs a non-empty 3D support")
    rotation = frame_rotation(frame, q_hat)
    basis_m = np.asarray(basis_m, dtype=np.float64)
    voxel = nyquist_voxel_m(basis_m, rotation) if voxel_m is None else float(voxel_m)
    if not voxel > 0:
        raise ValueError(f"voxel {voxel_m!r} m: give a positive size")
    frame_positions = _frame_positions_m(basis_m, rotation, np.argwhere(support), support.shape)
    low = np.floor(frame_positions.min(axis=1) / voxel).astype(int) - margin
    high = np.ceil(frame_positions.max(axis=1) / voxel).astype(int) + margin
    return OrthogonalGrid(frame=frame, rotation=rotation, voxel_m=voxel, shape=tuple(int(n) for n in high - low + 1),
                          origin_m=low * voxel, basis_m=basis_m, detector_shape=tuple(support.shape))


def detector_indices(grid: OrthogonalGrid, flat_index: np.ndarray) -> np.ndarray:
    """Fractional detector-frame indices (3, M) of grid points given by flat index: ``inv(A) r + N // 2``."""
    centre = np.asarray(grid.detector_shape, dtype=np.float64) // 2
    return np.linalg.solve(grid.basis_m, grid.lab_positions_m(flat_index)) + centre[:, None]


def trilinear(array: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Trilinear interpolation of a 3D array at fractional indices (bilinear of a 2D one), zero beyond its edges.

    Parameters
    ----------
    array : numpy.ndarray, real or complex, shape (n0, n1, n2) or (n0, n1)
    indices : numpy.ndarray, float, shape (array.ndim, M)
        Fractional array indices (voxel ``n`` at ``n``).

    Returns
    -------
    numpy.ndarray, shape (M,)
        Weighted sum of the 8 (4) surrounding voxels, those outside the array
        counting as 0; the dtype of ``array`` promoted to float64 or complex128.
    """
    array = np.asarray(array)
    low = np.floor(indices).astype(np.int64)
    fraction = indices - low
    out = np.zeros(indices.shape[1], dtype=np.result_type(array.dtype, np.float64))
    for corner in np.ndindex(*(2,) * array.ndim):
        weight = np.ones(indices.shape[1])
        index = low + np.asarray(corner)[:, None]
        inside = np.ones(indices.shape[1], dtype=bool)
        for axis, step in enumerate(corner):
            weight *= fraction[axis] if step else 1.0 - fraction[axis]
            inside &= (index[axis] >= 0) & (index[axis] < array.shape[axis])
        flat = np.ravel_multi_index(tuple(np.where(inside, index, 0)), array.shape)
        out += np.where(inside, weight * array.ravel()[flat], 0.0)
    return out


def phase_ramp(obj: np.ndarray, support: np.ndarray) -> np.ndarray:
    """The object's mean phase step per voxel along each array axis, radians.

    The mean of ``wrap(phi[n + e_i] - phi[n])`` over the pairs of
    neighbouring support voxels, weighted by the product of their amplitudes
    (0 along an axis without such pairs). Needs no unwrapping; right when the
    steps are below ``pi``, which unwrapping needs too.

    Parameters
    ----------
    obj : numpy.ndarray, complex, shape S
    support : numpy.ndarray, bool, shape S

    Returns
    -------
    numpy.ndarray, float64, shape (ndim,)
    """
    field = np.where(support, obj, 0).astype(np.complex128)
    steps = []
    for axis in range(field.ndim):
        ahead = [slice(None)] * field.ndim
        behind = [slice(None)] * field.ndim
        ahead[axis], behind[axis] = slice(1, None), slice(None, -1)
        products = field[tuple(ahead)] * np.conj(field[tuple(behind)])
        weights = np.abs(products)
        steps.append(float((np.angle(products) * weights).sum() / weights.sum()) if weights.sum() > 0 else 0.0)
    return np.asarray(steps)


def orthogonalise(obj: np.ndarray, support: np.ndarray, grid: OrthogonalGrid) -> tuple[np.ndarray, np.ndarray]:
    """The object and its support resampled on an orthogonal grid.

    Parameters
    ----------
    obj : numpy.ndarray, complex, shape ``grid.detector_shape``
        Detector-frame object.
    support : numpy.ndarray, bool, same shape
    grid : OrthogonalGrid
        :func:`orthogonal_grid`.

    Returns
    -------
    obj : numpy.ndarray, complex128, shape ``grid.shape``
        Trilinear interpolation of the complex field (zero outside the
        detector array), its mean phase ramp (:func:`phase_ramp`) taken off
        before and restored exactly at the interpolated positions.
    support : numpy.ndarray, bool, shape ``grid.shape``
        Where the interpolated support fraction is at least 0.5.
    """
    if tuple(obj.shape) != grid.detector_shape or tuple(support.shape) != grid.detector_shape:
        raise ValueError(f"object {obj.shape} and support {support.shape} do not match the grid's "
                         f"detector shape {grid.detector_shape}")
    support = np.asarray(support, dtype=bool)
    ramp = phase_ramp(obj, support)
    centre = np.asarray(grid.detector_shape, dtype=np.float64) // 2
    ramp_phase = sum(step * (np.arange(n) - c).reshape([-1 if k == axis else 1 for k in range(3)])
                     for axis, (step, n, c) in enumerate(zip(ramp, grid.detector_shape, centre)))
    flat = np.asarray(obj) * np.exp(-1j * ramp_phase)
    size = int(np.prod(grid.shape))
    values = np.empty(size, dtype=np.complex128)
    inside = np.empty(size, dtype=bool)
    fraction = support.astype(np.float64)
    for start in range(0, size, _CHUNK):
        indices = detector_indices(grid, np.arange(start, min(start + _CHUNK, size)))
        values[start:start + _CHUNK] = trilinear(flat, indices) * np.exp(1j * (ramp @ (indices - centre[:, None])))
        inside[start:start + _CHUNK] = trilinear(fraction, indices) >= 0.5
    return values.reshape(grid.shape), inside.reshape(grid.shape)


def q_strain_weights_per_m(grid: OrthogonalGrid, q_hat: Sequence[float]) -> np.ndarray:
    """Weights ``w_k = (Q/|Q| . e_k) / voxel`` such that the strain along Q is ``sum_k w_k du/dm_k``.

    For :func:`cdi_dip.strain.strain_along` on the grid. In the ``crystal``
    frame this is ``(1 / voxel, 0, 0)``: only the derivative along axis 0;
    components below ``1e-12`` of the largest are set to exactly 0 (not
    differentiated).

    Returns
    -------
    numpy.ndarray, float64, shape (3,)
        Per metre.
    """
    q_hat = np.asarray(q_hat, dtype=np.float64)
    weights = grid.rotation @ (q_hat / np.linalg.norm(q_hat)) / grid.voxel_m
    return np.where(np.abs(weights) < 1e-12 * np.abs(weights).max(), 0.0, weights)
