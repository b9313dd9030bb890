"""Partial coherence: the measured intensity as the coherent one blurred by a point-spread function.

A beam that is not fully coherent washes out the fringes and speckles: the
detector records ``I = |F x|^2 * k``, the coherent intensity convolved with a
kernel ``k`` (non-negative, summing to 1; the Fourier transform of the
beam's mutual coherence function), plus any detector blur. Fitting a
coherent model to such data leaves a floor in the likelihood and puts
spurious structure in the object.

Here ``k`` lives on a small box around the zero frequency and is fitted
during the reconstruction by Richardson-Lucy steps, as PyNX and cohere do
(J. N. Clark et al., Nat. Commun. 3, 993 (2012)); the modulus projection
then scales the far field by ``sqrt(n / (|F x|^2 * k))``. ``--psf`` says
whether and how: :func:`parse_psf`.

All arrays here are in FFT order (zero frequency at index 0); convolutions
are circular, over the whole frame.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from .config.psf import MAX_KERNEL_RADIUS_PX, PsfChoice, parse_psf
from .metrics import MaskedFigures, paired_deviance_margin
from .physics import fft_order_offsets

log = logging.getLogger(__name__)

_TINY = 1e-12

def kernel_radii(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Half-width per axis (pixels) of the box the kernel lives on."""
    return tuple(max(1, min(MAX_KERNEL_RADIUS_PX, n // 8)) for n in shape)


def pixel_kernel_radii(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Half-width per axis (pixels) of :func:`pixel_kernel`'s box: all but the frame's last half row, whose
    weight is about ``1 / n^2`` (the box's transform decays slowly; cut to :func:`kernel_radii` at 1e7 photons
    its error alone would outweigh the counting noise)."""
    return tuple(max(1, (n - 1) // 2) for n in shape)


def _kernel_box(shape: tuple[int, ...], device: torch.device,
                radii: tuple[int, ...] | None = None) -> torch.Tensor:
    """Bool mask (frame shape, FFT order) of the pixels within ``radii`` (default :func:`kernel_radii`) of
    the origin."""
    box = torch.ones(shape, dtype=torch.bool, device=device)
    for offsets, radius in zip(fft_order_offsets(shape, device), radii or kernel_radii(shape)):
        box = box & (offsets.abs() <= radius)
    return box


def gaussian_kernel(shape: tuple[int, ...], sigma_px: float, device: torch.device) -> torch.Tensor:
    """A normalised Gaussian on the kernel box (float32, frame shape, FFT order)."""
    r2 = sum(offsets.square() for offsets in fft_order_offsets(shape, device))
    kernel = torch.exp(-0.5 * r2 / sigma_px**2) * _kernel_box(shape, device)
    return (kernel / kernel.sum()).float()


def pixel_kernel(shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """The detector's pixels integrating the intensity over their area, as a kernel on the frame's grid.

    A pixel records the far-field intensity averaged over its width, not its
    value at the pixel's centre: the sampled intensity convolved with a box of
    one pixel. Along an axis of ``n`` pixels that multiplies the object's
    autocorrelation at lag ``x`` (real-space voxels) by ``sinc(x / n)``: 0.64 at
    the edge of the field of view, 0.90 at a quarter of it, which is where the
    autocorrelation of an object oversampled 4 times ends. Exact for a pattern
    whose autocorrelation fits the frame (oversampling at least 2); every axis
    is integrated (along a rocking axis it stands for the angular step).

    Parameters
    ----------
    shape : tuple of int
        Frame shape (pixels).
    device : torch.device

    Returns
    -------
    torch.Tensor, float32, frame shape, FFT order
        The kernel on the box of :func:`pixel_kernel_radii`, summing to 1. Its
        first neighbours weigh 0.076 and its second -0.017 along an axis:
        unlike a Gaussian's, some weights are negative.
    """
    transfer = torch.ones(shape, dtype=torch.float64)
    for axis, n in enumerate(shape):
        along = [1] * len(shape)
        along[axis] = n
        transfer = transfer * torch.from_numpy(np.sinc(np.fft.fftfreq(n))).reshape(along)
    kernel = torch.fft.ifftn(transfer).real.to(device) * _kernel_box(shape, device, pixel_kernel_radii(shape))
    return (kernel / kernel.sum()).float()


def floor_weight(kernel: torch.Tensor) -> torch.Tensor:
    """The fraction of a pixel's coherent intensity below which its blurred value is not let fall: the kernel's
    centre less the magnitude of its negative weights (the centre alone for a Gaussian), at least 0."""
    return (kernel.flatten()[0] + kernel.clamp_max(0).sum()).clamp_min(0)


BLUR_TEST_SIGMAS_PX = (0.3, 0.5, 0.7, 1.0, 1.4, 2.0)
"""Gaussian widths (pixels) that :func:`blur_test` tries on a coherent model."""

BLUR_TEST_RATIO = 0.95
""":func:`blur_test` finds a blur when one of its widths brings the free deviance below this fraction of the
coherent model's. On the tuning half (2D, HIO; docs/benchmarks.md) every clean pattern reconstructed to
an error under 0.1 stayed at 1.00 (no width helped), and 10 of 12 blurred ones fell below 0.92."""


def blur_test(model_intensity: np.ndarray, counts: np.ndarray, free: np.ndarray,
              sigmas: tuple[float, ...] = BLUR_TEST_SIGMAS_PX) -> dict:
    """Whether the data look blurred to a coherent reconstruction: does blurring its model fit the held-out pixels
    better?

    A coherent model of coherent data predicts the held-out pixels' speckle; blurring it only washes that out,
    and the free deviance rises. Data blurred by partial coherence are smoother than any compact object's
    pattern, and a blurred model fits their held-out pixels better. This costs two FFTs per width.

    Parameters
    ----------
    model_intensity : numpy.ndarray, float, frame shape, centred
        The coherent model ``|F x|^2`` in photons (``Result.model_intensity``).
    counts : numpy.ndarray, float, frame shape, centred
        The measured photons it was fitted to.
    free : numpy.ndarray, bool, frame shape
        The held-out pixels.
    sigmas : tuple of float
        Gaussian widths to try, pixels.

    Returns
    -------
    dict
        ``free_llk_poisson_by_sigma_px`` (the free deviance per width, ``0`` the coherent model's),
        ``best_sigma_px``, ``ratio`` (best over coherent) and ``blurred`` (``ratio`` below
        :data:`BLUR_TEST_RATIO`).
    """
    shape = tuple(model_intensity.shape)
    cpu = torch.device("cpu")
    dims = tuple(range(len(shape)))
    coherent = torch.from_numpy(np.ascontiguousarray(model_intensity, dtype=np.float32))
    figures = MaskedFigures(torch.from_numpy(np.ascontiguousarray(counts, dtype=np.float32)),
                            torch.from_numpy(np.ascontiguousarray(free, dtype=bool)))
    spectrum = torch.fft.rfftn(coherent, dim=dims)
    deviances = {0.0: figures(coherent)[0]}
    for sigma in sigmas:
        kernel_hat = torch.fft.rfftn(gaussian_kernel(shape, sigma, cpu), dim=dims)
        blurred = torch.fft.irfftn(spectrum * kernel_hat, s=shape, dim=dims).clamp_min_(0)
        deviances[float(sigma)] = figures(blurred)[0]
    best = min(deviances, key=deviances.get)
    ratio = deviances[best] / deviances[0.0] if deviances[0.0] > 0 else 1.0
    return {"free_llk_poisson_by_sigma_px": {f"{sigma:g}": value for sigma, value in deviances.items()},
            "best_sigma_px": best, "ratio": float(ratio), "blurred": bool(ratio < BLUR_TEST_RATIO)}


PIXEL_TEST_RATIO = BLUR_TEST_RATIO
""":func:`pixel_test` finds the pixels integrating when integrating a coherent model over them brings its free
deviance below this fraction of the coherent model's, as :func:`blur_test` finds a blur. (A paired z of the
difference is recorded but not used: a few pixels by the peak dominate its spread, and counts integrated over
64x64 pixels at 1e5 photons, whose integrated true model fits them 15 times better, gave z 1.8.)"""


def pixel_test(model_intensity: np.ndarray, counts: np.ndarray, free: np.ndarray) -> dict:
    """Whether the detector's pixels look integrating to a coherent reconstruction: does integrating its model
    over the pixels (:func:`pixel_kernel`) fit the held-out pixels better?

    A model sampled at the pixels' centres of data that were sampled there
    predicts the held-out pixels; integrating it over the pixels washes out
    their speckle and the free deviance rises. A detector whose pixels
    integrate records a pattern smoothed by exactly that box, and the integrated
    model fits its held-out pixels better. This costs four FFTs.

    Parameters
    ----------
    model_intensity, counts, free : numpy.ndarray
        The coherent model, the measured photons and the held-out pixels, as for :func:`blur_test`.

    Returns
    -------
    dict
        ``free_llk_poisson_coherent`` and ``free_llk_poisson_integrated`` (per held-out pixel), ``ratio``
        (integrated over coherent), ``margin_z`` (how many standard errors of the paired difference lower the
        integrated model's deviance is; None where the two fit every held-out pixel alike) and ``integrating``
        (``ratio`` below :data:`PIXEL_TEST_RATIO`).
    """
    shape = tuple(model_intensity.shape)
    coherent = torch.from_numpy(np.ascontiguousarray(model_intensity, dtype=np.float32))
    integrated = PartialCoherence(shape, PsfChoice("pixel"), torch.device("cpu")).blur(coherent)
    figures = MaskedFigures(torch.from_numpy(np.ascontiguousarray(counts, dtype=np.float32)),
                            torch.from_numpy(np.ascontiguousarray(free, dtype=bool)))
    margin = paired_deviance_margin(np.asarray(counts, dtype=np.float64), coherent.double().numpy(),
                                    integrated.double().numpy(), np.asarray(free, dtype=bool))
    before, after = figures(coherent)[0], figures(integrated)[0]
    ratio = after / before if before > 0 else 1.0
    return {"free_llk_poisson_coherent": before, "free_llk_poisson_integrated": after, "ratio": float(ratio),
            "margin_z": margin, "integrating": bool(ratio < PIXEL_TEST_RATIO)}


class PartialCoherence:
    """The blurring kernel of one run and the operations that use it.

    Parameters
    ----------
    shape : tuple of int
        Frame shape.
    choice : PsfChoice
        Start (and whether to fit).
    device : torch.device
    """

    def __init__(self, shape: tuple[int, ...], choice: PsfChoice, device: torch.device):
        self.shape = tuple(shape)
        self.fit = choice.mode == "fit"
        self.pixels_only = choice.mode == "pixel"
        """Whether the kernel is the pixels' integration alone (no partial coherence): the full step along
        hidden support modes applies as to a coherent model (:mod:`cdi_dip.solvers.hidden_modes`)."""
        self._radii = pixel_kernel_radii(self.shape) if self.pixels_only else kernel_radii(self.shape)
        self._box = _kernel_box(self.shape, device, self._radii)
        if self.pixels_only:
            self.kernel = pixel_kernel(self.shape, device)
        else:
            self.kernel = gaussian_kernel(self.shape, choice.sigma_px, device)
        self._kernel_hat = self._transform(self.kernel)
        self._central_weight = floor_weight(self.kernel)

    def _transform(self, array: torch.Tensor) -> torch.Tensor:
        return torch.fft.rfftn(array, s=self.shape, dim=tuple(range(-len(self.shape), 0)))

    def _inverse(self, spectrum: torch.Tensor) -> torch.Tensor:
        return torch.fft.irfftn(spectrum, s=self.shape, dim=tuple(range(-len(self.shape), 0)))

    def blur(self, intensity: torch.Tensor) -> torch.Tensor:
        """``intensity * k`` (float32, frame shape): the partially coherent model of a coherent intensity.

        Never below ``k(0) * intensity``, which the convolution of non-negative
        arrays cannot go under: in float32 the FFT's rounding (about 1e-7 of the
        brightest pixel) would otherwise leave a dark pixel's blurred value at
        zero or below, and a modulus step dividing by it overflows (a 512^2
        pattern with 6e6 photons at its peak went NaN). For a kernel with
        negative weights (:func:`pixel_kernel`) the floor is lowered by their
        magnitude (:func:`floor_weight`).
        """
        intensity = intensity.float()
        blurred = self._inverse(self._transform(intensity) * self._kernel_hat)
        return torch.maximum(blurred, intensity * self._central_weight)

    def project_(self, field: torch.Tensor, amplitude: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Modulus projection under partial coherence, in place: ``F <- F sqrt(n / (|F|^2 * k))`` on valid pixels.

        Parameters
        ----------
        field : torch.Tensor, complex64, frame shape, FFT order
        amplitude : torch.Tensor, float32
            ``sqrt(n)`` on valid pixels.
        valid : torch.Tensor, bool
            Pixels constrained; the others keep their far field.
        """
        model = self.blur(field.real.square() + field.imag.square())
        scale = amplitude / model.sqrt().clamp_min_(_TINY)
        return field.mul_(torch.where(valid, scale, torch.ones((), dtype=scale.dtype, device=scale.device)))

    def refine(self, coherent: torch.Tensor, counts: torch.Tensor, valid: torch.Tensor, steps: int = 1) -> None:
        """Richardson-Lucy steps on the kernel: ``k <- k (r corr I_c) / sum I_c`` with ``r = n / (I_c * k)``.

        Parameters
        ----------
        coherent : torch.Tensor, float32, frame shape, FFT order
            ``|F x|^2`` of the current iterate.
        counts : torch.Tensor, float32
            Measured photons.
        valid : torch.Tensor, bool
            Pixels that count (elsewhere the ratio is 1: no pull).
        steps : int
        """
        coherent = coherent.float()
        coherent_hat = self._transform(coherent).conj()
        total = coherent.sum().clamp_min(_TINY)
        for _ in range(steps):
            ratio = torch.where(valid, counts / self.blur(coherent).clamp_min(_TINY), torch.ones_like(counts))
            update = self._inverse(self._transform(ratio) * coherent_hat) / total
            kernel = (self.kernel * update.clamp_min(0)) * self._box
            if not bool(torch.isfinite(kernel).all()) or float(kernel.sum()) <= 0:
                log.warning("partial coherence: the kernel update failed; keeping the last kernel")
                return
            self.kernel = kernel / kernel.sum()
        self._kernel_hat = self._transform(self.kernel)
        self._central_weight = floor_weight(self.kernel)

    def widths_px(self) -> list[float]:
        """RMS width (pixels) of the kernel along every axis (a Gaussian's sigma)."""
        offsets = fft_order_offsets(self.shape, self.kernel.device)
        return [float((self.kernel * o.square()).sum().sqrt()) for o in offsets]

    def compact(self) -> np.ndarray:
        """The kernel on its box, centred (odd size ``2 r + 1`` per axis), float32 on the host."""
        centred = torch.fft.fftshift(self.kernel, dim=tuple(range(len(self.shape))))
        box = tuple(slice(n // 2 - r, n // 2 + r + 1) for n, r in zip(self.shape, self._radii))
        return centred[box].cpu().numpy().astype(np.float32)


REFINE_PERIOD = 5
"""Iterations between Richardson-Lucy steps on a fitted kernel."""

REFINE_START_FRACTION = 0.1
"""A fitted kernel is first refined after this fraction of a plan (the object needs a rough shape first)."""


class CoherentModulus:
    """The modulus step of a projection loop under partial coherence, refining a fitted kernel on its way.

    Parameters
    ----------
    coherence : PartialCoherence
    counts_f : torch.Tensor, float32, frame shape, FFT order
        Measured photons.
    valid_f : torch.Tensor, bool, FFT order
        Fitted pixels.
    total : int
        Iterations of the plan (refinement starts after :data:`REFINE_START_FRACTION` of them).
    """

    def __init__(self, coherence: PartialCoherence, counts_f: torch.Tensor, valid_f: torch.Tensor, total: int):
        self.coherence = coherence
        self._counts = counts_f.float()
        self._valid = valid_f
        self._start = max(1, int(REFINE_START_FRACTION * total))
        self.iteration = 0

    def project_(self, field: torch.Tensor, amplitude: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """One modulus projection (in place); every :data:`REFINE_PERIOD` iterations a kernel step first."""
        self.iteration += 1
        if self.coherence.fit and self.iteration >= self._start and self.iteration % REFINE_PERIOD == 0:
            self.coherence.refine(field.real.square() + field.imag.square(), self._counts, self._valid)
        return self.coherence.project_(field, amplitude, valid)


def blur_with(compact_kernel: np.ndarray, intensity: torch.Tensor) -> torch.Tensor:
    """Blur a centred intensity (frame shape) with a kernel from :meth:`PartialCoherence.compact`."""
    shape = tuple(intensity.shape)
    kernel = torch.zeros(shape, dtype=torch.float32, device=intensity.device)
    box = tuple(slice(n // 2 - k // 2, n // 2 + k // 2 + 1) for n, k in zip(shape, compact_kernel.shape))
    kernel[box] = torch.from_numpy(np.ascontiguousarray(compact_kernel)).to(intensity.device)
    dims = tuple(range(len(shape)))
    kernel = torch.fft.ifftshift(kernel, dim=dims)
    spectrum = torch.fft.rfftn(kernel, dim=dims)
    blurred = torch.fft.irfftn(torch.fft.rfftn(intensity.float(), dim=dims) * spectrum, s=shape, dim=dims)
    return torch.maximum(blurred, intensity.float() * floor_weight(kernel))


__all__ = ["BLUR_TEST_RATIO", "BLUR_TEST_SIGMAS_PX", "PIXEL_TEST_RATIO", "CoherentModulus", "PartialCoherence",
           "PsfChoice", "blur_test", "blur_with", "floor_weight", "gaussian_kernel", "kernel_radii", "parse_psf",
           "pixel_kernel", "pixel_kernel_radii", "pixel_test"]
