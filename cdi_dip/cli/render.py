"""What the commands show on a terminal: Rich progress bars and tables, single scan and batch.

Rich is imported only when something is drawn, so ``cdi-dip --help`` stays fast.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import typer

from ..report.lines import (auto_decision_line, beamstop_rim_line, frame_margin_line, free_deviance_text,
                            hot_by_model_line, likelihood_polish_line, method_choice_line, more_starts_line)
from .common import json_default


class RunProgress:
    """Rich progress bar of one reconstruction on a terminal, nothing otherwise."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._progress = None
        self._task = None

    def __enter__(self):
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                TextColumn("{task.fields[status]}"), TimeRemainingColumn(),
                console=Console(stderr=True), transient=True,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task("reconstructing", total=None, status="")
        return self

    def __exit__(self, *exc):
        if self._progress is not None:
            self._progress.__exit__(*exc)
        return False

    def __call__(self, info: dict[str, Any]) -> None:
        if self._progress is None:
            return
        run = f"run {info.get('run', 0) + 1}/{info.get('runs', 1)} " if info.get("runs", 1) > 1 else ""
        stage = info.get("stage") or info.get("algorithm") or ""
        status = f"{run}{stage} loss {info.get('loss', float('nan')):.4g}"
        self._progress.update(self._task, completed=info.get("iteration", 0), total=info.get("total"), status=status)


def render_summary(summary: dict[str, Any]) -> None:
    """The table of one reconstruction's summary."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"cdi-dip {summary.get('method', '')}: {summary.get('input', '')}", show_header=False)
    metrics = summary.get("metrics", {})
    rows = [
        ("result", summary.get("output")),
        ("shape", "x".join(str(n) for n in summary.get("shape", []))),
        ("device", summary.get("device")),
        ("iterations", summary.get("iterations")),
        ("wall time", f"{summary.get('wall_s', 0):.1f} s"),
        ("R-factor", f"{metrics.get('r_factor', float('nan')):.4f}"),
        ("Poisson LLK", f"{metrics.get('llk_poisson', float('nan')):.4f}"),
        ("free Poisson LLK", free_deviance_text(metrics)),
    ]
    auto_frame = summary.get("preparation", {}).get("auto_frame")
    if auto_frame:
        rows.insert(2, ("frame", auto_frame.get("why", "")))
    auto_bin = summary.get("preparation", {}).get("auto_bin")
    if auto_bin:
        rows.insert(2, ("binning", auto_bin.get("why", "")))
    calibration = calibration_line(summary.get("preparation", {}).get("calibration"))
    if calibration:
        rows.insert(2, ("calibration", calibration))
    choice = method_choice_line(summary.get("method_choice"))
    if choice:
        rows.insert(1, ("method", choice))
    coherence = method_choice_line((summary.get("method_choice") or {}).get("coherence"))
    if coherence:
        rows.insert(2 if choice else 1, ("coherence", coherence))
    background = method_choice_line((summary.get("method_choice") or {}).get("background"))
    if background:
        rows.insert(1 + bool(choice) + bool(coherence), ("background", background))
    auto = auto_decision_line(summary.get("method_choice"))
    if auto:
        rows.insert(1, ("auto", auto))
    hot = hot_by_model_line((summary.get("method_choice") or {}).get("hot_by_model"))
    if hot:
        rows.append(("hot pixels", hot))
    rim = beamstop_rim_line(summary.get("beamstop_rim"))
    if rim:
        rows.append(("beamstop rim", rim))
    polish = likelihood_polish_line(summary.get("likelihood_polish"))
    if polish:
        rows.append(("polish", polish))
    starts = more_starts_line((summary.get("method_choice") or {}).get("starts"))
    if starts:
        rows.append(("more starts", starts))
    margin = frame_margin_line((summary.get("method_choice") or {}).get("margin"))
    if margin:
        rows.append(("frame margin", margin))
    strain = strain_line(summary.get("strain")) if len(summary.get("shape") or ()) == 3 else None
    if strain:  # a 2D result never has one: no row to say so
        rows.append(("strain", strain))
    for key in ("fit_warning", "missing_modes_warning"):
        if summary.get(key):
            rows.append(("warning", summary[key]))
    if summary.get("interrupted"):
        rows.append(("status", "INTERRUPTED (best result so far written)"))
    for key, value in rows:
        table.add_row(key, str(value))
    Console().print(table)


def calibration_line(record: Any) -> str | None:
    """One line on the dark and flat found beside the frames: which, where cut, or why they were not used."""
    if not isinstance(record, dict) or not record.get("found"):
        return None
    files = " and ".join(f"{Path(path).name} ({role})" for role, path in record["found"].items())
    if not record.get("used"):
        return f"{files} found beside the frames but NOT used: {record.get('why', '')}"
    region = record.get("detector_region")
    cut = f", cut to detector rows {region[0][0]}:{region[0][1]}, columns {region[1][0]}:{region[1][1]}" if region else ""
    return f"{files} found beside the frames and applied{cut} (--dark none / --flat none to leave them out)"


def strain_line(record: Any) -> str | None:
    """One line on a summary's ``strain`` record: its frame, voxel and range, or why there is none."""
    if not isinstance(record, dict):
        return None
    if record.get("status") != "ok":
        what = "FAILED" if record.get("status") == "failed" else "not computed"
        return f"{what}: {record.get('reason', '')}"
    voxel = " x ".join(f"{v:.3g}" for v in record.get("voxel_size_nm", []))
    line = (f"{record.get('frame')} frame, voxel {voxel} nm: rms {record.get('strain_rms', float('nan')):.2g}, "
            f"range [{record.get('strain_min', float('nan')):.2g}, {record.get('strain_max', float('nan')):.2g}]")
    if "interior_strain_rms" in record:
        line += (f"; interior rms {record['interior_strain_rms']:.2g}, 1-99 % "
                 f"[{record['interior_strain_p1']:.2g}, {record['interior_strain_p99']:.2g}]")
    if record.get("crystal_size_nm"):
        line += ", crystal " + " x ".join(f"{v:.0f}" for v in record["crystal_size_nm"]) + " nm"
    return line


def render_inspection(info: dict[str, Any], source: str) -> None:
    """The table of what ``inspect`` found."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"cdi-dip inspect: {source}", show_header=False)
    for key, value in info.items():
        table.add_row(key, json.dumps(value, default=json_default) if isinstance(value, (dict, list)) else str(value))
    Console().print(table)


def render_comparison(figures: dict[str, Any]) -> None:
    """``compare`` of two objects: three lines; of three or more: the table of pairwise errors."""
    if "pairwise_errors" in figures:
        _render_pairwise(figures)
        return
    typer.echo(f"symmetry-adjusted error: {figures['error']:.4f}")
    typer.echo(f"phase error (rad): {figures.get('phase_error_rad', float('nan')):.4f}")
    typer.echo(f"twin: {figures.get('twin')}, shift (px): {figures.get('shift_px')}")


def _render_pairwise(figures: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    names = figures["objects"]
    table = Table(title="symmetry-adjusted error of row against column (the reference)")
    table.add_column("")
    for index in range(len(names)):
        table.add_column(str(index))
    for index, (name, row) in enumerate(zip(names, figures["pairwise_errors"])):
        table.add_row(f"{index}: {name}", *(f"{value:.4f}" for value in row))
    console = Console()
    console.print(table)
    console.print(f"mean pairwise error {figures['mean_pairwise_error']:.4f}, max {figures['max_pairwise_error']:.4f}")


class BatchProgress:
    """Per-scan progress on stderr: a Rich bar on a terminal, one plain line per scan otherwise."""

    def __init__(self, mode: str):
        self.mode = mode  # "rich", "plain" or "off"
        self._progress = None
        self._task = None
        self._start = time.monotonic()
        self._run_done = 0
        self._to_run = 0

    def __enter__(self) -> "BatchProgress":
        if self.mode == "rich":
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("batch"), BarColumn(), MofNCompleteColumn(),
                TextColumn("[red]{task.fields[failed]} failed"), TimeElapsedColumn(),
                TextColumn("{task.fields[left]}"),
                console=Console(stderr=True),
            )
            self._progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> bool:
        if self._progress is not None:
            self._progress.__exit__(*exc)
        return False

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event["event"]
        if kind == "start":
            self._start = time.monotonic()
            self._to_run = event["total"] - event["skipped"]
            if self._progress is not None:
                self._task = self._progress.add_task("batch", total=event["total"], failed=0, left="")
        elif kind == "scan":
            self._scan(event)

    def _time_left(self) -> str:
        """Mean wall time per scan run so far times the scans still to run."""
        if self._run_done == 0 or self._run_done >= self._to_run:
            return ""
        left_s = (time.monotonic() - self._start) / self._run_done * (self._to_run - self._run_done)
        return f"~{timedelta(seconds=round(left_s))} left"

    def _scan(self, event: dict[str, Any]) -> None:
        if event["status"] != "skipped":
            self._run_done += 1
        status, source = event["status"], event["input"]
        if self._progress is not None:
            from rich.markup import escape

            if status == "failed":
                self._progress.console.print(f"[red]failed[/] {escape(source)}: {escape(event['error'] or '')}")
            self._progress.update(self._task, completed=event["done"], failed=event["failed"], left=self._time_left())
        elif self.mode == "plain":
            line = f"[{event['done']}/{event['total']}] {status} {source}"
            if status == "failed":
                line += f": {event['error']}"
            elif event.get("output"):
                line += f" -> {event['output']}"
            typer.echo(line, err=True)


def render_batch(summary: dict[str, Any], out: Path) -> None:
    """The batch's counts and its failed scans."""
    typer.echo(
        f"batch: {summary['ok']} ok, {summary['failed']} failed, {summary['skipped']} skipped "
        f"in {summary['wall_s']:.1f} s; summary in {out / 'batch.json'}"
    )
    for scan in summary["scans"]:
        if scan["status"] == "failed":
            typer.echo(f"  failed: {scan['input']}: {scan['error']}")
