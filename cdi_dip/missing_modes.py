"""Modes of the object's support that a masked centre (a beamstop) hides.

Pixels excluded around the zero frequency remove the lowest spatial
frequencies. An object confined to a support ``S`` is still determined by the
other pixels, except along the modes of ``S`` whose Fourier power falls almost
entirely inside the masked region: the counts constrain them only weakly, and
the support alone leaves them nearly free (Thibault et al. 2006 call them
unconstrained modes). Their number follows from the eigenvalues of
``G = A A^H``, where ``A`` maps an object on ``S`` to its unitary Fourier
transform at the masked frequencies ``k_m``::

    G[m, m'] = (1/N) sum_{r in S} exp(-2 pi i (k_m - k_m') . r / N) = FFT(S)[k_m - k_m'] / N

Each eigenvalue is the fraction of one support mode's power that the mask
hides (0 to 1); their sum is ``M |S| / N`` for ``M`` masked pixels. A shift
or twin of the support leaves them unchanged, so the aligned support of a
result serves.

On the corpus's simulated patterns behind a masked beamstop
(``benchmarks/missing_modes.py``, docs/benchmarks.md) every failure had
hidden modes (more than :data:`HIDDEN_FRACTION` of their power masked) in
the written support, and most cases with hidden modes failed, crystals and
real specimens alike; HIO given the true support, held fixed for ten times
its iterations, rescued few of them.

References
----------
P. Thibault, V. Elser, C. Jacobsen, D. Shapiro, D. Sayre, "Reconstruction of a
yeast cell from X-ray diffraction data", Acta Cryst. A 62, 248 (2006).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .support import MISSING_CENTRE_MIN_RADIUS_PX, missing_centre_radius_px

log = logging.getLogger(__name__)

HIDDEN_FRACTION = 0.9
"""A support mode counts as hidden when the mask holds more than this fraction of its Fourier power."""

REGION_RADIUS_FACTOR = 2.0
"""Masked pixels within this many missing-centre radii (plus one pixel) of the zero frequency are
counted: a beamstop and its holder's root, not a detector gap across the frame."""

MAX_MASKED_PIXELS = 2048
"""At most this many masked pixels, the nearest to the zero frequency, enter ``G`` (a 64 MB matrix)."""


@dataclass(frozen=True)
class MissingModes:
    """The support modes a masked centre hides.

    Attributes
    ----------
    masked_pixels : int
        Masked pixels (voxels) counted around the zero frequency.
    centre_radius_px : float
        Distance from the zero frequency to the nearest valid pixel, pixels.
    support_voxels : int
        Voxels of the support.
    hidden : int
        Modes with more than :data:`HIDDEN_FRACTION` of their power masked.
    largest_fraction : float
        The most hidden mode's masked fraction of power, 0-1.
    """

    masked_pixels: int
    centre_radius_px: float
    support_voxels: int
    hidden: int
    largest_fraction: float

    def summary(self) -> dict[str, Any]:
        """Plain data for ``summary.json``."""
        return {"masked_pixels": self.masked_pixels, "centre_radius_px": round(self.centre_radius_px, 2),
                "support_voxels": self.support_voxels, "hidden": self.hidden,
                "hidden_fraction_threshold": HIDDEN_FRACTION,
                "largest_fraction": round(self.largest_fraction, 6)}


def _offsets_from_centre(shape: tuple[int, ...]) -> np.ndarray:
    """Offset of every pixel from the frame centre (index ``n // 2``), pixels; shape ``shape + (d,)``."""
    axes = [np.arange(n) - n // 2 for n in shape]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)


def masked_centre_frequencies(valid: np.ndarray) -> tuple[np.ndarray, float]:
    """The masked pixels around the zero frequency, as frequency offsets.

    Parameters
    ----------
    valid : numpy.ndarray, bool, frame shape, centred
        True where the counts are used.

    Returns
    -------
    offsets : numpy.ndarray, int, shape (M, d)
        Frequency offsets (pixels) of the masked pixels within
        :data:`REGION_RADIUS_FACTOR` missing-centre radii plus one pixel, the
        nearest :data:`MAX_MASKED_PIXELS`; empty when the centre is measured.
    radius_px : float
        Distance from the zero frequency to the nearest valid pixel.
    """
    valid = np.asarray(valid, dtype=bool)
    radius = missing_centre_radius_px(torch.from_numpy(valid))
    if radius < MISSING_CENTRE_MIN_RADIUS_PX:
        return np.zeros((0, valid.ndim), dtype=np.int64), radius
    offsets = _offsets_from_centre(valid.shape)
    distance = np.sqrt(np.sum(offsets.astype(np.float64) ** 2, axis=-1))
    region = ~valid & (distance <= REGION_RADIUS_FACTOR * radius + 1)
    chosen = offsets[region]
    order = np.argsort(distance[region], kind="stable")[:MAX_MASKED_PIXELS]
    return chosen[order], radius


def _frequency_gram(spectrum: np.ndarray, points: np.ndarray) -> np.ndarray:
    """``spectrum[p_i - p_j]`` (indices wrapped) for every pair of ``points`` (shape (P, d)): a P x P matrix."""
    differences = points[:, None, :] - points[None, :, :]
    index = tuple(np.mod(differences[..., axis], n) for axis, n in enumerate(spectrum.shape))
    return spectrum[index]


def wrapped_frequencies(frequencies: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """Array indices (FFT order, wrapped) of frequency offsets ``frequencies`` (shape (M, d)) in a frame."""
    return tuple(np.mod(frequencies[:, axis], n) for axis, n in enumerate(shape))


def smaller_gram(support: np.ndarray, frequencies: np.ndarray) -> tuple[np.ndarray, bool]:
    """The smaller of ``G = A A^H`` (masked frequencies) and ``A^H A`` (support pixels).

    Both have the same nonzero eigenvalues, the masked fractions of power of
    the support's modes. ``A^H A`` (``[s, s'] = (1/N) sum_m exp(2 pi i k_m .
    (r_s - r_s') / N)``) is built when the support has fewer pixels; its
    eigenvectors are then the modes themselves over ``np.argwhere(support)``.

    Parameters
    ----------
    support : numpy.ndarray, bool, frame shape
    frequencies : numpy.ndarray, int, shape (M, d)
        Masked frequency offsets from the zero frequency, pixels.

    Returns
    -------
    gram : numpy.ndarray, complex128, square
    over_support : bool
        True when ``gram`` is ``A^H A`` (over the support's pixels).
    """
    points = np.argwhere(support)
    if len(points) < len(frequencies):
        masked = np.zeros(support.shape)
        masked[wrapped_frequencies(frequencies, support.shape)] = 1.0
        return _frequency_gram(np.fft.ifftn(masked), points), True
    return _frequency_gram(np.fft.fftn(support.astype(np.float64)) / support.size, frequencies), False


def hidden_fractions(support: np.ndarray, frequencies: np.ndarray) -> np.ndarray:
    """Eigenvalues of ``G``: the masked fraction of power of each support mode, largest first.

    ``G`` is M x M; its nonzero eigenvalues are those of the |S| x |S| matrix
    ``A^H A``, which is built instead when the support is the smaller set
    (:func:`smaller_gram`).

    Parameters
    ----------
    support : numpy.ndarray, bool, frame shape
        The object's support (any placement: a shift or twin changes nothing).
    frequencies : numpy.ndarray, int, shape (M, d)
        Masked frequency offsets from the zero frequency, pixels.

    Returns
    -------
    numpy.ndarray, float64, shape (min(M, |S|),)
        Fractions 0-1, descending (the other eigenvalues of ``G`` are 0).
    """
    support = np.asarray(support, dtype=bool)
    if len(frequencies) == 0 or not support.any():
        return np.zeros(0)
    gram, _ = smaller_gram(support, frequencies)
    return np.clip(np.linalg.eigvalsh(gram)[::-1], 0.0, 1.0)


def missing_modes(valid: np.ndarray, support: np.ndarray) -> MissingModes | None:
    """How many modes of ``support`` the masked centre of ``valid`` hides; None when the centre is measured.

    Parameters
    ----------
    valid : numpy.ndarray, bool, frame shape, centred
        True where the counts are used.
    support : numpy.ndarray, bool, frame shape
        The object's support.

    Returns
    -------
    MissingModes or None

    Raises
    ------
    ValueError
        ``valid`` and ``support`` of different shapes.
    """
    if np.shape(valid) != np.shape(support):
        raise ValueError(f"mask {np.shape(valid)} and support {np.shape(support)} must share the frame")
    frequencies, radius = masked_centre_frequencies(valid)
    if len(frequencies) == 0 or not np.asarray(support).any():
        return None
    fractions = hidden_fractions(support, frequencies)
    modes = MissingModes(masked_pixels=len(frequencies), centre_radius_px=radius,
                         support_voxels=int(np.count_nonzero(support)),
                         hidden=int(np.count_nonzero(fractions > HIDDEN_FRACTION)),
                         largest_fraction=float(fractions[0]) if len(fractions) else 0.0)
    log.info("masked centre: %d px within radius %.1f px hide %d support modes (largest fraction %.4f)",
             modes.masked_pixels, radius, modes.hidden, modes.largest_fraction)
    return modes


def missing_modes_warning(modes: MissingModes | None) -> str | None:
    """A warning when the masked centre hides at least one support mode, else None.

    Chosen on the corpus's tuning half (docs/benchmarks.md): every failure
    behind a masked beamstop had hidden modes, with or without positivity,
    and most cases with hidden modes failed.

    Parameters
    ----------
    modes : MissingModes or None
    """
    if modes is None or modes.hidden == 0:
        return None
    return (f"the masked centre ({modes.masked_pixels} px, radius {modes.centre_radius_px:.1f} px) hides "
            f"{modes.hidden} support mode(s) (over {HIDDEN_FRACTION:.0%} of their power masked): the lowest "
            "frequencies are barely measured, so the object's shape and phase may be wrong; measure the centre "
            "(a shorter exposure or an attenuator) or mask fewer pixels there")
