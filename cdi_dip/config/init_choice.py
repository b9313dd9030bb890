"""``--init``: what starts every run (no torch here).

``random`` (random phases on the measured amplitudes), ``learned`` (the
network shipped for the data's dimensionality) or ``learned:MODEL.pt`` (a
model of ``cdi-dip train``); :mod:`cdi_dip.learned.initialiser` runs it.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InvalidInputError

INIT_CHOICES = ("random", "learned", "learned:MODEL.pt")


def parse_init(text: str) -> tuple[str, Path | None]:
    """``random``, ``learned`` or ``learned:PATH`` -> ``(kind, path or None)``.

    Raises
    ------
    InvalidInputError
        Anything else (the message lists the choices).
    """
    text = str(text).strip()
    if text in ("random", "learned"):
        return text, None
    if text.startswith("learned:") and text[len("learned:"):].strip():
        return "learned", Path(text[len("learned:"):].strip()).expanduser()
    raise InvalidInputError(f"init {text!r}: give random, learned or learned:MODEL.pt")


__all__ = ["INIT_CHOICES", "parse_init"]
