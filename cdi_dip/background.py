"""An incoherent background under the pattern: air and sample-holder scattering, fluorescence, stray light.

The detector records ``n ~ Poisson(I + B)``: the object's coherent intensity
``I`` plus a smooth background ``B`` that no object explains. Left in, ``B``
raises the measured amplitudes where the object's own signal is weak (far
from the peak) and the reconstruction puts structure into the object to
explain it; at 2e4 photons at the peak and 3 background photons per pixel
that alone failed 4 of 6 tuning crystals (docs/benchmarks.md).

``B`` is modelled as a radial profile about the zero frequency: a sum of
tent functions of the distance from the centre (:func:`shell_basis`), with
non-negative weights fitted by maximum likelihood given a model ``I`` of
the object's intensity (:func:`fit_background`, the EM update of a Poisson
mixture: ``c_k <- c_k sum_i phi_ki n_i / (I_i + B_i) / sum_i phi_ki``).
Where ``I`` is far above ``B`` the update leaves ``B`` as it is; where the
two are comparable it moves ``B`` to what the counts say. A model ``I``
fitted with the background in place absorbs part of it, so the fit is a
lower estimate.

All arrays here are centred (zero frequency at ``n // 2`` per axis), as a
prepared :class:`~cdi_dip.types.Measurement` is.
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)

BACKGROUND_SHELLS = 6
"""Tent functions of the radius in :func:`shell_basis`, from the centre to the farthest corner."""

EM_STEPS = 200
"""EM updates of :func:`fit_background` (each costs one pass over the pixels per shell)."""

_TINY = 1e-9


def shell_basis(shape: tuple[int, ...], shells: int = BACKGROUND_SHELLS) -> np.ndarray:
    """Tent functions of the distance from the centre ``n // 2``: a partition of unity over the frame.

    Parameters
    ----------
    shape : tuple of int
        Frame shape (2D or 3D).
    shells : int
        Number of tents; their peaks are evenly spaced from the centre (0) to the farthest corner.

    Returns
    -------
    numpy.ndarray, float64, shape ``(shells,) + shape``
        Non-negative; summing over the first axis gives 1 at every pixel.
    """
    grids = np.meshgrid(*[np.arange(n) - n // 2 for n in shape], indexing="ij")
    radius = np.sqrt(sum(g.astype(np.float64) ** 2 for g in grids))
    scaled = radius / max(float(radius.max()), _TINY) * (shells - 1)
    nodes = np.arange(shells, dtype=np.float64).reshape((-1,) + (1,) * len(shape))
    return np.clip(1.0 - np.abs(scaled[None] - nodes), 0.0, None)


def fit_background(counts: np.ndarray, model: np.ndarray, fitted: np.ndarray, *,
                   shells: int = BACKGROUND_SHELLS, steps: int = EM_STEPS) -> np.ndarray:
    """The radial background that, added to ``model``, makes the fitted counts most likely (Poisson).

    Parameters
    ----------
    counts : numpy.ndarray, float, frame shape, centred
        Measured photons.
    model : numpy.ndarray, float, frame shape, centred
        The object's coherent intensity, photons (e.g. ``Result.model_intensity``).
    fitted : numpy.ndarray, bool, frame shape
        Pixels the fit may use (measured and not held out).
    shells, steps : int
        Tents of :func:`shell_basis` and EM updates.

    Returns
    -------
    numpy.ndarray, float32, frame shape
        The background, photons per pixel, non-negative (zero where no shell has a fitted pixel).
    """
    counts = np.asarray(counts, dtype=np.float64)
    model = np.clip(np.asarray(model, dtype=np.float64), 0.0, None)
    basis = shell_basis(counts.shape, shells)[:, fitted]
    measured, predicted = counts[fitted], model[fitted]
    coverage = basis.sum(axis=1)
    usable = coverage > _TINY
    weights = np.zeros(shells)
    excess = np.clip(measured - predicted, 0.0, None)
    weights[usable] = 0.5 * (basis[usable] @ excess) / coverage[usable] + _TINY
    for _ in range(steps):
        background = weights @ basis
        ratio = measured / np.maximum(predicted + background, _TINY)
        weights[usable] *= (basis[usable] @ ratio) / coverage[usable]
    full = np.tensordot(weights, shell_basis(counts.shape, shells), axes=1)
    log.debug("background: shell weights %s photons per pixel", np.array2string(weights, precision=3))
    return full.astype(np.float32)


def subtracted(counts: np.ndarray, background: np.ndarray) -> np.ndarray:
    """``max(counts - background, 0)`` (float32): the counts a coherent model is fitted to under a known
    background (the modulus step's target, as PyNX's ``sqrt(max(n - b, 0))``)."""
    return np.clip(np.asarray(counts, dtype=np.float32) - background, 0.0, None).astype(np.float32)


__all__ = ["BACKGROUND_SHELLS", "fit_background", "shell_basis", "subtracted"]
