import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdi_dip.errors import InvalidInputError
from cdi_dip.config.plan import Step, default_plan, format_plan, parse_plan, plan_length


def test_the_cohere_formula_reads_like_the_physics():
    steps = parse_plan("3*(20*ER+180*HIO)+20*ER")
    assert steps == [Step("ER", 20), Step("HIO", 180), Step("ER", 20), Step("HIO", 180),
                     Step("ER", 20), Step("HIO", 180), Step("ER", 20)]
    assert plan_length(steps) == 620


@pytest.mark.parametrize("text, expected", [
    ("100*er", [Step("ER", 100)]),
    ("HIO*50", [Step("HIO", 50)]),
    ("2*3*RAAR", [Step("RAAR", 6)]),
    ("10*ER + 10*ER", [Step("ER", 20)]),  # consecutive blocks merge
    ("2*(2*(5*HIO+1*ER))", [Step("HIO", 5), Step("ER", 1)] * 4),
    (" 7 * hio ", [Step("HIO", 7)]),
])
def test_plans_parse(text, expected):
    assert parse_plan(text) == expected


@pytest.mark.parametrize("text, where", [
    ("", "empty"), ("3*(20*ER+", "plan"), ("20*XYZ", "XYZ"), ("0*ER", "plan"), ("ER*ER", "plan"),
    ("20*ER)", "plan"), ("1000000*(1000*ER)", "iterations"),
])
def test_bad_plans_say_what_is_wrong(text, where):
    with pytest.raises(InvalidInputError, match=where):
        parse_plan(text)


@given(st.lists(st.tuples(st.sampled_from(["ER", "HIO", "RAAR"]), st.integers(1, 500)), min_size=1, max_size=8))
def test_format_and_parse_round_trip(blocks):
    steps = parse_plan("+".join(f"{n}*{name}" for name, n in blocks))
    assert parse_plan(format_plan(steps)) == steps
    assert plan_length(steps) == sum(n for _, n in blocks)


@pytest.mark.parametrize("method", ["hio", "raar", "er"])
@pytest.mark.parametrize("iterations", [None, 1, 2, 7, 50, 300, 880, 5000])
def test_default_plans_have_exactly_the_iterations_asked_and_end_with_er(method, iterations):
    steps = parse_plan(default_plan(method, iterations))
    assert plan_length(steps) == (880 if iterations is None else iterations)
    assert steps[-1].algorithm == "ER"
    if method != "er" and (iterations or 880) >= 50:
        assert any(step.algorithm == method.upper() for step in steps)


def test_default_plan_refuses_unknown_methods_and_zero_iterations():
    with pytest.raises(InvalidInputError, match="method"):
        default_plan("dip")
    with pytest.raises(InvalidInputError, match="at least 1"):
        default_plan("hio", 0)
