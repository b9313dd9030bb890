"""One-line descriptions of a summary's records, shared by the terminal table and ``report.html``."""

from __future__ import annotations

from typing import Any

from ..config.psf import DECONVOLVED_LABEL


def method_choice_line(record: Any) -> str | None:
    """One line on a comparison (``auto``'s methods, or ``--psf compare``'s models): what was kept and every
    candidate's free deviance, or why there was no comparison. None without a record."""
    if not isinstance(record, dict):
        return None
    if not record.get("compared"):
        return record.get("reason")
    scores = {name: value for name, value in record.get("free_llk_poisson", {}).items()
              if isinstance(value, (int, float))}
    widths = {name: value for name, value in scores.items() if name.startswith(DECONVOLVED_LABEL)}
    parts = [f"{name} {value:.4g}" for name, value in scores.items() if name not in widths]
    if widths:  # one entry for the deconvolved challengers: how many widths, and the best of them
        best = min(widths, key=widths.get)
        parts.append(f"deconvolved at {len(widths)} widths, best {widths[best]:.4g} at "
                     f"{best[len(DECONVOLVED_LABEL):].strip()}")
    line = f"{record.get('chosen')} kept: free Poisson LLK {', '.join(parts)}"
    margin = record.get("margin_z")
    if isinstance(margin, (int, float)) and scores and record.get("chosen") != min(scores, key=scores.get):
        line += f" (the lowest not significantly lower: z {margin:.2f})"
    return line


def auto_decision_line(record: Any) -> str | None:
    """One line on what ``--method auto`` read from the data (``method_choice.auto``): the kind of object, the
    method and the Friedel evidence. None without a record."""
    if not isinstance(record, dict) or "auto" not in record or not isinstance(record["auto"], dict):
        return None
    return record["auto"].get("reason")


__all__ = ["auto_decision_line", "method_choice_line"]
