"""The solver table: the one place a :class:`~cdi_dip.config.Method` meets its implementation.

Every solver has the same signature (:class:`~cdi_dip.solvers.base.Solver`)::

    solve(problem, options, *, init, rng, on_iter=None) -> SolverOutput

A row of :data:`SOLVERS` says which function runs a method, what it reads of
the configuration (``options(cfg)``), how many random starts it gets when
none are asked for and how much device memory one run needs. A new solver is
one module and one row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..config import DEFAULT_RUNS, Method, RunConfig
from ..memory import estimate_projection_memory_bytes
from .base import Initialiser, IterCallback, Problem, Solver
from .choice import choose_method, decide_method
from .dip import DipRun, estimate_dip_memory_bytes, solve_dip
from .init import random_phases
from .projections import ProjectionRun, solve_projections
from ..learned.initialiser import NetRun, solve_net

@dataclass(frozen=True)
class SolverEntry:
    """One row of the solver table.

    Attributes
    ----------
    solve : Solver
    options : callable
        ``options(cfg)``: what the solver reads of a validated :class:`RunConfig`.
    runs : int
        Random starts when ``cfg.runs`` is not given.
    memory : callable
        ``memory(cfg, frame_shape)``: peak device bytes of one run.
    """

    solve: Solver
    options: Callable[[RunConfig], Any]
    runs: int
    memory: Callable[[RunConfig, Sequence[int]], int]


def _projection_memory(cfg: RunConfig, frame_shape: Sequence[int]) -> int:
    return estimate_projection_memory_bytes(frame_shape)


def _dip_memory(cfg: RunConfig, frame_shape: Sequence[int]) -> int:
    return int(estimate_dip_memory_bytes(frame_shape, cfg))


def _projection_entry(method: Method) -> SolverEntry:
    return SolverEntry(solve_projections, ProjectionRun.from_config, DEFAULT_RUNS[method], _projection_memory)


SOLVERS: dict[Method, SolverEntry] = {
    Method.DIP: SolverEntry(solve_dip, DipRun.from_config, DEFAULT_RUNS[Method.DIP], _dip_memory),
    Method.HIO: _projection_entry(Method.HIO),
    Method.RAAR: _projection_entry(Method.RAAR),
    Method.ER: _projection_entry(Method.ER),
    Method.NET: SolverEntry(solve_net, NetRun.from_config, DEFAULT_RUNS[Method.NET], _projection_memory),
}
"""Every method that runs (``auto`` is resolved to one of these first)."""


def estimate_memory_bytes(cfg: RunConfig, frame_shape: Sequence[int]) -> int:
    """Peak device memory of one run of ``cfg.method`` on a frame, in bytes (the ``memory`` of its row).

    Parameters
    ----------
    cfg : RunConfig
        With a concrete method (not ``auto``).
    frame_shape : sequence of int

    Returns
    -------
    int
        :func:`cdi_dip.memory.estimate_projection_memory_bytes` for ER, HIO and RAAR;
        :func:`cdi_dip.solvers.dip.estimate_dip_memory_bytes` for the DIP.
    """
    return int(solver_entry(cfg.method).memory(cfg, frame_shape))


def solver_entry(method: Method) -> SolverEntry:
    """The row of ``method``; ``auto`` has none (choose the method first)."""
    try:
        return SOLVERS[Method(method)]
    except KeyError:
        raise ValueError(f"no solver for method {Method(method).value!r}: resolve 'auto' first") from None


__all__ = ["SOLVERS", "Initialiser", "IterCallback", "Problem", "Solver", "SolverEntry", "choose_method", "decide_method",
           "estimate_memory_bytes", "random_phases", "solver_entry"]
