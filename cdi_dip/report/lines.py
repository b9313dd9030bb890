"""One-line descriptions of a summary's records, shared by the terminal table and ``report.html``."""

from __future__ import annotations

from typing import Any

from ..config.psf import DECONVOLVED_LABEL
from ..hot_screen import HOT_PASS_LABELS


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
    return line + _took(record)


def auto_decision_line(record: Any) -> str | None:
    """One line on what ``--method auto`` read from the data (``method_choice.auto``): the kind of object, the
    method and the Friedel evidence. None without a record."""
    if not isinstance(record, dict) or "auto" not in record or not isinstance(record["auto"], dict):
        return None
    return record["auto"].get("reason")


def beamstop_rim_line(record: Any) -> str | None:
    """One line on the rim of a found beamstop shadow (``summary["beamstop_rim"]``): what the first pass
    predicted there and what became of it. None without a record."""
    if not isinstance(record, dict) or not isinstance(record.get("pixels"), int):
        return None
    fate = "fitted" if record.get("readmitted") else "excluded"
    if not record.get("tested"):
        return f"{record['pixels']} px, not tested: {fate}"
    line = (f"{record['pixels']} px, {record.get('measured_counts', 0):.4g} counts against "
            f"{record.get('predicted_counts', 0):.4g} predicted")
    margin = record.get("challenge_margin_z")
    if record.get("lit"):
        return f"{line}: lit, {fate}"
    if isinstance(margin, (int, float)):
        verdict = "better" if record.get("readmitted") else "no better"
        return (f"{line}: the first pass missed the centre; a reconstruction with the rim fitted the held-out "
                f"pixels {verdict} (z {margin:.2f}): {fate}")
    return f"{line}: not lit, {fate}"


def hot_by_model_line(record: Any) -> str | None:
    """One line on the hot pixels the first reconstruction's model showed (``method_choice.hot_by_model``,
    :mod:`cdi_dip.hot_screen`): how many, and which pass was kept on the same held-out pixels (both free
    deviances, the margin). None without a record."""
    if not isinstance(record, dict) or not isinstance(record.get("pixels"), int):
        return None
    pixels = record["pixels"]
    line = (f"{pixels} pixel{'s' if pixels != 1 else ''} far above {'their' if pixels != 1 else 'its'} neighbours "
            f"and the first reconstruction's model, left in by the preparation: excluded as hot")
    kept = "the first pass" if record.get("chosen") == HOT_PASS_LABELS[0] else "the reconstruction without them"
    scores = record.get("free_llk_poisson") or {}
    first, again = scores.get(HOT_PASS_LABELS[0]), scores.get(HOT_PASS_LABELS[1])
    if not (isinstance(first, (int, float)) and isinstance(again, (int, float))):
        return f"{line}; {kept} kept"
    margin = record.get("margin_z")
    significance = f", z {margin:.2f}" if isinstance(margin, (int, float)) else ""
    return (f"{line}; {kept} kept: free Poisson LLK {first:.4g} from the first pass, {again:.4g} without them"
            f"{significance}")


def frame_margin_line(record: Any) -> str | None:
    """One line on the frame-margin challenge (``method_choice.margin``): whether the frame with an unmeasured
    margin ran, both free deviances and which frame was kept. None without a record."""
    if not isinstance(record, dict):
        return None
    if not record.get("compared"):
        return record.get("reason")
    scores = record.get("free_llk_poisson") or {}
    measured, wider = scores.get("measured frame"), scores.get("with a margin")
    shape = "x".join(map(str, record.get("shape") or ()))
    kept = "the frame with a margin" if record.get("chosen") == "with a margin" else "the measured frame"
    margin = record.get("margin_z")
    significance = f", z {margin:.2f}" if isinstance(margin, (int, float)) else ""
    figures = (f"free Poisson LLK {measured:.4g} on the measured frame, {wider:.4g} in a {shape} frame with an "
               f"unmeasured margin" if isinstance(measured, (int, float)) and isinstance(wider, (int, float))
               else f"a {shape} frame with an unmeasured margin tried")
    return f"{kept} kept: {figures}{significance}{_took(record)}"


def more_starts_line(record: Any) -> str | None:
    """One line on the more-starts challenge (``method_choice.starts``): how many starts each side made, both
    free deviances and which was kept. None without a record."""
    if not isinstance(record, dict):
        return None
    if not record.get("compared"):
        return record.get("reason")
    scores = record.get("free_llk_poisson") or {}
    runs = record.get("runs") or {}
    first_runs, more_runs = runs.get("first starts"), runs.get("more starts")
    first, more = scores.get("first starts"), scores.get("more starts")
    first_starts = f"the first {_starts(first_runs)}"
    kept = f"the {_starts(more_runs, 'more ')}" if record.get("chosen") == "more starts" else first_starts
    margin = record.get("margin_z")
    significance = f", z {margin:.2f}" if isinstance(margin, (int, float)) else ""
    if not (isinstance(first, (int, float)) and isinstance(more, (int, float))):
        return f"{kept} kept{significance}"
    bred = f" bred in {record['generations']} generations" if record.get("generations") else ""
    return (f"{kept} kept: free Poisson LLK {first:.4g} from {first_starts}, {more:.4g} from "
            f"{more_runs} more{bred}{significance}{_took(record)}")


def likelihood_polish_line(record: Any) -> str | None:
    """One line on the likelihood polish of a poor fit (``likelihood_polish`` in the summary,
    :mod:`cdi_dip.poor_fit_polish`): both free deviances and whether the polish was kept. None without a record."""
    if not isinstance(record, dict):
        return None
    scores = record.get("free_llk_poisson")
    if not isinstance(scores, dict):
        return f"not kept: {record.get('reason', 'nothing to compare')}"
    margin = record.get("margin_z")
    significance = f", z {margin:.2f}" if isinstance(margin, (int, float)) else ""
    return (f"{'kept' if record.get('kept') else 'not kept'}: free Poisson LLK {scores['as solved']:.4g} as "
            f"solved, {scores['polished']:.4g} polished{significance}")


def _took(record: dict[str, Any]) -> str:
    """How long a challenge took (``seconds``, :func:`cdi_dip.time_budget.challenge_timing`), as the end of its
    line: ``", in 21 s"``; empty where the record has no time."""
    seconds = record.get("seconds")
    return f", in {seconds:.0f} s" if isinstance(seconds, (int, float)) else ""


def _starts(count: Any, more: str = "") -> str:
    """``"4 starts"``, ``"start"`` for one first start (``"the first start"``), ``"2 more starts"``."""
    if count == 1 and not more:
        return "start"
    return f"{count} {more}start{'' if count == 1 else 's'}"


def free_deviance_text(metrics: dict[str, Any], digits: int = 4) -> str:
    """The free Poisson deviance per pixel (``digits`` decimals), and beside it what a model as good as the counts
    allow would score there where it is known and differs from 1 by more than a few per cent (faint patterns),
    e.g. ``0.8724 (the counts allow 0.325)``."""
    value = metrics.get("free_llk_poisson", float("nan"))
    text = f"{value:.{digits}f}" if isinstance(value, (int, float)) else str(value)
    expected = metrics.get("free_llk_poisson_expected")
    if isinstance(expected, (int, float)) and abs(expected - 1) > 0.05:
        text += f" (the counts allow {expected:.3g})"
    return text


__all__ = ["auto_decision_line", "beamstop_rim_line", "frame_margin_line", "free_deviance_text", "method_choice_line",
           "more_starts_line"]
