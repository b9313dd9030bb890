"""NumPy arrays on the centred grid: FFTs, linear phases, and the search for them.

Arrays are centred: the origin of every axis is at index ``n // 2``, so
positions are ``i - n // 2`` (pixels) and frequencies ``(k - n // 2) / n``
(cycles per pixel). The FFTs are unitary (``norm="ortho"``), the convention of
:class:`cdi_dip.physics.FarField`, here on the host in NumPy ``complex128``
(:mod:`cdi_dip.physics` holds the torch transforms; importing it would load
torch, which the comparison and the reports do not need).

A linear phase is the one freedom that both alignment (:mod:`.align`) and
registration (:mod:`.register`) estimate: a real-space phase ramp
``exp(i g . r)`` (:func:`apply_ramp`) or, on a spectrum, a shift
(:func:`shift_spectrum`). :func:`estimate_ramp` finds a ramp as the peak of the
upsampled DFT (:func:`refine_peak`) refined by weighted least squares on the
wrapped phase (:func:`fit_linear_phase`).

References
----------
M. Guizar-Sicairos, S. T. Thurman, J. R. Fienup, "Efficient subpixel image
registration algorithms", Opt. Lett. 33, 156 (2008) (upsampled DFT peak search).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

UPSAMPLE = 16
"""Sub-division of one pixel (or one frequency bin) in the upsampled peak search."""

LS_ROUNDS = 3
"""Rounds of weighted least-squares refinement of a phase ramp."""


def centred_positions(shape: Sequence[int]) -> list[np.ndarray]:
    """Pixel positions relative to the centre ``n // 2``, one 1D array per axis."""
    return [np.arange(n, dtype=np.float64) - n // 2 for n in shape]


def centred_frequencies(shape: Sequence[int]) -> list[np.ndarray]:
    """Frequencies (cycles per pixel) of a centred spectrum, one 1D array per axis."""
    return [(np.arange(n, dtype=np.float64) - n // 2) / n for n in shape]


def along_axis(axis_values: np.ndarray, axis: int, ndim: int) -> np.ndarray:
    shape = [1] * ndim
    shape[axis] = axis_values.size
    return axis_values.reshape(shape)


def separable_phasor(coords: Sequence[np.ndarray], rates: Sequence[float]) -> np.ndarray:
    """``exp(i sum_a rates_a * coords_a)`` as a product of broadcast 1D factors."""
    ndim = len(coords)
    phasor: np.ndarray = np.ones([1] * ndim, dtype=np.complex128)
    for axis, (coord, rate) in enumerate(zip(coords, rates)):
        phasor = phasor * along_axis(np.exp(1j * rate * coord), axis, ndim)
    return phasor


def apply_ramp(obj: np.ndarray, ramp_rad_per_px: Sequence[float]) -> np.ndarray:
    """``obj * exp(i g . (r - c))``."""
    return obj * separable_phasor(centred_positions(obj.shape), ramp_rad_per_px)


def shift_spectrum(spectrum: np.ndarray, shift: Sequence[float]) -> np.ndarray:
    """Centred spectrum of ``x(r - shift)`` from the centred spectrum of ``x``."""
    return spectrum * separable_phasor(centred_frequencies(spectrum.shape), [-2 * np.pi * s for s in shift])


def centred_fft(obj: np.ndarray) -> np.ndarray:
    axes = tuple(range(obj.ndim))
    return np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(obj, axes=axes), axes=axes, norm="ortho"), axes=axes)


def centred_ifft(field: np.ndarray) -> np.ndarray:
    axes = tuple(range(field.ndim))
    return np.fft.fftshift(np.fft.ifftn(np.fft.ifftshift(field, axes=axes), axes=axes, norm="ortho"), axes=axes)


def wrap_signed(index: np.ndarray | int, n: int) -> float:
    """Circular index ``0..n-1`` as a signed offset in ``[-n/2, n/2)``."""
    return float((int(index) + n // 2) % n - n // 2)


def _fourier_sums(values: np.ndarray, coords: Sequence[np.ndarray], queries: Sequence[np.ndarray]) -> np.ndarray:
    """``sum_r values(r) exp(2 pi i sum_a coords_a(r_a) q_a)`` on the grid of queries.

    Separable matrix products, one axis at a time (the "upsampled DFT").
    """
    out = values
    for axis, (coord, query) in enumerate(zip(coords, queries)):
        kernel = np.exp(2j * np.pi * np.outer(query, coord))
        out = np.moveaxis(np.tensordot(kernel, out, axes=([1], [axis])), 0, axis)
    return out


def refine_peak(values: np.ndarray, coords: Sequence[np.ndarray], start: Sequence[float],
                 step: Sequence[float], *, upsample: int = UPSAMPLE) -> tuple[float, ...]:
    """Maximise ``|_fourier_sums|`` on a grid ``start +- 1.5 step`` refined ``upsample`` times."""
    half = int(np.ceil(1.5 * upsample))
    offsets = np.arange(-half, half + 1) / upsample
    queries = [s + st * offsets for s, st in zip(start, step)]
    sums = np.abs(_fourier_sums(values, coords, queries))
    best = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return tuple(float(q[i]) for q, i in zip(queries, best))


def fit_linear_phase(values: np.ndarray, coords: Sequence[np.ndarray], weights: np.ndarray) -> tuple[float, ...]:
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


def estimate_ramp(product: np.ndarray, weights: np.ndarray) -> tuple[float, ...]:
    """Linear phase ramp ``g`` (rad/px) that best explains the phase of ``product``.

    The peak of ``|sum product * exp(-i g . r)|`` is found on the FFT grid,
    then on an upsampled grid, then refined by weighted least squares on the
    wrapped residual phase.
    """
    shape = product.shape
    coords = centred_positions(shape)
    # sum_r p(r) exp(-i g r) is largest where the spectrum of p peaks: an
    # off-centre Bragg peak is a linear ramp.
    spectrum = np.abs(np.fft.fftn(product))
    peak = np.unravel_index(int(np.argmax(spectrum)), shape)
    start = [-wrap_signed(k, n) / n for k, n in zip(peak, shape)]  # query q = -g / (2 pi)
    step = [1.0 / n for n in shape]
    query = refine_peak(product, coords, start, step)
    ramp = np.array([-2 * np.pi * q for q in query])
    for _ in range(LS_ROUNDS):
        residual = apply_ramp(product, -ramp)
        ramp = ramp + np.array(fit_linear_phase(residual, coords, weights))
    return tuple(float(g) for g in ramp)
