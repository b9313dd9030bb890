"""What every ``cdi-dip`` command shares: exit codes, error lines, logging, SIGTERM, configuration, JSON.

Exit codes: 0 success; 1 a reconstruction failed at run time (batch: any scan
failed); 2 invalid input or usage (one line on stderr, no traceback);
130 interrupted (the best result so far is written when there is one).

Nothing here imports the Typer app: :func:`run_app` is given it.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

import typer

from ..errors import CdiDipError, InvalidInputError, ReconstructionError

EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_INTERRUPTED = 130


def fail(message: str, code: int) -> typer.Exit:
    """Print ``cdi-dip: error: MESSAGE`` on stderr; return the Exit to raise with ``code``."""
    typer.echo(f"cdi-dip: error: {message}", err=True)
    return typer.Exit(code)


@contextmanager
def exit_codes(*, failures: bool = False, interrupted: str | None = None) -> Iterator[None]:
    """Inside a command: the library's errors as one line on stderr and the command's exit code.

    :class:`InvalidInputError` exits 2; with ``failures``, a :class:`ReconstructionError` exits 1;
    with ``interrupted``, Ctrl-C (or SIGTERM) prints that line and exits 130. Anything else
    propagates (to :func:`run_app`).
    """
    try:
        yield
    except InvalidInputError as exc:
        raise fail(str(exc), EXIT_INVALID) from None
    except ReconstructionError as exc:
        if not failures:
            raise
        raise fail(str(exc), EXIT_FAILED) from None
    except KeyboardInterrupt:
        if interrupted is None:
            raise
        raise fail(interrupted, EXIT_INTERRUPTED) from None


def setup_logging(quiet: bool, verbose: bool) -> None:
    level = logging.WARNING if not verbose else logging.INFO
    if quiet:
        level = logging.ERROR
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def sigterm_as_interrupt() -> None:
    """SIGTERM behaves like Ctrl-C: stop and keep the best result so far."""

    def handler(signum, frame):  # noqa: ARG001
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def check_model_output(output: Path, *, resume: bool | None = None) -> None:
    """A model file a training command will write: never an existing one unless resumed, in a folder that exists.

    Parameters
    ----------
    output : pathlib.Path
    resume : bool or None
        ``--resume`` as given; None for a command that cannot resume.

    Raises
    ------
    InvalidInputError
        The message says what to do.
    """
    if output.exists() and not resume:
        hint = "" if resume is None else ", or --resume to continue its training"
        raise InvalidInputError(f"{output} exists: give another name{hint}")
    if resume and not output.is_file():
        raise InvalidInputError(f"--resume: {output} does not exist")
    if not output.parent.is_dir():
        raise InvalidInputError(f"the folder of {output} does not exist: create it first")


def set_threads(threads: Optional[int]) -> None:
    """``--threads N``: ``torch.set_num_threads(N)`` for this process (the C kernels follow
    ``torch.get_num_threads()``); None leaves torch's default. N < 1 is an InvalidInputError."""
    if threads is None:
        return
    if threads < 1:
        raise InvalidInputError(f"--threads {threads}: give at least 1")
    import torch

    torch.set_num_threads(threads)


def build_config(config_file: Optional[Path], overrides: dict[str, Any]):
    """TOML file (if any) merged with the options given (nested, see :func:`.options.overrides`), validated once
    (:func:`cdi_dip.config.load_config`)."""
    from ..config import load_config

    return load_config(config_file, overrides)


def print_json(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=json_default) + "\n")


def json_default(value: Any) -> Any:
    try:
        import numpy as np

        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return value.tolist()
    except ImportError:  # pragma: no cover
        pass
    return str(value)


def run_app(app: typer.Typer) -> int:
    """Run ``app`` without click's own error display; return the exit code.

    Click's usage errors (an unknown option, a bad value, a missing argument)
    become ``cdi-dip: error: <message> (see 'cdi-dip COMMAND --help')`` and
    exit code 2, instead of click's boxed usage text; stray domain errors and
    Ctrl-C keep their exit codes (see the module docstring).
    """
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


def _usage_error_line(exc) -> str:
    """Click's message on one line, with where to read the command's help."""
    message = " ".join(exc.format_message().split())
    ctx = getattr(exc, "ctx", None)
    command = ctx.command_path if ctx is not None else "cdi-dip"
    return f"{message} (see '{command} --help')"
