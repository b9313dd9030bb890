"""One-line descriptions of a summary's records, shared by the terminal table and ``report.html``."""

from __future__ import annotations

from typing import Any


def method_choice_line(record: Any) -> str | None:
    """One line on a comparison (``auto``'s methods, or ``--psf compare``'s models): what was kept and every
    candidate's free deviance, or why there was no comparison. None without a record."""
    if not isinstance(record, dict):
        return None
    if not record.get("compared"):
        return record.get("reason")
    scores = ", ".join(f"{name} {value:.4g}" for name, value in record.get("free_llk_poisson", {}).items()
                       if isinstance(value, (int, float)))
    return f"{record.get('chosen')} kept: free Poisson LLK {scores}"


def auto_decision_line(record: Any) -> str | None:
    """One line on what ``--method auto`` read from the data (``method_choice.auto``): the kind of object, the
    method and the Friedel evidence. None without a record."""
    if not isinstance(record, dict) or "auto" not in record or not isinstance(record["auto"], dict):
        return None
    return record["auto"].get("reason")


__all__ = ["auto_decision_line", "method_choice_line"]
