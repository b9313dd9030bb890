"""``--init``: what starts every run (no torch here).

``random`` (random phases on the measured amplitudes), ``learned`` (the
network shipped for the data's dimensionality), ``learned:MODEL.pt`` (a
model of ``cdi-dip train``; :mod:`cdi_dip.learned.initialiser` runs it) or
the path of a previous result of ``cdi-dip reconstruct`` (its ``.cxi`` file
or its folder; :mod:`cdi_dip.previous_result` reads it).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InvalidInputError

INIT_CHOICES = ("random", "learned", "learned:MODEL.pt", "RESULT.cxi")


def parse_init(text: str) -> tuple[str, Path | None]:
    """``random``, ``learned``, ``learned:PATH`` or a result's path -> ``(kind, path or None)``.

    ``kind`` is ``random``, ``learned`` or ``result``. Whether a result's path
    exists is checked when the run starts (:func:`cdi_dip.previous_result.result_start`),
    not here: a configuration names it before the files are there.

    Raises
    ------
    InvalidInputError
        An empty text, or ``learned:`` without a path (the message lists the choices).
    """
    text = str(text).strip()
    if text in ("random", "learned"):
        return text, None
    if text.startswith("learned:"):
        if text[len("learned:"):].strip():
            return "learned", Path(text[len("learned:"):].strip()).expanduser()
    elif text:
        return "result", Path(text).expanduser()
    raise InvalidInputError(f"init {text!r}: give random, learned, learned:MODEL.pt or the .cxi file of a previous "
                            "result of cdi-dip reconstruct")


__all__ = ["INIT_CHOICES", "parse_init"]
