import dataclasses

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


def test_a_field_carries_its_range_and_one_validator_reads_it():
    from dataclasses import dataclass

    from cdi_dip.config.schema import option, validate

    @dataclass
    class Section:
        beta: float = option(0.9, range=(0.0, 1.0))
        factors: list[int] | None = option(None, range=(1, 16))
        shape: str = option("disc", choices=("disc", "ball"))
        on: bool = option(True)

    assert dataclasses.fields(Section)[0].metadata["range"] == (0.0, 1.0)
    validate(Section(), "demo")
    for bad, message in [
        (Section(beta=1.5), r"demo\.beta = 1\.5 is above its maximum 1\.0"),
        (Section(beta=float("nan")), r"demo\.beta = nan is not a finite number; give a number \(default 0\.9\)"),
        (Section(factors=[2, 0]), r"demo\.factors = 0 is below its minimum 1"),
        (Section(factors=[True]), r"demo\.factors must be an integer, got True"),
        (Section(shape="cube"), r"demo\.shape = 'cube'; choose one of disc, ball"),
        (Section(on=1), r"demo\.on must be true or false, got 1"),
    ]:
        with pytest.raises(InvalidInputError, match=message):
            validate(bad, "demo")


def test_every_range_is_declared_on_its_field():
    from cdi_dip.config import ProjectionConfig

    beta = next(f for f in dataclasses.fields(ProjectionConfig) if f.name == "beta")
    assert beta.metadata["range"] == (0.0, 1.0)
    cfg = RunConfig()
    cfg.projection.beta = 1.5
    with pytest.raises(InvalidInputError, match=r"^configuration: projection\.beta = 1\.5 is above its maximum 1\.0$"):
        cfg.validate()


def test_no_more_runs_kept_than_made():
    with pytest.raises(InvalidInputError, match=r"keep = 5 is above its maximum 4"):
        config_from_dict({"method": "hio", "keep": 5})


def test_load_config_lays_overrides_over_the_file(tmp_path):
    from cdi_dip.config import load_config

    path = tmp_path / "run.toml"
    path.write_text('method = "raar"\n[projection]\nbeta = 0.8\n')
    cfg = load_config(path, {"runs": 2, "projection": {"beta": 0.7}})
    assert cfg.method is Method.RAAR and cfg.runs == 2 and cfg.projection.beta == 0.7
    assert load_config().to_dict() == RunConfig().validate().to_dict()
