"""A full step along the support modes that a masked centre hides.

Behind a masked beamstop some modes of the support ``S`` put almost all their
Fourier power on masked pixels (:mod:`cdi_dip.missing_modes`). The modulus
projection leaves masked pixels unchanged, so along a mode ``v`` whose masked
fraction is ``g`` it moves the iterate by only ``1 - g`` of the residual's
component along ``v``: with ``g = 0.99`` a hundred times too little. ER and
HIO then take thousands of iterations to move along these modes, and in the
default plan they keep whatever values the random start gave them.

For a fixed support and fixed far-field phases the modulus step is the
least-squares fit ``min ||M F x - M t||`` over ``x`` on ``S`` (``M`` the
imposed pixels), and in the eigenbasis of ``S F^H (1 - M) F S`` its normal
matrix is diagonal with entries ``1 - g``. :class:`HiddenModeStep` therefore
divides the step's component along every mode with ``g`` above
:data:`MODE_FRACTION` by ``max(1 - g, floor)``: the exact least-squares step
along those modes, capped at ``1 / floor`` so that the counting noise leaking
into them is not amplified without bound.

The modes are those of :func:`cdi_dip.missing_modes.hidden_fractions`, from
the smaller of its two Gram matrices (:func:`cdi_dip.missing_modes.smaller_gram`:
over the masked pixels near the zero frequency, each eigenvector ``u`` taken
to the object by ``A^H u``, or over the support's pixels), recomputed
whenever the support changes (a shrinkwrap update).

Measured on the corpus's tuning half (docs/benchmarks.md, "A full step along
the hidden modes"): HIO behind a masked beamstop, 2D quick frames, 48 cases:
median error 0.654 -> 0.337, failures 34 -> 26; 3D 0.104 -> 0.050. Under
positivity (real specimens) it made cells worse and, with a cap of 1000,
diverged, so :func:`cdi_dip.solvers.projections.solve_projections` uses it
only without positivity.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..missing_modes import masked_centre_frequencies, smaller_gram, wrapped_frequencies
from ..physics import FarField

if TYPE_CHECKING:
    from ..coherence import PartialCoherence

log = logging.getLogger(__name__)

MODE_FRACTION = 0.5
"""Support modes with more than this fraction of their Fourier power masked get the full step."""

MAX_EIGENPROBLEM = 1024
"""Above this many masked pixels *and* support pixels the modes are not built (the step is plain): the
eigenproblem costs the cube of the smaller count at every shrinkwrap update (3.3 s at 2048 on one CPU
core in single precision, :func:`_eigh`; 3D frames behind a large beamstop)."""


_MODES_PER_FFT = 8
"""Modes taken to the object in one batched inverse FFT."""


def _eigh(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (ascending, float64) and eigenvectors (columns, complex128) of a Hermitian matrix, by torch.

    Diagonalised in single precision: the modes are applied in complex64, and the masked fractions (in
    [0, 1]) are needed to well within :data:`MODE_FRACTION`'s and the floor's scale, where single precision
    is accurate to about 1e-6. On one CPU core it is 2-2.6 times faster than double precision (698 x 698:
    0.14 s against 0.38 s; 2048 x 2048: 3.3 s against 7.1 s), and this eigenproblem is most of a 3D HIO
    run's time behind a masked centre (docs/benchmarks.md, "Where HIO's time goes behind a masked centre
    in 3D").
    """
    single = torch.from_numpy(np.ascontiguousarray(matrix)).to(torch.complex64)
    values, vectors = torch.linalg.eigh(single)
    return values.double().numpy(), vectors.to(torch.complex128).numpy()


class HiddenModeStep:
    """Rescale the modulus step along the support's hidden modes (FFT order throughout).

    Parameters
    ----------
    frequencies : numpy.ndarray, int, shape (M, d)
        Masked frequency offsets from the zero frequency, pixels
        (:func:`cdi_dip.missing_modes.masked_centre_frequencies`).
    floor : float
        Smallest ``1 - g`` divided by (0-1): the step along a mode is at most
        ``1 / floor`` times the plain one.

    Attributes
    ----------
    modes_used : int
        Hidden modes of the last support seen.
    fractions : numpy.ndarray, float64, shape (modes_used,)
        Their masked fractions of power ``g``, ascending.
    modes : torch.Tensor or None, complex64, shape (modes_used, support pixels)
        The modes, orthonormal, over the support's pixels in ``numpy.nonzero`` order.
    """

    def __init__(self, frequencies: np.ndarray, floor: float):
        if not 0.0 < floor <= 1.0:
            raise ValueError(f"floor must be in (0, 1], got {floor}")
        self.frequencies = frequencies
        self.floor = floor
        self.modes_used = 0
        self.fractions = np.zeros(0)
        self._for_support: torch.Tensor | None = None
        self._index: tuple[torch.Tensor, ...] = ()
        self.modes: torch.Tensor | None = None
        self._extra_gain: torch.Tensor | None = None

    @classmethod
    def for_run(cls, valid: torch.Tensor, physics: FarField, floor: float, *, positivity: bool,
                coherence: PartialCoherence | None) -> HiddenModeStep | None:
        """The step a projection run takes (:meth:`build`), or None where it is not used: ``floor`` 0 (switched
        off), under positivity (it made cells worse and could diverge) or with a partial-coherence kernel
        (``coherence``; a model integrating the intensity over the pixels alone counts as coherent)."""
        partially_coherent = coherence is not None and not coherence.pixels_only
        if floor <= 0 or positivity or partially_coherent:
            return None
        return cls.build(valid, physics, floor)

    @classmethod
    def build(cls, valid: torch.Tensor, physics: FarField, floor: float) -> HiddenModeStep | None:
        """The step for a frame whose imposed pixels are ``valid`` (FFT order); None when the centre is measured."""
        frequencies, _ = masked_centre_frequencies(physics.to_centred(valid).cpu().numpy())
        if len(frequencies) == 0:
            return None
        return cls(frequencies, floor)

    def _rebuild(self, support: torch.Tensor) -> None:
        """Modes of ``support`` (bool, FFT order) with a masked fraction above :data:`MODE_FRACTION`."""
        self._for_support = support
        inside = support.cpu().numpy()
        self.modes = None
        self.modes_used = 0
        self.fractions = np.zeros(0)
        points = np.nonzero(inside)
        size = min(len(points[0]), len(self.frequencies))
        if size == 0:
            return
        if size > MAX_EIGENPROBLEM:
            log.debug("hidden modes not rebuilt: %d x %d eigenproblem over the limit", size, size)
            return
        fractions, modes = self._eigenpairs(inside, points)
        chosen = fractions > MODE_FRACTION
        if not chosen.any():
            return
        device = support.device
        self._index = tuple(torch.from_numpy(p).to(device) for p in points)
        self.modes = torch.from_numpy(modes[chosen]).to(torch.complex64).to(device)
        self.fractions = fractions[chosen]
        self.modes_used = int(chosen.sum())
        gain = 1.0 / np.maximum(1.0 - self.fractions, self.floor) - 1.0
        self._extra_gain = torch.from_numpy(gain).to(torch.complex64).to(device)
        log.debug("full step along %d hidden support modes (masked fractions %.3f-%.5f)", self.modes_used,
                  self.fractions.min(), self.fractions.max())

    def _eigenpairs(self, inside: np.ndarray, points: tuple[np.ndarray, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Masked fractions (ascending) and unit modes over the support's pixels, shape (K, pixels).

        The smaller Gram matrix is diagonalised (:func:`cdi_dip.missing_modes.smaller_gram`): over the
        support its eigenvectors are the modes; over the masked pixels an
        eigenvector ``u`` gives the mode ``A^H u`` (an inverse FFT). The
        eigenproblem runs in torch, within the run's thread limit (NumPy's
        LAPACK ignores it and, beside other work, took seconds for a 197 x 197
        matrix).
        """
        gram, over_support = smaller_gram(inside, self.frequencies)
        fractions, vectors = _eigh(gram)
        if over_support:
            return fractions, vectors.T
        shape = inside.shape
        modes = np.zeros((len(fractions), len(points[0])), dtype=np.complex128)
        hidden = np.nonzero(fractions > MODE_FRACTION)[0]
        wrapped = tuple(torch.from_numpy(w) for w in wrapped_frequencies(self.frequencies, shape))
        pixels = tuple(torch.from_numpy(p) for p in points)
        for first in range(0, len(hidden), _MODES_PER_FFT):
            batch = hidden[first:first + _MODES_PER_FFT]
            spectra = torch.zeros((len(batch),) + shape, dtype=torch.complex128)
            spectra[(slice(None),) + wrapped] = torch.from_numpy(vectors[:, batch].T)
            found = torch.fft.ifftn(spectra, dim=tuple(range(1, len(shape) + 1)))  # A^H u, up to a constant
            found = found[(slice(None),) + pixels]
            modes[batch] = (found / torch.linalg.vector_norm(found, dim=1, keepdim=True)).numpy()
        return fractions, modes

    def apply(self, projected: torch.Tensor, x: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
        """``projected`` with the step ``projected - x`` rescaled along the hidden modes of ``support``.

        Parameters
        ----------
        projected : torch.Tensor, complex64, frame shape, FFT order
            ``P_M x``, the modulus projection of the iterate (modified in place).
        x : torch.Tensor, complex64, frame shape, FFT order
            The iterate.
        support : torch.Tensor, bool, frame shape, FFT order
            The support the next update imposes (the modes are rebuilt when it is another tensor).

        Returns
        -------
        torch.Tensor
            ``projected``, changed only on the support.
        """
        if support is not self._for_support:
            self._rebuild(support)
        if self.modes is None:
            return projected
        step = projected[self._index] - x[self._index]
        along = self.modes.conj() @ step
        projected[self._index] += (along * self._extra_gain) @ self.modes
        return projected


__all__ = ["HiddenModeStep", "MAX_EIGENPROBLEM", "MODE_FRACTION"]
