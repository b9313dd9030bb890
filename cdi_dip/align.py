"""Alignment of reconstructed objects and comparison up to the trivial symmetries.

A far-field measurement ``Y = |F(X)|**2`` does not change when the object
``X`` is multiplied by a constant phase, shifted (circularly, in the frame), or
replaced by its twin ``conj(X(-r))``; a Bragg peak that was off the frame
centre leaves a linear phase ramp in ``X``. This module removes these freedoms:

- :func:`align_object` puts one object in a standard form (centre of mass at
  the frame centre, no linear phase ramp, zero mean phase on the support);
- :func:`compare_objects` / :func:`symmetry_adjusted_error` register one object
  onto a reference (global phase and scale, sub-pixel shift, twin, phase ramp)
  and report the remaining relative error.

Everything here runs on the host in NumPy ``complex128``. Arrays are centred:
the origin of every axis is at index ``n // 2``, so positions are ``i - n // 2``
and frequencies ``(k - n // 2) / n`` cycles per pixel.

References
----------
M. Guizar-Sicairos, S. T. Thurman, J. R. Fienup, "Efficient subpixel image
registration algorithms", Opt. Lett. 33, 156 (2008) (upsampled DFT peak search).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import InvalidInputError
from .types import AlignInfo

log = logging.getLogger(__name__)

UPSAMPLE = 16
"""Sub-division of one pixel (or one frequency bin) in the upsampled peak search."""

LS_ROUNDS = 3
"""Rounds of weighted least-squares refinement of a phase ramp."""

GN_STEPS = 10
"""Most Gauss-Newton steps in the final joint refinement of shift and ramp."""

GN_TOLERANCE = 1e-8
"""Gauss-Newton stops when the shift (px) and the ramp (rad at the frame edge) change less."""

CENTRE_ROUNDS = 4
"""Most centre-of-mass corrections after the first sub-pixel shift in :func:`align_object`."""

CENTRE_TOLERANCE_PX = 1e-3
"""Centre-of-mass error (px) below which :func:`align_object` stops correcting."""

TWIN_SKEW_LEVEL = 0.05
"""Dimensionless third moment of the amplitude below which the twin is chosen by the phase instead."""

PHASE_ERROR_LEVEL = 0.1
"""Reference amplitude (fraction of its maximum) above which the phase error is measured."""


# -- small array helpers -------------------------------------------------------
def _complex(array: Any) -> np.ndarray:
    return np.asarray(array).astype(np.complex128, copy=False)


def _positions(shape: Sequence[int]) -> list[np.ndarray]:
    """Pixel positions relative to the centre ``n // 2``, one 1D array per axis."""
    return [np.arange(n, dtype=np.float64) - n // 2 for n in shape]


def _frequencies(shape: Sequence[int]) -> list[np.ndarray]:
    """Frequencies (cycles per pixel) of a centred spectrum, one 1D array per axis."""
    return [(np.arange(n, dtype=np.float64) - n // 2) / n for n in shape]


def _broadcast(axis_values: np.ndarray, axis: int, ndim: int) -> np.ndarray:
    shape = [1] * ndim
    shape[axis] = axis_values.size
    return axis_values.reshape(shape)


def _separable_phasor(coords: Sequence[np.ndarray], rates: Sequence[float]) -> np.ndarray:
    """``exp(i sum_a rates_a * coords_a)`` as a product of broadcast 1D factors."""
    ndim = len(coords)
    phasor: np.ndarray = np.ones([1] * ndim, dtype=np.complex128)
    for axis, (coord, rate) in enumerate(zip(coords, rates)):
        phasor = phasor * _broadcast(np.exp(1j * rate * coord), axis, ndim)
    return phasor


def _apply_ramp(obj: np.ndarray, ramp_rad_per_px: Sequence[float]) -> np.ndarray:
    """``obj * exp(i g . (r - c))``."""
    return obj * _separable_phasor(_positions(obj.shape), ramp_rad_per_px)


def _shift_spectrum(spectrum: np.ndarray, shift: Sequence[float]) -> np.ndarray:
    """Centred spectrum of ``x(r - shift)`` from the centred spectrum of ``x``."""
    return spectrum * _separable_phasor(_frequencies(spectrum.shape), [-2 * np.pi * s for s in shift])


def _centred_fft(obj: np.ndarray) -> np.ndarray:
    axes = tuple(range(obj.ndim))
    return np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(obj, axes=axes), axes=axes, norm="ortho"), axes=axes)


def _centred_ifft(field: np.ndarray) -> np.ndarray:
    axes = tuple(range(field.ndim))
    return np.fft.fftshift(np.fft.ifftn(np.fft.ifftshift(field, axes=axes), axes=axes, norm="ortho"), axes=axes)


def _wrap_signed(index: np.ndarray | int, n: int) -> float:
    """Circular index ``0..n-1`` as a signed offset in ``[-n/2, n/2)``."""
    return float((int(index) + n // 2) % n - n // 2)


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


# -- twin, shift, centre of mass -----------------------------------------------
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
    phasor = _separable_phasor([np.fft.fftfreq(n) for n in obj.shape], [-2 * np.pi * s for s in shift])
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


# -- linear phase fits -----------------------------------------------------------
def _fourier_sums(values: np.ndarray, coords: Sequence[np.ndarray], queries: Sequence[np.ndarray]) -> np.ndarray:
    """``sum_r values(r) exp(2 pi i sum_a coords_a(r_a) q_a)`` on the grid of queries.

    Separable matrix products, one axis at a time (the "upsampled DFT").
    """
    out = values
    for axis, (coord, query) in enumerate(zip(coords, queries)):
        kernel = np.exp(2j * np.pi * np.outer(query, coord))
        out = np.moveaxis(np.tensordot(kernel, out, axes=([1], [axis])), 0, axis)
    return out


def _refine_peak(values: np.ndarray, coords: Sequence[np.ndarray], start: Sequence[float],
                 step: Sequence[float], *, upsample: int = UPSAMPLE) -> tuple[float, ...]:
    """Maximise ``|_fourier_sums|`` on a grid ``start +- 1.5 step`` refined ``upsample`` times."""
    half = int(np.ceil(1.5 * upsample))
    offsets = np.arange(-half, half + 1) / upsample
    queries = [s + st * offsets for s, st in zip(start, step)]
    sums = np.abs(_fourier_sums(values, coords, queries))
    best = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return tuple(float(q[i]) for q, i in zip(queries, best))


def _fit_linear_phase(values: np.ndarray, coords: Sequence[np.ndarray], weights: np.ndarray) -> tuple[float, ...]:
    """Weighted least-squares slopes of the (wrapped) phase of ``values``.

    The phase is wrapped around its weighted circular mean, then fitted with
    ``c + sum_a slope_a * coords_a``. The normal equations are built from
    marginal sums (the coordinates are separable), so the cost is a few passes
    over the array. Returns the slopes (radians per unit of the coordinates),
    zero where the weights do not constrain them.
    """
    ndim = values.ndim
    w = np.where(np.abs(values) > 0, np.asarray(weights, dtype=np.float64), 0.0)
    if np.count_nonzero(w) <= ndim:
        return (0.0,) * ndim
    mean = np.sum(w * values / np.maximum(np.abs(values), 1e-300))
    phase = np.angle(values * np.exp(-1j * np.angle(mean)))
    wp = w * phase
    axes = tuple(range(ndim))

    def marginal(array: np.ndarray, keep: tuple[int, ...]) -> np.ndarray:
        return array.sum(axis=tuple(a for a in axes if a not in keep))

    normal = np.zeros((ndim + 1, ndim + 1))
    rhs = np.zeros(ndim + 1)
    normal[0, 0], rhs[0] = w.sum(), wp.sum()
    for i in axes:
        w_i = marginal(w, (i,))
        normal[0, i + 1] = normal[i + 1, 0] = np.dot(coords[i], w_i)
        normal[i + 1, i + 1] = np.dot(coords[i] ** 2, w_i)
        rhs[i + 1] = np.dot(coords[i], marginal(wp, (i,)))
        for j in axes[i + 1:]:
            normal[i + 1, j + 1] = normal[j + 1, i + 1] = coords[i] @ marginal(w, (i, j)) @ coords[j]
    solution = np.linalg.lstsq(normal, rhs, rcond=None)[0]
    return tuple(float(s) for s in solution[1:])


def _estimate_ramp(product: np.ndarray, weights: np.ndarray) -> tuple[float, ...]:
    """Linear phase ramp ``g`` (rad/px) that best explains the phase of ``product``.

    The peak of ``|sum product * exp(-i g . r)|`` is found on the FFT grid,
    then on an upsampled grid, then refined by weighted least squares on the
    wrapped residual phase.
    """
    shape = product.shape
    coords = _positions(shape)
    # sum_r p(r) exp(-i g r) is largest where the spectrum of p peaks: an
    # off-centre Bragg peak is a linear ramp.
    spectrum = np.abs(np.fft.fftn(product))
    peak = np.unravel_index(int(np.argmax(spectrum)), shape)
    start = [-_wrap_signed(k, n) / n for k, n in zip(peak, shape)]  # query q = -g / (2 pi)
    step = [1.0 / n for n in shape]
    query = _refine_peak(product, coords, start, step)
    ramp = np.array([-2 * np.pi * q for q in query])
    for _ in range(LS_ROUNDS):
        residual = _apply_ramp(product, -ramp)
        ramp = ramp + np.array(_fit_linear_phase(residual, coords, weights))
    return tuple(float(g) for g in ramp)


def remove_phase_ramp(obj: np.ndarray, support: np.ndarray,
                      weights: np.ndarray | None = None) -> tuple[np.ndarray, tuple[float, ...]]:
    """Remove the linear phase ramp of an object on its support.

    The ramp is first located as the peak of the (upsampled) Fourier transform
    of the object on the support, which is insensitive to phase wrapping, then
    refined by amplitude-weighted least squares on the wrapped residual phase.

    Parameters
    ----------
    obj : numpy.ndarray, complex, shape S (2D or 3D), centred
    support : numpy.ndarray, bool, shape S
        Where the object is.
    weights : numpy.ndarray, real, shape S, optional
        Fit weights; default the amplitude ``|obj|`` on the support.

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
        weights = np.abs(obj)
    weights = np.where(support, np.asarray(weights, dtype=np.float64), 0.0)
    if not np.any(weights > 0):
        return obj.copy(), (0.0,) * obj.ndim
    ramp = _estimate_ramp(obj * weights / np.maximum(np.abs(obj), 1e-300), weights)
    return _apply_ramp(obj, [-g for g in ramp]), ramp


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
    return amplitude >= PHASE_ERROR_LEVEL * peak


def centring_weights(obj: np.ndarray, support: np.ndarray) -> np.ndarray:
    """``|x|**2`` on the support grown by two pixels: smooth at the support's edge, so the
    centre of mass follows a sub-pixel shift of the object (a hard-edged ``|x|`` on the
    support does not)."""
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
    dimensionless, is odd under ``r -> -r``. For an object whose amplitude is
    nearly centrosymmetric (a small third moment, below
    :data:`TWIN_SKEW_LEVEL`), the amplitude-weighted phase curvature
    ``sum |x| phi |r|**2 / sum |x| |r|**2`` takes over: the twin's phase is
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
    weights = np.where(support, np.abs(obj), 0.0)
    total = weights.sum()
    if total <= 0:
        return 0.0
    coords = _positions(obj.shape)
    skew = 0.0
    radius2 = np.zeros(obj.shape)
    for axis, coord in enumerate(coords):
        values = _broadcast(coord, axis, obj.ndim)
        mean = float((weights * values).sum() / total)
        spread = float(np.sqrt((weights * (values - mean) ** 2).sum() / total)) or 1.0
        skew += float((weights * ((values - mean) / spread) ** 3).sum() / total)
        radius2 = radius2 + (values - mean) ** 2
    if abs(skew) >= TWIN_SKEW_LEVEL:
        return skew
    phase = np.angle(obj)
    return float((weights * phase * radius2).sum() / max((weights * radius2).sum(), 1e-300))


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
    2. Remove the linear phase ramp (:func:`remove_phase_ramp`), so that the
       sub-pixel shift acts on a spectrum centred in the frame.
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


# -- comparison --------------------------------------------------------------------
def _integer_shift(obj: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Whole-pixel shift maximising the circular cross-correlation of the amplitudes."""
    axes = tuple(range(obj.ndim))
    correlation = np.fft.ifftn(np.fft.fftn(np.abs(reference), axes=axes)
                               * np.conj(np.fft.fftn(np.abs(obj), axes=axes)), axes=axes).real
    peak = np.unravel_index(int(np.argmax(correlation)), correlation.shape)
    return np.array([_wrap_signed(k, n) for k, n in zip(peak, obj.shape)])


def _search_shift(obj_spectrum: np.ndarray, reference: np.ndarray, ramp: np.ndarray,
                  shift: np.ndarray) -> np.ndarray:
    """Sub-pixel shift maximising ``|<exp(i g r) obj(r - s), ref>|`` near ``shift``.

    The ramp is moved onto the reference (``ref * exp(-i g r)``), so the
    overlap is ``sum_f Q(f) exp(-2 pi i f . s)`` over the cross-power spectrum
    ``Q = O conj(R_g)``: an upsampled-DFT peak search within +-1.5 px, then
    weighted least squares on the phase of ``Q``.
    """
    cross = obj_spectrum * np.conj(_centred_fft(_apply_ramp(reference, -ramp)))
    freqs = _frequencies(cross.shape)
    shift = -np.array(_refine_peak(cross, freqs, [-s for s in shift], [1.0] * cross.ndim))
    residual = _shift_spectrum(cross, shift)
    return shift + np.array(_fit_linear_phase(residual, freqs, np.abs(residual))) / (2 * np.pi)


class _Transformed:
    """``T(x) = exp(i g . r) x(r - s)`` of one object, with its derivatives in ``s`` and ``g``."""

    def __init__(self, spectrum: np.ndarray, reference: np.ndarray, shift: np.ndarray, ramp: np.ndarray,
                 mask: np.ndarray | None = None):
        self.shift, self.ramp, self.mask = shift, ramp, mask
        shape = spectrum.shape
        ramp_phasor = _separable_phasor(_positions(shape), ramp)
        moved = _shift_spectrum(spectrum, shift)
        self.value = ramp_phasor * _centred_ifft(moved)
        self.masked = self.value if mask is None else np.where(mask, self.value, 0)
        self.overlap = np.vdot(self.masked, reference)
        energy = np.vdot(self.masked, self.masked).real
        self.fit = abs(self.overlap) / np.sqrt(energy) if energy > 0 else 0.0
        self._spectrum, self._ramp_phasor = moved, ramp_phasor

    def shift_derivatives(self) -> list[np.ndarray]:
        """``dT/ds_a = -exp(i g r) d_a x(r - s)``, one array per axis."""
        ndim = self.value.ndim
        out = []
        for axis, freq in enumerate(_frequencies(self.value.shape)):
            gradient = _centred_ifft(self._spectrum * _broadcast(2j * np.pi * freq, axis, ndim))
            derivative = -self._ramp_phasor * gradient
            out.append(derivative if self.mask is None else np.where(self.mask, derivative, 0))
        return out


def _gauss_newton_step(current: _Transformed, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares update ``(ds, dg)`` of ``||a T - ref||`` linearised around ``T``.

    ``a`` is the current best complex factor; the columns of the Jacobian are
    ``i r_a T`` (ramp) and ``dT/ds_a`` (shift).
    """
    value = current.masked
    energy = np.vdot(value, value).real
    factor = current.overlap / energy
    residual = reference - factor * value
    ndim = value.ndim
    positions = [_broadcast(p, a, ndim) for a, p in enumerate(_positions(value.shape))]
    columns = [factor * d for d in current.shift_derivatives()] + [1j * factor * p * value for p in positions]
    size = len(columns)
    normal = np.empty((size, size))
    rhs = np.empty(size)
    for i in range(size):
        rhs[i] = np.vdot(columns[i], residual).real
        for j in range(i, size):
            normal[i, j] = normal[j, i] = np.vdot(columns[i], columns[j]).real
    step = np.linalg.lstsq(normal, rhs, rcond=None)[0]
    return step[:ndim], step[ndim:]


def _register(obj: np.ndarray, reference: np.ndarray,
              mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shift ``s`` and ramp ``g`` maximising ``|<exp(i g r) obj(r - s), ref>|``.

    Integer shift from the cross-correlation of the amplitudes; ramp from the
    peak of the spectrum of ``obj(r - s) conj(ref)``; sub-pixel shift from the
    upsampled cross-power spectrum; then Gauss-Newton steps on the complex
    least-squares error (on ``mask`` when given), kept while they increase the
    normalised overlap.

    Returns the transformed object (unscaled), the shift (px) and the ramp
    (rad/px).
    """
    spectrum = _centred_fft(obj)
    shift = _integer_shift(obj, reference)
    product = _centred_ifft(_shift_spectrum(spectrum, shift)) * np.conj(reference)
    # The product carries the ramp of the object relative to the reference;
    # the ramp to apply to the object is its opposite.
    ramp = -np.array(_estimate_ramp(product, np.abs(product)))
    shift = _search_shift(spectrum, reference, ramp, shift)
    current = _Transformed(spectrum, reference, shift, ramp, mask)
    ramp_scale = max(obj.shape) / 2  # rad/px -> rad at the frame edge
    for _ in range(GN_STEPS):
        d_shift, d_ramp = _gauss_newton_step(current, reference)
        if not (np.all(np.isfinite(d_shift)) and np.all(np.isfinite(d_ramp))):
            break
        trial = _Transformed(spectrum, reference, current.shift + d_shift, current.ramp + d_ramp, mask)
        if trial.fit < current.fit:
            break
        current = trial
        if max(np.abs(d_shift).max(), np.abs(d_ramp).max() * ramp_scale) < GN_TOLERANCE:
            break
    return current.value, current.shift, current.ramp


def _phase_error(fitted: np.ndarray, reference: np.ndarray) -> float:
    """Amplitude-weighted RMS phase difference where ``|ref|`` > 10% of its max."""
    amplitude = np.abs(reference)
    keep = amplitude > PHASE_ERROR_LEVEL * amplitude.max()
    difference = np.angle(fitted[keep] * np.conj(reference[keep]))
    w = amplitude[keep]
    return float(np.sqrt(np.sum(w * difference**2) / np.sum(w)))


def compare_objects(obj: np.ndarray, reference: np.ndarray, *,
                    support: np.ndarray | None = None) -> dict[str, Any]:
    """Compare an object with a reference up to the trivial symmetries.

    The object ``x`` is transformed as ``T(x) = exp(i g . r) * x'(r - s)`` with
    ``x'`` either ``x`` or its twin ``conj(x(-r))``; the sub-pixel shift ``s``
    and the ramp ``g`` maximise the overlap with the reference (integer
    shift from the cross-correlation of the amplitudes, then upsampled-DFT
    peak searches and weighted least-squares phase fits), and a complex
    factor ``a`` (global phase and scale) is fitted by least squares. Both
    twins are tried and the better kept.

    Parameters
    ----------
    obj : numpy.ndarray, complex, 2D or 3D
        The object to judge (e.g. a reconstruction), centred.
    reference : numpy.ndarray, complex, same number of dimensions
        The reference (e.g. the ground truth), centred. The two may differ in
        shape: both are centre-padded with zeros to the larger size per axis.
    support : numpy.ndarray, bool, shape of ``reference``, optional
        When given, the error and the factor ``a`` are computed on these
        pixels of the reference frame only.

    Returns
    -------
    dict
        ``error``: ``||a T(x) - ref|| / ||ref||`` (0 identical up to the
        symmetries, 1 nothing in common); ``twin`` (bool); ``shift_px``,
        ``ramp_rad_per_px`` (tuples, applied to the object); ``phase_rad``
        and ``scale`` (``a = scale * exp(i phase)``); ``phase_error_rad``:
        amplitude-weighted RMS phase difference where the reference amplitude
        exceeds 10% of its maximum.

    Raises
    ------
    InvalidInputError
        The dimensions differ, are not 2 or 3, or the reference is zero.
    """
    x = _complex(obj)
    ref = _complex(reference)
    if x.ndim != ref.ndim or x.ndim not in (2, 3):
        raise InvalidInputError(f"cannot compare a {x.ndim}D object of shape {x.shape} with a {ref.ndim}D "
                                f"reference of shape {ref.shape}: give two 2D or two 3D objects")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(ref))):
        raise InvalidInputError("the object or the reference holds NaN or Inf values: compare finite arrays")
    mask = None
    if support is not None:
        mask = np.asarray(support, dtype=bool)
        if mask.shape != ref.shape:
            raise InvalidInputError(f"support shape {mask.shape} does not match reference shape {ref.shape}")
    shape = tuple(max(a, b) for a, b in zip(x.shape, ref.shape))
    x, ref = pad_or_crop(x, shape), pad_or_crop(ref, shape)
    mask = np.ones(shape, dtype=bool) if mask is None else pad_or_crop(mask, shape)
    ref = np.where(mask, ref, 0)
    ref_norm = np.linalg.norm(ref)
    if ref_norm == 0:
        raise InvalidInputError("the reference is zero everywhere (on the support): nothing to compare with")
    if not np.any(x):
        return {"error": 1.0, "twin": False, "shift_px": (0.0,) * x.ndim, "ramp_rad_per_px": (0.0,) * x.ndim,
                "phase_rad": 0.0, "scale": 0.0, "phase_error_rad": float("nan")}
    best: dict[str, Any] | None = None
    for is_twin, candidate in ((False, x), (True, twin(x))):
        moved, shift, ramp = _register(candidate, ref, None if support is None else mask)
        moved = np.where(mask, moved, 0)
        energy = np.vdot(moved, moved).real
        factor = np.vdot(moved, ref) / energy if energy > 0 else 0.0
        error = float(np.linalg.norm(factor * moved - ref) / ref_norm)
        if best is None or error < best["error"]:
            best = {"error": error, "twin": is_twin,
                    "shift_px": tuple(float(s) for s in shift),
                    "ramp_rad_per_px": tuple(float(g) for g in ramp),
                    "phase_rad": float(np.angle(factor)), "scale": float(abs(factor)),
                    "phase_error_rad": _phase_error(factor * moved, ref)}
    return best


def symmetry_adjusted_error(obj: np.ndarray, reference: np.ndarray, *,
                            support: np.ndarray | None = None) -> float:
    """Relative L2 error after removing phase, scale, shift, twin and ramp.

    See :func:`compare_objects`, whose ``"error"`` this returns.
    """
    return compare_objects(obj, reference, support=support)["error"]
