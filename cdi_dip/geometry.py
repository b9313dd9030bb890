"""Scattering geometry: object voxel sizes, the Bragg vector, and the detector-frame basis.

Conventions (those of APS 34-ID-C as xrayutilities describes it): the lab
frame has ``z`` along the incident beam, ``y`` vertical up and ``x``
horizontal, right-handed. The detector arm turns by ``gamma`` about ``-x``
(out of the horizontal plane), then by ``delta`` about ``+y`` (in the
horizontal plane), so the outgoing beam is::

    k_f / k = (sin(delta) cos(gamma), sin(gamma), cos(delta) cos(gamma))

and the scattering angle ``2 theta_B`` obeys ``cos(2 theta_B) = cos(delta)
cos(gamma)``. The detector face is perpendicular to ``k_f``; its array axes
(rows, columns) point at ``delta = gamma = 0`` along the lab directions of
``pixel_orientation`` (default ``"y-,x+"``: rows downward, columns along
``+x``; 34-ID-C's metadata says ``"x+,y-"``), turned with the arm. The sample
rocks about ``+y`` (34-ID-C's ``th``).

A 3D Bragg frame is indexed ``[rocking, row, column]``. Its object is in
the *detector frame*: the real-space step of index ``i`` is the vector
``a_i`` dual to the reciprocal step ``b_i`` of the data (``a_i . b_j N_j =
2 pi delta_ij``), and these vectors are not orthogonal (see
:func:`real_space_basis`). Resampling onto an orthogonal lab or crystal grid
is :mod:`cdi_dip.orthogonal`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from .types import ScanMeta

if TYPE_CHECKING:
    from .config import GeometryConfig

__all__ = ["HC_KEV_M", "DEFAULT_PIXEL_ORIENTATION", "apply_geometry", "bragg_geometry", "detector_voxel_m", "lab_vectors", "q_direction", "q_norm_per_m",
           "real_space_basis", "rocking_voxel_m", "scattering_angle_rad", "strain_weights_per_m", "voxel_size_m",
           "wavelength_m_from_kev"]

HC_KEV_M = 1.239841984e-9
"""Planck's constant times the speed of light, keV m: ``lambda_m = HC_KEV_M / E_keV``."""

DEFAULT_PIXEL_ORIENTATION = "y-,x+"
"""Lab directions of the detector rows and columns at ``delta = gamma = 0`` when the file does not say."""

_AXES = {"x": 0, "y": 1, "z": 2}


def wavelength_m_from_kev(energy_kev: float) -> float:
    """Wavelength in metres of a photon energy in keV (9 keV -> 1.3776e-10 m)."""
    return HC_KEV_M / float(energy_kev)


def apply_geometry(meta: ScanMeta, cfg: GeometryConfig) -> ScanMeta:
    """``meta`` with every field that ``cfg`` sets replaced (the option wins over the file).

    Parameters
    ----------
    meta : ScanMeta
        Geometry the input gave (CXI, or a ``metadata.json``), as read, before binning.
    cfg : GeometryConfig
        The ``[geometry]`` section and its options (None: not given).

    Returns
    -------
    ScanMeta
    """
    changes: dict = {}
    if cfg.energy_kev is not None:
        changes["wavelength_m"] = wavelength_m_from_kev(cfg.energy_kev)
    if cfg.distance_m is not None:
        changes["distance_m"] = float(cfg.distance_m)
    if cfg.pixel_size_m is not None:
        changes["pixel_size_m"] = (float(cfg.pixel_size_m), float(cfg.pixel_size_m))
    if cfg.rocking_step_deg is not None:
        changes["rocking_step_deg"] = float(cfg.rocking_step_deg)
    if cfg.detector_angles_deg is not None:
        changes["detector_angles_deg"] = tuple(float(a) for a in cfg.detector_angles_deg)
    if cfg.pixel_orientation is not None:
        changes["extra"] = {**meta.extra, "pixel_orientation": cfg.pixel_orientation}
    return replace(meta, **changes) if changes else meta


def bragg_geometry(meta: ScanMeta, *, d_spacing_m: float | None = None,
                   bragg_angle_deg: float | None = None) -> tuple[ScanMeta, float]:
    """The geometry a strain map needs, and ``|Q|`` (rad/m), from the detector angles or a known reflection.

    ``|Q|`` is ``2 pi / d`` when ``d_spacing_m`` is given, else ``4 pi
    sin(theta_B) / lambda`` with ``theta_B`` from ``bragg_angle_deg`` or from
    the detector angles. Without detector angles the scattering is taken in
    the horizontal plane (``gamma = 0``, ``delta = 2 theta_B``), with
    ``theta_B`` from ``bragg_angle_deg`` or ``arcsin(lambda / 2d)``.

    Returns
    -------
    (ScanMeta, float)
        ``meta`` with ``detector_angles_deg`` filled in, and ``|Q|``.

    Raises
    ------
    ValueError
        Neither the detector angles nor a Bragg angle nor a d-spacing with the
        wavelength give the geometry (the message says what to give).
    """
    if meta.detector_angles_deg is None:
        if bragg_angle_deg is None and d_spacing_m is not None and meta.wavelength_m is not None:
            ratio = meta.wavelength_m / (2.0 * d_spacing_m)
            if ratio >= 1:
                raise ValueError(f"d = {d_spacing_m * 1e9:g} nm is below lambda / 2: no Bragg reflection")
            bragg_angle_deg = float(np.degrees(np.arcsin(ratio)))
        if bragg_angle_deg is None:
            raise ValueError("the detector angles are unknown: give --detector-angles delta,gamma, "
                             "--bragg-angle-deg or --d-spacing-nm")
        meta = replace(meta, detector_angles_deg=(2.0 * float(bragg_angle_deg), 0.0))
    two_theta = np.radians(2.0 * bragg_angle_deg) if bragg_angle_deg is not None else \
        scattering_angle_rad(*meta.detector_angles_deg)
    if d_spacing_m is not None:
        return meta, 2.0 * np.pi / d_spacing_m
    if meta.wavelength_m is None:
        raise ValueError("the wavelength is unknown: give --energy-kev or --d-spacing-nm")
    return meta, q_norm_per_m(meta.wavelength_m, two_theta)


def scattering_angle_rad(delta_deg: float, gamma_deg: float) -> float:
    """The scattering angle ``2 theta_B`` (rad) of the detector arm angles (deg): ``arccos(cos delta cos gamma)``."""
    return float(np.arccos(np.cos(np.radians(delta_deg)) * np.cos(np.radians(gamma_deg))))


def q_norm_per_m(wavelength_m: float, two_theta_rad: float) -> float:
    """``|Q| = 4 pi sin(theta_B) / lambda`` in rad/m (``= 2 pi / d`` of the reflection)."""
    return 4.0 * np.pi * np.sin(two_theta_rad / 2.0) / wavelength_m


def detector_voxel_m(wavelength_m: float, distance_m: float, n: int, pixel_m: float) -> float:
    """Object voxel size along a detector axis: ``lambda D / (N p)``, metres.

    ``p`` is the size of one array pixel (the detector pixel times the
    binning) and ``N`` the number of array pixels of the frame along that
    axis (after cropping or padding). Small-angle: one pixel turns ``k_f`` by
    ``p / D``, a reciprocal step of ``2 pi p / (lambda D)``; the frame's
    ``N`` steps give the real-space period ``2 pi / (N 2 pi p / (lambda D))``.
    """
    return float(wavelength_m) * float(distance_m) / (int(n) * float(pixel_m))


def rocking_voxel_m(wavelength_m: float, n: int, step_deg: float, two_theta_rad: float) -> float:
    """Object voxel size along the rocking axis of a Bragg stack, metres.

    ``lambda / (2 N dtheta sin(theta_B))`` with ``dtheta`` the rocking step in
    radians (times any binning of the frames) and ``N`` the frames of the
    array. Rocking the crystal by ``dtheta`` turns ``Q`` by ``dtheta``: a
    reciprocal step ``|Q| dtheta`` perpendicular to ``Q`` (``|Q| = 4 pi
    sin(theta_B) / lambda``), so the ``N`` frames span ``N |Q| dtheta`` and
    the real-space period along that direction is ``2 pi / (N |Q| dtheta)``.

    Assumptions: small steps, the rocking axis perpendicular to ``Q``. This is
    the slice spacing measured along the rocking direction in reciprocal
    space; the detector-frame step vector itself (along ``k_f``) is longer by
    ``1 / cos(theta_B)`` (:func:`real_space_basis`).

    Examples
    --------
    ``lambda = 1e-10`` m, ``N = 50``, ``dtheta = 1e-3`` rad, ``2 theta_B = 60``
    deg: ``1e-10 / (2 * 50 * 1e-3 * 0.5) = 2e-9`` m.
    """
    return float(wavelength_m) / (2.0 * int(n) * np.radians(step_deg) * np.sin(two_theta_rad / 2.0))


def voxel_size_m(meta: ScanMeta | None, shape: Sequence[int]) -> tuple[float, ...] | None:
    """Object voxel size per array axis, metres, or None when the geometry does not give it.

    Parameters
    ----------
    meta : ScanMeta or None
        Geometry of the (binned) frame: ``pixel_size_m`` is one array pixel.
    shape : sequence of int
        Frame shape, ``(ny, nx)`` or ``(n_rocking, ny, nx)``.

    Returns
    -------
    tuple of float or None
        ``(dy, dx)`` (:func:`detector_voxel_m`), or ``(d_rocking, dy, dx)``
        (:func:`rocking_voxel_m` for the first axis, which needs the rocking
        step and the detector angles). None when the wavelength, distance or
        pixel size (and in 3D the step and angles) are unknown.
    """
    if meta is None or meta.wavelength_m is None or meta.distance_m is None or meta.pixel_size_m is None:
        return None
    shape = tuple(int(n) for n in shape)
    if len(shape) not in (2, 3):
        return None
    detector = tuple(detector_voxel_m(meta.wavelength_m, meta.distance_m, n, p)
                     for n, p in zip(shape[-2:], meta.pixel_size_m))
    if len(shape) == 2:
        return detector
    if meta.rocking_step_deg is None or meta.detector_angles_deg is None:
        return None
    two_theta = scattering_angle_rad(*meta.detector_angles_deg)
    if two_theta <= 0:
        return None
    return (rocking_voxel_m(meta.wavelength_m, shape[0], meta.rocking_step_deg, two_theta), *detector)


def _direction(text: str) -> np.ndarray:
    """``"y-"`` -> ``(0, -1, 0)``."""
    text = text.strip().lower()
    if len(text) != 2 or text[0] not in _AXES or text[1] not in "+-":
        raise ValueError(f"pixel orientation {text!r}: give an axis and a sign such as x+ or y-")
    vector = np.zeros(3)
    vector[_AXES[text[0]]] = 1.0 if text[1] == "+" else -1.0
    return vector


def _arm_rotation(delta_deg: float, gamma_deg: float) -> np.ndarray:
    """The detector arm's rotation: ``gamma`` about ``-x``, then ``delta`` about ``+y`` (3x3)."""
    d, g = np.radians(delta_deg), np.radians(gamma_deg)
    about_minus_x = np.array([[1, 0, 0], [0, np.cos(g), np.sin(g)], [0, -np.sin(g), np.cos(g)]])
    about_y = np.array([[np.cos(d), 0, np.sin(d)], [0, 1, 0], [-np.sin(d), 0, np.cos(d)]])
    return about_y @ about_minus_x


def lab_vectors(delta_deg: float, gamma_deg: float,
                pixel_orientation: str = DEFAULT_PIXEL_ORIENTATION) -> dict[str, np.ndarray]:
    """Unit vectors of the scattering geometry in the lab frame (module docstring).

    Returns
    -------
    dict of str to numpy.ndarray, shape (3,)
        ``k_f`` (outgoing beam), ``q`` (``Q / |Q|``), ``row`` and ``column``
        (the detector's array axes), ``rocking_axis`` (``+y``).
    """
    rotation = _arm_rotation(delta_deg, gamma_deg)
    rows, columns = (_direction(part) for part in pixel_orientation.split(","))
    k_f = rotation @ np.array([0.0, 0.0, 1.0])
    q = k_f - np.array([0.0, 0.0, 1.0])
    return {"k_f": k_f, "q": q / np.linalg.norm(q), "row": rotation @ rows, "column": rotation @ columns,
            "rocking_axis": np.array([0.0, 1.0, 0.0])}


def _pixel_orientation(meta: ScanMeta) -> str:
    return str(meta.extra.get("pixel_orientation", DEFAULT_PIXEL_ORIENTATION))


def q_direction(meta: ScanMeta) -> np.ndarray:
    """``Q / |Q|`` in the lab frame (x, y, z) of a geometry with detector angles, shape (3,)."""
    return lab_vectors(*meta.detector_angles_deg, _pixel_orientation(meta))["q"]


def real_space_basis(meta: ScanMeta, shape: Sequence[int]) -> np.ndarray:
    """The detector-frame step vectors of a 3D Bragg object in the lab frame, metres.

    The data's reciprocal steps are ``b_rocking = |Q| dtheta (w x Q/|Q|)``
    (``w`` the rocking axis) and ``b_row, b_column = (2 pi p / (lambda D))
    e_row, e_column``; the object's steps ``a_i`` are their duals,
    ``a_i . b_j N_j = 2 pi delta_ij``. Voxel ``n`` sits at ``sum_i n_i a_i``.

    Parameters
    ----------
    meta : ScanMeta
        Complete 3D geometry (wavelength, distance, pixel size, rocking step,
        detector angles).
    shape : sequence of 3 int
        Frame shape ``(n_rocking, ny, nx)``.

    Returns
    -------
    numpy.ndarray, float64, shape (3, 3)
        Column ``i`` is ``a_i`` (lab x, y, z), metres.
    """
    vectors = lab_vectors(*meta.detector_angles_deg, _pixel_orientation(meta))
    k = 2.0 * np.pi / meta.wavelength_m
    q_norm = q_norm_per_m(meta.wavelength_m, scattering_angle_rad(*meta.detector_angles_deg))
    b = np.column_stack([
        q_norm * np.radians(meta.rocking_step_deg) * np.cross(vectors["rocking_axis"], vectors["q"]),
        k * meta.pixel_size_m[0] / meta.distance_m * vectors["row"],
        k * meta.pixel_size_m[1] / meta.distance_m * vectors["column"],
    ]) * np.asarray(shape, dtype=np.float64)
    return 2.0 * np.pi * np.linalg.inv(b).T


def strain_weights_per_m(meta: ScanMeta, shape: Sequence[int]) -> np.ndarray:
    """Weights ``w_i`` such that ``(Q/|Q|) . grad u = sum_i w_i du/dn_i`` on a detector-frame 3D array.

    With ``g_i = N_i b_i / (2 pi)`` the duals of the step vectors,
    ``grad u = sum_i g_i du/dn_i``, so ``w_i = (Q/|Q|) . g_i``. The rocking
    step ``b_rocking`` is perpendicular to ``Q``, so ``w_rocking = 0``
    whatever the step; ``w_row = (Q/|Q|) . e_row / d_row`` with ``d_row`` the
    voxel size of :func:`detector_voxel_m`, and the same for the columns.
    Exact to first order in the pixel and step sizes (no orthogonal grid
    needed, the rocking step not used).

    Parameters
    ----------
    meta : ScanMeta
        Wavelength, distance, pixel size and detector angles.
    shape : sequence of 3 int
        Frame shape ``(n_rocking, ny, nx)``.

    Returns
    -------
    numpy.ndarray, float64, shape (3,)
        Per metre.
    """
    vectors = lab_vectors(*meta.detector_angles_deg, _pixel_orientation(meta))
    weights = [0.0]
    for name, n, pixel in zip(("row", "column"), tuple(shape)[-2:], meta.pixel_size_m):
        weights.append(float(vectors["q"] @ vectors[name]) / detector_voxel_m(meta.wavelength_m, meta.distance_m,
                                                                               n, pixel))
    return np.asarray(weights)
