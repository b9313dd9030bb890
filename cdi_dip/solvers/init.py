"""Starting objects of a run: the initialiser seam.

An initialiser is any function ``init(problem, support, *, rng) -> object``
(:class:`~cdi_dip.solvers.base.Initialiser`): given the run's
:class:`~cdi_dip.solvers.base.Problem` and a first support (bool, frame
shape, centred), it returns a complex64 object of the frame shape, centred
and zero outside the support. The projection solvers start from it, and so
does every run of the double DIP's warm start; a caller chooses one with the
``init`` argument of :func:`cdi_dip.reconstruction.reconstruct` (a learned
network, a previous result...).
"""

from __future__ import annotations

import numpy as np
import torch

from .base import Problem


def measured_amplitude(problem: Problem) -> torch.Tensor:
    """``sqrt(counts)`` on the fitted pixels, 0 elsewhere (float32, frame shape, centred)."""
    zero = torch.zeros((), device=problem.device)
    return torch.where(problem.fit, problem.counts.clamp_min(0).sqrt(), zero)


def random_phases(problem: Problem, support: torch.Tensor, *, rng: torch.Generator) -> torch.Tensor:
    """The measured amplitudes with uniform random phases, back in object space, inside ``support``.

    The phases are drawn in FFT order (as the solvers iterate), so that a
    seed gives the same start whatever layout the caller uses.

    Parameters
    ----------
    problem : Problem
    support : torch.Tensor, bool, frame shape, centred
    rng : torch.Generator
        On the problem's device.

    Returns
    -------
    torch.Tensor, complex64, frame shape, centred
    """
    physics = problem.physics
    amplitude = physics.to_fft_order(measured_amplitude(problem))
    phase = torch.rand(amplitude.shape, generator=rng, device=rng.device).to(amplitude.device) * (2 * torch.pi)
    obj = physics.ifft(torch.polar(amplitude, phase))
    obj = torch.where(physics.to_fft_order(support), obj, torch.zeros((), dtype=obj.dtype, device=obj.device))
    return physics.to_centred(obj).to(torch.complex64)


class StartFrom:
    """Start every run from one given object on its own support: a previous result, to refine.

    The projection solvers take :meth:`initial_support` in place of the
    autocorrelation's (:func:`~cdi_dip.solvers.projections.solve_projections`).

    Parameters
    ----------
    obj : numpy.ndarray, complex, frame shape, centred
        The starting object, in any position: its Fourier intensity is what
        the run will fit, so a written (aligned) object must first be moved
        back onto its pattern (:func:`cdi_dip.ensemble.restart_object`).
    support : numpy.ndarray, bool, frame shape, centred
    """

    def __init__(self, obj: np.ndarray, support: np.ndarray):
        if obj.shape != support.shape:
            raise ValueError(f"object {obj.shape} and support {support.shape} differ in shape")
        self._obj = np.ascontiguousarray(obj, dtype=np.complex64)
        self._support = np.ascontiguousarray(support, dtype=bool)

    def initial_support(self, problem: Problem) -> torch.Tensor:
        """The object's support (bool, frame shape, centred, on the problem's device)."""
        return torch.from_numpy(self._support).to(problem.device)

    def __call__(self, problem: Problem, support: torch.Tensor, *, rng: torch.Generator) -> torch.Tensor:
        """The object inside ``support`` (complex64, frame shape, centred); ``rng`` is not used."""
        obj = torch.from_numpy(self._obj).to(problem.device)
        return torch.where(support, obj, torch.zeros((), dtype=obj.dtype, device=obj.device))


__all__ = ["StartFrom", "measured_amplitude", "random_phases"]
