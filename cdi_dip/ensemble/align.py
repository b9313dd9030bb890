"""Alignment of one reconstructed object: its standard form.

A far-field measurement ``Y = |F(X)|**2`` does not change when the object
``X`` is multiplied by a constant phase, shifted (circularly, in the frame), or
replaced by its twin ``conj(X(-r))``; a Bragg peak that was off the frame
centre leaves a linear phase ramp in ``X``. :func:`align_object` removes these
freedoms from one object: centre of mass at the frame centre, no linear phase
ramp, the twin chosen by a fixed rule, zero mean phase on the support. Its
steps are public: :func:`subpixel_shift`, :func:`centre_of_mass_shift`,
:func:`remove_phase_ramp`, :func:`resolve_twin` (:func:`twin`),
:func:`remove_phase_offset`; :func:`align_map` moves a real map of the object
(an uncertainty) with it.

Registering one object onto another is :mod:`.register`. Everything here runs
on the host in NumPy ``complex128``. Arrays are centred: the origin of every
axis is at index ``n // 2``.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import InvalidInputError
from ..types import AlignInfo
from .fourier import along_axis, apply_ramp, centred_positions, estimate_ramp, separable_phasor
from .vortices import CORE_EXCLUSION_PX, find_vortices, typical_amplitude, vortex_phase

log = logging.getLogger(__name__)

CENTRE_ROUNDS = 4
"""Most centre-of-mass corrections after the first sub-pixel shift in :func:`align_object`."""

CENTRE_TOLERANCE_PX = 1e-3
"""Centre-of-mass error (px) below which :func:`align_object` stops correcting."""

TWIN_SKEW_LEVEL = 0.05
"""Dimensionless third moment of the amplitude below which the twin is chosen by the phase instead."""

DEFAULT_SUPPORT_LEVEL = 0.1
"""Amplitude (fraction of the maximum) above which pixels form the support when none is given."""

BODY_LEVEL = 0.5
"""Fraction of the typical largest amplitude (:func:`.vortices.typical_amplitude`) above which a pixel is
in the body."""

BODY_TAPER = 0.2
"""Width (fraction of the typical largest amplitude) over which the body weight rises from 0 to 1, centred
on :data:`BODY_LEVEL`: a hard threshold would make the fitted ramp jump with a sub-pixel shift."""


def _complex(array: Any) -> np.ndarray:
    return np.asarray(array).astype(np.complex128, copy=False)


def pad_or_crop(array: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Centre-pad with zeros or centre-crop each axis to ``shape``.

    The centre (index ``n // 2``) of every axis lands on the new centre
    (index ``m // 2``).

    Parameters
    ----------
    array : numpy.ndarray, shape S
    shape : sequence of int, same length as S

    Returns
    -------
    numpy.ndarray, shape ``shape``, same dtype
    """
    out = np.zeros(tuple(shape), dtype=array.dtype)
    src, dst = [], []
    for n_in, n_out in zip(array.shape, shape):
        start_in = max(n_in // 2 - n_out // 2, 0)
        start_out = max(n_out // 2 - n_in // 2, 0)
        length = min(n_in - start_in, n_out - start_out)
        src.append(slice(start_in, start_in + length))
        dst.append(slice(start_out, start_out + length))
    out[tuple(dst)] = array[tuple(src)]
    return out


def twin(obj: np.ndarray) -> np.ndarray:
    """The twin image ``conj(x(-r))`` about the centre ``n // 2`` of every axis.

    Parameters
    ----------
    obj : numpy.ndarray, complex, shape S

    Returns
    -------
    numpy.ndarray, complex, shape S
        Index ``i`` of every axis holds ``conj(obj[(2 * (n // 2) - i) % n])``; the
        centre maps to itself and ``|F(twin)| == |F(obj)|``.
    """
    flipped = np.flip(np.asarray(obj))
    shifts = [2 * (n // 2) - n + 1 for n in flipped.shape]
    return np.conj(np.roll(flipped, shifts, axis=tuple(range(flipped.ndim))))


def subpixel_shift(obj: np.ndarray, shift_px: Sequence[float]) -> np.ndarray:
    """Circular shift by any amount: ``out(r) = obj(r - shift_px)``.

    Integer shifts are exact (a roll); other shifts multiply the spectrum by
    the linear phase ``exp(-2 pi i f . shift)`` (exact for band-limited objects).

    Parameters
    ----------
    obj : numpy.ndarray, real or complex, shape S
    shift_px : sequence of float, one per axis
        Shift in pixels; positive moves the content to higher indices.

    Returns
    -------
    numpy.ndarray, shape S
        Complex128, or float64 when ``obj`` is real (the real part is kept).
    """
    obj = np.asarray(obj)
    shift = [float(s) for s in shift_px]
    if len(shift) != obj.ndim:
        raise InvalidInputError(f"shift_px has {len(shift)} values for a {obj.ndim}D array: give one per axis")
    axes = tuple(range(obj.ndim))
    if all(s == round(s) for s in shift):
        return np.roll(obj, [int(round(s)) for s in shift], axis=axes).astype(
            np.complex128 if np.iscomplexobj(obj) else np.float64)
    spectrum = np.fft.fftn(obj, axes=axes)
    phasor = separable_phasor([np.fft.fftfreq(n) for n in obj.shape], [-2 * np.pi * s for s in shift])
    shifted = np.fft.ifftn(spectrum * phasor, axes=axes)
    return shifted if np.iscomplexobj(obj) else shifted.real


def centre_of_mass(weights: np.ndarray) -> tuple[float, ...]:
    """Centre of mass of non-negative weights, robust to wrap-around.

    The circular mean of every axis first rolls the mass so that it does not
    straddle the frame edge; the ordinary centre of mass is then taken.

    Parameters
    ----------
    weights : numpy.ndarray, real, shape S
        Non-negative weights (e.g. the amplitude on the support).

    Returns
    -------
    tuple of float
        Position in pixel indices, in ``[0, n)`` (modulo ``n`` for a mass that
        straddles the frame edge).

    Raises
    ------
    InvalidInputError
        The weights sum to zero (nothing to centre).
    """
    weights = np.asarray(weights, dtype=np.float64)
    total = weights.sum()
    if not np.isfinite(total) or total <= 0:
        raise InvalidInputError("cannot centre an object with zero amplitude on its support: check the support")
    ndim = weights.ndim
    com = []
    for axis, n in enumerate(weights.shape):
        profile = weights.sum(axis=tuple(a for a in range(ndim) if a != axis))
        index = np.arange(n, dtype=np.float64)
        circular = np.angle(np.sum(profile * np.exp(2j * np.pi * index / n))) * n / (2 * np.pi)
        roll = int(round(n // 2 - circular))
        rolled = np.roll(profile, roll)
        com.append(float(np.sum(index * rolled) / rolled.sum() - roll) % n)
    return tuple(com)


def centre_of_mass_shift(amplitude: np.ndarray) -> tuple[float, ...]:
    """Shift that brings the centre of mass of ``amplitude`` to the frame centre.

    Parameters
    ----------
    amplitude : numpy.ndarray, real, shape S
        Non-negative weights (amplitude, or amplitude times support).

    Returns
    -------
    tuple of float
        ``n // 2 - com`` per axis, wrapped into ``[-n/2, n/2)``, in pixels, to
        pass to :func:`subpixel_shift`.
    """
    amplitude = np.asarray(amplitude)
    return tuple((n // 2 - c + n // 2) % n - n // 2 for n, c in zip(amplitude.shape, centre_of_mass(amplitude)))


def body_weights(obj: np.ndarray, support: np.ndarray) -> np.ndarray:
    """Uniform weights on the body of the object: where ``|obj|`` is at least half its typical maximum.

    The phase of the edge pixels is poorly determined and the amplitude of the
    interior should not tilt the fit: every pixel of the body counts alike
    (the convention of :func:`cdi_dip.simulate.faceted_crystal`, whose strain
    phase has no linear part where the amplitude exceeds one half). The
    weight rises linearly over :data:`BODY_TAPER` around :data:`BODY_LEVEL`.

    Parameters
    ----------
    obj : numpy.ndarray, complex, shape S
    support : numpy.ndarray, bool, shape S

    Returns
    -------
    numpy.ndarray, float64, shape S
        In ``[0, 1]``: ``clip((|obj| / a - BODY_LEVEL) / BODY_TAPER + 1/2, 0, 1)`` on the support,
        ``a`` the typical largest amplitude (:func:`.vortices.typical_amplitude`); 0 off the support
        (all zero for an empty or zero support).
    """
    typical = typical_amplitude(obj, support)
    if typical <= 0:
        return np.zeros(obj.shape)
    return np.where(support, np.clip((np.abs(obj) / typical - BODY_LEVEL) / BODY_TAPER + 0.5, 0.0, 1.0), 0.0)


def remove_phase_ramp(obj: np.ndarray, support: np.ndarray,
                      weights: np.ndarray | None = None) -> tuple[np.ndarray, tuple[float, ...]]:
    """Remove the linear phase ramp of an object on its support.

    Phase vortices (dislocations) are found first and their ``atan2`` phase
    is set aside (:mod:`.vortices`): a vortex carries no ramp, and pixels
    within :data:`~.vortices.CORE_EXCLUSION_PX` of a core are left out. The
    ramp of the rest is located as the peak of the (upsampled) Fourier
    transform on the support, which is insensitive to phase wrapping, then
    refined by weighted least squares on the wrapped residual phase.

    Parameters
    ----------
    obj : numpy.ndarray, complex, shape S (2D or 3D), centred
    support : numpy.ndarray, bool, shape S
        Where the object is.
    weights : numpy.ndarray, real, shape S, optional
        Fit weights; default :func:`body_weights` (1 where the amplitude is at
        least half its typical maximum on the support).

    Returns
    -------
    obj : numpy.ndarray, complex128, shape S
        ``obj * exp(-i g . (r - c))``: the phase at the centre ``c`` is unchanged.
    ramp_rad_per_px : tuple of float
        The ramp ``g`` that was removed, radians per pixel, one per axis.
    """
    obj = _complex(obj)
    support = _check_support(obj, support)
    if weights is None:
        weights = body_weights(obj, support)
    weights = np.where(support, np.asarray(weights, dtype=np.float64), 0.0)
    if not np.any(weights > 0):
        return obj.copy(), (0.0,) * obj.ndim
    smooth, weights = _without_vortices(obj, support, weights)
    ramp = estimate_ramp(smooth * weights / np.maximum(np.abs(obj), 1e-300), weights)
    return apply_ramp(obj, [-g for g in ramp]), ramp


def _without_vortices(obj: np.ndarray, support: np.ndarray,
                      weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``obj`` with the phase of its vortices taken out, and ``weights`` zero near their cores.

    Unchanged when there is no vortex (or when every weighted pixel is near a core).
    """
    vortices = find_vortices(obj, support)
    if not vortices:
        return obj, weights
    phase, core_distance = vortex_phase(obj.shape, vortices)
    kept = np.where(core_distance >= CORE_EXCLUSION_PX, weights, 0.0)
    log.debug("phase ramp fitted beside %d vortices", len(vortices))
    return obj * np.exp(-1j * phase), (kept if np.any(kept > 0) else weights)


def remove_phase_offset(obj: np.ndarray, support: np.ndarray) -> tuple[np.ndarray, float]:
    """Set the amplitude-weighted circular mean phase on the support to zero.

    Parameters
    ----------
    obj : numpy.ndarray, complex, shape S
    support : numpy.ndarray, bool, shape S

    Returns
    -------
    obj : numpy.ndarray, complex128, shape S
        ``obj * exp(-i offset)``.
    offset_rad : float
        ``angle(sum(obj[support]))`` (the amplitude-weighted circular mean phase).
    """
    obj = _complex(obj)
    support = _check_support(obj, support)
    total = np.sum(obj[support])
    offset = float(np.angle(total)) if abs(total) > 0 else 0.0
    return obj * np.exp(-1j * offset), offset


def _check_support(obj: np.ndarray, support: np.ndarray | None) -> np.ndarray:
    if obj.ndim not in (2, 3):
        raise InvalidInputError(f"expected a 2D or 3D object, got shape {obj.shape}")
    if support is None:
        return np.ones(obj.shape, dtype=bool)
    support = np.asarray(support, dtype=bool)
    if support.shape != obj.shape:
        raise InvalidInputError(f"support shape {support.shape} does not match object shape {obj.shape}")
    return support


def _default_support(obj: np.ndarray, support: np.ndarray | None) -> np.ndarray:
    """The given support, or (when None or empty) where ``|obj|`` exceeds 10% of its max."""
    support = _check_support(obj, support) if support is not None else None
    if support is not None and support.any():
        return support
    amplitude = np.abs(obj)
    peak = amplitude.max() if amplitude.size else 0.0
    if not np.isfinite(peak) or peak <= 0:
        raise InvalidInputError("cannot align an object that is zero everywhere (or not finite)")
    log.warning("empty or missing support: using the pixels above 10%% of the maximum amplitude")
    return amplitude >= DEFAULT_SUPPORT_LEVEL * peak


def centring_weights(obj: np.ndarray, support: np.ndarray) -> np.ndarray:
    """``|x|**2`` on the support grown by two pixels: smooth at the support's edge, so the
    centre of mass follows a sub-pixel shift of the object (a hard-edged ``|x|`` on the
    support does not).

    Parameters
    ----------
    obj : numpy.ndarray, complex, shape S
        The object, centred or not.
    support : numpy.ndarray, bool, shape S
        Its support, grown here by two pixels along every axis (circularly).

    Returns
    -------
    numpy.ndarray, float64, shape S
        Weights for :func:`centre_of_mass_shift` (zero outside the grown support).
    """
    grown = support
    for axis in range(support.ndim):
        grown = grown | np.roll(grown, 1, axis) | np.roll(grown, -1, axis)
        grown = grown | np.roll(grown, 1, axis) | np.roll(grown, -1, axis)
    return np.where(grown, np.abs(obj) ** 2, 0.0)


def _centre(obj: np.ndarray, support: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """Shift ``obj`` (sub-pixel) and ``support`` (rounded) so the weighted centre of mass is central.

    The ringing of a sub-pixel Fourier shift moves the centre of mass of
    ``|obj|`` a little; a few corrections of the sub-pixel shift (the support
    keeps its first rounded shift) fix it.
    """
    shift = np.array(centre_of_mass_shift(centring_weights(obj, support)))
    moved_support = np.roll(support, [int(round(s)) for s in shift], axis=tuple(range(obj.ndim)))
    for _ in range(CENTRE_ROUNDS):
        moved = subpixel_shift(obj, shift)
        residual = np.array(centre_of_mass_shift(centring_weights(moved, moved_support)))
        if np.abs(residual).max() < CENTRE_TOLERANCE_PX:
            break
        shift = shift + residual
    return moved, moved_support, tuple(float(s) for s in shift)


def twin_statistic(obj: np.ndarray, support: np.ndarray) -> float:
    """A number that changes sign when a centred object is replaced by its twin.

    The amplitude's third central moment, summed over the axes and made
    dimensionless, is odd under ``r -> -r``. It is taken over the support's
    pixels above :data:`DEFAULT_SUPPORT_LEVEL` of the largest amplitude: the
    faint pixels of a loose support sit far out, where the cube of the distance
    makes their noise decide the sign. For an object whose amplitude is
    nearly centrosymmetric (a small third moment, below
    :data:`TWIN_SKEW_LEVEL`), the amplitude-weighted phase curvature
    ``sum |x| phi (|r|**2 - <|r|**2>) / sum |x| |r|**2`` takes over, with ``phi``
    measured from the amplitude-weighted mean phase (so that the choice does
    not depend on the object's arbitrary global phase): the twin's phase is
    ``-phi(-r)``, so its even part, and this sum, change sign.

    Parameters
    ----------
    obj : numpy.ndarray, complex, shape S, centred (centre of mass at ``n // 2``)
    support : numpy.ndarray, bool, shape S

    Returns
    -------
    float
        Positive for the standard orientation (:func:`resolve_twin` keeps it).
    """
    amplitude = np.where(support, np.abs(obj), 0.0)
    weights = np.where(amplitude > DEFAULT_SUPPORT_LEVEL * amplitude.max(), amplitude, 0.0)
    total = weights.sum()
    if total <= 0:
        return 0.0
    coords = centred_positions(obj.shape)
    skew = 0.0
    radius2 = np.zeros(obj.shape)
    for axis, coord in enumerate(coords):
        values = along_axis(coord, axis, obj.ndim)
        mean = float((weights * values).sum() / total)
        spread = float(np.sqrt((weights * (values - mean) ** 2).sum() / total)) or 1.0
        skew += float((weights * ((values - mean) / spread) ** 3).sum() / total)
        radius2 = radius2 + (values - mean) ** 2
    if abs(skew) >= TWIN_SKEW_LEVEL:
        return skew
    return _phase_curvature(obj, weights, radius2)


def _phase_curvature(obj: np.ndarray, weights: np.ndarray, radius2: np.ndarray) -> float:
    """The weighted covariance of the phase with ``|r|**2``, whatever the object's global phase.

    The phase is measured from the weighted mean phasor ``sum w x`` (so a
    constant phase factor on ``obj`` changes nothing) and ``|r|**2`` from its
    weighted mean (so a constant left in the phase adds nothing). The twin
    conjugates the mean phasor and maps ``phi(r)`` to ``-phi(-r)``, so the
    value changes sign exactly.
    """
    total = weights.sum()
    mean_phasor = (weights * obj).sum()
    rotation = np.conj(mean_phasor) / abs(mean_phasor) if abs(mean_phasor) > 0 else 1.0
    phase = np.angle(obj * rotation)
    radial = radius2 - (weights * radius2).sum() / total
    return float((weights * phase * radial).sum() / max((weights * radius2).sum(), 1e-300))


def resolve_twin(obj: np.ndarray, support: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """Choose between a centred object and its twin ``conj(x(-r))`` by :func:`twin_statistic`.

    Two reconstructions of one measurement that converged to twins of each
    other come out in the same orientation.

    Returns
    -------
    obj : numpy.ndarray, complex128, shape S
    support : numpy.ndarray, bool, shape S
        Flipped with the object when it was replaced.
    twinned : bool
        True when the twin was taken.
    """
    if twin_statistic(obj, support) >= 0:
        return obj, support, False
    return twin(obj), twin(support.astype(np.float64)).real > 0.5, True


def align_object(obj: np.ndarray, support: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, AlignInfo]:
    """Put a reconstructed object in standard form.

    1. Roll by whole pixels so that the centre of mass of ``|x|**2`` on the
       support (grown by 2 px) is within half a pixel of the frame centre
       (exact; an object split by the frame edge comes together).
    2. Remove the linear phase ramp (:func:`remove_phase_ramp`, fitted beside
       any phase vortices), so that the sub-pixel shift acts on a spectrum
       centred in the frame.
    3. Shift by the remaining fraction of a pixel (Fourier); the support
       moves by the rounded shift. The small ramp left on the moved support
       is removed too.
    4. Take the twin when :func:`twin_statistic` says so (:func:`resolve_twin`).
    5. Set the mean phase on the support to zero (:func:`remove_phase_offset`).

    Parameters
    ----------
    obj : numpy.ndarray, complex, shape S (2D or 3D)
    support : numpy.ndarray, bool, shape S
        Support of the object; when None or empty, the pixels above 10% of the
        maximum amplitude.

    Returns
    -------
    obj : numpy.ndarray, complex (complex64 for complex64 input, else complex128), shape S
    support : numpy.ndarray, bool, shape S
    info : AlignInfo
        Shift (px), ramp (rad/px) and phase offset (rad) that were removed.
    """
    arr = np.asarray(obj)
    out_dtype = np.complex64 if arr.dtype in (np.complex64, np.float32) else np.complex128
    obj = _complex(arr)
    support = _default_support(obj, support)
    rolled = [int(round(v)) for v in centre_of_mass_shift(centring_weights(obj, support))]
    axes = tuple(range(obj.ndim))
    obj, support = np.roll(obj, rolled, axis=axes), np.roll(support, rolled, axis=axes)
    obj, ramp = remove_phase_ramp(obj, support)
    obj, support, fine = _centre(obj, support)
    shift = tuple(r + f for r, f in zip(rolled, fine))
    obj, residual = remove_phase_ramp(obj, support)  # the support moved by whole pixels only
    ramp = tuple(g + r for g, r in zip(ramp, residual))
    obj, support, twinned = resolve_twin(obj, support)
    obj, offset = remove_phase_offset(obj, support)
    info = AlignInfo(shift_px=tuple(float(s) for s in shift), ramp_rad_per_px=ramp, phase_offset_rad=offset,
                     twin=twinned)
    log.debug("aligned: %s", info)
    return obj.astype(out_dtype), support, info


def align_map(values: np.ndarray, info: AlignInfo) -> np.ndarray:
    """Move a real, non-negative per-voxel map of an object as :func:`align_object` moved the object.

    The geometric steps only: the shift ``info.shift_px`` (the whole-pixel
    roll and the sub-pixel Fourier shift together, which compose to one
    circular shift) and, when ``info.twin``, the flip ``r -> -r`` about the
    centre ``n // 2``. Phase ramps, offsets and the twin's conjugation leave
    a real magnitude map unchanged. The Fourier shift's ringing is clipped
    at zero, so the map stays non-negative.

    Parameters
    ----------
    values : numpy.ndarray, real, shape S
        A map in the frame of the unaligned object (e.g. a standard
        deviation of ``|obj|``, in its units).
    info : AlignInfo
        What :func:`align_object` did to the object.

    Returns
    -------
    numpy.ndarray, float32, shape S
        The map voxel by voxel beside the aligned object, in the same units.
    """
    values = np.asarray(values, dtype=np.float64)
    moved = subpixel_shift(values, info.shift_px) if info.shift_px else values
    if info.twin:
        moved = twin(moved).real
    return np.maximum(moved, 0.0).astype(np.float32)


def restart_object(obj: np.ndarray, support: np.ndarray, info: AlignInfo) -> np.ndarray:
    """An aligned object moved back so that it fits its measured pattern again on its aligned support.

    Two steps of :func:`align_object` change what the object predicts for the
    detector or where it sits on its support, and this undoes them: the
    phase ramp (removing it moves the pattern) is put back, and the sub-pixel
    shift, by which the object moved beside its support (which moved by whole
    pixels, rounded from a first estimate), is taken back: of the shifts that
    differ from ``-fraction`` by whole pixels (``+fraction`` after the twin's
    flip), the one that puts the most power on the support. The whole-pixel
    shift, the twin and the phase offset are symmetries of the intensity
    and stay.

    Parameters
    ----------
    obj : numpy.ndarray, complex, shape S
        An object as :func:`align_object` wrote it.
    support : numpy.ndarray, bool, shape S
        Its aligned support.
    info : AlignInfo
        What :func:`align_object` did to it.

    Returns
    -------
    numpy.ndarray, complex128, shape S
        On the aligned support's pixels, with the intensity of the unaligned object.
    """
    obj = np.asarray(obj).astype(np.complex128)
    if info.shift_px:
        sign = 1.0 if info.twin else -1.0  # the twin's flip turns the offset round
        fraction = [sign * (s - round(s)) for s in info.shift_px]
        tries = [subpixel_shift(obj, [f + k for f, k in zip(fraction, steps)])
                 for steps in itertools.product((0, -1, 1), repeat=obj.ndim)]
        obj = max(tries, key=lambda moved: float(np.sum(np.abs(moved[support]) ** 2)))
    return apply_ramp(obj, info.ramp_rad_per_px) if info.ramp_rad_per_px else obj


def crop_to_support(obj: np.ndarray, support: np.ndarray, margin_px: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Cut the bounding box of the support plus a margin out of the frame.

    Parameters
    ----------
    obj : numpy.ndarray, shape S
    support : numpy.ndarray, bool, shape S
    margin_px : int
        Pixels kept on every side of the support (clipped at the frame edges).

    Returns
    -------
    obj, support : numpy.ndarray
        The cropped arrays (views of the inputs).
    """
    obj = np.asarray(obj)
    support = np.asarray(support, dtype=bool)
    if support.shape != obj.shape:
        raise InvalidInputError(f"support shape {support.shape} does not match object shape {obj.shape}")
    if margin_px < 0:
        raise InvalidInputError(f"margin_px={margin_px}: must be >= 0")
    if not support.any():
        return obj, support
    box = []
    for axis in range(obj.ndim):
        hits = np.flatnonzero(support.any(axis=tuple(a for a in range(obj.ndim) if a != axis)))
        box.append(slice(max(int(hits[0]) - margin_px, 0), min(int(hits[-1]) + margin_px + 1, obj.shape[axis])))
    return obj[tuple(box)], support[tuple(box)]
