"""``cdi-dip config --defaults``: the default configuration as commented TOML that reads back (issue 19)."""

from __future__ import annotations

import dataclasses
import tomllib

import numpy as np
from typer.testing import CliRunner

from cdi_dip.cli import app
from cdi_dip.config import RunConfig, config_from_dict, load_config
from cdi_dip.config.template import default_toml, field_docs

runner = CliRunner()


def _defaults_text() -> str:
    result = runner.invoke(app, ["config", "--defaults"])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_defaults_parse_back_into_the_default_configuration():
    assert config_from_dict(tomllib.loads(_defaults_text())) == RunConfig().validate()


def test_every_field_is_written_with_its_meaning():
    text = default_toml()
    config = RunConfig()
    for section in [config, *(getattr(config, f.name) for f in dataclasses.fields(config)
                              if dataclasses.is_dataclass(getattr(config, f.name)))]:
        docs = field_docs(type(section))
        for item in dataclasses.fields(section):
            value = getattr(section, item.name)
            if dataclasses.is_dataclass(value):
                assert f"[{item.name}]" in text
                continue
            assert item.name in docs, item.name  # every setting has a docstring to show
            assert f"# {docs[item.name].splitlines()[0]}" in text
            line = f"{item.name} = " if value is not None else f"# {item.name} = "
            assert any(row.startswith(line) for row in text.splitlines()), item.name


def test_unset_values_are_commented_out_and_ranges_shown():
    lines = default_toml().splitlines()
    assert "# max_size = 8  (default: unset)" in lines
    assert "# roi = [...]  (default: unset)" in lines
    assert "beta = 0.9" in lines
    index = lines.index("beta = 0.9")
    assert lines[index - 1] == "# range: 0.0 to 1.0"
    assert "# choices: auto, dip, hio, raar, er, net" in lines


def test_the_printed_file_is_a_config_file(tmp_path):
    path = tmp_path / "my.toml"
    path.write_text(_defaults_text())
    assert load_config(path) == RunConfig().validate()
    data = tmp_path / "scan.npy"
    np.save(data, np.random.default_rng(0).poisson(5.0, (32, 32)).astype(np.float32))
    result = runner.invoke(app, ["inspect", str(data), "--config", str(path), "--json"])
    assert result.exit_code == 0, result.output


def test_config_without_defaults_is_a_usage_error():
    result = runner.invoke(app, ["config"])
    assert result.exit_code == 2
    assert "--defaults" in result.output
