"""The ``cdi-dip`` command line: parse, build the configuration, call the library, render.

Exit codes: 0 success; 1 a reconstruction failed at run time (batch: any scan
failed); 2 invalid input or usage (one line on stderr, no traceback);
130 interrupted (the best result so far is written when there is one).
"""

from __future__ import annotations

import json
import logging
import shlex
import signal
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from . import __version__
from . import cli_options as opt
from .errors import CdiDipError, InvalidInputError, ReconstructionError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Reconstruct coherent diffraction imaging data (2D CDI, 3D Bragg CDI) "
    "with the double deep image prior or HIO/ER/RAAR + shrinkwrap.",
)

EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_INTERRUPTED = 130


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"cdi-dip: error: {message}", err=True)
    return typer.Exit(code)


def _setup_logging(quiet: bool, verbose: bool) -> None:
    level = logging.WARNING if not verbose else logging.INFO
    if quiet:
        level = logging.ERROR
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def _sigterm_as_interrupt() -> None:
    """SIGTERM behaves like Ctrl-C: stop and keep the best result so far."""

    def handler(signum, frame):  # noqa: ARG001
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def build_config(
    config_file: Optional[Path],
    overrides: dict[str, Any],
):
    """TOML file (if any) merged with command-line options (None: not given), validated once."""
    from .config import config_from_dict, load_toml, merge

    base = load_toml(config_file) if config_file is not None else {}
    return config_from_dict(merge(base, opt.drop_unset(overrides)))


class _Progress:
    """Rich progress bar on a terminal, nothing otherwise."""

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


def _render_summary(summary: dict[str, Any]) -> None:
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
        ("free Poisson LLK", f"{metrics.get('free_llk_poisson', float('nan')):.4f}"),
    ]
    if summary.get("interrupted"):
        rows.append(("status", "INTERRUPTED (best result so far written)"))
    for key, value in rows:
        table.add_row(key, str(value))
    Console().print(table)


def _print_json(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    try:
        import numpy as np

        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return value.tolist()
    except ImportError:  # pragma: no cover
        pass
    return str(value)


@app.command()
def reconstruct(
    input: Annotated[str, typer.Argument(help="CXI/HDF5 file (file.h5:/dataset), TIFF file, directory or glob of TIFF frames, NPY/NPZ.")],
    method: opt.Method = None,
    gpu: opt.Gpu = False,
    device: opt.Device = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder; results go to OUT/<scan-name>/.")] = Path("results"),
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
    config: opt.Config = None,
    json_output: opt.Json = False,
    quiet: opt.Quiet = False,
    verbose: opt.Verbose = False,
) -> None:
    """Reconstruct one scan and write OUT/<scan-name>/ (CXI, TIFFs, report.png, summary.json)."""
    _setup_logging(quiet, verbose)
    _sigterm_as_interrupt()
    try:
        cfg = build_config(config, opt.run_overrides(
            method=method, iterations=iterations, runs=runs, keep=keep, seed=seed, gpu=gpu, device=device, noise=noise,
            max_size=max_size, centre=centre, threshold=threshold, plan=plan, param=param, dark=dark, flat=flat, roi=roi,
            bin=bin, saturation=saturation, beamstop_radius=beamstop_radius, aliens=aliens,
            allow_external_links=allow_external_links,
        ))
        from .pipeline import reconstruct_scan

        show_progress = not quiet and not json_output and sys.stderr.isatty()
        with _Progress(show_progress) as progress:
            summary = reconstruct_scan(
                input, cfg, out, mask_specs=mask or (), command_line=shlex.join(sys.argv), on_iter=progress,
            )
    except InvalidInputError as exc:
        raise _fail(str(exc), EXIT_INVALID) from None
    except ReconstructionError as exc:
        raise _fail(str(exc), EXIT_FAILED) from None
    except KeyboardInterrupt:
        raise _fail("interrupted before any result could be written", EXIT_INTERRUPTED) from None
    if json_output:
        _print_json(summary)
    elif not quiet:
        _render_summary(summary)
    if summary.get("interrupted"):
        raise typer.Exit(EXIT_INTERRUPTED)


@app.command()
def simulate(
    output: Annotated[Path, typer.Argument(help="CXI file to write; the ground truth goes to <stem>_truth.npy beside it.")],
    kind: Annotated[str, typer.Option(help="crystal (faceted, strained) or cell (non-negative specimen).")] = "crystal",
    shape: Annotated[str, typer.Option(help="Frame shape, e.g. 128,128 or 64,64,64.")] = "128,128",
    peak_counts: Annotated[float, typer.Option(help="Expected photons at the brightest pixel.")] = 1e5,
    offset: Annotated[Optional[str], typer.Option(help="Bragg peak offset from the frame centre in pixels, e.g. 3,-2.")] = None,
    dislocation: Annotated[bool, typer.Option(help="Add a dislocation (phase vortex) to the crystal.")] = False,
    beamstop: Annotated[int, typer.Option(help="Beamstop radius in pixels (0: none).")] = 0,
    gap: Annotated[int, typer.Option(help="Width of a detector gap through the frame, pixels (0: none).")] = 0,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    json_output: Annotated[bool, typer.Option("--json", help="Print what was written as JSON.")] = False,
) -> None:
    """Write a synthetic scan (CXI) and its ground truth, for demos, tests and benchmarks."""
    _setup_logging(False, False)
    try:
        import numpy as np

        from .simulate import simulate_scan, write_simulated_scan

        if kind not in ("crystal", "cell"):
            raise InvalidInputError(f"--kind {kind!r}: choose crystal or cell")
        frame = tuple(opt.parse_ints(shape, "--shape"))
        if len(frame) not in (2, 3) or min(frame) < 8:
            raise InvalidInputError(f"--shape {shape}: give 2 or 3 sizes of at least 8 pixels, e.g. 128,128")
        offset_px = tuple(opt.parse_ints(offset, "--offset")) if offset else None
        if offset_px is not None and len(offset_px) != len(frame):
            raise InvalidInputError(f"--offset {offset} has {len(offset_px)} values but --shape has {len(frame)}")
        if peak_counts <= 0:
            raise InvalidInputError(f"--peak-counts {peak_counts}: must be positive")
        scan = simulate_scan(kind, frame, rng=np.random.default_rng(seed), peak_counts=peak_counts,
                             offset_px=offset_px, dislocation=dislocation,
                             beamstop_radius_px=beamstop, gap_px=gap)
        output.parent.mkdir(parents=True, exist_ok=True)
        write_simulated_scan(output, scan)
    except InvalidInputError as exc:
        raise _fail(str(exc), EXIT_INVALID) from None
    except OSError as exc:
        raise _fail(f"cannot write {output}: {exc.strerror}", EXIT_INVALID) from None
    except MemoryError:  # where the free memory could not be told beforehand
        raise _fail(f"--shape {shape}: not enough memory to simulate this frame; give a smaller shape, "
                    "e.g. 128,128", EXIT_INVALID) from None
    truth = output.with_name(f"{output.stem}_truth.npy")
    info = {"output": str(output), "ground_truth": str(truth), "kind": kind, "shape": list(frame),
            "peak_counts": peak_counts, "seed": seed}
    if json_output:
        _print_json(info)
    else:
        typer.echo(f"wrote {output} and {truth}")


@app.command()
def inspect(
    input: Annotated[str, typer.Argument(help="Any input reconstruct accepts.")],
    mask: opt.Masks = None,
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
    config: opt.Config = None,
    png: Annotated[Optional[Path], typer.Option(help="Also draw the frame(s) with the excluded pixels coloured by reason into this PNG.")] = None,
    json_output: opt.Json = False,
) -> None:
    """Show what was read and found: shape, counts, peak, excluded pixels by reason, geometry, suggested frame."""
    _setup_logging(False, False)
    try:
        cfg = build_config(config, opt.run_overrides(
            max_size=max_size, centre=centre, threshold=threshold, dark=dark, flat=flat, roi=roi, bin=bin,
            saturation=saturation, beamstop_radius=beamstop_radius, aliens=aliens,
            allow_external_links=allow_external_links,
        ))
        from .inspection import describe, inspect_input

        inspection = inspect_input(input, cfg, mask_specs=mask or ())
        info = describe(inspection, source=input)
        if png is not None:
            from .report.png import write_mask_figure

            _check_parent(png)
            info["png"] = str(write_mask_figure(inspection.conditioned, png))
    except InvalidInputError as exc:
        raise _fail(str(exc), EXIT_INVALID) from None
    if json_output:
        _print_json(info)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"cdi-dip inspect: {input}", show_header=False)
    for key, value in info.items():
        table.add_row(key, json.dumps(value, default=_json_default) if isinstance(value, (dict, list)) else str(value))
    Console().print(table)


def _check_parent(path: Path) -> None:
    """An output file's folder must exist and be writable."""
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise InvalidInputError(f"{path}: folder {folder} does not exist; create it or choose another path")
    import os

    if not os.access(folder, os.W_OK):
        raise InvalidInputError(f"{path}: folder {folder} is not writable; choose another path")


@app.command()
def compare(
    objects: Annotated[list[str], typer.Argument(help="Two objects (RESULT REFERENCE), or three or more for all their "
                                                 "pairwise errors: result .cxi, .npy/.npz, or file.h5:/dataset.")],
    allow_external_links: opt.AllowExternalLinks = False,
    json_output: opt.Json = False,
) -> None:
    """Symmetry-adjusted error between objects (global phase and scale, shift, twin and phase ramp removed)."""
    _setup_logging(False, False)
    try:
        if len(objects) < 2:
            raise InvalidInputError("compare needs at least two objects: RESULT REFERENCE (or more for pairwise errors)")
        from .ensemble import compare_objects
        from .io.readers import read_object

        arrays = [read_object(spec, allow_external_links=allow_external_links) for spec in objects]
        if len(arrays) == 2:
            from dataclasses import asdict

            figures = {"result": objects[0], "reference": objects[1], **asdict(compare_objects(*arrays))}
        else:
            import numpy as np

            from .ensemble import pairwise_errors

            matrix = pairwise_errors(arrays)
            off = ~np.eye(len(arrays), dtype=bool)
            figures = {"objects": list(objects), "pairwise_errors": matrix.tolist(),
                       "mean_pairwise_error": float(matrix[off].mean()), "max_pairwise_error": float(matrix[off].max())}
    except InvalidInputError as exc:
        raise _fail(str(exc), EXIT_INVALID) from None
    if json_output:
        _print_json(figures)
    elif "pairwise_errors" in figures:
        _render_pairwise(figures)
    else:
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


@app.command()
def report(
    result: Annotated[Path, typer.Argument(help="A result .cxi written by cdi-dip reconstruct.")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Folder for report.png and report.html [default: beside the result].")] = None,
    json_output: opt.Json = False,
) -> None:
    """Rebuild report.png and report.html from a result file."""
    _setup_logging(False, False)
    try:
        from .report.html import regenerate_report

        files = regenerate_report(result, out)
    except InvalidInputError as exc:
        raise _fail(str(exc), EXIT_INVALID) from None
    if json_output:
        _print_json({"result": str(result), "files": [str(f) for f in files]})
    else:
        typer.echo("wrote " + " and ".join(str(f) for f in files))


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


from .cli_batch import batch  # noqa: E402  (registered after the other commands)

app.command(name="batch")(batch)


def main() -> None:
    """Console-script entry point: one line on stderr and an exit code for every error, never a traceback.

    Click's usage errors (an unknown option, a bad value, a missing argument)
    become ``cdi-dip: error: <message> (see 'cdi-dip COMMAND --help')`` and
    exit code 2, instead of click's boxed usage text; stray domain errors and
    Ctrl-C keep their exit codes (see the module docstring).
    """
    sys.exit(_run_app())


def _click_error_types() -> tuple[type, ...]:
    """The base classes of the usage errors the installed typer raises.

    Typer since 0.2x carries its own copy of click, whose ``ClickException``
    derives from ``typer.TyperException``; older releases raise click's.
    """
    types: list[type] = [typer.TyperException] if hasattr(typer, "TyperException") else []
    try:
        import click
    except ImportError:  # pragma: no cover - typer without click
        pass
    else:
        types.append(click.exceptions.ClickException)
    return tuple(types)


def _run_app() -> int:
    """Run the typer app without click's own error display; return the exit code."""
    try:
        code = app(prog_name="cdi-dip", standalone_mode=False)
    except _click_error_types() as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # no command: the help, printed already by rich
            if exc.format_message().strip():
                typer.echo(exc.format_message())
        else:
            typer.echo(f"cdi-dip: error: {_usage_error_line(exc)}", err=True)
        return exc.exit_code
    except typer.Abort:
        typer.echo("cdi-dip: aborted", err=True)
        return EXIT_FAILED
    except InvalidInputError as exc:
        typer.echo(f"cdi-dip: error: {exc}", err=True)
        return EXIT_INVALID
    except CdiDipError as exc:
        typer.echo(f"cdi-dip: error: {exc}", err=True)
        return EXIT_FAILED
    except KeyboardInterrupt:
        typer.echo("cdi-dip: interrupted", err=True)
        return EXIT_INTERRUPTED
    return code if isinstance(code, int) else 0  # an int: the code of an Exit (--help, typer.Exit(n))


def _usage_error_line(exc) -> str:
    """Click's message on one line, with where to read the command's help."""
    message = " ".join(exc.format_message().split())
    ctx = getattr(exc, "ctx", None)
    command = ctx.command_path if ctx is not None else "cdi-dip"
    return f"{message} (see '{command} --help')"


if __name__ == "__main__":  # pragma: no cover
    main()
