"""Friedel asymmetry: how far a measured pattern is from the centrosymmetry of a real object.

The far-field intensity of a real-valued object obeys ``I(q) = I(-q)`` about
the zero frequency; a crystal's displacement field breaks the symmetry.
``--method auto`` and automatic positivity read the measure
(:func:`friedel_asymmetry`) to tell a specimen from a crystal.

A detector's pixels do not sit on the zero frequency: the direct beam falls
anywhere inside a pixel, so after whole-pixel centring a real object's
pattern is symmetric about a point up to half a pixel away. Mirrored about
the pixel, such a pattern looks as asymmetric as a strained crystal's (a
simulated cell: 5e-7 on the pixel, 3e-2 a quarter of a pixel off, 0.2 half
a pixel off, against 2e-3 to 0.1 for strained crystals). So the measure is
also taken about a sub-pixel centre, and the smallest value stands (is
there a centre about which the pattern is symmetric?):

1. the centre from the Patterson function's phase (:func:`centre_offset_px`):
   a pattern symmetric about ``c`` has a real Patterson function (the
   autocorrelation of a real object) times ``exp(-2 pi i c . r / N)``; the
   ramp is fitted to ``arg P(r)^2`` (squared so that the sign of a real
   autocorrelation does not matter) where ``P`` stands above the noise;
2. that centre refined by minimising the measure itself
   (:func:`refined_offset`), which a masked centre does not bias;
3. about each, the pattern moved onto the pixel by Fourier interpolation
   (:func:`moved_to_pixel`: exact at oversampling 2 and more, but a masked
   region rings across the frame) and by a local Lanczos kernel
   (:func:`moved_locally`: a masked region spoils only its neighbours).

Below oversampling 2 along an axis neither interpolation is exact and a
real object's pattern can stay above the threshold (docs/benchmarks.md).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch

from .._ndimage import box_mean, dilate
from ..physics import fft_order_offsets

SUBPIXEL_FILL_RADIUS_PX = 2
"""Masked pixels are filled with the mean of the valid pixels within this box half-width before the
pattern is moved by a fraction of a pixel, so that a masked region's edge does not ring."""

SUBPIXEL_MARGIN_PX = 2
"""Pixels within this distance of a masked pixel (or of the frame's edge) are left out of the
measure about the sub-pixel centre: the interpolation mixes in what lies beyond them."""

PATTERSON_NOISE_FACTOR = 10.0
"""The ramp is fitted where ``|P(r)|^2`` exceeds this many times its counting-noise variance (the
total number of photons)."""

SUBPIXEL_MIN_OFFSET_PX = 0.02
"""Offsets below this (pixels, every axis) are taken as zero: no Fourier-interpolated measure there."""

LANCZOS_LOBES = 3
"""Lobes of the local interpolation kernel of :func:`moved_locally` (6 taps per axis)."""

SUBPIXEL_MIN_COVERAGE = 0.5
"""A measure about a sub-pixel centre is taken only where it keeps at least this fraction of the pairs
measured about the centre pixel away from the frame's edge (:data:`LANCZOS_LOBES`). A beamstop over the
brightest part of the pattern costs few pixels (if most photons): 0.6-1 of them are kept on the
corpus's tuning specimens. Many scattered masked pixels (held-out islands) leave 0.3-0.5, mostly the
centre, whose slow fringes look symmetric even for a strained crystal (a faceted one: 7e-3 about the
pixel, 6e-4 on what such a mask leaves)."""

SUBPIXEL_MAX_OFFSET_PX = 0.75
"""Offsets are held within this on every axis (pixels): the frame was centred on a whole pixel of the
symmetry centre or the peak before, so a detector's zero frequency lies within about half a pixel, and a
larger fitted ramp is a crystal's phase (or a masked centre's bias of the Patterson fit)."""


class FriedelAsymmetry(NamedTuple):
    """Friedel asymmetry of a pattern and its standard error from shot noise (both dimensionless).

    ``centre_offset_px`` is the sub-pixel centre (pixels per axis, from the
    frame centre ``n // 2``) about which the value was measured; all zeros
    when it was measured about the centre pixel.
    """

    value: float
    standard_error: float
    centre_offset_px: tuple[float, ...] = ()


def _mirrored(array: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``array(-q)`` about the frame centre (index ``n // 2``), and where ``-q`` is inside the frame."""
    mirrored = array
    has_partner = torch.ones(array.shape, dtype=torch.bool, device=array.device)
    for axis, n in enumerate(array.shape):
        mirrored = torch.flip(mirrored, dims=(axis,))
        if n % 2 == 0:  # index 0 mirrors onto index n, outside the frame
            mirrored = torch.roll(mirrored, 1, dims=axis)
            edge = torch.ones(n, dtype=torch.bool, device=array.device)
            edge[0] = False
            view = [1] * array.ndim
            view[axis] = n
            has_partner = has_partner & edge.reshape(view)
    return mirrored, has_partner


class _PairSums(NamedTuple):
    excess: float  # sum of (a(q) - a(-q))^2 - 1/2 over the pairs
    total: float  # photons in the pairs
    pairs: int


def _pair_sums(counts: torch.Tensor, valid: torch.Tensor, min_pair_counts: float) -> _PairSums:
    zero = torch.zeros((), dtype=torch.float64, device=counts.device)
    counts = torch.where(valid, counts.double().clamp_min(0), zero)
    mirrored, has_partner = _mirrored(counts)
    mirrored_valid, _ = _mirrored(valid)
    pairs = valid & mirrored_valid & has_partner & (counts + mirrored >= min_pair_counts)
    total = float((counts + mirrored)[pairs].sum())
    excess = float((((counts + 0.375).sqrt() - (mirrored + 0.375).sqrt()).square() - 0.5)[pairs].sum())
    return _PairSums(excess, total, int(pairs.sum()))


def _asymmetry(sums: _PairSums, offset_px: tuple[float, ...]) -> FriedelAsymmetry:
    if sums.total <= 0:
        return FriedelAsymmetry(0.0, 0.0, offset_px)
    return FriedelAsymmetry(sums.excess / sums.total, sums.pairs ** 0.5 / sums.total, offset_px)


def pixel_asymmetry(counts: torch.Tensor, valid: torch.Tensor, *, min_pair_counts: float = 20.0) -> FriedelAsymmetry:
    """Fraction of the measured signal that breaks Friedel symmetry about the centre pixel, beyond shot noise.

    The measure compares Anscombe amplitudes ``a = sqrt(n + 3/8)``, whose
    shot noise has a variance of about 1/4 (for more than a few photons),
    so that the noise can be subtracted::

        A = sum_q [(a(q) - a(-q))^2 - 1/2] / sum_q [n(q) + n(-q)]

    over the pixels ``q`` where both ``q`` and ``-q`` are valid and hold at
    least ``min_pair_counts`` photons together.

    Parameters
    ----------
    counts : torch.Tensor, real, frame shape, centred
        Measured photons (zero frequency at index ``n // 2``).
    valid : torch.Tensor, bool, frame shape
    min_pair_counts : float
        Pairs with fewer photons are left out (their noise is far from Gaussian).

    Returns
    -------
    FriedelAsymmetry
        About 0 for a real object centred on the pixel; ``standard_error``:
        ``sqrt(pairs) / sum``; both figures 0 when no pair qualifies.
    """
    return _asymmetry(_pair_sums(counts, valid, min_pair_counts), (0.0,) * counts.ndim)


def centre_offset_px(counts: torch.Tensor, valid: torch.Tensor) -> tuple[float, ...]:
    """Sub-pixel centre of a pattern's Friedel symmetry, from the phase ramp of its Patterson function.

    Parameters
    ----------
    counts : torch.Tensor, real, frame shape, centred
        Measured photons (zero frequency near index ``n // 2``).
    valid : torch.Tensor, bool, frame shape

    Returns
    -------
    tuple of float
        The centre minus ``n // 2`` per axis, pixels; zeros when the
        Patterson function does not stand above the noise anywhere but the
        origin. Weighted least squares on ``arg P(r)^2``, first on lags up to
        an eighth of the frame (where a ramp of up to half a pixel per axis
        cannot wrap), then twice more on up to a quarter and on every lag.
    """
    shape = tuple(counts.shape)
    pattern = torch.where(valid, counts.double().clamp_min(0), torch.zeros((), dtype=torch.float64,
                                                                             device=counts.device))
    total = float(pattern.sum())
    if total <= 0:
        return (0.0,) * len(shape)
    patterson = torch.fft.fftn(torch.fft.ifftshift(pattern))
    power = patterson.abs().square()
    lags = fft_order_offsets(shape, counts.device, torch.float64)
    strong = power > PATTERSON_NOISE_FACTOR * total
    origin = torch.ones(shape, dtype=torch.bool, device=counts.device)
    for lag in lags:
        origin = origin & (lag == 0)
    strong = strong & ~origin
    squared_phase = patterson.square()
    slopes = torch.zeros(len(shape), dtype=torch.float64, device=counts.device)  # d arg(P^2) / d lag, per axis
    for fraction in (1 / 8, 1 / 4, 1 / 2):
        within = strong.clone()
        for lag, n in zip(lags, shape):
            within = within & (lag.abs() <= fraction * n)
        if int(within.sum()) < len(shape) + 1:
            continue
        model = sum(s * lag for s, lag in zip(slopes, lags))
        residual = torch.angle(squared_phase * torch.exp(-1j * model))[within]
        design = torch.stack([lag.expand(shape)[within] for lag in lags], dim=1)
        weights = power[within] / power[within].max()
        normal = design.T @ (design * weights[:, None])
        rhs = design.T @ (residual * weights)
        slopes = slopes + torch.linalg.lstsq(normal, rhs[:, None]).solution[:, 0]
    # arg P^2 = -4 pi c r / n for a pattern symmetric about c (forward FFT convention)
    return tuple(float(-s * n / (4 * math.pi)) for s, n in zip(slopes, shape))


def moved_to_pixel(counts: torch.Tensor, valid: torch.Tensor,
                   offset_px: tuple[float, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """The pattern moved by ``-offset_px`` (Fourier interpolation), so that a centre at ``n // 2 + offset`` falls
    on ``n // 2``, and the pixels whose moved value can be trusted.

    Exact for a pattern sampled at oversampling 2 or more, but a masked
    region's unknown counts ring across the whole frame: masked pixels are
    filled from their valid neighbours (:data:`SUBPIXEL_FILL_RADIUS_PX`),
    and pixels within :data:`SUBPIXEL_MARGIN_PX` of a masked pixel or of the
    frame's edge are not trusted. Good where little signal is masked.

    Returns
    -------
    moved : torch.Tensor, float64, frame shape
        Non-negative.
    trusted : torch.Tensor, bool, frame shape
    """
    counts_np = np.where(valid.cpu().numpy(), counts.double().clamp_min(0).cpu().numpy(), 0.0)
    valid_np = valid.cpu().numpy().astype(bool)
    filled = np.where(valid_np, counts_np, box_mean(counts_np, valid_np, SUBPIXEL_FILL_RADIUS_PX))
    untrusted = dilate(~valid_np, SUBPIXEL_MARGIN_PX) | ~_inner(valid_np.shape, SUBPIXEL_MARGIN_PX)
    spectrum = torch.fft.fftn(torch.from_numpy(filled).to(counts.device))
    phase = sum(2 * math.pi * d * k / n
                for d, k, n in zip(offset_px, fft_order_offsets(tuple(counts.shape), counts.device, torch.float64), counts.shape))
    moved = torch.fft.ifftn(spectrum * torch.exp(1j * phase)).real.clamp_min(0)
    return moved, torch.from_numpy(~untrusted).to(valid.device)


def _inner(shape: tuple[int, ...], margin: int) -> np.ndarray:
    """True farther than ``margin`` pixels from the frame's edge."""
    inner = np.zeros(shape, dtype=bool)
    inner[tuple(slice(margin, n - margin) for n in shape)] = True
    return inner


def _lanczos_weights(fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Taps ``k`` and weights of the value at ``x + fraction`` from ``f(x + k)`` (normalised Lanczos kernel)."""
    taps = np.arange(-LANCZOS_LOBES + 1, LANCZOS_LOBES + 1)
    distance = taps - fraction
    weights = np.sinc(distance) * np.sinc(distance / LANCZOS_LOBES)
    return taps, weights / weights.sum()


def _locally_trusted(valid: np.ndarray) -> np.ndarray:
    """Pixels whose Lanczos kernel (:func:`_lanczos_weights`, at any offset) sees valid pixels only, inside the
    frame."""
    unseen = (~valid).astype(np.float64)
    taps = np.arange(-LANCZOS_LOBES + 1, LANCZOS_LOBES + 1)
    for axis in range(valid.ndim):
        unseen = sum(np.roll(unseen, -int(tap), axis=axis) for tap in taps)
    return (unseen < 0.5) & _inner(valid.shape, LANCZOS_LOBES)


def _locally_moved(values: np.ndarray, offset_px: tuple[float, ...]) -> torch.Tensor:
    """``values`` (masked pixels at 0) moved by ``-offset_px`` with the Lanczos kernel, non-negative (float64)."""
    for axis, fraction in enumerate(offset_px):
        taps, weights = _lanczos_weights(float(fraction))
        values = sum(weight * np.roll(values, -int(tap), axis=axis) for tap, weight in zip(taps, weights))
    return torch.from_numpy(np.clip(values, 0, None))


def _local_values(counts: torch.Tensor, valid: torch.Tensor) -> tuple[np.ndarray, torch.Tensor]:
    """The counts (masked pixels at 0, float64, on the host) and :func:`_locally_trusted` of ``valid``."""
    valid_np = valid.cpu().numpy().astype(bool)
    values = np.where(valid_np, counts.double().clamp_min(0).cpu().numpy(), 0.0)
    return values, torch.from_numpy(_locally_trusted(valid_np)).to(valid.device)


def moved_locally(counts: torch.Tensor, valid: torch.Tensor,
                  offset_px: tuple[float, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """The pattern moved by ``-offset_px`` with a Lanczos kernel of :data:`LANCZOS_LOBES` lobes, and the pixels
    whose kernel saw valid pixels only (and lies inside the frame).

    Less exact than :func:`moved_to_pixel` on fine speckle, but a masked
    region (a beamstop or saturated pixels over the brightest part of the
    pattern) spoils only the pixels within :data:`LANCZOS_LOBES` of it.

    Returns
    -------
    moved : torch.Tensor, float64, frame shape
        Non-negative.
    trusted : torch.Tensor, bool, frame shape
    """
    values, trusted = _local_values(counts, valid)
    return _locally_moved(values, offset_px).to(counts.device), trusted


def _held(offset: float) -> float:
    """``offset`` held within :data:`SUBPIXEL_MAX_OFFSET_PX`."""
    return float(np.clip(offset, -SUBPIXEL_MAX_OFFSET_PX, SUBPIXEL_MAX_OFFSET_PX))


def _parabola_step(value, offset: list[float], axis: int, step: float, best: float) -> tuple[float, float]:
    """One step of :func:`refined_offset` along ``axis``: the best of ``d``, ``d -+ step`` and the vertex of the
    parabola through them (when convex, at most ``2 step`` away), and its value."""
    def at(coordinate: float) -> float:
        trial = list(offset)
        trial[axis] = coordinate
        return value(trial)

    centre = offset[axis]
    low, high = _held(centre - step), _held(centre + step)
    low_value, high_value = at(low), at(high)
    candidates = [(centre, best), (low, low_value), (high, high_value)]
    curvature = low_value + high_value - 2 * best
    if np.isfinite(curvature) and curvature > 0:
        vertex = centre + step * (low_value - high_value) / (2 * curvature)
        vertex = _held(float(np.clip(vertex, centre - 2 * step, centre + 2 * step)))
        candidates.append((vertex, at(vertex)))
    return min(candidates, key=lambda pair: pair[1])


def refined_offset(counts: torch.Tensor, valid: torch.Tensor, start: tuple[float, ...], *,
                   min_pair_counts: float = 20.0) -> tuple[float, ...]:
    """The sub-pixel centre that minimises the asymmetry measured with :func:`moved_locally`, from ``start``.

    Two sweeps over the axes; on each axis a parabola through the measure at
    ``d - h``, ``d`` and ``d + h`` (``h`` = 0.2, then 0.1 px) moves ``d`` to
    its vertex (at most ``2 h``), or to the best of the three where the
    parabola is not convex. Each offset stays within
    :data:`SUBPIXEL_MAX_OFFSET_PX`.
    """
    offset = [_held(d) for d in start]
    values, trusted = _local_values(counts, valid)  # the kernel's footprint does not depend on the offset

    def value(trial: list[float]) -> float:
        sums = _pair_sums(_locally_moved(values, tuple(trial)).to(counts.device), trusted, min_pair_counts)
        return sums.excess / sums.total if sums.total > 0 else math.inf

    best = value(offset)
    for step in (0.2, 0.1):
        for axis in range(len(offset)):
            offset[axis], best = _parabola_step(value, offset, axis, step, best)
    return tuple(offset)


def _content_key(counts: torch.Tensor, valid: torch.Tensor, min_pair_counts: float) -> tuple:
    """A cheap fingerprint of the arrays' contents (sums weighted by position), for :data:`_LAST_MEASURED`."""
    flat_counts = torch.where(valid, counts.double(), torch.zeros((), dtype=torch.float64,
                                                                  device=counts.device)).flatten()
    position = torch.arange(1, flat_counts.numel() + 1, dtype=torch.float64, device=counts.device)
    flat_valid = valid.flatten().double()
    return (tuple(counts.shape), float(flat_counts.sum()), float((flat_counts * position).sum()),
            float(flat_valid.sum()), float((flat_valid * position).sum()), float(min_pair_counts))


_LAST_MEASURED: list = []
"""The last pattern measured and its asymmetry: the same pattern is asked about by ``auto`` and by every
random start of a solver (seconds each on a large 3D frame)."""


def friedel_asymmetry(counts: torch.Tensor, valid: torch.Tensor, *, min_pair_counts: float = 20.0) -> FriedelAsymmetry:
    """:func:`measure_friedel_asymmetry`, remembered for the last pattern asked about."""
    key = _content_key(counts, valid, min_pair_counts)
    if _LAST_MEASURED and _LAST_MEASURED[0][0] == key:
        return _LAST_MEASURED[0][1]
    asymmetry = measure_friedel_asymmetry(counts, valid, min_pair_counts=min_pair_counts)
    _LAST_MEASURED[:] = [(key, asymmetry)]
    return asymmetry


def measure_friedel_asymmetry(counts: torch.Tensor, valid: torch.Tensor, *,
                              min_pair_counts: float = 20.0) -> FriedelAsymmetry:
    """Fraction of the measured signal that breaks Friedel symmetry, beyond shot noise, about the best centre.

    The smallest of :func:`pixel_asymmetry` about the centre pixel and of
    the measure about a sub-pixel centre: the Patterson function's
    (:func:`centre_offset_px`), the pattern moved there by Fourier
    interpolation (:func:`moved_to_pixel`), and the one refined from it
    (:func:`refined_offset`), the pattern moved with a local kernel
    (:func:`moved_locally`, robust to a masked centre; and by Fourier
    interpolation too). A moved pattern is trusted only away from masked
    pixels and the frame's edge, so each sub-pixel measure is compared with
    the pixel measure on the same pixels, and the fraction of the asymmetry
    it leaves is applied to the whole pattern's (:func:`_scaled_to_pixel`).
    Offsets are held within :data:`SUBPIXEL_MAX_OFFSET_PX`; a sub-pixel
    measure that keeps less than :data:`SUBPIXEL_MIN_COVERAGE` of the pairs
    is not taken.

    Parameters
    ----------
    counts : torch.Tensor, real, frame shape, centred
        Measured photons (zero frequency within about a pixel of index ``n // 2``).
    valid : torch.Tensor, bool, frame shape
    min_pair_counts : float
        Pairs with fewer photons are left out (their noise is far from Gaussian).

    Returns
    -------
    FriedelAsymmetry
        ``value``: about 0 for a real object wherever its zero frequency
        falls in the pixel (1e-3 to 3e-3 for a simulated cell with 10%
        absorption), 6e-3 and more for simulated strained crystals;
        ``standard_error``: its shot-noise standard error; ``centre_offset_px``:
        the centre it was measured about.
    """
    pixel_sums = _pair_sums(counts, valid, min_pair_counts)
    about_pixel = _asymmetry(pixel_sums, (0.0,) * counts.ndim)
    found = tuple(_held(d) for d in centre_offset_px(counts, valid))
    refined = refined_offset(counts, valid, found, min_pair_counts=min_pair_counts)
    moved = [(refined, moved_locally(counts, valid, refined))]
    moved += [(centre, moved_to_pixel(counts, valid, centre)) for centre in {found, refined}
              if any(abs(d) >= SUBPIXEL_MIN_OFFSET_PX for d in centre)]
    inner = torch.from_numpy(_inner(tuple(counts.shape), LANCZOS_LOBES)).to(valid.device)
    reference_pairs = _pair_sums(counts, valid & inner, min_pair_counts).pairs  # the moved measures' edge left out
    candidates = [about_pixel]
    for centre, (pattern, trusted) in moved:
        candidate = _scaled_to_pixel(about_pixel, _pair_sums(pattern, trusted, min_pair_counts),
                                     _pair_sums(counts, valid & trusted, min_pair_counts), reference_pairs)
        if candidate is not None:
            candidates.append(candidate._replace(centre_offset_px=tuple(round(d, 3) for d in centre)))
    return min(candidates, key=lambda candidate: candidate.value)


def _scaled_to_pixel(about_pixel: FriedelAsymmetry, about_centre: _PairSums, same_pixels: _PairSums,
                     reference_pairs: int) -> FriedelAsymmetry | None:
    """The whole pattern's asymmetry about a sub-pixel centre: the pixel measure scaled by the fraction of the
    asymmetry that is left about the centre where both can be measured.

    The moved pattern is trusted only away from masked pixels and the frame's edge, where a crystal's
    asymmetry can be strongest (a frame cut inside the pattern); so the two measures are compared on the
    same pixels (``about_centre`` and ``same_pixels``) and the ratio applied to ``about_pixel``. None
    where too few pairs are trusted (:data:`SUBPIXEL_MIN_COVERAGE`) or the pattern is already symmetric
    about the pixel on them (within three standard errors).
    """
    if about_centre.pairs < SUBPIXEL_MIN_COVERAGE * reference_pairs or same_pixels.total <= 0:
        return None
    pixel_value = same_pixels.excess / same_pixels.total
    if pixel_value <= 3 * same_pixels.pairs ** 0.5 / same_pixels.total:
        return None
    fraction_left = max(about_centre.excess / about_centre.total, 0.0) / pixel_value
    return about_pixel._replace(value=about_pixel.value * min(fraction_left, 1.0))


__all__ = ["FriedelAsymmetry", "centre_offset_px", "friedel_asymmetry", "measure_friedel_asymmetry",
           "moved_locally", "moved_to_pixel",
           "pixel_asymmetry", "refined_offset"]
