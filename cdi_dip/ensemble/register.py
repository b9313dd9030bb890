"""Registration of one object onto a reference, up to the trivial symmetries.

:func:`compare_objects` finds the twin, sub-pixel shift, linear phase ramp and
complex factor (global phase and scale) that bring an object closest to a
reference, and reports the remaining relative error;
:func:`symmetry_adjusted_error` is that error alone, and
:func:`pairwise_errors` the error of every member of a set against every other.

Everything here runs on the host in NumPy ``complex128``. Arrays are centred:
the origin of every axis is at index ``n // 2``.

References
----------
M. Guizar-Sicairos, S. T. Thurman, J. R. Fienup, "Efficient subpixel image
registration algorithms", Opt. Lett. 33, 156 (2008) (upsampled DFT peak search).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import InvalidInputError
from ..types import Comparison
from .align import pad_or_crop, twin
from .fourier import (
    along_axis,
    apply_ramp,
    centred_fft,
    centred_frequencies,
    centred_ifft,
    centred_positions,
    estimate_ramp,
    fit_linear_phase,
    refine_peak,
    separable_phasor,
    shift_spectrum,
    wrap_signed,
)

GN_STEPS = 10
"""Most Gauss-Newton steps in the final joint refinement of shift and ramp."""

GN_TOLERANCE = 1e-8
"""Gauss-Newton stops when the shift (px) and the ramp (rad at the frame edge) change less."""

PHASE_ERROR_LEVEL = 0.1
"""Reference amplitude (fraction of its maximum) above which the phase error is measured."""


def _complex(array: Any) -> np.ndarray:
    return np.asarray(array).astype(np.complex128, copy=False)


def _integer_shift(obj: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Whole-pixel shift maximising the circular cross-correlation of the amplitudes."""
    axes = tuple(range(obj.ndim))
    correlation = np.fft.ifftn(np.fft.fftn(np.abs(reference), axes=axes)
                               * np.conj(np.fft.fftn(np.abs(obj), axes=axes)), axes=axes).real
    peak = np.unravel_index(int(np.argmax(correlation)), correlation.shape)
    return np.array([wrap_signed(k, n) for k, n in zip(peak, obj.shape)])


def _search_shift(obj_spectrum: np.ndarray, reference: np.ndarray, ramp: np.ndarray,
                  shift: np.ndarray) -> np.ndarray:
    """Sub-pixel shift maximising ``|<exp(i g r) obj(r - s), ref>|`` near ``shift``.

    The ramp is moved onto the reference (``ref * exp(-i g r)``), so the
    overlap is ``sum_f Q(f) exp(-2 pi i f . s)`` over the cross-power spectrum
    ``Q = O conj(R_g)``: an upsampled-DFT peak search within +-1.5 px, then
    weighted least squares on the phase of ``Q``.
    """
    cross = obj_spectrum * np.conj(centred_fft(apply_ramp(reference, -ramp)))
    freqs = centred_frequencies(cross.shape)
    shift = -np.array(refine_peak(cross, freqs, [-s for s in shift], [1.0] * cross.ndim))
    residual = shift_spectrum(cross, shift)
    return shift + np.array(fit_linear_phase(residual, freqs, np.abs(residual))) / (2 * np.pi)


class _Transformed:
    """``T(x) = exp(i g . r) x(r - s)`` of one object, with its derivatives in ``s`` and ``g``."""

    def __init__(self, spectrum: np.ndarray, reference: np.ndarray, shift: np.ndarray, ramp: np.ndarray,
                 mask: np.ndarray | None = None):
        self.shift, self.ramp, self.mask = shift, ramp, mask
        shape = spectrum.shape
        ramp_phasor = separable_phasor(centred_positions(shape), ramp)
        moved = shift_spectrum(spectrum, shift)
        self.value = ramp_phasor * centred_ifft(moved)
        self.masked = self.value if mask is None else np.where(mask, self.value, 0)
        self.overlap = np.vdot(self.masked, reference)
        energy = np.vdot(self.masked, self.masked).real
        self.fit = abs(self.overlap) / np.sqrt(energy) if energy > 0 else 0.0
        self._spectrum, self._ramp_phasor = moved, ramp_phasor

    def shift_derivatives(self) -> list[np.ndarray]:
        """``dT/ds_a = -exp(i g r) d_a x(r - s)``, one array per axis."""
        ndim = self.value.ndim
        out = []
        for axis, freq in enumerate(centred_frequencies(self.value.shape)):
            gradient = centred_ifft(self._spectrum * along_axis(2j * np.pi * freq, axis, ndim))
            derivative = -self._ramp_phasor * gradient
            out.append(derivative if self.mask is None else np.where(self.mask, derivative, 0))
        return out


def _gauss_newton_step(current: _Transformed, reference: np.ndarray,
                       fit_ramp: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares update ``(ds, dg)`` of ``||a T - ref||`` linearised around ``T``.

    ``a`` is the current best complex factor; the columns of the Jacobian are
    ``i r_a T`` (ramp, only when ``fit_ramp``; else ``dg`` is zero) and
    ``dT/ds_a`` (shift).
    """
    value = current.masked
    energy = np.vdot(value, value).real
    factor = current.overlap / energy
    residual = reference - factor * value
    ndim = value.ndim
    positions = [along_axis(p, a, ndim) for a, p in enumerate(centred_positions(value.shape))]
    columns = [factor * d for d in current.shift_derivatives()]
    if fit_ramp:
        columns += [1j * factor * p * value for p in positions]
    size = len(columns)
    normal = np.empty((size, size))
    rhs = np.empty(size)
    for i in range(size):
        rhs[i] = np.vdot(columns[i], residual).real
        for j in range(i, size):
            normal[i, j] = normal[j, i] = np.vdot(columns[i], columns[j]).real
    step = np.linalg.lstsq(normal, rhs, rcond=None)[0]
    return step[:ndim], (step[ndim:] if fit_ramp else np.zeros(ndim))


def _register(obj: np.ndarray, reference: np.ndarray, mask: np.ndarray | None = None,
              fit_ramp: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shift ``s`` and ramp ``g`` maximising ``|<exp(i g r) obj(r - s), ref>|``.

    Integer shift from the cross-correlation of the amplitudes; ramp from the
    peak of the spectrum of ``obj(r - s) conj(ref)`` (held at zero unless
    ``fit_ramp``); sub-pixel shift from the upsampled cross-power spectrum;
    then Gauss-Newton steps on the complex least-squares error (on ``mask``
    when given), kept while they increase the normalised overlap.

    Returns the transformed object (unscaled), the shift (px) and the ramp
    (rad/px).
    """
    spectrum = centred_fft(obj)
    shift = _integer_shift(obj, reference)
    product = centred_ifft(shift_spectrum(spectrum, shift)) * np.conj(reference)
    # The product carries the ramp of the object relative to the reference;
    # the ramp to apply to the object is its opposite.
    ramp = -np.array(estimate_ramp(product, np.abs(product))) if fit_ramp else np.zeros(obj.ndim)
    shift = _search_shift(spectrum, reference, ramp, shift)
    current = _Transformed(spectrum, reference, shift, ramp, mask)
    ramp_scale = max(obj.shape) / 2  # rad/px -> rad at the frame edge
    for _ in range(GN_STEPS):
        d_shift, d_ramp = _gauss_newton_step(current, reference, fit_ramp)
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
                    support: np.ndarray | None = None, ramp: bool = True) -> Comparison:
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
    ramp : bool
        Fit the phase ramp ``g`` (default). With False, ``g`` stays zero: the
        error of the object as it is, up to global phase, scale, shift and
        twin (a residual ramp in ``obj`` then shows in the error).

    Returns
    -------
    Comparison
        ``error``: ``||a T(x) - ref|| / ||ref||`` (0 identical up to the
        symmetries, 1 nothing in common); ``twin`` (bool); ``shift_px``,
        ``ramp_rad_per_px`` (tuples, applied to the object); ``phase_rad``
        and ``scale`` (``a = scale * exp(i phase)``); ``phase_error_rad``:
        amplitude-weighted RMS phase difference where the reference amplitude
        exceeds 10% of its maximum. A zero object gives error 1, scale 0 and
        a NaN phase error.

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
        return Comparison(error=1.0, twin=False, shift_px=(0.0,) * x.ndim, ramp_rad_per_px=(0.0,) * x.ndim,
                          phase_rad=0.0, scale=0.0, phase_error_rad=float("nan"))
    best: Comparison | None = None
    for is_twin, candidate in ((False, x), (True, twin(x))):
        moved, shift, ramp_found = _register(candidate, ref, None if support is None else mask, ramp)
        moved = np.where(mask, moved, 0)
        energy = np.vdot(moved, moved).real
        factor = np.vdot(moved, ref) / energy if energy > 0 else 0.0
        error = float(np.linalg.norm(factor * moved - ref) / ref_norm)
        if best is None or error < best.error:
            best = Comparison(error=error, twin=is_twin,
                              shift_px=tuple(float(s) for s in shift),
                              ramp_rad_per_px=tuple(float(g) for g in ramp_found),
                              phase_rad=float(np.angle(factor)), scale=float(abs(factor)),
                              phase_error_rad=_phase_error(factor * moved, ref))
    return best


def symmetry_adjusted_error(obj: np.ndarray, reference: np.ndarray, *,
                            support: np.ndarray | None = None) -> float:
    """Relative L2 error after removing phase, scale, shift, twin and ramp.

    Parameters
    ----------
    obj, reference : numpy.ndarray, complex, 2D or 3D, centred
    support : numpy.ndarray, bool, shape of ``reference``, optional
        As for :func:`compare_objects`.

    Returns
    -------
    float
        ``||a T(x) - ref|| / ||ref||``, dimensionless: :attr:`Comparison.error`
        of :func:`compare_objects`.
    """
    return compare_objects(obj, reference, support=support).error


def pairwise_errors(objects: Sequence[np.ndarray] | np.ndarray, *, ramp: bool = True) -> np.ndarray:
    """Symmetry-adjusted error of every member against every other.

    Parameters
    ----------
    objects : sequence of numpy.ndarray, complex, 2D or 3D
        At least two objects of one dimensionality; shapes may differ (each
        pair is compared in the frame of the larger size per axis).
    ramp : bool
        Fit a phase ramp (default), as in :func:`compare_objects`.

    Returns
    -------
    numpy.ndarray, float64, shape (K, K)
        ``[i, j]`` = :func:`symmetry_adjusted_error` of member
        ``i`` with member ``j`` as the reference (not symmetric: the error is
        relative to the reference's norm); 0 on the diagonal.

    Raises
    ------
    InvalidInputError
        Fewer than two objects, or objects that :func:`compare_objects` refuses.
    """
    arrays = [np.asarray(o) for o in objects]
    if len(arrays) < 2:
        raise InvalidInputError(f"{len(arrays)} object(s) given: pairwise errors need at least two")
    count = len(arrays)
    errors = np.zeros((count, count))
    for i in range(count):
        for j in range(count):
            if i != j:
                errors[i, j] = compare_objects(arrays[i], arrays[j], ramp=ramp).error
    return errors
