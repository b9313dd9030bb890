import pytest

from cdi_dip.config import Method, RunConfig, config_from_dict, load_toml, merge
from cdi_dip.errors import InvalidInputError


def test_defaults_validate():
    cfg = RunConfig().validate()
    assert cfg.method is Method.AUTO and cfg.runs is None  # runs follow the method chosen from the data
    assert config_from_dict({}).to_dict() == cfg.to_dict()


def test_with_method_sets_that_methods_default_runs():
    from cdi_dip.config import DEFAULT_RUNS

    cfg = RunConfig().validate()
    assert cfg.with_method(Method.HIO).runs == DEFAULT_RUNS[Method.HIO]
    assert cfg.with_method(Method.DIP).runs == DEFAULT_RUNS[Method.DIP]
    asked = RunConfig(runs=6, keep=3).validate()
    assert asked.with_method(Method.DIP).runs == 6 and asked.with_method(Method.DIP).keep == 3
    with pytest.raises(ValueError):
        cfg.with_method(Method.AUTO)


def test_toml_round_trip(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('method = "raar"\nruns = 3\n[prep]\nmax_size = 64\n[projection]\nbeta = 0.8\n')
    cfg = config_from_dict(load_toml(path))
    assert cfg.method is Method.RAAR and cfg.runs == 3
    assert cfg.prep.max_size == 64 and cfg.projection.beta == 0.8


@pytest.mark.parametrize(
    "data, field",
    [
        ({"methd": "hio"}, "methd"),
        ({"prep": {"max_sise": 3}}, "prep.max_sise"),
        ({"projection": {"beta": 1.5}}, "projection.beta"),
        ({"method": "magic"}, "method"),
        ({"runs": 0}, "runs"),
        ({"runs": "two"}, "runs"),
        ({"device": "tpu"}, "device"),
        ({"dip": {"learning_rate": -1.0}}, "dip.learning_rate"),
    ],
)
def test_bad_values_name_the_field(data, field):
    with pytest.raises(InvalidInputError, match=field.replace(".", r"\.")):
        config_from_dict(data)


def test_bad_toml_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("method = \n")
    with pytest.raises(InvalidInputError, match="not valid TOML"):
        load_toml(path)
    with pytest.raises(InvalidInputError, match="does not exist"):
        load_toml(tmp_path / "missing.toml")


def test_merge_overrides_nested():
    assert merge({"a": 1, "p": {"x": 1, "y": 2}}, {"p": {"y": 3}}) == {"a": 1, "p": {"x": 1, "y": 3}}
