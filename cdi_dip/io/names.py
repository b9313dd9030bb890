"""Scan names that are safe as one folder name under ``OUT/``.

A scan's results go to ``OUT/<scan-name>/``, next to ``OUT/batch.json`` and the
tool's hidden staging folders (``OUT/.<scan-name>~...``). A name taken from a
file name can be ``.`` or ``..`` (files ``..cxi``, ``...cxi``), hidden, hold a
path separator or undecodable bytes, or be ``batch.json``: any of these would
write outside the result folder or over the batch summary.
"""

from __future__ import annotations

import logging
import re

log = logging.getLogger(__name__)

RESERVED_NAMES = frozenset({"batch.json"})
"""Names of files the tool itself writes in ``OUT/`` (compared in lower case)."""

FALLBACK_NAME = "scan"
"""The name of a scan whose own name has nothing usable left."""

_UNSAFE = re.compile(r"[^\w.+-]")  # anything but letters, digits, _ . + -


def safe_scan_name(raw: str) -> str:
    """A scan name usable as one visible folder name in ``OUT/``.

    Characters other than letters, digits and ``_ . + -`` become ``_``
    (undecodable bytes, path separators, spaces, ``~``), leading dots are
    dropped (no hidden folder, no ``.`` or ``..``), a name with nothing left
    becomes ``scan`` and a reserved name (``batch.json``) gets a ``scan_``
    prefix.

    Parameters
    ----------
    raw : str
        The name as derived from the input (file stem, folder name).

    Returns
    -------
    str
        The safe name; a warning is logged when it differs from ``raw``.
    """
    name = _UNSAFE.sub("_", raw).lstrip(".") or FALLBACK_NAME
    if name.lower() in RESERVED_NAMES:
        name = f"scan_{name}"
    if name != raw:
        log.warning("scan name %r is not safe as a folder name: results go to %r", raw, name)
    return name
