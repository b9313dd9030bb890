"""A time budget for one scan's reconstruction: challengers start only while it lasts.

A reconstruction is a first pass (the method ``cfg`` asks for, with ``auto``'s
comparison) and then challengers of its result: the partial-coherence models
of ``--psf compare``, a background, more starts and the frame margin, each a
whole reconstruction, each run only on a sign that it may win. On a pattern
that no model fits every one of them runs in turn: a 32x32 crystal of the
corpus's ``domains`` family took 14 s for its first pass and 390 s in all on
a CPU, a blurred 24^3 crystal of its ``beamline`` condition 905 s. In a shell
pipeline or a batch a scientist needs to know when a scan will be done. With
``cfg.time_budget_s`` the first pass, and the passes that bring back pixels
it lacked (hot pixels found by its model, a beamstop's rim), always run in
full; a challenger starts only while the seconds since the reconstruction
began are within the budget, and one already running finishes. What was not
tried is recorded, like any challenge the result did not meet.

:func:`time_budget` opens the budget for the duration of a reconstruction (a
reconstruction inside another keeps the outer, earlier deadline);
:func:`budget_spent` says whether a challenger may still start.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Budget:
    """An open budget: ``seconds`` from ``started`` (``time.monotonic``)."""

    seconds: float
    started: float

    @property
    def deadline(self) -> float:
        """When the budget is spent, on the ``time.monotonic`` clock."""
        return self.started + self.seconds


_BUDGET: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("cdi_dip_time_budget", default=None)


@contextlib.contextmanager
def time_budget(seconds: float | None) -> Iterator[None]:
    """Open a budget of ``seconds`` (None: none) for the code inside; a budget already open with an earlier
    deadline stays."""
    outer = _BUDGET.get()
    budget = None if seconds is None else _Budget(float(seconds), time.monotonic())
    if outer is not None and (budget is None or outer.deadline <= budget.deadline):
        budget = outer
    token = _BUDGET.set(budget)
    try:
        yield
    finally:
        _BUDGET.reset(token)


def budget_spent() -> bool:
    """Whether an open budget's deadline has passed (False where none is open)."""
    budget = _BUDGET.get()
    return budget is not None and time.monotonic() >= budget.deadline


def not_tried(what: str) -> str:
    """The reason recorded for a challenger (``what``, for the log) that did not start because the budget was
    spent: ``"not tried: the time budget of 300 s was spent (--time-budget)"``."""
    budget = _BUDGET.get()
    seconds = f" of {budget.seconds:g} s" if budget is not None else ""
    log.info("the time budget%s is spent: %s not tried", seconds, what)
    return f"not tried: the time budget{seconds} was spent (--time-budget)"
