"""The command-line option table: every option reaches its configuration field, nothing else does."""

from __future__ import annotations

import inspect

import pytest

from cdi_dip.cli import options as opt
from cdi_dip.cli.batch import batch
from cdi_dip.cli.common import build_config
from cdi_dip.cli.inspect import inspect as inspect_command
from cdi_dip.cli.reconstruct import reconstruct
from cdi_dip.config import config_from_dict
from cdi_dip.errors import InvalidInputError


@pytest.mark.parametrize("name,path", opt.CONFIG_PATH.items())
def test_every_option_names_a_configuration_field(name, path):
    cfg = config_from_dict({})
    for part in path.split("."):
        assert hasattr(cfg, part), f"{name} -> {path}: no field {part}"
        cfg = getattr(cfg, part)


@pytest.mark.parametrize("command", [reconstruct, batch, inspect_command])
def test_the_configuration_options_of_a_command_are_in_the_table(command):
    ignored = {"input", "inputs", "out", "mask", "config", "json_output", "quiet", "verbose", "png", "gpu",
               "workers", "scheduler", "resume", "threads", "name",
               "strain"}  # output choices, not configuration: batch --resume does not compare them
    parameters = set(inspect.signature(command).parameters) - ignored
    assert parameters <= set(opt.CONFIG_PATH), parameters - set(opt.CONFIG_PATH)


def test_overrides_nest_the_given_options_and_parse_them():
    given = {"input": "scan.cxi", "method": "hio", "seed": 0, "gpu": True, "device": None, "max_size": None,
             "threshold": 0.0, "roi": "0,8,0,8", "bin": "2", "plan": "20*ER", "allow_external_links": False}
    assert opt.overrides(given) == {
        "method": "hio", "seed": 0, "device": "cuda",
        "prep": {"threshold": 0.0}, "projection": {"plan": "20*ER"},
        "detector": {"roi": [0, 8, 0, 8], "bin": [2]},
    }
    assert opt.overrides({"allow_external_links": True}) == {"input": {"allow_external_links": True}}
    assert opt.overrides({}) == {}


def test_overrides_refuse_contradictions_and_bad_text():
    with pytest.raises(InvalidInputError, match="--gpu and --device cpu"):
        opt.overrides({"gpu": True, "device": "cpu"})
    with pytest.raises(InvalidInputError, match="--roi"):
        opt.overrides({"roi": "a,b"})


def test_options_given_override_the_toml_file_and_the_others_leave_it(tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text('seed = 5\nmethod = "er"\n[prep]\nmax_size = 64\n')
    cfg = build_config(toml, opt.overrides({"seed": 9, "method": None, "max_size": None}))
    assert (cfg.seed, cfg.method, cfg.prep.max_size) == (9, "er", 64)


def test_the_projection_thresholds_and_beta_are_options_of_reconstruct_and_batch(tmp_path):
    given = {"beta": 0.7, "support_threshold": 0.2, "shrinkwrap_threshold": 0.3}
    assert opt.overrides(given) == {"projection": given}
    toml = tmp_path / "run.toml"
    toml.write_text("[projection]\nbeta = 0.5\nsupport_threshold = 0.05\n")
    cfg = build_config(toml, opt.overrides({"beta": 0.7, "support_threshold": None}))
    assert (cfg.projection.beta, cfg.projection.support_threshold) == (0.7, 0.05)
    with pytest.raises(InvalidInputError, match="projection.shrinkwrap_threshold"):
        build_config(None, opt.overrides({"shrinkwrap_threshold": 1.5}))
    for command in (reconstruct, batch):
        assert set(given) <= set(inspect.signature(command).parameters), command.__name__
