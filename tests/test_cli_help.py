"""``--help`` shows every default (issue 19): no ``[...]`` eaten as rich markup."""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from cdi_dip.cli import app

runner = CliRunner()


def _help(command: str) -> str:
    """``cdi-dip COMMAND --help`` 200 columns wide, box lines removed and whitespace collapsed."""
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.output).split())


def test_reconstruct_help_shows_the_defaults_written_in_brackets():
    text = _help("reconstruct")
    for default in ("default: half the runs", "default: auto: dip for crystals, hio for specimens",
                    "default: auto]", "default: mask]"):
        assert default in text, default
    assert "default: beside the result" in _help("report")


@pytest.mark.parametrize("command", ["reconstruct", "batch", "inspect", "simulate", "report", "compare", "strain"])
def test_help_shows_every_default(command):
    """A non-None default of a valued option is shown; so is every ``[default: ...]`` written in a help text."""
    text = _help(command)
    click_command = typer.main.get_command(app).commands[command]
    for param in click_command.params:
        if getattr(param, "is_flag", False) or param.name == "help":
            continue
        if param.default is not None and not isinstance(param, typer.core.TyperArgument):
            default = param.default
            shown = ",".join(map(str, default)) if isinstance(default, (list, tuple)) else str(default)
            assert f"default: {shown}" in text, (command, param.name)
        assert not re.search(r"(?<!\\)\[", param.help or ""), f"{command} {param.name}: escape [ as \\["
        written = re.search(r"\\\[(default: [^\]]*)\]", param.help or "")
        if written:
            assert written.group(1) in text, (command, param.name)


PANELS = ["Input", "Preparation", "Method", "Output", "Runtime"]


@pytest.mark.parametrize("command", ["reconstruct", "batch", "inspect"])
def test_options_are_grouped_in_panels_in_order(command):
    """Every option but --help sits in one of the panels, and --help lists the panels in their order."""
    click_command = typer.main.get_command(app).commands[command]
    used = set()
    for param in click_command.params:
        if isinstance(param, typer.core.TyperArgument) or param.name == "help":
            continue
        assert param.rich_help_panel in PANELS, (command, param.name)
        used.add(param.rich_help_panel)
    result = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    titles = re.findall(r"╭─ (\w+) ─", result.output)
    assert titles == ["Arguments", "Options", *[panel for panel in PANELS if panel in used]]
