"""Atomic file creation: write to a temporary name, rename when complete."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_write(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    The temporary file lives in the same directory (so the final
    :func:`os.replace` is atomic on POSIX file systems). When the block raises,
    the temporary file is removed and ``path`` is left as it was: an
    interrupted write never leaves a truncated file under the final name.
    The file gets the usual permissions (umask), unlike ``tempfile.mkstemp``.

    Parameters
    ----------
    path : pathlib.Path
        Final file name. Its directory must exist.

    Yields
    ------
    pathlib.Path
        Where to write. It does not exist yet when yielded (writers that
        refuse to overwrite, like HDF5's ``"x"`` mode, work too).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"nothing was written to {tmp} for {path}")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
