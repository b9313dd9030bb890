"""The ``cdi-dip`` Typer app: the commands, registered in the order ``--help`` lists them.

Each command lives in its own module and imports :mod:`.common`, :mod:`.options`
and :mod:`.render`, never this module, so there is no import circle.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from .. import __version__
from .batch import batch
from .common import run_app
from .compare import compare
from .config import config
from .inspect import inspect
from .reconstruct import reconstruct
from .report import report
from .simulate import simulate
from .strain import strain
from .train import train
from .train_dip import train_dip
from .version import version

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Reconstruct coherent diffraction imaging data (2D CDI, 3D Bragg CDI) "
    "with the double deep image prior or HIO/ER/RAAR + shrinkwrap.",
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit(0)


@app.callback()
def _options(
    version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    # no docstring: the app's help stays the Typer(help=...) text above
    pass


for _command in (reconstruct, simulate, inspect, compare, report, strain, train, train_dip, version, batch, config):
    app.command()(_command)


def main() -> None:
    """Console-script entry point: one line on stderr and an exit code for every error, never a traceback.

    See :func:`cdi_dip.cli.common.run_app` for how errors become exit codes.
    """
    sys.exit(run_app(app))
