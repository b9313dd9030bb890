"""Algorithm plans: short readable formulas such as ``3*(20*ER+180*HIO)+20*ER``.

Grammar (whitespace ignored, algorithm names case-insensitive)::

    plan   := term ('+' term)*
    term   := factor ('*' factor)*        one factor is a sequence, the others numbers
    factor := NUMBER | ALGORITHM | '(' plan ')'

``N*ALG`` and ``ALG*N`` both mean ``N`` iterations of ``ALG``; a number times a
group repeats the group, and nested groups multiply. The parsed plan is a
:class:`Plan`: a value holding a flat tuple of :class:`Step`, with consecutive
steps of the same algorithm merged.

The same formulas can be written in Python with the one-iteration plans
:data:`ER`, :data:`HIO` and :data:`RAAR`, and ``str`` gives the text back::

    >>> 4 * (20 * ER + 180 * HIO) + 80 * ER == parse_plan("4*(20*ER+180*HIO)+80*ER")
    True
    >>> str(2 * (10 * ER + 5 * RAAR))
    '10*ER+5*RAAR+10*ER+5*RAAR'
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import overload

from ..errors import InvalidInputError

ALGORITHMS = ("ER", "HIO", "RAAR")

MAX_ITERATIONS = 10_000_000
"""Upper bound on the total iterations of a plan (guards against typos like 1000000*ER)."""

MAX_PLAN_CHARACTERS = 100_000
"""Longest plan text (a plan is a short formula; parsing costs a few microseconds a character)."""

MAX_NESTING = 32
"""Deepest nesting of parentheses in a plan (deeper plans would exhaust Python's recursion)."""

MAX_BLOCKS = 100_000
"""Upper bound on the blocks of a parsed plan (alternations such as ``1000000*(ER+HIO)`` would take
seconds and gigabytes to spell out, for no benefit over longer blocks)."""

# Default plans, chosen by measurement on simulated 2D and 3D crystals (see
# ``default_plan``): ``cycles`` repetitions of (``er`` ER + ``main`` HIO/RAAR),
# then ``final_er`` ER iterations.
_DEFAULT_CYCLES = 4
_DEFAULT_MAIN = 180
_DEFAULT_ER = 20
_DEFAULT_FINAL_ER = 80


@dataclass(frozen=True)
class Step:
    """A block of iterations of one algorithm.

    Attributes
    ----------
    algorithm : str
        ``"ER"``, ``"HIO"`` or ``"RAAR"``.
    iterations : int
        Number of iterations, at least 1.
    """

    algorithm: str
    iterations: int


@dataclass(frozen=True, eq=False, repr=False)
class Plan(Sequence[Step]):
    """An algorithm plan as a value: a tuple of :class:`Step`, consecutive equal algorithms merged.

    A sequence of its steps (``for step in plan``, ``plan[-1]``, ``len(plan)``
    = the number of blocks, not of iterations: see :attr:`iterations`), equal
    to any plan or list of the same steps. ``+`` runs one plan after another,
    ``n * plan`` repeats it ``n`` times, and ``str(plan)`` is its canonical
    text, which :func:`parse_plan` reads back to an equal plan. The totals
    are bounded as for a text (:data:`MAX_ITERATIONS`, :data:`MAX_BLOCKS`).

    Attributes
    ----------
    steps : tuple of Step
        In execution order; at least one.
    """

    steps: tuple[Step, ...]

    def __post_init__(self) -> None:
        steps = tuple(self.steps)
        if not steps:
            raise ValueError("a plan needs at least one step")
        for step in steps:
            if not isinstance(step, Step) or step.algorithm not in ALGORITHMS:
                raise ValueError(f"not a step of {', '.join(ALGORITHMS)}: {step!r}")
            if isinstance(step.iterations, bool) or not isinstance(step.iterations, int) or step.iterations < 1:
                raise ValueError(f"{step!r}: a step needs an integer number of iterations, at least 1")
        object.__setattr__(self, "steps", tuple(_merge(list(steps))))

    @property
    def iterations(self) -> int:
        """Total number of iterations."""
        return plan_length(self.steps)

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps)

    def __len__(self) -> int:
        return len(self.steps)

    @overload
    def __getitem__(self, index: int) -> Step: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[Step, ...]: ...

    def __getitem__(self, index):
        return self.steps[index]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Plan):
            return self.steps == other.steps
        if isinstance(other, (list, tuple)):
            return self.steps == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.steps)

    def __add__(self, other: object) -> Plan:
        if not isinstance(other, Plan):
            return NotImplemented
        if self.iterations + other.iterations > MAX_ITERATIONS:
            raise _too_many_iterations(f"{self}+{other}")
        steps = list(self.steps)
        _extend(steps, list(other.steps), f"{self}+{other}")
        return Plan(tuple(steps))

    def __mul__(self, times: object) -> Plan:
        if isinstance(times, bool):
            return NotImplemented
        try:
            times = operator.index(times)
        except TypeError:
            return NotImplemented
        if times < 1:
            raise ValueError(f"a plan repeated {times} times: repeat it at least once")
        return Plan(tuple(_repeat(list(self.steps), times, f"{times}*({self})")))

    __rmul__ = __mul__

    def __str__(self) -> str:
        return format_plan(self.steps)

    def __repr__(self) -> str:
        return f"parse_plan({str(self)!r})"


class _Parser:
    """Recursive-descent parser over the characters of one plan."""

    def __init__(self, text: str):
        self.text = text
        self.pos = 0
        self.depth = 0

    # -- lexing helpers ---------------------------------------------------
    def _skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def _peek(self) -> str:
        self._skip()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def _fail(self, expected: str, pos: int | None = None) -> InvalidInputError:
        where = self.pos if pos is None else pos
        found = "the end" if where >= len(self.text) else repr(self.text[where])
        return InvalidInputError(
            f"plan {_shorten(self.text)}: expected {expected} at position {where} (found {found}); "
            "write e.g. '3*(20*ER+180*HIO)+20*ER'"
        )

    # -- grammar ----------------------------------------------------------
    def parse(self) -> list[Step]:
        steps = self._plan()
        if self._peek():
            raise self._fail("'+', '*' or the end of the plan")
        return steps

    def _plan(self) -> list[Step]:
        steps = self._term()
        total = plan_length(steps)
        while self._peek() == "+":
            self.pos += 1
            start = self.pos
            term = self._term()
            total += plan_length(term)
            if total > MAX_ITERATIONS:
                raise _too_many_iterations(self.text, start)
            _extend(steps, term, self.text)
        return steps

    def _term(self) -> list[Step]:
        self._skip()
        start = self.pos
        multiplier = 1
        sequence: list[Step] | None = None
        while True:
            factor_pos = self.pos if self._peek() else len(self.text)
            factor = self._factor()
            if isinstance(factor, int):
                multiplier *= factor
                if multiplier > MAX_ITERATIONS:
                    raise _too_many_iterations(self.text, factor_pos)
            elif sequence is None:
                sequence = factor
            else:
                raise InvalidInputError(
                    f"plan {_shorten(self.text)}: cannot multiply two algorithm sequences at position "
                    f"{factor_pos}; join them with '+', e.g. '20*ER+180*HIO'"
                )
            if self._peek() != "*":
                break
            self.pos += 1
        if sequence is None:
            raise InvalidInputError(
                f"plan {_shorten(self.text)}: the number at position {start} repeats no algorithm; "
                "write e.g. '20*ER'"
            )
        return _repeat(sequence, multiplier, self.text)

    def _factor(self) -> int | list[Step]:
        char = self._peek()
        if char.isdigit():
            begin = self.pos
            while self.pos < len(self.text) and self.text[self.pos].isdigit():
                self.pos += 1
            if self.pos - begin > len(str(MAX_ITERATIONS)):  # before int(): it refuses over 4300 digits
                raise _too_many_iterations(self.text, begin)
            value = int(self.text[begin:self.pos])
            if value < 1:
                raise InvalidInputError(
                    f"plan {_shorten(self.text)}: the number at position {begin} must be at least 1"
                )
            return value
        if char.isalpha():
            begin = self.pos
            while self.pos < len(self.text) and self.text[self.pos].isalnum():
                self.pos += 1
            name = self.text[begin:self.pos].upper()
            if name not in ALGORITHMS:
                raise self._fail(f"an algorithm ({', '.join(ALGORITHMS)})", begin)
            return [Step(name, 1)]
        if char == "(":
            if self.depth >= MAX_NESTING:
                raise InvalidInputError(
                    f"plan {_shorten(self.text)}: parentheses nested more than {MAX_NESTING} deep at position "
                    f"{self.pos}; write the plan with fewer groups, e.g. '3*(20*ER+180*HIO)+20*ER'"
                )
            self.pos += 1
            self.depth += 1
            steps = self._plan()
            self.depth -= 1
            if self._peek() != ")":
                raise self._fail("')'")
            self.pos += 1
            return steps
        raise self._fail("a number, an algorithm or '('")


def _shorten(text: str, limit: int = 60) -> str:
    """``repr(text)``, cut in the middle when longer than ``limit`` characters (a message stays one short line)."""
    if len(text) <= limit:
        return repr(text)
    return repr(text[: limit // 2]) + f" ... ({len(text)} characters) ... " + repr(text[-limit // 2:])


def _too_many_iterations(text: str, pos: int | None = None) -> InvalidInputError:
    """The error for a plan of more than :data:`MAX_ITERATIONS` iterations (found at ``pos``)."""
    where = "" if pos is None else f" (at position {pos})"
    return InvalidInputError(
        f"plan {_shorten(text)}: more than {MAX_ITERATIONS} iterations{where}; use smaller numbers"
    )


def _too_many_blocks(text: str) -> InvalidInputError:
    """The error for a plan of more than :data:`MAX_BLOCKS` blocks."""
    return InvalidInputError(
        f"plan {_shorten(text)}: more than {MAX_BLOCKS} blocks of iterations; "
        "use fewer repetitions of longer blocks, e.g. '5*(200*ER+1800*HIO)'"
    )


def _merge(steps: list[Step]) -> list[Step]:
    """Merge consecutive steps of the same algorithm."""
    merged: list[Step] = []
    for step in steps:
        if merged and merged[-1].algorithm == step.algorithm:
            merged[-1] = Step(step.algorithm, merged[-1].iterations + step.iterations)
        else:
            merged.append(step)
    return merged


def _extend(steps: list[Step], more: list[Step], text: str) -> None:
    """Append ``more`` to ``steps`` in place, merging at the seam (linear in ``len(more)``)."""
    if steps and more and steps[-1].algorithm == more[0].algorithm:
        steps[-1] = Step(more[0].algorithm, steps[-1].iterations + more[0].iterations)
        more = more[1:]
    steps.extend(more)
    if len(steps) > MAX_BLOCKS:
        raise _too_many_blocks(text)


def _repeat(steps: list[Step], times: int, text: str) -> list[Step]:
    """``times`` repetitions of ``steps`` (a single step simply gets more iterations)."""
    if plan_length(steps) * times > MAX_ITERATIONS:
        raise _too_many_iterations(text)
    if len(steps) == 1:
        return [Step(steps[0].algorithm, steps[0].iterations * times)]
    seam = 1 if steps[0].algorithm == steps[-1].algorithm else 0  # blocks merged where copies meet
    if (len(steps) - seam) * times + seam > MAX_BLOCKS:
        raise _too_many_blocks(text)
    return _merge(steps * times)


def parse_plan(text: str) -> Plan:
    """Parse an algorithm plan into a :class:`Plan`, a flat sequence of steps.

    Parameters
    ----------
    text : str
        A formula such as ``"3*(20*ER+180*HIO)+20*ER"``: integers, ``*``,
        ``+``, parentheses and the algorithm names ER, HIO, RAAR (any case).

    Returns
    -------
    Plan
        Its steps in execution order, consecutive equal algorithms merged.

    Raises
    ------
    InvalidInputError
        With the position and what was expected there; also for more than
        :data:`MAX_ITERATIONS` iterations in all, :data:`MAX_BLOCKS` blocks,
        parentheses nested deeper than :data:`MAX_NESTING` or a text longer
        than :data:`MAX_PLAN_CHARACTERS`.
    """
    if not isinstance(text, str) or not text.strip():
        raise InvalidInputError(
            f"plan {text!r} is empty: write e.g. '3*(20*ER+180*HIO)+20*ER'"
        )
    if len(text) > MAX_PLAN_CHARACTERS:
        raise InvalidInputError(
            f"plan {_shorten(text)} is longer than {MAX_PLAN_CHARACTERS} characters; "
            "repeat groups instead, e.g. '3*(20*ER+180*HIO)+20*ER'"
        )
    return Plan(tuple(_Parser(text).parse()))


def plan_length(steps: Iterable[Step]) -> int:
    """Total number of iterations of a plan (or of a list of steps)."""
    return sum(step.iterations for step in steps)


def format_plan(steps: Iterable[Step]) -> str:
    """A plan text for ``steps`` (``parse_plan(format_plan(s)) == s`` for merged steps; ``str(plan)``)."""
    return "+".join(f"{step.iterations}*{step.algorithm}" for step in steps)


def default_plan(method: str, iterations: int | None = None) -> str:
    """The default plan of a projection method.

    ``hio`` and ``raar``: ``4*(20*ER+180*ALG)+80*ER`` (880 iterations). Short
    ER blocks between the HIO/RAAR blocks let shrinkwrap see a clean,
    support-constrained object; the final ER block (without shrinkwrap)
    settles the estimate on the last support. ``er``: ``N*ER``.

    Parameters
    ----------
    method : str
        ``"hio"``, ``"raar"`` or ``"er"`` (case-insensitive).
    iterations : int, optional
        Total iterations; the block sizes are scaled so the plan has exactly
        this many. None: the default total (880).

    Returns
    -------
    str
        A plan accepted by :func:`parse_plan`.

    Raises
    ------
    InvalidInputError
        For an unknown method or fewer than 1 iteration.
    """
    name = str(method).lower()
    default_total = _DEFAULT_CYCLES * (_DEFAULT_ER + _DEFAULT_MAIN) + _DEFAULT_FINAL_ER
    total = default_total if iterations is None else int(iterations)
    if total < 1:
        raise InvalidInputError(f"iterations = {iterations}: use at least 1")
    if total > MAX_ITERATIONS:
        raise InvalidInputError(f"iterations = {iterations}: use at most {MAX_ITERATIONS}")
    if name == "er":
        return f"{total}*ER"
    if name not in ("hio", "raar"):
        raise InvalidInputError(f"no projection plan for method {method!r}: use hio, raar or er")
    algorithm = name.upper()
    scale = total / default_total
    cycles = _DEFAULT_CYCLES
    while cycles > 1 and scale * (_DEFAULT_ER + _DEFAULT_MAIN) * _DEFAULT_CYCLES / cycles < 20:
        cycles -= 1  # short runs: fewer, longer cycles
    cycle_scale = scale * _DEFAULT_CYCLES / cycles
    er = max(1, int(_DEFAULT_ER * cycle_scale))
    main = max(1, int(_DEFAULT_MAIN * cycle_scale))
    final_er = total - cycles * (er + main)
    if final_er < 1:  # too few iterations for any cycle
        return f"{total}*ER" if total < 3 else f"{total - 1}*{algorithm}+1*ER"
    group = f"({er}*ER+{main}*{algorithm})"
    return f"{group}+{final_er}*ER" if cycles == 1 else f"{cycles}*{group}+{final_er}*ER"


ER, HIO, RAAR = (Plan((Step(algorithm, 1),)) for algorithm in ALGORITHMS)
"""One iteration of each algorithm: ``4 * (20 * ER + 180 * HIO) + 80 * ER`` is the default HIO plan."""

__all__ = ["ALGORITHMS", "ER", "HIO", "RAAR", "Plan", "Step", "default_plan", "format_plan", "parse_plan",
           "plan_length"]
