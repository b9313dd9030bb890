"""Guards every reader applies before touching data: regular files only, and a size that fits in memory.

A file header costs nothing to forge: a few hundred bytes can declare a
4096^3 dataset. Readers therefore check the *declared* size (shape times
bytes per element, plus what the reader converts it to) against the host's
free memory before reading a byte of data, and refuse with one line instead
of a ``MemoryError`` traceback or a swapping machine.
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import InvalidInputError

_NOT_REGULAR = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)

SHRINK_HINT = ("save a cropped or binned copy of the data (fewer frames, a detector region) and read that, "
               "or run on a machine with more free memory")
"""How to make a too-large input fit. ``--max-size`` and ``--bin`` act after reading, so they do not help here."""


def require_regular_file(path: Path) -> None:
    """Refuse anything but a regular file (or a symbolic link to one).

    Parameters
    ----------
    path : pathlib.Path

    Raises
    ------
    InvalidInputError
        The path does not exist, is a directory, or is a pipe, device or
        socket (which would block or never end when read).
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise InvalidInputError(f"{path}: no such file or directory; check the path") from None
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot read the file ({exc.strerror}); check its permissions") from None
    if stat.S_ISDIR(mode):
        raise InvalidInputError(f"{path} is a directory; give a file")
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _NOT_REGULAR if test(mode)), "not a regular file")
        raise InvalidInputError(f"{path} is {kind}, not a data file; give a regular file (copy the data to disk first)")


def available_read_bytes() -> int | None:
    """Host memory a read may use now, in bytes; None where it cannot be told.

    :func:`cdi_dip.memory.available_memory_bytes` on the CPU (the kernel's
    ``MemAvailable``, or the room left under a container's limit). Tests
    replace this function to try the limit with tiny files.
    """
    import torch

    from ..memory import available_memory_bytes  # local: keeps torch out of the readers' import

    return available_memory_bytes(torch.device("cpu"))


def size_text(nbytes: float) -> str:
    """``1.5 GiB``, ``12.0 MiB``, ``3.0 KiB`` or ``512 bytes``."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.1f} {unit}"
    return f"{int(nbytes)} bytes"


def check_read_size(shape: Sequence[int], dtype: np.dtype, bytes_per_element: float, where: str) -> None:
    """Refuse to read an array whose declared size does not fit in free memory.

    Parameters
    ----------
    shape : sequence of int
        The shape the file declares.
    dtype : numpy.dtype
        Its stored type (for the message).
    bytes_per_element : float
        Memory the read needs per element: the stored element plus what the
        reader converts it to.
    where : str
        The file (and dataset) for the message.

    Raises
    ------
    InvalidInputError
        One line naming the size, the free memory and how to shrink the input.
        Nothing is raised when the free memory cannot be told.
    """
    elements = math.prod(int(n) for n in shape)
    needed = elements * bytes_per_element
    free = available_read_bytes()
    if free is None or needed <= free:
        return
    dims = "x".join(str(int(n)) for n in shape) or "scalar"
    raise InvalidInputError(
        f"{where}: the {dims} {np.dtype(dtype)} array ({size_text(elements * np.dtype(dtype).itemsize)}) needs "
        f"about {size_text(needed)} of memory to read but only {size_text(free)} is free; {SHRINK_HINT}"
    )


def out_of_memory(where: str) -> InvalidInputError:
    """The one-line error for a ``MemoryError`` met while reading ``where``."""
    return InvalidInputError(f"{where}: ran out of memory while reading it; {SHRINK_HINT}")
