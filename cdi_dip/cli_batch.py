"""``cdi-dip batch``: many scans on a local process pool or a Dask cluster.

Registered in :mod:`cdi_dip.cli` with ``app.command(name="batch")(batch)``.
The library part (input expansion, executors, resume) is :mod:`cdi_dip.batch`;
this module parses, renders progress and maps outcomes to exit codes.
"""

from __future__ import annotations

import shlex
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from . import cli_options as opt
from .errors import InvalidInputError

# cdi_dip.cli imports this module to register `batch`; it is imported back only
# inside the command, so either module may be imported first.


class _BatchProgress:
    """Per-scan progress on stderr: a Rich bar on a terminal, one plain line per scan otherwise."""

    def __init__(self, mode: str):
        self.mode = mode  # "rich", "plain" or "off"
        self._progress = None
        self._task = None
        self._start = time.monotonic()
        self._run_done = 0
        self._to_run = 0

    def __enter__(self) -> "_BatchProgress":
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


def _render_batch(summary: dict[str, Any], out: Path) -> None:
    typer.echo(
        f"batch: {summary['ok']} ok, {summary['failed']} failed, {summary['skipped']} skipped "
        f"in {summary['wall_s']:.1f} s; summary in {out / 'batch.json'}"
    )
    for scan in summary["scans"]:
        if scan["status"] == "failed":
            typer.echo(f"  failed: {scan['input']}: {scan['error']}")


def batch(
    inputs: Annotated[Optional[list[str]], typer.Argument(
        help="Scans: files (CXI/HDF5/TIFF/NPY/NPZ, file.h5:/dataset), directories (their scan files; "
        "a folder of TIFF frames is one scan), globs, or - to read one input per line from stdin.",
        show_default=False)] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder: OUT/<scan-name>/ per scan and OUT/batch.json.")] = Path("results"),
    workers: Annotated[Optional[int], typer.Option(help="Local worker processes (spawned); 1 runs in this process. With several GPUs and --device cuda/auto, worker k uses cuda:k (default 1).", show_default=False)] = None,
    scheduler: Annotated[Optional[str], typer.Option(help="Dask scheduler address, e.g. tcp://host:8786 (needs Dask: pip install 'cdi-dip\\[cluster]').")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Skip scans already reconstructed with the same configuration.")] = False,
    method: opt.Method = None,
    gpu: opt.Gpu = False,
    device: opt.Device = None,
    mask: opt.Masks = None,
    iterations: opt.Iterations = None,
    runs: opt.Runs = None,
    keep: opt.Keep = None,
    seed: opt.Seed = None,
    plan: opt.Plan = None,
    param: opt.Param = None,
    noise: opt.Noise = None,
    max_size: opt.MaxSize = None,
    centre: opt.Centre = None,
    threshold: opt.Threshold = None,
    dark: opt.Dark = None,
    flat: opt.Flat = None,
    roi: opt.Roi = None,
    bin: opt.Bin = None,
    saturation: opt.Saturation = None,
    beamstop_radius: opt.BeamstopRadius = None,
    aliens: opt.Aliens = None,
    allow_external_links: opt.AllowExternalLinks = False,
    config: Annotated[Optional[Path], typer.Option("--config", help="TOML configuration file for the whole batch (options override it).")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print batch.json as one JSON object on stdout.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress, no summary.")] = False,
    verbose: opt.Verbose = False,
) -> None:
    """Reconstruct many scans, each into OUT/<scan-name>/, and write OUT/batch.json.

    Every scan gets the same configuration and seed, so each result equals what
    `cdi-dip reconstruct` gives for it. A failed scan is recorded and the batch
    goes on. Exit code 0 only if every scan succeeded (or was skipped by
    --resume), else 1; 2 for invalid usage.
    """
    from . import cli as _cli

    _cli._setup_logging(quiet, verbose)
    _cli._sigterm_as_interrupt()
    try:
        if workers is not None and workers < 1:
            raise InvalidInputError(f"--workers {workers}: give at least 1")
        if workers is not None and scheduler:
            raise InvalidInputError("--workers and --scheduler contradict each other: the Dask cluster sets the parallelism")
        cfg = _cli.build_config(config, opt.run_overrides(
            method=method, iterations=iterations, runs=runs, keep=keep, seed=seed, gpu=gpu, device=device, noise=noise,
            max_size=max_size, centre=centre, threshold=threshold, plan=plan, param=param, dark=dark, flat=flat, roi=roi,
            bin=bin, saturation=saturation, beamstop_radius=beamstop_radius, aliens=aliens,
            allow_external_links=allow_external_links,
        ))
        from .batch import expand_inputs, run_batch

        items = inputs or []
        sources = expand_inputs(items, sys.stdin.read() if "-" in items else None)
        mode = "off" if quiet or json_output else ("rich" if sys.stderr.isatty() else "plain")
        with _BatchProgress(mode) as progress:
            summary = run_batch(
                sources, cfg, out, workers=workers or 1, scheduler=scheduler, resume=resume,
                mask_specs=mask or (), command_line=shlex.join(sys.argv), on_event=progress,
            )
    except InvalidInputError as exc:
        raise _cli._fail(str(exc), _cli.EXIT_INVALID) from None
    except KeyboardInterrupt:
        raise _cli._fail(
            f"interrupted; finished scans are listed in {out / 'batch.json'}: rerun with --resume",
            _cli.EXIT_INTERRUPTED,
        ) from None
    if json_output:
        _cli._print_json(summary)
    elif not quiet:
        _render_batch(summary, out)
    raise typer.Exit(0 if summary["failed"] == 0 else _cli.EXIT_FAILED)
