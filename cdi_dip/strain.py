"""Displacement and strain of a Bragg CDI object: phase unwrapping, ``u = phase / |Q|``, ``d u / d x_Q``.

The phase of a Bragg object is ``phi = Q . u`` (Robinson & Harder, Nat.
Mater. 8, 291, 2009). Its twin (``conj(x(-r))``, which phase retrieval
cannot tell from it) and the opposite Fourier sign convention both flip the
sign of ``u`` and of the strain; the sign here is that of the stored phase.

On the detector-frame array (:mod:`cdi_dip.geometry`) the strain along
``Q`` is taken from derivatives along the array axes weighted by
:func:`cdi_dip.geometry.strain_weights_per_m`, which is exact to first order
without an orthogonal grid. :func:`orthogonal_strain_maps` first resamples
the object onto an orthogonal lab or crystal grid (:mod:`cdi_dip.orthogonal`)
and does the same there, with the weights ``(Q/|Q| . e_k) / voxel``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .orthogonal import OrthogonalGrid

__all__ = ["INTERIOR_DEPTH_VOXELS", "StrainMaps", "interior_mask", "largest_part", "StrainView", "CRYSTAL_AMPLITUDE_FRACTION", "crystal_extent_nm", "axis_derivative", "displacement_m", "orthogonal_strain_maps", "strain_along", "strain_maps",
           "unwrap_phase", "wrap"]


def wrap(phase: np.ndarray) -> np.ndarray:
    """Phase wrapped to ``(-pi, pi]``, radians."""
    return np.pi - np.mod(np.pi - np.asarray(phase), 2.0 * np.pi)


def _shifted(array: np.ndarray, axis: int, step: int, fill) -> np.ndarray:
    """``array`` moved by ``step`` along ``axis`` (``out[i] = array[i - step]``), ``fill`` where nothing came in."""
    out = np.full_like(array, fill)
    source = [slice(None)] * array.ndim
    target = [slice(None)] * array.ndim
    if step > 0:
        source[axis], target[axis] = slice(None, -step), slice(step, None)
    else:
        source[axis], target[axis] = slice(-step, None), slice(None, step)
    out[tuple(target)] = array[tuple(source)]
    return out


def _start(support: np.ndarray, weight: np.ndarray | None) -> tuple[int, ...]:
    """The seed voxel: the largest ``weight`` in the support, else the support voxel nearest its centre of mass."""
    if weight is not None:
        return np.unravel_index(int(np.argmax(np.where(support, weight, -np.inf))), support.shape)
    points = np.argwhere(support)
    centre = points.mean(axis=0)
    return tuple(points[int(np.argmin(((points - centre) ** 2).sum(axis=1)))])


def unwrap_phase(phase: np.ndarray, support: np.ndarray, *, weight: np.ndarray | None = None) -> np.ndarray:
    """Unwrap a phase inside a support by growing outward from one voxel.

    Shell by shell from the seed (the largest ``weight``, e.g. the
    amplitude, else the support's centre), each newly reached voxel takes
    its wrapped phase plus the multiple of ``2 pi`` nearest to the mean of
    ``unwrapped(neighbour) + wrap(phi - phi_neighbour)`` over its already
    unwrapped face neighbours. Exact when neighbouring phases differ by less
    than ``pi``; averaging several neighbours keeps one noisy voxel from
    misleading the rest. Parts of the support not connected to the seed
    (face neighbours) stay NaN.

    Parameters
    ----------
    phase : numpy.ndarray, real, shape S (2D or 3D)
        Wrapped phase, radians.
    support : numpy.ndarray, bool, shape S
        Where the phase means something.
    weight : numpy.ndarray, real, shape S, optional
        Where to start (its maximum in the support).

    Returns
    -------
    numpy.ndarray, float64, shape S
        Unwrapped phase, radians, equal to ``phase`` at the seed; NaN outside
        the support (and on unreached parts of it).
    """
    phase = np.asarray(phase, dtype=np.float64)
    support = np.asarray(support, dtype=bool)
    out = np.full(phase.shape, np.nan)
    if not support.any():
        return out
    seed = _start(support, weight)
    out[seed] = phase[seed]
    done = np.zeros(support.shape, dtype=bool)
    done[seed] = True
    while True:
        total = np.zeros(phase.shape)
        count = np.zeros(phase.shape)
        for axis in range(phase.ndim):
            for step in (1, -1):
                near_done = _shifted(done, axis, step, False)
                estimate = _shifted(out, axis, step, 0.0) + wrap(phase - _shifted(phase, axis, step, 0.0))
                total += np.where(near_done, estimate, 0.0)
                count += near_done
        front = support & ~done & (count > 0)
        if not front.any():
            return out
        mean = total[front] / count[front]
        out[front] = phase[front] + 2.0 * np.pi * np.round((mean - phase[front]) / (2.0 * np.pi))
        done |= front


def displacement_m(unwrapped_rad: np.ndarray, q_norm_per_m: float) -> np.ndarray:
    """Displacement along ``Q``, ``u = phi / |Q|``, metres, its mean over the finite voxels removed.

    Parameters
    ----------
    unwrapped_rad : numpy.ndarray, real, shape S
        Unwrapped phase (NaN outside the support).
    q_norm_per_m : float
        ``|Q|`` in rad/m (:func:`cdi_dip.geometry.q_norm_per_m`).
    """
    u = np.asarray(unwrapped_rad, dtype=np.float64) / float(q_norm_per_m)
    finite = np.isfinite(u)
    return u - u[finite].mean() if finite.any() else u


def axis_derivative(field: np.ndarray, axis: int) -> np.ndarray:
    """``d field / d n`` along one array axis, per voxel, using only finite values.

    Central differences where both neighbours are finite, one-sided where
    only one is, NaN where neither is (or the voxel itself is NaN).

    Parameters
    ----------
    field : numpy.ndarray, float, shape S
        NaN outside the region of interest.
    axis : int

    Returns
    -------
    numpy.ndarray, float64, shape S
    """
    field = np.asarray(field, dtype=np.float64)
    ahead = _shifted(field, axis, -1, np.nan)  # field[i + 1]
    behind = _shifted(field, axis, 1, np.nan)  # field[i - 1]
    central = (ahead - behind) / 2.0
    forward = ahead - field
    backward = field - behind
    out = np.where(np.isfinite(central), central, np.where(np.isfinite(forward), forward, backward))
    return np.where(np.isfinite(field), out, np.nan)


def strain_along(displacement: np.ndarray, weights_per_m: Sequence[float]) -> np.ndarray:
    """Strain ``sum_i w_i du/dn_i`` (dimensionless), NaN where ``u`` is NaN.

    Parameters
    ----------
    displacement : numpy.ndarray, float, shape S
        Displacement along ``Q``, metres (NaN outside the support).
    weights_per_m : sequence of float, one per axis
        ``w_i`` per metre: the component along ``Q`` of the gradient's dual
        basis (:func:`cdi_dip.geometry.strain_weights_per_m`); ``(0, 0,
        1 / dx)`` on an orthogonal grid with ``Q`` along the last axis.
        Axes of weight 0 are not differentiated.
    """
    displacement = np.asarray(displacement, dtype=np.float64)
    out = np.zeros(displacement.shape)
    for axis, weight in enumerate(weights_per_m):
        if weight != 0:
            out += float(weight) * np.nan_to_num(axis_derivative(displacement, axis))
    return np.where(np.isfinite(displacement), out, np.nan)


@dataclass
class StrainMaps:
    """What :func:`strain_maps` finds, every map of the object's shape, NaN outside the support.

    Attributes
    ----------
    phase_rad : numpy.ndarray, float64
        Unwrapped phase, radians.
    displacement_m : numpy.ndarray, float64
        Displacement along ``Q``, metres, zero mean.
    strain : numpy.ndarray, float64
        Strain along ``Q`` (dimensionless).
    support : numpy.ndarray, bool
        Where the maps are defined.
    q_norm_per_m : float
        ``|Q|``, rad/m.
    weights_per_m : numpy.ndarray, float64, shape (ndim,)
        The derivative weights used (:func:`strain_along`).
    amplitude : numpy.ndarray or None
        ``|object|`` on the maps' grid (for :func:`crystal_extent_nm`); None
        when the maps were read back from a file.
    """

    phase_rad: np.ndarray
    displacement_m: np.ndarray
    strain: np.ndarray
    support: np.ndarray
    q_norm_per_m: float
    weights_per_m: np.ndarray
    amplitude: np.ndarray | None = None

    def summary(self) -> dict[str, float]:
        """Mean, RMS and range of the strain, and the displacement's range (nm), over the finite voxels."""
        strain = self.strain[np.isfinite(self.strain)]
        u = self.displacement_m[np.isfinite(self.displacement_m)] * 1e9
        if not strain.size:
            return {"voxels": 0}
        record = {"voxels": int(strain.size), "strain_mean": float(strain.mean()),
                  "strain_rms": float(np.sqrt(np.mean(strain ** 2))), "strain_min": float(strain.min()),
                  "strain_max": float(strain.max()), "displacement_min_nm": float(u.min()),
                  "displacement_max_nm": float(u.max()), "q_norm_per_nm": self.q_norm_per_m * 1e-9}
        inside = self.strain[interior_mask(np.isfinite(self.strain)) & np.isfinite(self.strain)]
        if inside.size:
            record.update({"interior_voxels": int(inside.size),
                           "interior_strain_rms": float(np.sqrt(np.mean(inside ** 2))),
                           "interior_strain_p1": float(np.percentile(inside, 1)),
                           "interior_strain_p99": float(np.percentile(inside, 99))})
        return record


INTERIOR_DEPTH_VOXELS = 2
"""Voxels between the crystal's surface and its *interior*, where the strain is summarised apart: the
surface layer holds the reconstruction's edge errors and the interpolation's (docs/benchmarks.md)."""


def interior_mask(support: np.ndarray, depth: int = INTERIOR_DEPTH_VOXELS) -> np.ndarray:
    """The support's largest connected part, less ``depth`` voxels from its surface (a box erosion).

    Parameters
    ----------
    support : numpy.ndarray, bool, 2D or 3D
    depth : int
        Voxels removed from the surface.

    Returns
    -------
    numpy.ndarray, bool, same shape (all False for an empty support or one thinner than ``2 depth + 1``)
    """
    from ._ndimage import dilate

    largest, _ = largest_part(support)
    return ~dilate(~largest, depth) if depth > 0 and largest.any() else largest


def largest_part(support: np.ndarray) -> tuple[np.ndarray, int]:
    """The support's largest connected part, and how many support voxels lie outside it.

    Parameters
    ----------
    support : numpy.ndarray, bool, 2D or 3D

    Returns
    -------
    (numpy.ndarray, int)
        A bool mask of the support's shape (all False for an empty support) and the detached voxels.
    """
    from ._ndimage import label

    labels, count = label(np.asarray(support, dtype=bool))
    if count == 0:
        return np.zeros(np.shape(support), dtype=bool), 0
    sizes = np.bincount(labels.ravel())[1:]
    return labels == int(np.argmax(sizes)) + 1, int(sizes.sum() - sizes.max())


CRYSTAL_AMPLITUDE_FRACTION = 0.25
"""The crystal's extent is taken where the amplitude is at least this fraction of its maximum on the
support (the default shrinkwrap threshold): a support's faint rim (on the real 34-ID-C scan a third
of its voxels are below 10 % of the maximum, in thin tails along the coarse rocking axis) would
otherwise double the size reported."""


def crystal_extent_nm(support: np.ndarray, voxel_nm: Sequence[float], amplitude: np.ndarray | None = None
                      ) -> tuple[tuple[float, ...], int] | None:
    """Size of the crystal along each array axis, nm: the bounding box of the support's largest connected part.

    Detached fragments of a reconstructed support (a few voxels of noise
    beside the crystal) would inflate a plain bounding box; they are counted
    instead. With ``amplitude``, the box is that of the largest part of the
    support where the amplitude reaches :data:`CRYSTAL_AMPLITUDE_FRACTION`
    of its maximum on the support.

    Parameters
    ----------
    support : numpy.ndarray, bool, 3D
    voxel_nm : sequence of 3 float
        Voxel size, array order, nm.
    amplitude : numpy.ndarray, optional, shape of ``support``
        ``|object|``.

    Returns
    -------
    (tuple of float, int) or None
        The extent per axis in nm and the number of support voxels outside
        the largest part of the support; None for an empty support.
    """
    support = np.asarray(support, dtype=bool)
    largest, detached = largest_part(support)
    if not largest.any():
        return None
    if amplitude is not None:
        amplitude = np.abs(np.asarray(amplitude))
        bright = largest & (amplitude >= CRYSTAL_AMPLITUDE_FRACTION * float(amplitude[support].max()))
        if bright.any():
            largest = largest_part(bright)[0]
    points = np.argwhere(largest)
    extent = tuple(float((points[:, k].max() - points[:, k].min() + 1) * voxel_nm[k]) for k in range(support.ndim))
    return extent, detached


@dataclass
class StrainView:
    """Strain maps and where their voxels sit: what a figure of them needs.

    Attributes
    ----------
    maps : StrainMaps
    voxel_nm : tuple of 3 float
        Voxel size, array order, nm.
    frame : str
        ``"detector"``, ``"lab"`` or ``"crystal"``.
    axis_names : tuple of 3 str
        Names of the array axes (:data:`cdi_dip.io.strain_files.AXIS_NAMES`).
    origin_nm : tuple of 3 float
        Coordinate of voxel ``[0, 0, 0]`` along each array axis, nm.
    detector_shape : tuple of int or None
        Shape of the detector-frame object the maps were computed from.
    """

    maps: StrainMaps
    voxel_nm: tuple[float, ...]
    frame: str
    axis_names: tuple[str, ...]
    origin_nm: tuple[float, ...] = (0.0, 0.0, 0.0)
    detector_shape: tuple[int, ...] | None = None


def strain_maps(obj: np.ndarray, support: np.ndarray, q_norm_per_m: float,
                weights_per_m: Sequence[float]) -> StrainMaps:
    """Unwrapped phase, displacement and strain along ``Q`` of a Bragg object.

    Parameters
    ----------
    obj : numpy.ndarray, complex, shape S
        The reconstructed object (detector frame).
    support : numpy.ndarray, bool, shape S
        Where the crystal is.
    q_norm_per_m : float
        ``|Q|``, rad/m.
    weights_per_m : sequence of float, one per axis
        :func:`cdi_dip.geometry.strain_weights_per_m`.

    Returns
    -------
    StrainMaps
    """
    support = np.asarray(support, dtype=bool)
    phase = unwrap_phase(np.angle(obj), support, weight=np.abs(obj))
    u = displacement_m(phase, q_norm_per_m)
    weights = np.asarray(weights_per_m, dtype=np.float64)
    return StrainMaps(phase_rad=phase, displacement_m=u, strain=strain_along(u, weights), support=support,
                      q_norm_per_m=float(q_norm_per_m), weights_per_m=weights, amplitude=np.abs(obj))


def orthogonal_strain_maps(obj: np.ndarray, support: np.ndarray, grid: OrthogonalGrid, q_norm_per_m: float,
                           q_hat: Sequence[float]) -> tuple[StrainMaps, np.ndarray]:
    """The strain maps of a detector-frame object on an orthogonal grid, and the resampled object.

    The object and support are resampled (:func:`cdi_dip.orthogonal.orthogonalise`),
    the phase unwrapped on the grid, ``u = phase / |Q|``, and the strain is
    ``sum_k (Q/|Q| . e_k) / voxel du/dm_k``: in the ``crystal`` frame the
    derivative along array axis 0 alone.

    Parameters
    ----------
    obj : numpy.ndarray, complex, shape ``grid.detector_shape``
        Detector-frame object.
    support : numpy.ndarray, bool, same shape
    grid : OrthogonalGrid
        :func:`cdi_dip.orthogonal.orthogonal_grid`.
    q_norm_per_m : float
        ``|Q|``, rad/m.
    q_hat : sequence of 3 float
        ``Q`` direction, lab (x, y, z).

    Returns
    -------
    (StrainMaps, numpy.ndarray)
        The maps on the grid (shape ``grid.shape``) and the resampled object (complex128).
    """
    from .orthogonal import orthogonalise, q_strain_weights_per_m

    resampled, inside = orthogonalise(obj, support, grid)
    return strain_maps(resampled, inside, q_norm_per_m, q_strain_weights_per_m(grid, q_hat)), resampled
