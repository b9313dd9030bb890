"""What every solver takes and gives: one :class:`Problem`, one :class:`Solver` protocol.

A run is ``solve(problem, options, *, init, rng, on_iter) -> SolverOutput``:

- ``problem`` holds the measured data of the run on its device and its
  forward model, built once (:meth:`Problem.build`) and checked there;
- ``options`` is what the solver reads of the configuration (a
  :class:`~cdi_dip.solvers.projections.ProjectionRun` or a
  :class:`~cdi_dip.solvers.dip.DipRun`), made by the solver table
  (:data:`cdi_dip.solvers.SOLVERS`) from the :class:`~cdi_dip.config.RunConfig`;
- ``init`` makes the starting object (:mod:`cdi_dip.solvers.init`);
- ``rng`` is the run's random generator, on the problem's device;
- ``on_iter`` receives progress dictionaries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from ..errors import InvalidInputError
from ..coherence import blur_with
from ..metrics import data_metrics
from ..physics import FarField
from ..types import SolverOutput

IterCallback = Callable[[dict[str, Any]], None]
"""Progress callback: called with ``iteration``, ``total``, ``loss``... (each solver documents its keys)."""


@dataclass(frozen=True)
class Problem:
    """The measured data of one run on its device, and its forward model.

    Attributes
    ----------
    counts : torch.Tensor, float32, frame shape, centred
        Measured photons.
    fit : torch.Tensor, bool, frame shape, centred
        Pixels fitted (valid and not held out).
    free : torch.Tensor, bool, frame shape, centred
        Held-out pixels, never fitted (all False when none are held out).
    physics : FarField
        The far-field forward model of the frame.
    noise : str
        Noise model of validation and selection (``poisson``, ``gaussian``, ``amplitude``).
    """

    counts: torch.Tensor
    fit: torch.Tensor
    free: torch.Tensor
    physics: FarField
    noise: str = "poisson"

    @classmethod
    def build(cls, counts: torch.Tensor, fit: torch.Tensor, physics: FarField, *,
              free: torch.Tensor | None = None, noise: str = "poisson") -> Problem:
        """Check the arrays against the frame and make the problem.

        Parameters
        ----------
        counts : torch.Tensor, real, frame shape, centred
            Photons.
        fit : torch.Tensor, bool, frame shape
        physics : FarField
        free : torch.Tensor, bool, frame shape, optional
            Held-out pixels (default: none).
        noise : str

        Raises
        ------
        InvalidInputError
            Shapes or mask types that do not match the frame (what each
            solver needs of the counts, it checks itself).
        """
        if free is None:
            free = torch.zeros_like(fit, dtype=torch.bool)
        _check_arrays(counts, fit, free, physics)
        return cls(counts=counts.float(), fit=fit, free=free, physics=physics, noise=noise)

    @property
    def device(self) -> torch.device:
        return self.counts.device

    @property
    def held_out(self) -> torch.Tensor | None:
        """The free pixels, or None when there are none."""
        return self.free if bool(self.free.any()) else None

    def metrics(self, obj: np.ndarray, psf: np.ndarray | None = None) -> tuple[dict[str, float], np.ndarray]:
        """Data metrics of an object in the frame of the data, and its model intensities (host).

        Parameters
        ----------
        obj : numpy.ndarray, complex, frame shape, centred
        psf : numpy.ndarray, optional
            A run's partial-coherence kernel (:attr:`SolverOutput.psf`): the
            model intensity is blurred with it.

        Returns
        -------
        metrics : dict
            :func:`cdi_dip.metrics.data_metrics` under ``noise``.
        model : numpy.ndarray, float32, frame shape
            ``|F obj|**2`` (blurred by ``psf``).
        """
        model = self.physics.intensity(torch.from_numpy(np.ascontiguousarray(obj)).to(self.device))
        if psf is not None:
            model = blur_with(psf, model)
        figures = data_metrics(model, self.counts, self.fit, self.free, noise=self.noise)
        return figures, model.float().cpu().numpy()


def _check_arrays(counts: torch.Tensor, fit: torch.Tensor, free: torch.Tensor, physics: FarField) -> None:
    for name, array in (("counts", counts), ("valid", fit), ("free", free)):
        if tuple(array.shape) != physics.shape:
            raise InvalidInputError(f"{name} has shape {tuple(array.shape)} but the frame is {physics.shape}: "
                                    "pass arrays of the frame shape")
    if fit.dtype != torch.bool or free.dtype != torch.bool:
        raise InvalidInputError("valid and free must be boolean masks (True = use the pixel)")


class Initialiser(Protocol):
    """Makes the starting object of a run (see :mod:`cdi_dip.solvers.init`)."""

    def __call__(self, problem: Problem, support: torch.Tensor, *, rng: torch.Generator) -> torch.Tensor:
        """A complex64 object of the frame shape, centred, zero outside ``support`` (bool, centred)."""


class Solver(Protocol):
    """One run of a reconstruction method."""

    def __call__(self, problem: Problem, options: Any, *, init: Initialiser, rng: torch.Generator,
                 on_iter: IterCallback | None = None) -> SolverOutput:
        """Reconstruct the problem's object; Ctrl-C returns the best iterate, marked interrupted."""


__all__ = ["Initialiser", "IterCallback", "Problem", "Solver"]
