"""Blurred counts made coherent again: a Wiener deconvolution by a Gaussian, and the widths to try.

Partial coherence blurs the measured intensity, ``n ~ Poisson(I * k)``. The
blurred modulus step of :mod:`cdi_dip.coherence` is not a projection, and
HIO's feedback does not converge with it even when ``k`` is known
(docs/benchmarks.md, "Blurred patterns: is the kernel the bottleneck?").
Deconvolving the counts first turns the problem back into a coherent one,
which the projection solvers do solve: multiplying the autocorrelation of the
counts by ``K / (K^2 + w)`` (``K`` the kernel's transform, ``w`` the Wiener
constant) undoes the blur where ``K`` is above about ``sqrt(w)`` and damps the
noise elsewhere.

The width must be close to the true one: on the tuning half, deconvolving
with 0.85 or 1.15 of the true width lost most of the gain. No estimate from
the data alone gets that close, so :mod:`cdi_dip.reconstruction` tries a
grid of widths (:data:`COARSE_WIDTHS_PX`, then :func:`refined_widths` around
the best) and keeps the one whose coherent object, blurred by that width,
fits the held-out *measured* counts best (:func:`blurred_model`).
"""

from __future__ import annotations

import math

import numpy as np
import torch

WIENER_CONSTANT = 1e-3
"""``w`` of the filter ``K / (K^2 + w)``: frequencies of the autocorrelation where the kernel's transform is
below about ``sqrt(w)`` (0.03) are damped instead of amplified."""

COARSE_WIDTHS_PX = (0.4, 0.52, 0.68, 0.88, 1.14, 1.48, 1.93)
"""First widths tried (Gaussian sigma, pixels): 0.4-2 px in steps of 1.3, the range of the corpus's blur
and of the blur test (:data:`cdi_dip.coherence.BLUR_TEST_SIGMAS_PX`)."""

REFINE_FACTOR = 1.14
"""The widths tried after the coarse grid: the best coarse width times and over this (half a coarse step)."""


def gaussian_transfer(shape: tuple[int, ...], sigma_px: float, device: torch.device | str = "cpu") -> torch.Tensor:
    """The Fourier transform of a unit-sum Gaussian of ``sigma_px``, ``exp(-2 pi^2 sigma^2 |f|^2)``.

    Parameters
    ----------
    shape : tuple of int
        Frame shape.
    sigma_px : float
        Gaussian standard deviation, pixels.
    device : torch.device or str

    Returns
    -------
    torch.Tensor, float32, ``shape``, FFT order (zero frequency first)
    """
    grids = torch.meshgrid(*[torch.fft.fftfreq(n, device=device) for n in shape], indexing="ij")
    squared = sum(grid.square() for grid in grids)
    return torch.exp(-2 * math.pi**2 * sigma_px**2 * squared).float()


def convolved(intensity: torch.Tensor, transfer: torch.Tensor) -> torch.Tensor:
    """A centred intensity multiplied in its autocorrelation by ``transfer`` (FFT order), centred, real.

    Parameters
    ----------
    intensity : torch.Tensor, real, frame shape S, centred
    transfer : torch.Tensor, real, shape S (or broadcastable), FFT order
        The kernel's Fourier transform, e.g. :func:`gaussian_transfer`; differentiable.

    Returns
    -------
    torch.Tensor, real, shape S, centred
    """
    dims = tuple(range(intensity.ndim))
    autocorrelation = torch.fft.fftn(torch.fft.ifftshift(intensity, dim=dims), dim=dims)
    return torch.fft.fftshift(torch.fft.ifftn(autocorrelation * transfer, dim=dims).real, dim=dims)


def blurred_model(model_intensity: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """A coherent model ``|F x|^2`` (centred, photons) blurred by a Gaussian of ``sigma_px``: what a detector
    records of it under that partial coherence. Float32, never negative.

    The blur multiplies the autocorrelation by :func:`gaussian_transfer`, the
    object-space coherence function, as the corpus simulates it
    (:func:`cdi_dip.corpus.detector.blur_intensity`). On a compact object's
    pattern that is a Gaussian convolution keeping the total; a lone bright
    pixel, which no such pattern has, rings when ``sigma_px`` is below about
    1 px.
    """
    model = model_intensity.float()
    return convolved(model, gaussian_transfer(tuple(model.shape), sigma_px, model.device)).clamp_min_(0)


def wiener_deconvolved(counts: np.ndarray, valid: np.ndarray, fill: np.ndarray, sigma_px: float,
                       wiener: float = WIENER_CONSTANT) -> np.ndarray:
    """Counts deconvolved by a Gaussian of ``sigma_px`` with the Wiener filter ``K / (K^2 + wiener)``.

    Parameters
    ----------
    counts : numpy.ndarray, float, frame shape, centred
        Measured photons.
    valid : numpy.ndarray, bool, frame shape
        Measured pixels; the others (a beamstop, gaps) take ``fill`` before the
        filter, so that their zeros do not ring into the measured ones.
    fill : numpy.ndarray, float, frame shape
        Values for the unmeasured pixels, e.g. a coherent reconstruction's
        model of the counts.
    sigma_px : float
        Gaussian standard deviation of the blur, pixels (> 0).
    wiener : float
        The filter's constant (:data:`WIENER_CONSTANT`).

    Returns
    -------
    numpy.ndarray, float32, frame shape
        Coherent counts: non-negative, the same total within ``wiener``.
    """
    if not sigma_px > 0:
        raise ValueError(f"sigma_px must be positive, not {sigma_px}")
    filled = torch.from_numpy(np.where(valid, counts, fill).astype(np.float64))
    transfer = gaussian_transfer(tuple(filled.shape), sigma_px).double()
    deconvolved = convolved(filled, transfer / (transfer.square() + wiener))
    return deconvolved.clamp_min_(0).numpy().astype(np.float32)


def refined_widths(best_px: float) -> tuple[float, float]:
    """The two widths tried between the coarse grid's best and its neighbours, pixels."""
    return round(best_px / REFINE_FACTOR, 3), round(best_px * REFINE_FACTOR, 3)


__all__ = ["COARSE_WIDTHS_PX", "REFINE_FACTOR", "WIENER_CONSTANT", "blurred_model", "convolved", "gaussian_transfer",
           "refined_widths", "wiener_deconvolved"]
