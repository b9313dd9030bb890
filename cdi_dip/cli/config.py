"""``cdi-dip config``: the configuration file format, explained by an example."""

from __future__ import annotations

from typing import Annotated

import typer

from ..errors import InvalidInputError
from .common import exit_codes


def config(
    defaults: Annotated[bool, typer.Option(
        "--defaults", help="Print every setting with its default, range and meaning, as a TOML file "
                           "that --config reads (cdi-dip config --defaults > my.toml).")] = False,
) -> None:
    """Print the configuration a --config TOML file can hold: every section and setting, commented."""
    with exit_codes():
        if not defaults:
            raise InvalidInputError("config: give --defaults to print the default configuration as TOML")
        from ..config.template import default_toml

        typer.echo(default_toml(), nl=False)
