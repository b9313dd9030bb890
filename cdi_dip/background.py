"""An incoherent background under the pattern: air and sample-holder scattering, fluorescence, stray light.

The detector records ``n ~ Poisson(I + B)``: the object's coherent intensity
``I`` plus a smooth background ``B`` that no object explains. Left in, ``B``
raises the measured amplitudes where the object's own signal is weak (far
from the peak) and the reconstruction puts structure into the object to
explain it; at 2e4 photons at the peak and 3 background photons per pixel
that alone failed 4 of 6 tuning crystals (docs/benchmarks.md).

``B`` is modelled as a radial profile about the zero frequency, estimated
from the counts alone, before any object (:func:`background_from_counts`):
a model fitted with the background in place puts part of it into its object,
so a fit to a first result finds too little (0.8-1.0 photons where there
were 2.9, docs/benchmarks.md). Speckle from an object has many dark pixels
(its intensity in a shell about the centre is spread like an exponential,
with fringe minima near zero), while a background lifts every pixel alike.
In each shell the counts are modelled as ``Poisson(b) + Geometric(m)`` (an
exponential intensity of mean ``m`` counted by Poisson) and ``b`` is found
by maximum likelihood with ``b + m`` held to the shell's mean
(:func:`shell_likelihood`); shells bright enough to hide the background are
skipped, and the shells' estimates are smoothed over the radius, weighted by
their precision, and held constant beyond the first and last informative
shell. Where the object's intensity is less speckled than an exponential
(the streaks of a faceted crystal, a smooth fall-off) the likelihood puts
too little into ``b``: on the tuning side's background patterns the median
ratio to the true mean was :data:`LOW_BIAS`, by which the estimate is
divided (on exponential speckle it is then high by as much). A pattern
blurred by partial coherence fills its fringe minima, and part of that reads
as background.

All arrays here are centred (zero frequency at ``n // 2`` per axis), as a
prepared :class:`~cdi_dip.types.Measurement` is.
"""

from __future__ import annotations

import logging

import numpy as np

from .ensemble.fourier import centred_positions

log = logging.getLogger(__name__)

_TINY = 1e-9

SHELL_WIDTH_PX = 2.0
"""Width of the shells in which :func:`background_from_counts` estimates the background, pixels."""

SHELL_MIN_PIXELS = 30
"""Measured pixels a shell needs for its own estimate."""

SHELL_MAX_MEDIAN = 50.0
"""Shells whose median count is above this are skipped: a few photons of background are invisible there."""

CENSOR_COUNTS = 20
"""Counts above this many times a shell's median (and above this many photons) enter its likelihood only as
"at least that many" (:func:`shell_likelihood`)."""

LOW_BIAS = 0.65
"""The median ratio of :func:`background_from_counts`'s shell estimates to the true mean background on the tuning
side's 24 background patterns (docs/benchmarks.md): where the object's intensity is less speckled than an
exponential (streaks, smooth fall-offs) the likelihood puts too little into ``b``. The estimate is divided by it."""

_LEVELS = 64
"""Background levels tried per shell, from 0 to the shell's mean count."""


def _radius(shape: tuple[int, ...]) -> np.ndarray:
    """Distance of every pixel from the centre ``n // 2`` per axis, pixels, float64
    (:func:`~cdi_dip.ensemble.fourier.centred_positions`)."""
    return np.sqrt(sum(axis**2 for axis in np.meshgrid(*centred_positions(shape), indexing="ij", sparse=True)))


def _log_factorials(top: int) -> np.ndarray:
    """``log(k!)`` for ``k = 0 .. top``."""
    return np.concatenate(([0.0], np.cumsum(np.log(np.arange(1, top + 1, dtype=np.float64)))))


def shell_likelihood(counts: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Log-likelihood of a shell's counts under ``Poisson(b) + Geometric(mean - b)`` for each level ``b``.

    Counts above :data:`CENSOR_COUNTS` times the median (at least :data:`CENSOR_COUNTS`) enter only as
    "at least that many": a few bright pixels (a streak crossing the shell, a hot pixel) say nothing about
    the background and would cost a long convolution.

    Parameters
    ----------
    counts : numpy.ndarray, int, shape ``(pixels,)``
        The shell's measured photons (non-negative).
    levels : numpy.ndarray, float, shape ``(levels,)``
        Background levels ``b``, photons per pixel, each below the counts' mean.

    Returns
    -------
    numpy.ndarray, float64, shape ``(levels,)``
    """
    cap = int(max(CENSOR_COUNTS, CENSOR_COUNTS * np.median(counts)))
    top = int(min(counts.max(), cap))
    histogram = np.bincount(np.minimum(counts, top), minlength=top + 1).astype(np.float64)
    censored = counts.max() >= cap
    k = np.arange(top + 1, dtype=np.float64)
    mean = float(counts.mean())
    log_fact = _log_factorials(top)
    size = 2 * top + 2
    out = np.empty(len(levels))
    for index, level in enumerate(levels):
        speckle = max(mean - level, _TINY)
        poisson = np.exp(-level + k * np.log(max(level, _TINY)) - log_fact) if level > 0 else (k == 0).astype(float)
        geometric = np.exp(k * np.log(speckle / (1 + speckle)) - np.log1p(speckle))
        pmf = np.fft.irfft(np.fft.rfft(poisson, size) * np.fft.rfft(geometric, size), size)[: top + 1]
        if censored:  # the last bin holds every count >= top: its probability is the tail's
            pmf[top] = 1.0 - float(pmf[:top].sum())
        out[index] = float(histogram @ np.log(np.maximum(pmf, 1e-300)))
    return out


def _shell_estimate(counts: np.ndarray) -> tuple[float, float]:
    """The most likely background of one shell and its spread (where the log-likelihood is within 1/2 of
    its maximum), photons per pixel."""
    levels = np.linspace(0.0, float(counts.mean()) * (1 - 1.0 / _LEVELS), _LEVELS)
    loglik = shell_likelihood(counts, levels)
    best = int(np.argmax(loglik))
    near = levels[loglik >= loglik[best] - 0.5]
    step = levels[1] - levels[0] if len(levels) > 1 else 1.0
    return float(levels[best]), max(float(near.max() - near.min()) / 2, step / 2)


def background_from_counts(counts: np.ndarray, valid: np.ndarray, *, shell_width_px: float = SHELL_WIDTH_PX
                           ) -> np.ndarray:
    """A radial background estimated from the counts alone (see the module text), before any object.

    Parameters
    ----------
    counts : numpy.ndarray, float, frame shape, centred
        Measured photons.
    valid : numpy.ndarray, bool, frame shape
        Measured pixels.
    shell_width_px : float
        Width of the shells, pixels.

    Returns
    -------
    numpy.ndarray, float32, frame shape
        The background, photons per pixel, divided by :data:`LOW_BIAS`; zero where no shell is dim and large
        enough to tell.
    """
    radius = _radius(counts.shape)
    measured = np.clip(np.rint(np.nan_to_num(np.asarray(counts, dtype=np.float64))), 0, None).astype(np.int64)
    centres, estimates, weights = [], [], []
    for low in np.arange(0.0, float(radius.max()) + shell_width_px, shell_width_px):
        shell = valid & (radius >= low) & (radius < low + shell_width_px)
        values = measured[shell]
        if values.size < SHELL_MIN_PIXELS or np.median(values) > SHELL_MAX_MEDIAN or values.max() == 0:
            continue
        level, spread = _shell_estimate(values)
        centres.append(float(radius[shell].mean()))
        estimates.append(level)
        weights.append(1.0 / spread ** 2)
    if not centres:
        return np.zeros(counts.shape, np.float32)
    centres_a, estimates_a, weights_a = map(np.asarray, (centres, estimates, weights))
    width = max(2 * shell_width_px, 0.1 * float(radius.max()))
    kernel = np.exp(-0.5 * ((centres_a[:, None] - centres_a[None, :]) / width) ** 2) * weights_a[None, :]
    smoothed = (kernel @ estimates_a) / kernel.sum(axis=1)
    log.debug("background from counts: shells at %s px: %s photons per pixel",
              np.array2string(centres_a, precision=1), np.array2string(smoothed, precision=2))
    return (np.interp(radius, centres_a, smoothed) / LOW_BIAS).astype(np.float32)


def subtracted(counts: np.ndarray, background: np.ndarray) -> np.ndarray:
    """``max(counts - background, 0)`` (float32): the counts a coherent model is fitted to under a known
    background (the modulus step's target, as PyNX's ``sqrt(max(n - b, 0))``)."""
    return np.clip(np.asarray(counts, dtype=np.float32) - background, 0.0, None).astype(np.float32)


__all__ = ["LOW_BIAS", "background_from_counts", "shell_likelihood", "subtracted"]
