"""Ctrl-C and SIGTERM while a result is being finished: record the signal, finish, then stop.

The solvers stop at a signal and return their best iterate. What follows
(aligning and averaging the runs, writing the files) must then finish, or a
signal there would throw every finished run away. Inside
:func:`interrupts_deferred` the first SIGINT or SIGTERM is only recorded
(``Deferral.requested``); the work goes on, and the caller marks its result
interrupted. A second signal raises :class:`KeyboardInterrupt` at once, so a
user who insists still stops the program (the writers then leave nothing
under a final name).

Only handlers that would raise :class:`KeyboardInterrupt` are replaced: the
default SIGINT handler and a Python function (the CLI's SIGTERM handler).
Ignored signals (pool workers ignore SIGINT) and the default SIGTERM action
(pool workers are ended with it) are left alone, as is any thread other than
the main one, where Python cannot install handlers.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

DEFERRED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass
class Deferral:
    """What happened inside :func:`interrupts_deferred`.

    Attributes
    ----------
    requested : bool
        A signal arrived (or had arrived before, ``already=True``): the
        result being finished is to be marked interrupted.
    """

    requested: bool = False


def _raises_keyboard_interrupt(handler: object) -> bool:
    """A handler that turns the signal into KeyboardInterrupt (not SIG_IGN, not SIG_DFL, not None)."""
    return callable(handler)


@contextmanager
def interrupts_deferred(*, already: bool = False) -> Iterator[Deferral]:
    """Run a block to its end although SIGINT or SIGTERM arrives; a second signal stops it.

    Parameters
    ----------
    already : bool
        The user has interrupted once already (the block is the short way
        out after an interrupt): any signal inside it raises at once.

    Yields
    ------
    Deferral
        ``requested`` is True after the block when a signal was recorded
        (or ``already``).
    """
    deferral = Deferral(requested=already)
    if threading.current_thread() is not threading.main_thread():
        yield deferral
        return

    def record(signum, frame):  # noqa: ARG001
        if deferral.requested:
            raise KeyboardInterrupt
        deferral.requested = True

    previous = {}
    for signum in DEFERRED_SIGNALS:
        handler = signal.getsignal(signum)
        if _raises_keyboard_interrupt(handler):
            previous[signum] = handler
            signal.signal(signum, record)
    try:
        yield deferral
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
