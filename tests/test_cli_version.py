"""``cdi-dip --version`` (issue 19) beside the ``version`` command."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cdi_dip import __version__
from cdi_dip.cli import app, main

runner = CliRunner()


def test_version_option_prints_the_version_and_exits_0():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == __version__


def test_version_option_and_command_through_main(monkeypatch, capsys):
    for argv in (["cdi-dip", "--version"], ["cdi-dip", "version"]):
        monkeypatch.setattr("sys.argv", argv)
        with pytest.raises(SystemExit) as exit_info:
            main()
        assert exit_info.value.code == 0
        assert capsys.readouterr().out.strip() == __version__
