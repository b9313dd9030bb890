"""The projection loop, once: ``x <- U_alg(x, P_M x, S)`` for every step of a plan.

Every projection iteration in the tool runs here: the projection solvers
(:func:`cdi_dip.solvers.projections.solve_projections`), the double DIP's
warm start (:mod:`cdi_dip.solvers.dip_warmstart`) and its error-reduction
polish. Each iteration is two FFTs and two fused elementwise passes of a
kernel backend (:mod:`cdi_dip.solvers.fused`); what differs between callers
is how the support evolves (:class:`SupportRule`) and what they watch
(``on_iteration``).

The pure update functions (:func:`~cdi_dip.solvers.projections.er_update`,
:func:`~cdi_dip.solvers.projections.hio_update`, ...) stay as the reference
the kernels are tested against.

References
----------
J. R. Fienup, Appl. Opt. 21, 2758 (1982) (ER, HIO).
D. R. Luke, Inverse Problems 21, 37 (2005) (RAAR).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import torch

from ..coherence import CoherentModulus
from ..physics import FarField
from .fused import Backend, ModulusTarget, outside_coefficients, positivity_mode
from .hidden_modes import HiddenModeStep


class SupportRule(Protocol):
    """How the support evolves: ``current`` is used by the next update; ``after`` may replace it."""

    current: torch.Tensor

    def after(self, iteration: int, x: torch.Tensor) -> None:
        """Called after iteration ``iteration`` (1-based) with the new iterate ``x`` (FFT order)."""


@dataclass
class FixedSupport:
    """A support that never changes (bool, frame shape, FFT order)."""

    current: torch.Tensor

    def after(self, iteration: int, x: torch.Tensor) -> None:
        del iteration, x


@dataclass
class PlanState:
    """Where a plan stopped.

    Attributes
    ----------
    x : torch.Tensor, complex64, frame shape, FFT order
        The last complete iterate.
    iterations : int
        Iterations done.
    interrupted : bool
        Ctrl-C (``KeyboardInterrupt``) stopped the plan; ``x`` is the last
        complete iterate.
    """

    x: torch.Tensor
    iterations: int
    interrupted: bool = False


def run_plan(x: torch.Tensor, steps: Iterable, target: ModulusTarget, physics: FarField, support: SupportRule, *,
             kernels: Backend, beta: float, positivity: bool = False,
             on_iteration: Callable[[int, str, torch.Tensor], None] | None = None,
             coherence: CoherentModulus | None = None, hidden_modes: HiddenModeStep | None = None) -> PlanState:
    """Run a plan of ER, HIO and RAAR steps from ``x``.

    Parameters
    ----------
    x : torch.Tensor, complex64, frame shape, FFT order, contiguous
        The starting object (not modified).
    steps : iterable of Step
        The plan (``algorithm`` in ER, HIO, RAAR and ``iterations``).
    target : ModulusTarget
        Measured magnitudes and the pixels they are imposed on (FFT order).
    physics : FarField
    support : SupportRule
        Its ``current`` support (bool, FFT order) is imposed by each update;
        ``after`` is called after every iteration.
    kernels : Backend
        The fused steps (:func:`cdi_dip.solvers.fused.select_backend`).
    beta : float
        HIO feedback / RAAR relaxation.
    positivity : bool
        ``Re x >= 0`` inside the support (:func:`~cdi_dip.solvers.fused.positivity_mode`).
    on_iteration : callable, optional
        ``(iteration, algorithm, x)`` after ``support.after``; may raise
        ``KeyboardInterrupt`` to stop.
    coherence : CoherentModulus, optional
        Partial coherence: the modulus step fits the blurred intensity
        (:mod:`cdi_dip.coherence`) instead of the backend's coherent one.
    hidden_modes : HiddenModeStep, optional
        Behind a masked centre: the modulus step taken in full along the
        support's hidden modes (:mod:`cdi_dip.solvers.hidden_modes`).

    Returns
    -------
    PlanState
        Ctrl-C stops the plan between iterations and is reported, not raised.
    """
    iteration = 0
    try:
        for step in steps:
            coefficients = outside_coefficients(step.algorithm, beta)
            mode = positivity_mode(step.algorithm, positivity)
            for _ in range(step.iterations):
                field = physics.fft(x)
                if coherence is None:
                    field = kernels.project_modulus_(field, target)
                else:
                    field = coherence.project_(field, target.amplitude, target.valid)
                projected = physics.ifft(field)
                del field
                if hidden_modes is not None:
                    projected = hidden_modes.apply(projected, x, support.current)
                x = kernels.update_(projected, x, support.current, coefficients, mode)
                del projected
                iteration += 1
                support.after(iteration, x)
                if on_iteration is not None:
                    on_iteration(iteration, step.algorithm, x)
    except KeyboardInterrupt:
        return PlanState(x, iteration, interrupted=True)
    return PlanState(x, iteration)


__all__ = ["FixedSupport", "PlanState", "SupportRule", "run_plan"]
