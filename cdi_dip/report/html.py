"""A self-contained HTML report of one scan, and rebuilding reports from a result CXI.

:func:`write_report_html` turns the scan's summary (the ``summary.json``
dictionary, optionally with ``alignment``, ``resolution`` and ``ensemble``
entries) into one HTML page with inline CSS and ``report.png`` embedded as
base64, so the page stands alone (mail it, attach it to a logbook).

:func:`regenerate_report` reads a result CXI (``cdi-dip report RESULT.cxi``)
and writes ``report.png`` and ``report.html`` again from what it stores.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..io._atomic import atomic_write
from ..io.summary import make_summary
from .lines import (auto_decision_line, beamstop_rim_line, frame_margin_line, hot_by_model_line,
                    likelihood_polish_line, method_choice_line, more_starts_line)

log = logging.getLogger(__name__)

__all__ = ["regenerate_report", "report_summary", "write_report_html"]

METRIC_LABELS = {
    "r_factor": "R-factor (amplitudes)",
    "free_r_factor": "free R-factor",
    "chi2": "reduced chi-square",
    "llk_poisson": "Poisson deviance / pixel",
    "free_llk_poisson": "free Poisson deviance / pixel",
    "free_llk_poisson_expected": "free Poisson deviance / pixel a model as good as the counts allow would score",
    "llk_poisson_expected": "Poisson deviance / pixel a model as good as the counts allow would score",
    "support_size": "support size (voxels)",
}
"""Display names of the known metrics, in display order; other metrics follow by name."""

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1400px;
       color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ccc; padding-bottom: 0.2em; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { text-align: left; padding: 0.25em 0.9em 0.25em 0; vertical-align: top; }
th { font-weight: 600; color: #444; }
td.num { font-family: ui-monospace, "SFMono-Regular", Menlo, monospace; }
.flag { background: #fde2e1; color: #8a1c13; padding: 0.4em 0.8em; border-radius: 4px; display: inline-block; }
.ok { color: #1b6e20; } .failed { color: #8a1c13; }
pre { background: #f6f8fa; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
img { max-width: 100%; height: auto; border: 1px solid #ddd; }
.muted { color: #777; }
"""


# -- formatting ---------------------------------------------------------------------------
def _format(value: Any) -> str:
    """One value as display text (not yet escaped)."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return "n/a"
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "(" + ", ".join(_format(v) for v in value) + ")"
    if isinstance(value, dict):
        return json.dumps(value, default=str)
    return str(value)


def _rows(pairs: Iterable[tuple[str, Any]]) -> str:
    cells = []
    for label, value in pairs:
        numeric = isinstance(value, (int, float, list, tuple)) and not isinstance(value, bool)
        css = ' class="num"' if numeric else ""
        cells.append(f"<tr><th>{html.escape(label)}</th><td{css}>{html.escape(_format(value))}</td></tr>")
    return "<table>\n" + "\n".join(cells) + "\n</table>"


def _scan_name(summary: dict[str, Any]) -> str:
    for key in ("name", "output", "input"):
        value = summary.get(key)
        if value:
            return Path(str(value)).stem if key != "name" else str(value)
    return "scan"


def _metric_pairs(metrics: dict[str, Any]) -> list[tuple[str, Any]]:
    known = [(label, metrics[key]) for key, label in METRIC_LABELS.items() if key in metrics]
    others = [(key, metrics[key]) for key in sorted(metrics) if key not in METRIC_LABELS]
    return known + others


def _run_pairs(summary: dict[str, Any]) -> list[tuple[str, Any]]:
    keys = [("input", "input"), ("output", "result file"), ("method", "method"), ("status", "status"),
            ("error", "error"), ("device", "device"), ("shape", "frame shape"), ("roi", "detector region"),
            ("iterations", "iterations (kept run)"), ("runs", "random starts"), ("wall_s", "wall time (s)"),
            ("seconds_per_iteration", "time per iteration (s)"), ("seed", "seed"), ("interrupted", "interrupted"),
            ("version", "cdi-dip version"), ("command", "command line")]
    return [(label, summary[key]) for key, label in keys if key in summary]


def _selection_line(selection: dict[str, Any]) -> str:
    """One sentence on the random starts: asked, finished, kept, averaged, and why each dropped one was."""
    counts = [f"{selection.get(key, 'n/a')} {key}" for key in ("asked", "finished", "kept", "averaged")]
    text = "Runs: " + ", ".join(counts)
    if (selection.get("generations") or 1) > 1:
        text += (f" (the last of {selection['generations']} generations, each bred with the best run, "
                 "and the best run before it)")
    if selection.get("not_started"):
        text += f" ({selection['not_started']} not started: interrupted)"
    dropped = selection.get("dropped") or []
    if dropped:
        text += "; dropped: " + "; ".join(f"run {entry.get('run')} ({entry.get('reason')}: {entry.get('detail', '')})"
                                         for entry in dropped)
    if selection.get("solver_iterations") is not None:
        text += f"; {selection['solver_iterations']} solver iterations in all"
    return text + "."


_STOP_WORDS = {"free": "early stop on the free pixels", "variance": "early stop on the windowed variance",
               "both": "early stop on the free pixels or the windowed variance"}


def _dip_line(dip: dict[str, Any]) -> str:
    """One sentence on the double DIP: early stop, polish, total iterations with warm starts."""
    parts = []
    if "stop_iteration" in dip:
        budget = f" of {dip['iterations_budget']}" if "iterations_budget" in dip else ""
        criterion = (dip.get("early_stop") or {}).get("early_stop_criterion", "free")
        how = _STOP_WORDS.get(criterion, criterion)
        parts.append(f"kept the iterate of iteration {dip['stop_iteration']}{budget} ({how})")
    if "polish" in dip:
        parts.append(f"polish {dip['polish']}")
    if "work_iterations" in dip:
        parts.append(f"{dip['work_iterations']} solver iterations including the warm start")
    return "Double DIP: " + ", ".join(parts) + "."


def _what_was_done(summary: dict[str, Any]) -> str:
    """The "What was done" lines of the page (empty when the summary says nothing of it)."""
    choice = summary.get("method_choice") or {}
    labelled = [("Hot pixels", hot_by_model_line(choice.get("hot_by_model"))),
                ("Data", auto_decision_line(choice)),
                ("Method", method_choice_line(choice) if "compared" in choice else None),
                ("Partial coherence", method_choice_line(choice.get("coherence"))),
                ("Background", method_choice_line(choice.get("background"))),
                ("Beamstop rim", beamstop_rim_line(summary.get("beamstop_rim"))),
                ("Likelihood polish", likelihood_polish_line(summary.get("likelihood_polish"))),
                ("More starts", more_starts_line(choice.get("starts"))),
                ("Frame margin", frame_margin_line(choice.get("margin")))]
    lines = [f"{label}: {text}." for label, text in labelled if text]
    if summary.get("selection"):
        lines.append(_selection_line(summary["selection"]))
    if summary.get("dip"):
        lines.append(_dip_line(summary["dip"]))
    return "\n".join(f"<p>{html.escape(line)}</p>" for line in lines)


STRAIN_LABELS = {
    "status": "status", "reason": "why not", "frame": "frame", "voxel_size_nm": "voxel (nm)", "shape": "grid",
    "voxels": "voxels in the support", "strain_rms": "strain RMS", "strain_mean": "strain mean",
    "strain_min": "strain min", "strain_max": "strain max",
    "interior_voxels": "interior voxels (largest part, 2 voxels in from its surface)",
    "interior_strain_rms": "interior strain RMS", "interior_strain_p1": "interior strain, 1st percentile",
    "interior_strain_p99": "interior strain, 99th percentile", "displacement_min_nm": "displacement min (nm)",
    "displacement_max_nm": "displacement max (nm)", "q_norm_per_nm": "|Q| (rad/nm)",
    "crystal_size_nm": "crystal size (nm, largest connected part with an amplitude of at least 25 % of the maximum)", "detached_voxels": "detached support voxels",
    "note": "note",
}
"""Display names of a summary's ``strain`` record, in display order (its ``files`` are listed with the others)."""


def _strain_pairs(strain: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(label, strain[key]) for key, label in STRAIN_LABELS.items() if key in strain]


def _section(title: str, body: str) -> str:
    return f"<h2>{html.escape(title)}</h2>\n{body}\n"


def _image(directory: Path, png_name: str) -> str:
    png = directory / png_name
    if not png.is_file():
        return f'<p class="muted">{html.escape(png_name)} was not found beside this page.</p>'
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    alt = f"{png_name}: amplitude, phase, measured and fitted diffraction, convergence"
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


# -- public ------------------------------------------------------------------------------------
def write_report_html(path: Path, summary: dict[str, Any], png_name: str = "report.png") -> Path:
    """Write a self-contained HTML report of one scan, atomically.

    Parameters
    ----------
    path : pathlib.Path
        Output file (``report.html``); its directory must exist.
    summary : dict
        The scan's ``summary.json`` dictionary (``input``, ``output``,
        ``method``, ``status``, ``metrics``, ``iterations``,
        ``seconds_per_iteration``, ``config``...). Optional entries shown when
        present: ``alignment`` (``shift_px``, ``ramp_rad_per_px``,
        ``phase_offset_rad``), ``resolution`` (``resolution_px``,
        ``resolution_nm``, ``criterion``), ``ensemble`` (its summary),
        ``selection`` and ``dip`` (a "What was done" section),
        ``fit_warning``, ``missing_modes_warning`` and ``interrupted``
        (flagged at the top).
    png_name : str
        Figure beside ``path`` to embed (base64), so that the page stands
        alone; a note replaces it when the file is missing.

    Returns
    -------
    pathlib.Path
        The file written.
    """
    path = Path(path)
    name = _scan_name(summary)
    parts = [f"<h1>cdi-dip report: {html.escape(name)}</h1>"]
    status = str(summary.get("status", "ok"))
    parts.append(f'<p>method <b>{html.escape(str(summary.get("method", "")))}</b>, status '
                 f'<b class="{"ok" if status == "ok" else "failed"}">{html.escape(status)}</b></p>')
    if summary.get("interrupted"):
        parts.append('<p class="flag">INTERRUPTED: the run was stopped early; this is the best result so far.</p>')
    if summary.get("fit_warning"):
        parts.append(f'<p class="flag">FIT WARNING: {html.escape(str(summary["fit_warning"]))}</p>')
    if summary.get("missing_modes_warning"):
        parts.append(f'<p class="flag">MISSING DATA: {html.escape(str(summary["missing_modes_warning"]))}</p>')
    done = _what_was_done(summary)
    if done:
        parts.append(_section("What was done", done))
    parts.append(_section("Run", _rows(_run_pairs(summary))))
    metrics = summary.get("metrics") or {}
    if metrics:
        parts.append(_section("Data fit", _rows(_metric_pairs(metrics))))
    alignment = summary.get("alignment") or {}
    if alignment:
        parts.append(_section("Alignment (removed from the written object)", _rows([
            ("shift (px)", alignment.get("shift_px")),
            ("phase ramp (rad/px)", alignment.get("ramp_rad_per_px")),
            ("phase offset (rad)", alignment.get("phase_offset_rad")),
            ("twin taken", alignment.get("twin")),
        ])))
    excluded = summary.get("excluded") or {}
    if excluded:
        parts.append(_section("Excluded pixels (free in every fit)", _rows(sorted(excluded.items()))))
    resolution = summary.get("resolution") or {}
    if resolution:
        parts.append(_section("Resolution (PRTF)", _rows([
            ("half-period resolution (px)", resolution.get("resolution_px")),
            ("half-period resolution (nm)", resolution.get("resolution_nm")),
            ("criterion", resolution.get("criterion")),
            ("runs in the PRTF", resolution.get("members")),
            *([("note", resolution["note"])] if resolution.get("note") else []),
        ])))
    ensemble = summary.get("ensemble") or {}
    if ensemble:
        parts.append(_section("Ensemble of runs", _rows(sorted(ensemble.items()))))
    strain = summary.get("strain") or {}
    if strain:
        parts.append(_section("Strain along Q", _rows(_strain_pairs(strain))))
    parts.append(_section("Figures", _image(path.parent, png_name)))
    versions = summary.get("versions") or {}
    if versions:
        parts.append(_section("Software and device", _rows(sorted(versions.items()))))
    config = summary.get("config")
    if config is not None:
        text = json.dumps(config, indent=2, sort_keys=True, default=str)
        parts.append(_section("Configuration", f"<pre>{html.escape(text)}</pre>"))
    page = ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>cdi-dip: {html.escape(name)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
            + "\n".join(parts) + "\n</body>\n</html>\n")
    with atomic_write(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path


def _strain_beside(result_cxi: Path, result: Any) -> tuple[Any, dict[str, Any] | None]:
    """The strain maps of ``strain.cxi`` beside a result, and their summary record; (None, None) without one.

    A ``strain.cxi`` that does not open, or that was computed from an object of
    another shape, is left out (logged): the report shows what the result holds.
    """
    from ..io.strain_files import STRAIN_CXI, read_strain_view
    from ..strain import crystal_extent_nm

    path = Path(result_cxi).parent / STRAIN_CXI
    if not path.is_file():
        return None, None
    try:
        view = read_strain_view(path)
    except (OSError, KeyError, ValueError) as exc:
        log.warning("not showing the strain of %s: %s", path, exc)
        return None, None
    if view.detector_shape != tuple(result.obj.shape):
        log.warning("not showing the strain of %s: computed from an object of shape %s, not this result's %s", path,
                    view.detector_shape, tuple(result.obj.shape))
        return None, None
    crystal = crystal_extent_nm(view.maps.support, view.voxel_nm, view.maps.amplitude)
    record = {"status": "ok", "frame": view.frame, "voxel_size_nm": list(view.voxel_nm),
              "shape": list(view.maps.strain.shape), **view.maps.summary(),
              **({"crystal_size_nm": list(crystal[0]), "detached_voxels": crystal[1]} if crystal else {}),
              "files": [str(path)]}
    return view, record


def report_summary(result: Any, result_cxi: Path, files: Iterable[Path]) -> dict[str, Any]:
    """The ``summary.json`` dictionary of a result read back from ``result_cxi``.

    Parameters
    ----------
    result : Result
        With its ensemble and PRTF, when stored (they give ``ensemble`` and
        ``resolution``).
    result_cxi : pathlib.Path
        The result file (``output`` of the summary).
    files : iterable of pathlib.Path
        Every file of the scan's folder.

    Returns
    -------
    dict
    """
    summary = make_summary(result, Path(result_cxi).parent, list(files))
    summary["output"] = str(result_cxi)
    return summary


def regenerate_report(result_cxi: Path, out_dir: Path | None = None) -> list[Path]:
    """Rebuild ``report.png`` and ``report.html`` from a result CXI.

    The result file holds the object, support, measured intensity and mask,
    fitted intensity, convergence history, metrics, alignment and
    configuration, and (when they were computed) the ensemble maps and PRTF:
    everything both reports show. The strain is shown when a ``strain.cxi``
    computed from this object lies beside the result (as ``reconstruct`` and
    ``cdi-dip strain`` write it); it is read, not recomputed.

    Parameters
    ----------
    result_cxi : pathlib.Path
        A ``<scan-name>.cxi`` written by ``cdi-dip reconstruct``.
    out_dir : pathlib.Path, optional
        Where to write; default the folder of ``result_cxi``. Created when
        missing.

    Returns
    -------
    list of pathlib.Path
        ``[report.png, report.html]``.

    Raises
    ------
    InvalidInputError
        The file is not a cdi-dip result, or ``out_dir`` cannot be created.
    """
    from ..errors import InvalidInputError
    from ..io.result_cxi import read_result_cxi
    from .png import write_report

    result_cxi = Path(result_cxi)
    stored = read_result_cxi(result_cxi)
    out_dir = Path(out_dir) if out_dir is not None else result_cxi.parent
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInputError(f"cannot create {out_dir}: {exc.strerror}; choose another output folder") from None
    strain, record = _strain_beside(result_cxi, stored.result)
    png = write_report(stored.result, out_dir, strain=strain)[0]
    html_path = out_dir / "report.html"
    summary = report_summary(stored.result, result_cxi, [result_cxi, png, html_path])
    if record is not None:
        summary["strain"] = record
    if stored.command:
        summary["command"] = stored.command
    if stored.version:
        summary["version"] = stored.version
    write_report_html(html_path, summary, png_name=png.name)
    log.info("rebuilt %s and %s from %s", png, html_path, result_cxi)
    return [png, html_path]
