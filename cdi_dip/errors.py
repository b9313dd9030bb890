"""Domain exceptions.

The CLI maps :class:`InvalidInputError` to exit code 2 (one line on stderr, no
traceback) and :class:`ReconstructionError` to exit code 1.
"""

from __future__ import annotations


class CdiDipError(Exception):
    """Base class of every error this package raises on purpose."""


class InvalidInputError(CdiDipError):
    """The input (file, mask, option, configuration) is unusable.

    The message must say what is wrong, where, and how to fix it, in one line.
    """


class ReconstructionError(CdiDipError):
    """A reconstruction failed at run time (divergence, NaN, out of memory)."""
