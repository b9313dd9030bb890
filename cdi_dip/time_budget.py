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

A budget may also be relative (``cfg.challenge_time_factor``, by default 3 in
2D): ``K`` times the first pass, the seconds before the first challenge
asked to start; no challenge starts past it, and one that started runs whole
(:func:`challenge_running`: its candidates and its own reconstruction's
challenges; the budget in seconds still stops those). It scales with the
data and the machine as a fixed number of seconds does not: on the 2D tuning
half every challenger that won started within 1.73 times its scan's first
pass.

:func:`time_budget` starts the reconstruction's clock, with or without a
budget (a reconstruction inside another keeps the outer clock and the earlier
deadline); :func:`budget_spent` says whether a challenger may still start,
and :func:`challenge_timing` gives each challenge's record when it started
and how long it took, budget or not.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass
class _Budget:
    """An open reconstruction's clock: ``started`` (``time.monotonic``), the ``deadline`` past which no challenger
    starts (infinite without a budget), the budget asked for, in seconds (None: none), and a relative one:
    ``factor`` times the first pass (None: none), its deadline fixed when the first challenger asks to start."""

    started: float
    deadline: float
    seconds: float | None
    factor: float | None = None
    relative_deadline: float | None = None


_BUDGET: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("cdi_dip_time_budget", default=None)
_IN_CHALLENGE: contextvars.ContextVar[int] = contextvars.ContextVar("cdi_dip_in_challenge", default=0)
"""How many challenges that started are running, one inside another (:func:`challenge_running`)."""


@contextlib.contextmanager
def time_budget(seconds: float | None, factor: float | None = None) -> Iterator[None]:
    """Start the reconstruction's clock, with a budget of ``seconds`` (None: none) and of ``factor`` times the
    first pass (None: none), for the code inside. Inside another reconstruction the outer clock, its first pass
    and its relative budget go on, and the earlier of the two deadlines in seconds holds."""
    now = time.monotonic()
    deadline = math.inf if seconds is None else now + float(seconds)
    outer = _BUDGET.get()
    if outer is None:
        budget = _Budget(now, deadline, seconds, factor)
    elif deadline < outer.deadline:
        budget = _Budget(outer.started, deadline, seconds, outer.factor, outer.relative_deadline)
    else:
        budget = outer
    token = _BUDGET.set(budget)
    try:
        yield
    finally:
        _BUDGET.reset(token)


@contextlib.contextmanager
def challenge_running() -> Iterator[None]:
    """Mark the code inside as a challenge that has started: a relative budget lets it finish whole (its
    candidates, and the challenges of its own reconstruction), as the measurement the budget was chosen on,
    ``benchmarks/time_budget_effect.py``, sees challenges whole; the budget in seconds still holds inside."""
    token = _IN_CHALLENGE.set(_IN_CHALLENGE.get() + 1)
    try:
        yield
    finally:
        _IN_CHALLENGE.reset(token)


def budget_spent() -> bool:
    """Whether the open budget's deadline has passed (False where none is open). Asked before each challenge;
    the first time, a relative budget's deadline is fixed at ``factor`` times the seconds so far (the first pass),
    so the first challenge always starts. Inside a challenge that started (:func:`challenge_running`) only the
    budget in seconds counts."""
    budget = _BUDGET.get()
    if budget is None:
        return False
    now = time.monotonic()
    if _IN_CHALLENGE.get():
        return now >= budget.deadline
    if budget.factor is not None and budget.relative_deadline is None:
        budget.relative_deadline = budget.started + budget.factor * (now - budget.started)
    relative = math.inf if budget.relative_deadline is None else budget.relative_deadline
    return now >= min(budget.deadline, relative)


def first_pass_goes_on() -> None:
    """The first pass is not over: a pass that brings back pixels (hot pixels found by the model) reconstructs the
    frame again, and the relative budget's deadline, fixed by a challenge of the pass it replaces, is fixed again
    by the first challenge of the new one (the measurement sees the kept pass's challenges only)."""
    budget = _BUDGET.get()
    if budget is not None and not _IN_CHALLENGE.get():
        budget.relative_deadline = None


def elapsed_s() -> float | None:
    """Seconds since the (outermost) reconstruction began, to 0.01 s; None outside one."""
    budget = _BUDGET.get()
    return None if budget is None else round(time.monotonic() - budget.started, 2)


def challenge_timing(started_s: float | None) -> dict[str, float]:
    """A challenge's place in the reconstruction's time, for its record: ``started_s`` (seconds after the
    reconstruction began, from :func:`elapsed_s` when it started) and ``seconds`` (how long it took to its
    decision); empty outside a reconstruction. A budget's effect can be read off a run without one: a
    challenger whose ``started_s`` is past the budget would not have run."""
    now = elapsed_s()
    if started_s is None or now is None:
        return {}
    return {"started_s": started_s, "seconds": round(now - started_s, 2)}


def not_tried(what: str) -> str:
    """The reason recorded for a challenger (``what``, for the log) that did not start because the budget was
    spent: ``"not tried: the time budget of 300 s was spent (--time-budget)"``, or for the relative budget
    ``"not tried: 3 times the first pass (41 s) was spent (--challenge-time-factor)"``."""
    budget = _BUDGET.get()
    if not _IN_CHALLENGE.get() and budget is not None and _relative_ran_out(budget):
        first = (budget.relative_deadline - budget.started) / budget.factor
        log.info("%g times the first pass (%.0f s) is spent: %s not tried", budget.factor, first, what)
        return f"not tried: {budget.factor:g} times the first pass ({first:.0f} s) was spent (--challenge-time-factor)"
    seconds = f" of {budget.seconds:g} s" if budget is not None and budget.seconds is not None else ""
    log.info("the time budget%s is spent: %s not tried", seconds, what)
    return f"not tried: the time budget{seconds} was spent (--time-budget)"


def _relative_ran_out(budget: _Budget) -> bool:
    """Whether ``budget``'s relative deadline is the one that passed (it comes before the one in seconds)."""
    return budget.relative_deadline is not None and budget.relative_deadline <= budget.deadline
