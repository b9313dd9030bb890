"""Solver registry: each :class:`~cdi_dip.config.Method` maps to one function.

Every solver has the same signature::

    solve(counts, valid, physics, cfg, *, generator, free=None, on_iter=None) -> SolverOutput

with ``counts`` (float32 photons) and ``valid``/``free`` (bool) centred tensors
of the frame shape on the target device.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from ..config import Method
from ..types import SolverOutput

_REGISTRY: dict[Method, str] = {
    Method.DIP: "cdi_dip.solvers.dip:solve_dip",
    Method.HIO: "cdi_dip.solvers.projections:solve_projections",
    Method.RAAR: "cdi_dip.solvers.projections:solve_projections",
    Method.ER: "cdi_dip.solvers.projections:solve_projections",
}


def get_solver(method: Method) -> Callable[..., SolverOutput]:
    """The solve function of ``method`` (imported on first use)."""
    module_name, function_name = _REGISTRY[Method(method)].split(":")
    return getattr(importlib.import_module(module_name), function_name)


__all__ = ["get_solver"]
