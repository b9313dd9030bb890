"""``cdi-dip report``: rebuild a result's report.png and report.html."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from . import options as opt
from .common import exit_codes, print_json, setup_logging


def report(
    result: Annotated[Path, typer.Argument(help="A result .cxi written by cdi-dip reconstruct.")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Folder for report.png and report.html \\[default: beside the result].")] = None,
    json_output: opt.Json = False,
) -> None:
    """Rebuild report.png and report.html from a result file."""
    setup_logging(False, False)
    with exit_codes():
        from ..report.html import regenerate_report

        files = regenerate_report(result, out)
    if json_output:
        print_json({"result": str(result), "files": [str(f) for f in files]})
    else:
        typer.echo("wrote " + " and ".join(str(f) for f in files))
