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
2D): ``K`` times the first pass, no challenge starts past it, and one that
started runs whole (:func:`challenge_running`: its candidates and its own
reconstruction's challenges; the budget in seconds still stops those). It
scales with the data and the machine as a fixed number of seconds does not:
on the 2D tuning half every challenger that won started within 1.75 times its
scan's first pass's work (one started inside another challenge runs with it).
It is counted in work, not seconds, so that it never changes a result: the
Fourier transforms of the frame done so far (:func:`count_work`, in voxels
transformed, each step of the double DIP's networks weighted as many
transforms), which a seed fixes as it fixes the result, where the seconds
depend on the machine's load (the same scan, run twice on two busy cores,
once tried its more starts and once did not). The first pass is the work
before the first challenge asked to start.

:func:`time_budget` starts the reconstruction's clock and work count, with
or without a budget (a reconstruction inside another keeps the outer clock,
count and the earlier deadline); :func:`budget_spent` says whether a
challenger may still start, and :func:`challenge_started` and
:func:`challenge_timing` give each challenge's record when it started and
how long it took, in seconds and in work, budget or not.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

log = logging.getLogger(__name__)


WORK_UNIT_VOXELS = 1e6
"""Work is recorded in millions of voxels transformed (one 1024x1024 FFT is 1.05)."""


@dataclass
class _Work:
    """What an outermost reconstruction and every reconstruction inside it share: the ``voxels``
    Fourier-transformed (and their equivalent in network steps) since it began, and the relative budget:
    ``factor`` times the first pass's work (None: none), its ``relative_limit`` (voxels) fixed when the first
    challenger asks to start."""

    factor: float | None = None
    voxels: float = 0.0
    relative_limit: float | None = None


@dataclass(frozen=True)
class _Budget:
    """An open reconstruction's clock: ``started`` (``time.monotonic``), the ``deadline`` past which no challenger
    starts (infinite without a budget), the budget asked for, in seconds (None: none), and the ``work`` done,
    shared with the reconstructions inside it."""

    started: float
    deadline: float
    seconds: float | None
    work: _Work


@dataclass(frozen=True)
class ChallengeStart:
    """When a challenge started: ``seconds`` and ``work`` (millions of voxels transformed) into the
    reconstruction."""

    seconds: float
    work: float


_BUDGET: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("cdi_dip_time_budget", default=None)
_IN_CHALLENGE: contextvars.ContextVar[int] = contextvars.ContextVar("cdi_dip_in_challenge", default=0)
"""How many challenges that started are running, one inside another (:func:`challenge_running`)."""


@contextlib.contextmanager
def time_budget(seconds: float | None, factor: float | None = None) -> Iterator[None]:
    """Start the reconstruction's clock and work count, with a budget of ``seconds`` (None: none) and of ``factor``
    times the first pass's work (None: none), for the code inside. Inside another reconstruction the outer clock,
    work count, first pass and relative budget go on, and the earlier of the two deadlines in seconds holds."""
    now = time.monotonic()
    deadline = math.inf if seconds is None else now + float(seconds)
    outer = _BUDGET.get()
    if outer is None:
        budget = _Budget(now, deadline, seconds, _Work(factor))
    elif deadline < outer.deadline:
        budget = dataclasses.replace(outer, deadline=deadline, seconds=seconds)
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


def count_work(voxels: float) -> None:
    """Add ``voxels`` transformed (or their equivalent) to the open reconstruction's work; nothing outside one.
    Called by every FFT of the forward model (:class:`cdi_dip.physics.FarField`) and every network step of the
    double DIP."""
    budget = _BUDGET.get()
    if budget is not None:
        budget.work.voxels += voxels


def budget_spent() -> bool:
    """Whether the open budget is spent (False where none is open): its deadline in seconds has passed, or the
    work done has reached the relative limit. Asked before each challenge; the first time, the relative limit is
    fixed at ``factor`` times the work so far (the first pass), so the first challenge always starts. Inside a
    challenge that started (:func:`challenge_running`) only the budget in seconds counts."""
    budget = _BUDGET.get()
    if budget is None:
        return False
    if time.monotonic() >= budget.deadline:
        return True
    work = budget.work
    if _IN_CHALLENGE.get() or work.factor is None:
        return False
    if work.relative_limit is None:
        work.relative_limit = work.factor * work.voxels
        return False
    return work.voxels >= work.relative_limit


def first_pass_goes_on() -> None:
    """The first pass is not over: a pass that brings back pixels (hot pixels found by the model) reconstructs the
    frame again, and the relative limit, fixed by a challenge of the pass it replaces, is fixed again by the
    first challenge of the new one (the measurement sees the kept pass's challenges only)."""
    budget = _BUDGET.get()
    if budget is not None and not _IN_CHALLENGE.get():
        budget.work.relative_limit = None


def challenge_started() -> ChallengeStart | None:
    """Where the (outermost) reconstruction is as a challenge starts: seconds (to 0.01 s) and work (millions of
    voxels transformed, to 4 significant digits) since it began; None outside one."""
    budget = _BUDGET.get()
    if budget is None:
        return None
    return ChallengeStart(round(time.monotonic() - budget.started, 2), _in_units(budget.work.voxels))


def challenge_timing(started: ChallengeStart | None) -> dict[str, float]:
    """A challenge's place in the reconstruction, for its record: ``started_s`` and ``started_work`` (from
    :func:`challenge_started` when it started), ``seconds`` and ``work`` (what it took to its decision); empty
    outside a reconstruction. A budget's effect can be read off a run without one: a challenger whose
    ``started_work`` is past ``K`` times the first challenge's would not have run under a relative budget."""
    now = challenge_started()
    if started is None or now is None:
        return {}
    return {"started_s": started.seconds, "seconds": round(now.seconds - started.seconds, 2),
            "started_work": started.work, "work": _in_units((now.work - started.work) * WORK_UNIT_VOXELS)}


def _in_units(voxels: float) -> float:
    """``voxels`` in millions, to 4 significant digits."""
    value = voxels / WORK_UNIT_VOXELS
    return float(f"{value:.4g}")


def not_tried(what: str) -> str:
    """The reason recorded for a challenger (``what``, for the log) that did not start because the budget was
    spent: ``"not tried: the time budget of 300 s was spent (--time-budget)"``, or for the relative budget
    ``"not tried: 3 times the first pass's work (41.2 M voxels transformed) was spent
    (--challenge-time-factor)"``."""
    budget = _BUDGET.get()
    if not _IN_CHALLENGE.get() and budget is not None and _relative_ran_out(budget):
        work = budget.work
        first = _in_units(work.relative_limit / work.factor)
        log.info("%g times the first pass's work (%g M voxels transformed) is spent: %s not tried", work.factor,
                 first, what)
        return (f"not tried: {work.factor:g} times the first pass's work ({first:g} M voxels transformed) was "
                "spent (--challenge-time-factor)")
    seconds = f" of {budget.seconds:g} s" if budget is not None and budget.seconds is not None else ""
    log.info("the time budget%s is spent: %s not tried", seconds, what)
    return f"not tried: the time budget{seconds} was spent (--time-budget)"


def _relative_ran_out(budget: _Budget) -> bool:
    """Whether ``budget``'s relative limit is what ended it (its deadline in seconds has not passed)."""
    work = budget.work
    return work.relative_limit is not None and work.voxels >= work.relative_limit and time.monotonic() < budget.deadline
