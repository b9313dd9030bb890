"""Object supports: the initial one from the autocorrelation, and shrinkwrap.

References
----------
S. Marchesini et al., "X-ray image reconstruction from a diffraction pattern
alone", Phys. Rev. B 68, 140101 (2003) (shrinkwrap).
"""

from __future__ import annotations

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
    return torch.fft.irfftn(spectrum * kernel, s=shape, dim=dims).to(x.dtype)


def shrinkwrap(obj: torch.Tensor, *, sigma_px: float, threshold: float) -> torch.Tensor:
    """Shrinkwrap support: where the blurred object magnitude exceeds a fraction of its maximum.

    Parameters
    ----------
    obj : torch.Tensor, complex or real, shape (ny, nx) or (nz, ny, nx)
        Current object estimate (centred or in FFT order; the blur is circular).
    sigma_px : float
        Gaussian sigma of the blur, pixels.
    threshold : float
        Relative threshold, 0-1, of the blurred magnitude's maximum.

    Returns
    -------
    torch.Tensor, bool, same shape
        The new support. Never empty: the maximum of the blurred magnitude is
        always kept (an all-zero object gives the whole frame), and NaN/Inf
        values count as zero. No host-device synchronisation.
    """
    blurred = torch.nan_to_num(gaussian_blur(obj.abs(), sigma_px), nan=0.0, posinf=0.0, neginf=0.0)
    return blurred >= threshold * blurred.max()


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
    object's extent along every axis, a loose but safe first support.

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
    intensity = torch.where(valid, counts.float().clamp_min(0), torch.zeros((), device=counts.device))
    autocorrelation = physics.inverse(intensity.to(torch.complex64)).abs()
    # A light blur removes isolated noise speckles above the threshold.
    smooth = gaussian_blur(autocorrelation, 1.0)
    return shrinkwrap(smooth, sigma_px=0.0, threshold=threshold)


def sigma_schedule(start: float, end: float, fraction: float) -> float:
    """Shrinkwrap sigma at ``fraction`` (0-1, clipped) of the run, linear from ``start`` to ``end``."""
    fraction = min(max(float(fraction), 0.0), 1.0)
    return float(start) + (float(end) - float(start)) * fraction


__all__ = ["autocorrelation_support", "gaussian_blur", "shrinkwrap", "sigma_schedule"]
