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


__all__ = ["method_choice_line"]
