"""Object supports: the initial one from the autocorrelation, and shrinkwrap.

:func:`autocorrelation_support` thresholds the autocorrelation (about twice
the object) when the zero frequency is measured;
:func:`half_autocorrelation_support` gives a support of about the object's
own size when a beamstop hides the zero frequency; :func:`shrinkwrap`
refines either from the current object.

References
----------
S. Marchesini et al., "X-ray image reconstruction from a diffraction pattern
alone", Phys. Rev. B 68, 140101 (2003) (shrinkwrap).
"""

from __future__ import annotations

import math

import torch

from .physics import FarField


def gaussian_blur(x: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """Gaussian blur of a real 2D or 3D array, by FFT (periodic boundaries).

    Parameters
    ----------
    x : torch.Tensor, real, shape (ny, nx) or (nz, ny, nx)
        Array to blur, on any device.
    sigma_px : float
        Standard deviation of the Gaussian, pixels, the same on every axis.
        0 returns an unchanged copy.

    Returns
    -------
    torch.Tensor, same shape, device and dtype as ``x``

    Notes
    -----
    The blur is circular, so it commutes with circular shifts: it gives the
    same result on a centred array and on the same array in FFT order.
    """
    if sigma_px <= 0:
        return x.clone()
    shape = tuple(x.shape)
    dims = tuple(range(x.ndim))
    spectrum = torch.fft.rfftn(x.float(), dim=dims)
    kernel = torch.ones((), dtype=torch.float32, device=x.device)
    for axis, n in enumerate(shape):
        is_last = axis == len(shape) - 1
        freq = torch.fft.rfftfreq(n, device=x.device) if is_last else torch.fft.fftfreq(n, device=x.device)
        view = [1] * len(shape)
        view[axis] = freq.numel()
        factor = torch.exp(-2.0 * (torch.pi * sigma_px * freq) ** 2).reshape(view)
        kernel = kernel * factor
    return torch.fft.irfftn(spectrum.mul_(kernel), s=shape, dim=dims).to(x.dtype)


def _magnitude(obj: torch.Tensor) -> torch.Tensor:
    """``|obj|`` as float, without :func:`torch.abs` on complex input (a CPU rounds ``hypot`` from double,
    at about twice the cost of ``sqrt(re^2 + im^2)``; the difference is an ulp)."""
    if not obj.is_complex():
        return obj.abs()
    squared = obj.real.square()
    return squared.addcmul_(obj.imag, obj.imag).sqrt_()


SHRINKWRAP_REFERENCES = ("max", "rms")
"""What shrinkwrap's relative threshold multiplies: the blurred magnitude's maximum over the frame, or its
root-mean-square over the current support (PyNX's ``support_threshold_method`` 'max' and 'rms')."""


def shrinkwrap(obj: torch.Tensor, *, sigma_px: float, threshold: float, relative_to: str = "max",
               support: torch.Tensor | None = None) -> torch.Tensor:
    """Shrinkwrap support: where the blurred object magnitude exceeds a fraction of its maximum (or RMS).

    Parameters
    ----------
    obj : torch.Tensor, complex or real, shape (ny, nx) or (nz, ny, nx)
        Current object estimate (centred or in FFT order; the blur is circular).
    sigma_px : float
        Gaussian sigma of the blur, pixels.
    threshold : float
        Relative threshold of the reference level (0-1 of the maximum; under
        ``"rms"`` it may exceed 1, the level is then capped at the maximum).
    relative_to : {"max", "rms"}
        ``"max"``: the level is ``threshold * max(blurred)``. ``"rms"``: it is
        ``threshold * sqrt(mean(blurred^2 over support))``, the root-mean-square
        of the blurred magnitude over the current support (PyNX's
        ``threshold_relative`` with the 'rms' method): it follows the object's
        typical amplitude rather than its brightest voxel, and rises as the
        support shrinks onto the object.
    support : torch.Tensor, bool, same shape, optional
        The current support, same order as ``obj``; required by ``"rms"``
        (an empty one counts as the whole frame).

    Returns
    -------
    torch.Tensor, bool, same shape
        The new support. Never empty: the maximum of the blurred magnitude is
        always kept (an all-zero object gives the whole frame), and NaN/Inf
        values count as zero. No host-device synchronisation.
    """
    blurred = gaussian_blur(_magnitude(obj), sigma_px).nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)
    peak = blurred.max()
    if relative_to == "max":
        return blurred >= threshold * peak
    if relative_to != "rms":
        raise ValueError(f"shrinkwrap relative_to = {relative_to!r}; choose one of {', '.join(SHRINKWRAP_REFERENCES)}")
    if support is None:
        raise ValueError("shrinkwrap relative to the RMS needs the current support")
    inside = torch.where(support.any(), support, torch.ones_like(support)).to(blurred.dtype)
    rms = (blurred.square().mul_(inside).sum() / inside.sum()).sqrt_()
    return blurred >= torch.minimum(threshold * rms, peak)


def detwin_support(support: torch.Tensor, axes: tuple[int, ...] | None = None) -> torch.Tensor:
    """The part of a centred support below its centre of mass along every axis (detwinning, PyNX).

    An object and its twin (the complex conjugate turned about the origin)
    fit the same diffraction pattern; a centrosymmetric support admits both,
    and HIO can stall on a mixture. Keeping only the voxels whose index is
    below the support's centre of mass along each of ``axes`` gives an
    asymmetric support (a quadrant in 2D, an octant in 3D when every axis is
    cut) that only one of the two fits, for a few iterations.

    Parameters
    ----------
    support : torch.Tensor, bool, 2D or 3D, centred (the object near the frame centre)
    axes : tuple of int, optional
        Axes to cut; None: every axis.

    Returns
    -------
    torch.Tensor, bool, same shape and device
        ``support & (index_a < c_a)`` for every cut axis ``a``, with ``c_a``
        the centre of mass along it rounded to the nearest index (halves up) and at least
        one above the support's lowest index (so that a support one voxel thick
        along an axis keeps that voxel). An empty support comes back unchanged.
        One host sync per axis.
    """
    if not bool(support.any()):
        return support.clone()
    cut = support.clone()
    indices = torch.nonzero(support).float()
    for axis in range(support.ndim) if axes is None else axes:
        column = indices[:, axis]
        centre = max(math.floor(float(column.mean()) + 0.5), int(column.min()) + 1)
        view = [1] * support.ndim
        view[axis] = support.shape[axis]
        cut &= (torch.arange(support.shape[axis], device=support.device) < centre).reshape(view)
    return cut


def autocorrelation(counts: torch.Tensor, valid: torch.Tensor, physics: FarField) -> torch.Tensor:
    """Magnitude of the object's autocorrelation estimated from the measured intensities.

    Parameters
    ----------
    counts : torch.Tensor, real, frame shape, centred
        Measured photon counts.
    valid : torch.Tensor, bool, frame shape
        True where the counts are used; excluded pixels count as zero.
    physics : FarField
        Forward model of the frame.

    Returns
    -------
    torch.Tensor, float32, frame shape, centred
        ``|F^-1(I)|``, the origin at the frame centre. With excluded pixels
        around the zero frequency (a beamstop) this is the autocorrelation
        minus a smooth low-pass part: its broad pedestal is missing.
    """
    intensity = torch.where(valid, counts.float().clamp_min(0), torch.zeros((), device=counts.device))
    return physics.inverse(intensity.to(torch.complex64)).abs()


def autocorrelation_support(
    counts: torch.Tensor,
    valid: torch.Tensor,
    physics: FarField,
    *,
    threshold: float,
) -> torch.Tensor:
    """Initial support from the autocorrelation of the object.

    The autocorrelation is the inverse Fourier transform of the measured
    intensities (excluded pixels set to zero). It spans about twice the
    object's extent along every axis, a loose but safe first support when
    the zero frequency is measured.

    Parameters
    ----------
    counts : torch.Tensor, real, frame shape, centred
        Measured photon counts.
    valid : torch.Tensor, bool, frame shape
        True where the counts are used.
    physics : FarField
        Forward model of the frame.
    threshold : float
        Relative threshold, 0-1, of the autocorrelation magnitude's maximum.

    Returns
    -------
    torch.Tensor, bool, frame shape, centred
        Never empty (the origin, where the autocorrelation peaks, is kept).
    """
    # A light blur removes isolated noise speckles above the threshold.
    smooth = gaussian_blur(autocorrelation(counts, valid, physics), 1.0)
    return shrinkwrap(smooth, sigma_px=0.0, threshold=threshold)


EXTENT_FROM_PROFILE = 1.25
"""Object extent over the zero crossing extrapolated from the autocorrelation
profile's 50 % and 20 % points: on simulated faceted crystals (oversampling
1.7-4) the extrapolation falls short by 12-20 %."""


def _profile_zero_crossing(profile: torch.Tensor) -> float | None:
    """Lag (px) where a decreasing profile (1 at lag 0) reaches zero, extrapolated
    linearly from where it falls below 0.5 and 0.2; None if it never falls below 0.2."""
    below_half = torch.nonzero(profile < 0.5)
    below_fifth = torch.nonzero(profile < 0.2)
    if len(below_half) == 0 or len(below_fifth) == 0:
        return None
    d50, d20 = float(below_half[0]), float(below_fifth[0])
    return d20 + (d20 - d50) * 0.2 / 0.3


def object_extent_px(counts: torch.Tensor, valid: torch.Tensor, physics: FarField) -> tuple[float, ...]:
    """Extent of the object along every axis (px) estimated from the autocorrelation.

    The autocorrelation of an object of extent ``L`` falls to zero at the lag
    ``L``. Along each axis the largest autocorrelation magnitude over the
    other axes (the origin's neighbourhood normalised to 1) is followed out
    from the origin, and its zero crossing extrapolated from the 50 % and
    20 % points, scaled by :data:`EXTENT_FROM_PROFILE`. Below an oversampling
    of 2 the autocorrelation wraps around the frame; the extrapolation still
    sees the object's extent where the profile falls early enough. An axis
    whose profile never falls below 0.2 reports the whole frame.

    Parameters
    ----------
    counts : torch.Tensor, real, frame shape, centred
    valid : torch.Tensor, bool, frame shape
    physics : FarField

    Returns
    -------
    tuple of float
        Estimated extent per axis, pixels of the object (frame) grid.
    """
    magnitude = autocorrelation(counts, valid, physics)
    magnitude = magnitude / magnitude.max().clamp_min(1e-30)
    extents = []
    for axis, n in enumerate(magnitude.shape):
        others = [a for a in range(magnitude.ndim) if a != axis]
        profile = magnitude.amax(dim=others) if others else magnitude
        crossing = _profile_zero_crossing(profile[n // 2:])
        extents.append(float(n) if crossing is None else min(float(n), EXTENT_FROM_PROFILE * crossing))
    return tuple(extents)


SUPPORT_EXTENT_THRESHOLD = 0.02
""":func:`autocorrelation_extent_px`'s threshold, relative to the autocorrelation's maximum: on clean 2D and 3D
tuning patterns the frame over the extent it gives was 0.94-1.65 times the truth's oversampling (median
1.06-1.13), and behind a masked beamstop, at low flux or with hot pixels at most 1.65 times
(``benchmarks/oversampling_estimate.py``); :func:`object_extent_px` reached 2.4 (3D), 7.2 (behind a
beamstop) and 17.6 (2D lithographic patterns)."""


def autocorrelation_extent_px(counts: torch.Tensor, valid: torch.Tensor, physics: FarField,
                              threshold: float = SUPPORT_EXTENT_THRESHOLD) -> tuple[float, ...]:
    """Extent of the object along every axis (px): half the extent of the autocorrelation's support.

    The autocorrelation of an object of extent ``L`` spans ``2 L``. Its
    support at ``threshold`` of the maximum (:func:`autocorrelation_support`,
    lightly blurred) is followed to its farthest pixels along each axis, so
    a profile that falls fast near the origin (a sparse pattern, a strong
    phase gradient, a missing centre) does not shorten it, as it does
    :func:`object_extent_px`'s.

    Parameters
    ----------
    counts : torch.Tensor, real, frame shape, centred
    valid : torch.Tensor, bool, frame shape
    physics : FarField
    threshold : float

    Returns
    -------
    tuple of float
        Estimated extent per axis, pixels of the frame grid (at least 1).
    """
    support = autocorrelation_support(counts, valid, physics, threshold=threshold)
    extents = []
    for axis in range(support.ndim):
        others = [a for a in range(support.ndim) if a != axis]
        occupied = torch.nonzero(support.any(dim=others) if others else support).flatten()
        extents.append(max(float(occupied.max() - occupied.min() + 1) / 2.0, 1.0))
    return tuple(extents)


def _radius_px(shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """Distance of every pixel from the frame centre (index ``n // 2``), pixels."""
    axes = [torch.arange(n, device=device, dtype=torch.float32) - n // 2 for n in shape]
    grids = torch.meshgrid(*axes, indexing="ij")
    return torch.sqrt(sum(g.square() for g in grids))


MISSING_CENTRE_MIN_RADIUS_PX = 1.5
"""The centre counts as missing when no valid pixel lies within this distance of the zero frequency: at
least the 3x3 (3x3x3) pixels around it are excluded, not just a hot or saturated one (the projection
solvers' automatic ``ProjectionConfig.missing_centre``, and :mod:`cdi_dip.missing_modes`)."""


def missing_centre_radius_px(valid: torch.Tensor) -> float:
    """Radius of the excluded region around the zero frequency (a beamstop), pixels.

    Parameters
    ----------
    valid : torch.Tensor, bool, frame shape, centred
        True where the counts are used.

    Returns
    -------
    float
        Distance from the frame centre to the nearest valid pixel: 0 when the
        centre itself is measured, about the beamstop radius behind a
        beamstop (its holder arm does not count). Where that is under
        :data:`MISSING_CENTRE_MIN_RADIUS_PX`, the distance to the nearest
        valid pixel that is not isolated (:func:`_not_isolated`): lone valid
        pixels inside a masked centre do not make it measured. A saturated
        Bragg peak of a dislocated crystal keeps its dark core unsaturated: on
        the 2D tuning half (480 patterns) two such masked centres of about 100
        pixels were read as measured (radius 1 and 1.4 px), and one in 3D.
        Elsewhere the radius is the nearest valid pixel's, isolated or not.
    """
    if not bool(valid.any()):
        return float(max(valid.shape))
    radius = _radius_px(tuple(valid.shape), valid.device)
    nearest = float(radius[valid].min())
    if nearest >= MISSING_CENTRE_MIN_RADIUS_PX:
        return nearest
    core = _not_isolated(valid)
    return float(radius[core].min()) if bool(core.any()) else float(max(valid.shape))


def _not_isolated(valid: torch.Tensor) -> torch.Tensor:
    """Valid pixels with at least a third of their neighbours valid (3 of the 8 of a 2D frame, 9 of the 26 of
    a 3D stack; pixels beyond the frame count as not valid): the edge of a masked disc keeps 5 of 8."""
    window = 3 ** valid.dim()
    pool = torch.nn.functional.avg_pool2d if valid.dim() == 2 else torch.nn.functional.avg_pool3d
    share = pool(valid[None, None].float(), kernel_size=3, stride=1, padding=1, count_include_pad=True)[0, 0]
    neighbours = torch.round(share * window) - valid.float()
    return valid & (neighbours >= math.ceil((window - 1) / 3))


def _scaled_about_centre(mask: torch.Tensor, factor: int) -> torch.Tensor:
    """``out(r) = mask(factor * r)`` about the frame centre; False where ``factor * r`` leaves the frame."""
    shape = tuple(mask.shape)
    index = []
    inside = torch.ones(shape, dtype=torch.bool, device=mask.device)
    for axis, n in enumerate(shape):
        view = [1] * len(shape)
        view[axis] = n
        source = (torch.arange(n, device=mask.device) - n // 2) * factor + n // 2
        inside = inside & ((source >= 0) & (source < n)).reshape(view)
        index.append(source.clamp(0, n - 1).reshape(view))
    return mask[tuple(index)] & inside


def half_autocorrelation_support(
    counts: torch.Tensor,
    valid: torch.Tensor,
    physics: FarField,
    *,
    threshold: float,
    core_radius_px: float,
    envelope_sigma_px: float = 2.0,
    smooth_sigma_px: float = 1.0,
) -> torch.Tensor:
    """Initial support of about the object's own size, robust to a beamstop.

    Behind a beamstop the measured autocorrelation has lost its broad
    pedestal (the missing low frequencies) but keeps its edges and texture
    out to its true extent, which is twice the object's. This support
    thresholds the autocorrelation's envelope (its blurred magnitude)
    relative to the envelope's maximum *outside* a central core, where the
    beamstop's loss is concentrated, then halves the region about the
    origin: for a centrosymmetric object ``(S - S) / 2 = S``; for any object
    the area of ``(S - S) / 2`` is at least that of ``S`` (Brunn-Minkowski),
    though for an asymmetric shape it may sit offset from ``S`` (shrinkwrap
    then moves it). Meant for a missing centre: with the centre measured the
    envelope outside the core is the pedestal itself, and the support comes
    out smaller than the object (use :func:`autocorrelation_support`).

    Parameters
    ----------
    counts : torch.Tensor, real, frame shape, centred
        Measured photon counts.
    valid : torch.Tensor, bool, frame shape, centred
        True where the counts are used.
    physics : FarField
        Forward model of the frame.
    threshold : float
        Relative threshold, 0-1, of the envelope's maximum outside the core.
    core_radius_px : float
        Radius of the central core ignored for the reference level, pixels
        (of the autocorrelation, i.e. object space).
    envelope_sigma_px : float
        Blur of the autocorrelation magnitude that gives its envelope, pixels.
    smooth_sigma_px : float
        Blur of the halved region (threshold 0.5) that fills its pinholes, pixels.

    Returns
    -------
    torch.Tensor, bool, frame shape, centred
        Never empty (the origin is kept).
    """
    envelope = gaussian_blur(autocorrelation(counts, valid, physics), envelope_sigma_px)
    core = _radius_px(tuple(envelope.shape), envelope.device) < core_radius_px
    outside_core = torch.where(core, torch.zeros((), device=envelope.device), envelope)
    full_extent = (envelope >= threshold * outside_core.max()) | core
    half = _scaled_about_centre(full_extent, 2)
    smooth = gaussian_blur(half.float(), smooth_sigma_px) >= 0.5
    centre = tuple(n // 2 for n in smooth.shape)
    smooth[centre] = True
    return smooth


def dilate_mask(mask: torch.Tensor, pixels: int = 1) -> torch.Tensor:
    """Grow a boolean mask by ``pixels`` along every axis (a box of ``2 pixels + 1`` per side, by max pooling).

    Parameters
    ----------
    mask : torch.Tensor, bool, 2D or 3D
    pixels : int
        Half-width of the box, pixels (0: a copy).

    Returns
    -------
    torch.Tensor, bool, same shape and device
    """
    pool = torch.nn.functional.max_pool2d if mask.ndim == 2 else torch.nn.functional.max_pool3d
    size = 2 * int(pixels) + 1
    return pool(mask[None, None].float(), kernel_size=size, stride=1, padding=int(pixels))[0, 0] > 0


def sigma_schedule(start: float, end: float, fraction: float) -> float:
    """Shrinkwrap sigma at ``fraction`` (0-1, clipped) of the run, linear from ``start`` to ``end``."""
    fraction = min(max(float(fraction), 0.0), 1.0)
    return float(start) + (float(end) - float(start)) * fraction


__all__ = [
    "SUPPORT_EXTENT_THRESHOLD",
    "autocorrelation",
    "autocorrelation_extent_px",
    "autocorrelation_support",
    "detwin_support",
    "dilate_mask",
    "gaussian_blur",
    "half_autocorrelation_support",
    "missing_centre_radius_px",
    "object_extent_px",
    "SHRINKWRAP_REFERENCES",
    "shrinkwrap",
    "sigma_schedule",
]
