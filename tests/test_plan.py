import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdi_dip.errors import InvalidInputError
from cdi_dip.config.plan import ER, HIO, RAAR, Plan, Step, default_plan, format_plan, parse_plan, plan_length


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


# -- the plan as a value ---------------------------------------------------------------------------
@pytest.mark.parametrize("plan, text", [
    (4 * (20 * ER + 180 * HIO) + 80 * ER, "4*(20*ER+180*HIO)+80*ER"),
    (4 * (20 * ER + 180 * RAAR) + 80 * ER, "4*(20*ER+180*RAAR)+80*ER"),
    (880 * ER, "880*ER"),
    (3 * (20 * ER + 180 * HIO) + 20 * ER, "3*(20*ER+180*HIO)+20*ER"),
    (HIO * 50, "HIO*50"),
    (2 * 3 * RAAR, "2*3*RAAR"),
    (10 * ER + 10 * ER, "10*ER + 10*ER"),
    (2 * (2 * (5 * HIO + ER)), "2*(2*(5*HIO+1*ER))"),
    (ER + HIO + ER, "ER+HIO+ER"),
])
def test_the_algebra_equals_the_parsed_text(plan, text):
    assert isinstance(plan, Plan) and plan == parse_plan(text)
    assert hash(plan) == hash(parse_plan(text))


@pytest.mark.parametrize("method, plan", [
    ("hio", 4 * (20 * ER + 180 * HIO) + 80 * ER),
    ("raar", 4 * (20 * ER + 180 * RAAR) + 80 * ER),
    ("er", 880 * ER),
])
def test_the_default_plans_are_the_algebra(method, plan):
    assert parse_plan(default_plan(method)) == plan
    assert plan.iterations == 880


@pytest.mark.parametrize("method", ["hio", "raar", "er"])
@pytest.mark.parametrize("iterations", [None, 1, 2, 7, 50, 300, 880, 5000])
def test_str_of_a_plan_round_trips_through_the_parser(method, iterations):
    plan = parse_plan(default_plan(method, iterations))
    assert parse_plan(str(plan)) == plan and str(plan) == format_plan(plan)


@given(st.lists(st.tuples(st.sampled_from([ER, HIO, RAAR]), st.integers(1, 50)), min_size=1, max_size=6),
       st.integers(1, 5))
def test_repetition_and_concatenation_agree_with_the_text(blocks, times):
    plan = blocks[0][1] * blocks[0][0]
    for algorithm, n in blocks[1:]:
        plan = plan + n * algorithm
    text = "+".join(f"{n}*{algorithm}" for algorithm, n in blocks)
    assert plan == parse_plan(text) and times * plan == parse_plan(f"{times}*({text})")
    assert parse_plan(str(times * plan)) == times * plan
    assert (times * plan).iterations == times * sum(n for _, n in blocks)


def test_a_plan_is_a_sequence_of_its_blocks():
    plan = 2 * (20 * ER + 180 * HIO) + 80 * ER
    assert len(plan) == 5 and plan.iterations == 480 and plan_length(plan) == 480  # len counts blocks
    assert plan[-1] == Step("ER", 80) and list(plan) == list(plan.steps)
    assert [step.algorithm for step in plan] == ["ER", "HIO", "ER", "HIO", "ER"]
    assert str(plan) == "20*ER+180*HIO+20*ER+180*HIO+80*ER"
    assert Plan((Step("ER", 1), Step("ER", 2))) == 3 * ER  # equal neighbours merge


def test_plan_algebra_refuses_what_the_parser_refuses():
    with pytest.raises(ValueError, match="at least once"):
        0 * ER
    with pytest.raises(TypeError):
        2.5 * ER
    with pytest.raises(InvalidInputError, match="more than 10000000 iterations"):
        10_000_000 * ER + ER
    with pytest.raises(InvalidInputError, match="more than 100000 blocks"):
        5_000_000 * (ER + HIO)
    with pytest.raises(ValueError):
        Plan((Step("XYZ", 1),))
    with pytest.raises(ValueError):
        Plan(())

