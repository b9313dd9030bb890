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
    """Pixel positions relative to the centre ``n // 2``, one 1D array per axis.

    Parameters
    ----------
    shape : sequence of int
        Frame shape S.

    Returns
    -------
    list of numpy.ndarray, float64
        Axis ``a``: shape ``(S[a],)``, ``i - S[a] // 2`` in pixels.
    """
    return [np.arange(n, dtype=np.float64) - n // 2 for n in shape]


def centred_frequencies(shape: Sequence[int]) -> list[np.ndarray]:
    """Frequencies of a centred spectrum of shape ``shape``: :func:`centred_positions` over ``n``.

    Axis ``a`` gets a float64 array of shape ``(S[a],)``,
    ``(k - S[a] // 2) / S[a]`` in cycles per pixel (the zero frequency at index
    ``S[a] // 2``).
    """
    return [(np.arange(n, dtype=np.float64) - n // 2) / n for n in shape]


def along_axis(axis_values: np.ndarray, axis: int, ndim: int) -> np.ndarray:
    """A 1D array reshaped to lie along one axis of an ``ndim``-D array, for broadcasting.

    Parameters
    ----------
    axis_values : numpy.ndarray, shape (n,)
    axis : int
        The axis it lies along, ``0 <= axis < ndim``.
    ndim : int

    Returns
    -------
    numpy.ndarray
        A view of shape ``(1, ..., n, ..., 1)`` (``n`` at ``axis``).
    """
    shape = [1] * ndim
    shape[axis] = axis_values.size
    return axis_values.reshape(shape)


def separable_phasor(coords: Sequence[np.ndarray], rates: Sequence[float]) -> np.ndarray:
    """``exp(i sum_a rates_a * coords_a)`` as a product of broadcast 1D factors.

    Parameters
    ----------
    coords : sequence of numpy.ndarray, one 1D array per axis
        Coordinates along each axis (e.g. :func:`centred_positions`, pixels).
    rates : sequence of float, one per axis
        Phase per unit of the coordinates (e.g. rad/px).

    Returns
    -------
    numpy.ndarray, complex128
        Broadcastable to the frame: shape ``(len(coords[0]), ..., len(coords[-1]))``
        (a product of per-axis factors, never a full grid per axis).
    """
    ndim = len(coords)
    phasor: np.ndarray = np.ones([1] * ndim, dtype=np.complex128)
    for axis, (coord, rate) in enumerate(zip(coords, rates)):
        phasor = phasor * along_axis(np.exp(1j * rate * coord), axis, ndim)
    return phasor


def apply_ramp(obj: np.ndarray, ramp_rad_per_px: Sequence[float]) -> np.ndarray:
    """Multiply by a linear phase ramp: ``obj * exp(i g . (r - c))``, ``c`` the centre ``n // 2``.

    Parameters
    ----------
    obj : numpy.ndarray, real or complex, shape S (centred)
    ramp_rad_per_px : sequence of float, one per axis
        The ramp ``g``, radians per pixel.

    Returns
    -------
    numpy.ndarray, complex128, shape S
        The phase at the centre is unchanged; ``apply_ramp(x, -g)`` removes ``g``.
    """
    return obj * separable_phasor(centred_positions(obj.shape), ramp_rad_per_px)


def shift_spectrum(spectrum: np.ndarray, shift: Sequence[float]) -> np.ndarray:
    """Centred spectrum of ``x(r - shift)`` from the centred spectrum of ``x``.

    Parameters
    ----------
    spectrum : numpy.ndarray, complex, shape S
        Centred spectrum (:func:`centred_fft`) of ``x``.
    shift : sequence of float, one per axis
        Shift in pixels (positive moves ``x`` to higher indices).

    Returns
    -------
    numpy.ndarray, complex128, shape S
        ``spectrum * exp(-2 pi i f . shift)``, ``f`` in cycles per pixel.
    """
    return spectrum * separable_phasor(centred_frequencies(spectrum.shape), [-2 * np.pi * s for s in shift])


def centred_fft(obj: np.ndarray) -> np.ndarray:
    """Unitary FFT of a centred array to a centred spectrum (NumPy).

    The convention of :meth:`cdi_dip.physics.FarField.forward`: origin and
    zero frequency at index ``n // 2`` of every axis, ``norm="ortho"``.

    Parameters
    ----------
    obj : numpy.ndarray, real or complex, shape S (any number of axes, all transformed)

    Returns
    -------
    numpy.ndarray, complex, shape S
    """
    axes = tuple(range(obj.ndim))
    return np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(obj, axes=axes), axes=axes, norm="ortho"), axes=axes)


def centred_ifft(field: np.ndarray) -> np.ndarray:
    """Inverse of :func:`centred_fft`: centred spectrum to centred array (unitary).

    Parameters
    ----------
    field : numpy.ndarray, complex, shape S
        A centred spectrum (zero frequency at index ``n // 2``).

    Returns
    -------
    numpy.ndarray, complex, shape S
        The centred array whose :func:`centred_fft` is ``field``.
    """
    axes = tuple(range(field.ndim))
    return np.fft.fftshift(np.fft.ifftn(np.fft.ifftshift(field, axes=axes), axes=axes, norm="ortho"), axes=axes)


def wrap_signed(index: np.ndarray | int, n: int) -> float:
    """Circular index ``0..n-1`` as a signed offset in ``[-n/2, n/2)``.

    Parameters
    ----------
    index : int
        Index into an axis of length ``n`` (FFT order).
    n : int

    Returns
    -------
    float
        The offset, in pixels (or frequency bins).
    """
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
    """Peak of ``|sum_r values(r) exp(2 pi i sum_a coords_a q_a)|`` near ``start`` (upsampled DFT).

    The sums are evaluated on the grid ``start +- 1.5 step`` with ``upsample``
    points per ``step`` on every axis, by separable matrix products.

    Parameters
    ----------
    values : numpy.ndarray, complex, shape S
    coords : sequence of numpy.ndarray, one 1D array per axis
        Coordinates of the samples (pixels, or cycles per pixel for a spectrum).
    start : sequence of float, one per axis
        Centre of the search, in inverse units of ``coords``.
    step : sequence of float, one per axis
        Grid step of the coarse search (e.g. ``1 / n``).
    upsample : int
        Points per ``step``.

    Returns
    -------
    tuple of float
        The query ``q`` of the largest magnitude, one per axis (a grid point).
    """
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
    over the array.

    Parameters
    ----------
    values : numpy.ndarray, complex, shape S
    coords : sequence of numpy.ndarray, one 1D array per axis
        Coordinates along each axis (pixels, or cycles per pixel).
    weights : numpy.ndarray, real, shape S
        Non-negative fit weights (zero where ``values`` is zero).

    Returns
    -------
    tuple of float
        The slopes, radians per unit of the coordinates, one per axis; all
        zero when no more than ``ndim`` pixels carry weight.
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
    then on an upsampled grid (:func:`refine_peak`), then refined by
    :data:`LS_ROUNDS` rounds of weighted least squares on the wrapped residual
    phase (:func:`fit_linear_phase`). Phase wrapping does not bias it.

    Parameters
    ----------
    product : numpy.ndarray, complex, shape S (centred)
        The array whose phase holds the ramp (e.g. ``x * conj(ref)``).
    weights : numpy.ndarray, real, shape S
        Least-squares weights (e.g. ``|product|``).

    Returns
    -------
    tuple of float
        ``g``, radians per pixel, one per axis: ``apply_ramp(product, -g)``
        has no ramp left.
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
