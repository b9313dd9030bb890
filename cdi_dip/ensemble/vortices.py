"""Phase vortices (dislocations) of an object, and the phase they carry.

A dislocation in a crystal is a phase vortex: the phase winds by ``2 pi``
around a point (2D) or a line (3D), where the amplitude dips. Its phase,
``atan2`` about the core, has a large linear least-squares part that depends
on where the core sits and where the phase wraps, and it splits the Bragg
peak, so neither the peak of the spectrum nor a least-squares fit of the
wrapped phase finds the object's phase ramp. :func:`find_vortices` locates the
vortices from the windings of the phase around the plaquettes (2x2 squares)
that sit alone inside a ring of trusted pixels (:func:`isolated_windings`),
places each core to sub-pixel, and :func:`vortex_phase` models each as
``q atan2`` about its core, so that the ramp is fitted to the rest of the
phase (the convention of :func:`cdi_dip.simulate.faceted_crystal`: a vortex
carries no ramp).

In 3D the pierced plaquettes are grouped into connected lines, and each
line is modelled as straight (its principal axis); curved lines and loops
are approximated (a closed loop carries no net winding and is left out).

Everything runs on the host in NumPy; positions are array indices (pixels).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from .._ndimage import dilate, label

log = logging.getLogger(__name__)

TRUST_LEVEL = 0.2
"""Fraction of the typical largest amplitude above which a pixel's phase is trusted (:func:`trusted_pixels`)."""

TRUST_PERCENTILE = 95.0
"""Percentile of the amplitude on the support that stands for its largest value (robust to hot pixels)."""

MIN_LINE_PLAQUETTES = 4
"""Fewest pierced plaquettes that make a 3D vortex line (shorter groups are edge ringing or noise)."""

CORE_EXCLUSION_PX = 1.0
"""Pixels closer than this to a vortex core are left out of a ramp fit (the model is poorest there)."""

MAX_VORTICES = 64
"""Most point vortices modelled in 2D."""

MAX_LINES = 8
"""Most vortex lines modelled in 3D; the longest are kept."""

LINE_ROUNDS = 2
"""Rounds of slice-by-slice core placement and line fit for a 3D vortex line."""

REFINE_HALF_WIDTH_PX = 3
"""Half-width of the patch (px) around a core whose phase steps place it to sub-pixel."""

REFINE_REACH_PX = 0.75
"""How far (px) from the plaquette's centre the refined core is searched."""

REFINE_STEP_PX = 0.05
"""Grid step (px) of the core search."""


@dataclass(frozen=True)
class Vortex:
    """One phase vortex: a point (2D) or a straight line (3D).

    Attributes
    ----------
    point : numpy.ndarray, float64, shape (ndim,)
        A point of the core, array indices (px).
    direction : numpy.ndarray, float64, shape (3,), or None
        Unit vector along the line (3D), oriented so that the phase turns by
        ``+2 pi charge`` counter-clockwise about it; None in 2D.
    charge : int
        Winding number (non-zero): in 2D the phase turns by ``2 pi charge``
        going from axis 0 towards axis 1.
    """

    point: np.ndarray
    direction: np.ndarray | None
    charge: int


def _wrap(phase: np.ndarray) -> np.ndarray:
    return (phase + np.pi) % (2 * np.pi) - np.pi


def _cut(ndim: int, axis: int, part: slice) -> tuple[slice, ...]:
    index = [slice(None)] * ndim
    index[axis] = part
    return tuple(index)


def plaquette_windings(obj: np.ndarray, axes: tuple[int, int]) -> np.ndarray:
    """Winding number of the phase around every plaquette in the plane of ``axes``.

    Parameters
    ----------
    obj : numpy.ndarray, complex, shape S
    axes : (int, int)
        The plane ``(b, c)``; the circulation goes ``+b``, then ``+c``, then
        back (counter-clockwise about ``b x c``).

    Returns
    -------
    numpy.ndarray, int64, shape S less one along ``b`` and ``c``
        Entry ``i`` is the plaquette with lower corner ``i``. The windings
        inside any loop add up to the winding along it (the inner steps cancel).
    """
    b, c = axes
    ndim = obj.ndim
    phase = np.angle(obj)
    lo_b, hi_b = _cut(ndim, b, slice(0, -1)), _cut(ndim, b, slice(1, None))
    lo_c, hi_c = _cut(ndim, c, slice(0, -1)), _cut(ndim, c, slice(1, None))
    step_b = _wrap(phase[hi_b] - phase[lo_b])  # one shorter along b
    step_c = _wrap(phase[hi_c] - phase[lo_c])  # one shorter along c
    circulation = step_b[lo_c] + step_c[hi_b] - step_b[hi_c] - step_c[lo_b]
    return np.rint(circulation / (2 * np.pi)).astype(np.int64)


def _window_sum_axis(values: np.ndarray, axis: int, start: int, size: int, length: int) -> np.ndarray:
    """``out[i] = sum(values[i + start : i + start + size])`` along ``axis`` for ``i < length`` (zero outside)."""
    before = max(0, -start)
    after = max(0, length + start + size - 1 - values.shape[axis])
    padded = np.pad(values, [(before, after) if a == axis else (0, 0) for a in range(values.ndim)])
    shape = list(padded.shape)
    shape[axis] = 1
    total = np.concatenate([np.zeros(shape, dtype=padded.dtype), np.cumsum(padded, axis=axis)], axis=axis)
    first = np.arange(length) + start + before
    return np.take(total, first + size, axis=axis) - np.take(total, first, axis=axis)


def isolated_windings(obj: np.ndarray, trusted: np.ndarray, axes: tuple[int, int]) -> np.ndarray:
    """The plaquette windings that are vortices: alone inside a trusted ring.

    A plaquette is kept when its winding is non-zero, equals the winding
    along the ring of pixels two steps out (the boundary of the 4x4 pixels
    around it: no opposite vortex close by), and that ring lies in
    ``trusted``. The core itself may be dark (a dislocation's amplitude
    falls there); ringing at the object's edge and noise in weak pixels are
    not counted.

    Parameters
    ----------
    obj : numpy.ndarray, complex, shape S
    trusted : numpy.ndarray, bool, shape S
        Pixels whose phase is trusted (:func:`trusted_pixels`).
    axes : (int, int)
        The plane, as for :func:`plaquette_windings`.

    Returns
    -------
    numpy.ndarray, int64, the plaquette grid of ``axes``
        The winding of every vortex plaquette, 0 elsewhere.
    """
    windings = plaquette_windings(obj, axes)
    around = windings
    pixels = trusted.astype(np.int64)
    for axis in axes:
        around = _window_sum_axis(around, axis, -1, 3, windings.shape[axis])
        pixels = _window_sum_axis(pixels, axis, -1, 4, windings.shape[axis])
    inner = trusted.astype(np.int64)
    for axis in axes:
        inner = _window_sum_axis(inner, axis, 0, 2, windings.shape[axis])
    ring = pixels - inner == 12
    return np.where((windings != 0) & (around == windings) & ring, windings, 0)


def typical_amplitude(obj: np.ndarray, support: np.ndarray) -> float:
    """The typical largest amplitude on the support: the :data:`TRUST_PERCENTILE` percentile of ``|obj|``.

    Robust to a few hot pixels, unlike the maximum; 0 for an empty support.
    """
    if not support.any():
        return 0.0
    return float(np.percentile(np.abs(obj)[support], TRUST_PERCENTILE))


def trusted_pixels(obj: np.ndarray, support: np.ndarray) -> np.ndarray:
    """The support where ``|obj|`` exceeds :data:`TRUST_LEVEL` of its typical largest value there.

    Parameters
    ----------
    obj : numpy.ndarray, complex, shape S
    support : numpy.ndarray, bool, shape S

    Returns
    -------
    numpy.ndarray, bool, shape S
        The typical largest value is :func:`typical_amplitude`; all False for
        an empty support.
    """
    return support & (np.abs(obj) > TRUST_LEVEL * typical_amplitude(obj, support))


def find_vortices(obj: np.ndarray, support: np.ndarray) -> list[Vortex]:
    """The phase vortices of an object on its support.

    Parameters
    ----------
    obj : numpy.ndarray, complex, shape S (2D or 3D)
    support : numpy.ndarray, bool, shape S

    Returns
    -------
    list of Vortex
        2D: one per vortex plaquette (:func:`isolated_windings`), its core
        placed to sub-pixel by :func:`refine_core`; at most
        :data:`MAX_VORTICES`. 3D: one straight line per connected group of
        at least :data:`MIN_LINE_PLAQUETTES` pierced plaquettes with a net
        winding, placed by :func:`refine_line`; at most :data:`MAX_LINES`,
        the longest first.
    """
    mask = trusted_pixels(obj, support)
    phase = np.angle(obj)
    if obj.ndim == 3:
        return [refine_line(phase, mask, line, centres) for line, centres in _vortex_lines(obj, mask)]
    windings = isolated_windings(obj, mask, (0, 1))
    corners = np.stack(np.nonzero(windings), axis=1)
    if corners.shape[0] > MAX_VORTICES:
        log.debug("%d phase vortices: modelling the first %d", corners.shape[0], MAX_VORTICES)
    found = []
    for corner in corners[:MAX_VORTICES]:
        charge = int(windings[tuple(corner)])
        core = refine_core(phase, mask, corner + 0.5, charge, np.eye(2))
        found.append(Vortex(core, None, charge))
    return found


def _perpendicular_basis(direction: np.ndarray) -> np.ndarray:
    """Rows ``e1, e2``: unit vectors across a 3D line, ``e1 x e2`` along ``direction``; shape (2, 3)."""
    helper = np.eye(3)[int(np.argmin(np.abs(direction)))]
    e1 = np.cross(direction, helper)
    e1 /= np.linalg.norm(e1)
    return np.stack([e1, np.cross(direction, e1)])


def _atan2_about(points: np.ndarray, cores: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """``atan2(d . e2, d . e1)``, ``d = point - core``, for points (P, 2) and candidate cores (K, 2): (K, P)."""
    offsets = points[None, :, :] - cores[:, None, :]
    return np.arctan2(offsets @ basis[1], offsets @ basis[0])


def refine_core(phase: np.ndarray, mask: np.ndarray, start: np.ndarray, charge: int,
                basis: np.ndarray) -> np.ndarray:
    """Sub-pixel core of a vortex in a plane: the ``atan2`` model that best explains the nearby phase steps.

    On the patch of half-width :data:`REFINE_HALF_WIDTH_PX` around ``start``,
    every step of the phase between neighbours (both in ``mask``) less the
    step of ``charge * atan2(d . e2, d . e1)`` about a candidate core should
    be the same along each axis (a smooth, locally linear phase). The
    candidate that makes these residual steps most uniform wins (a grid of
    :data:`REFINE_STEP_PX` within :data:`REFINE_REACH_PX` of ``start``).
    Working on phase steps, it is blind to any phase ramp and to wrapping.

    Parameters
    ----------
    phase : numpy.ndarray, float, shape (n0, n1)
        Phase of the object in the plane (rad).
    mask : numpy.ndarray, bool, shape (n0, n1)
        Trusted pixels.
    start : numpy.ndarray, shape (2,)
        First guess of the core (array indices, px), e.g. a plaquette's centre.
    charge : int
    basis : numpy.ndarray, shape (2, 2)
        Rows ``e1, e2`` in the plane's coordinates: the identity for a 2D
        object; the in-plane components of the vectors across a tilted 3D line.

    Returns
    -------
    numpy.ndarray, float64, shape (2,)
        The core (array indices, px); ``start`` when the patch holds too few steps.
    """
    corner = np.floor(start).astype(int)
    low = np.maximum(corner - REFINE_HALF_WIDTH_PX + 1, 0)
    high = np.minimum(corner + REFINE_HALF_WIDTH_PX + 1, phase.shape)
    box = tuple(slice(lo, hi) for lo, hi in zip(low, high))
    local_phase, local_mask = phase[box], mask[box]
    offsets = np.arange(-REFINE_REACH_PX, REFINE_REACH_PX + REFINE_STEP_PX / 2, REFINE_STEP_PX)
    cores = start + np.stack(np.meshgrid(offsets, offsets, indexing="ij"), axis=-1).reshape(-1, 2)
    cost = np.zeros(cores.shape[0])
    used = False
    for axis in range(2):
        lo, hi = _cut(2, axis, slice(0, -1)), _cut(2, axis, slice(1, None))
        pairs = local_mask[lo] & local_mask[hi]
        if np.count_nonzero(pairs) < 3:
            continue
        first = np.stack(np.nonzero(pairs), axis=1).astype(np.float64) + low
        observed = _wrap(local_phase[hi][pairs] - local_phase[lo][pairs])
        model = _wrap(_atan2_about(first + np.eye(2)[axis], cores, basis) - _atan2_about(first, cores, basis))
        residual = _wrap(observed[None, :] - charge * model)
        centre = np.angle(np.exp(1j * residual).mean(axis=1, keepdims=True))
        cost += np.sum(_wrap(residual - centre) ** 2, axis=1)
        used = True
    return cores[int(np.argmin(cost))] if used else np.asarray(start, dtype=np.float64)


def refine_line(phase: np.ndarray, mask: np.ndarray, line: Vortex, centres: np.ndarray) -> Vortex:
    """A 3D vortex line placed to sub-pixel: cores refined slice by slice, and a line fitted through them.

    The slices are across the axis the line runs most along; in each, the
    core is placed by :func:`refine_core` with the ``atan2`` model tilted as
    the line is; a straight line is then fitted through the cores
    (principal axis), :data:`LINE_ROUNDS` times.

    Parameters
    ----------
    phase : numpy.ndarray, float, shape (n0, n1, n2)
        Phase of the object (rad).
    mask : numpy.ndarray, bool, shape (n0, n1, n2)
        Trusted pixels.
    line : Vortex
        First guess (through the pierced plaquettes).
    centres : numpy.ndarray, shape (P, 3)
        Centres of its pierced plaquettes (px), which bound the slices.

    Returns
    -------
    Vortex
    """
    for _ in range(LINE_ROUNDS):
        axis = int(np.argmax(np.abs(line.direction)))
        plane = [a for a in range(3) if a != axis]
        basis = _perpendicular_basis(line.direction)[:, plane]
        cores = []
        for index in range(int(np.ceil(centres[:, axis].min())), int(np.floor(centres[:, axis].max())) + 1):
            crossing = line.point + line.direction * (index - line.point[axis]) / line.direction[axis]
            cut = _cut(3, axis, index)
            core = refine_core(phase[cut], mask[cut], crossing[plane], line.charge, basis)
            cores.append(np.insert(core, axis, float(index)))
        if len(cores) < 2:
            return line
        cores = np.array(cores)
        point = cores.mean(axis=0)
        direction = np.linalg.svd(cores - point, full_matrices=False)[2][0]
        line = Vortex(point, direction * np.sign(float(direction @ line.direction) or 1.0), line.charge)
    return line


def _vortex_lines(obj: np.ndarray, mask: np.ndarray) -> list[tuple[Vortex, np.ndarray]]:
    """Straight lines through the connected groups of pierced plaquettes of a 3D object, with their centres."""
    centres, fluxes = [], []
    pierced = np.zeros(obj.shape, dtype=bool)
    for normal in range(3):
        plane = ((normal + 1) % 3, (normal + 2) % 3)
        windings = isolated_windings(obj, mask, plane)
        index = np.nonzero(windings)
        if not index[0].size:
            continue
        corner = np.stack(index, axis=1)
        pierced[tuple(corner.T)] = True
        offset = np.full(3, 0.5)
        offset[normal] = 0.0
        centres.append(corner + offset)
        flux = np.zeros((corner.shape[0], 3))
        flux[:, normal] = windings[index]
        fluxes.append(flux)
    if not centres:
        return []
    centre, flux = np.concatenate(centres), np.concatenate(fluxes)
    groups, count = label(dilate(pierced, 1))
    group_of = groups[tuple(np.floor(centre).astype(int).T)]
    lines = []
    for group in range(1, count + 1):
        members = group_of == group
        if np.count_nonzero(members) < MIN_LINE_PLAQUETTES:
            continue
        line = _straight_line(centre[members], flux[members])
        if line is not None:
            lines.append((line, centre[members]))
    lines.sort(key=lambda item: -item[1].shape[0])
    if len(lines) > MAX_LINES:
        log.debug("%d vortex lines: modelling the %d longest", len(lines), MAX_LINES)
    return lines[:MAX_LINES]


def _straight_line(centres: np.ndarray, fluxes: np.ndarray) -> Vortex | None:
    """The straight vortex line through the pierced plaquettes of one group (None for a closed loop)."""
    net = fluxes.sum(axis=0)
    strength = float(np.linalg.norm(net))
    if strength < 0.5:
        return None
    point = centres.mean(axis=0)
    direction = net / strength
    if centres.shape[0] > 1:
        axes = np.linalg.svd(centres - point, full_matrices=False)[2]
        direction = axes[0] * np.sign(float(axes[0] @ net) or 1.0)
    span = float(np.ptp(centres @ direction))
    charge = max(1, int(round(strength / max(span, 1.0))))
    return Vortex(point, direction, charge)


def _plane_coordinates(shape: tuple[int, ...], vortex: Vortex) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates (px) across the core: ``(axis 0, axis 1)`` from the point (2D), or ``(e1, e2)`` (3D)."""
    ndim = len(shape)
    offsets = [(np.arange(n, dtype=np.float64) - p).reshape([-1 if a == axis else 1 for a in range(ndim)])
               for axis, (n, p) in enumerate(zip(shape, vortex.point))]
    if vortex.direction is None:
        return offsets[0], offsets[1]
    e1, e2 = _perpendicular_basis(vortex.direction)
    return sum(e * o for e, o in zip(e1, offsets)), sum(e * o for e, o in zip(e2, offsets))


def vortex_phase(shape: tuple[int, ...], vortices: list[Vortex]) -> tuple[np.ndarray, np.ndarray]:
    """The phase of the modelled vortices, and the distance to the nearest core.

    Parameters
    ----------
    shape : tuple of int
        Frame shape S (2D or 3D).
    vortices : list of Vortex

    Returns
    -------
    phase : numpy.ndarray, float64, shape S
        ``sum charge * atan2`` about every core (radians; zero without vortices).
    distance : numpy.ndarray, float64, shape S
        Distance to the nearest core (px); ``inf`` without vortices.
    """
    phase = np.zeros(shape)
    distance = np.full(shape, np.inf)
    for vortex in vortices:
        u, v = _plane_coordinates(shape, vortex)
        phase = phase + vortex.charge * np.arctan2(v, u)
        distance = np.minimum(distance, np.hypot(u, v))
    return phase, distance
