"""What a time budget (``--time-budget``) would have changed, read off corpus rows made without one.

Every challenge of a result records when it started and how long it took
(``started_s``, ``seconds``: :func:`cdi_dip.time_budget.challenge_timing`), and
``benchmarks/corpus_matrix.py`` rows carry them for the partial-coherence
models (``coherence``), the background, more starts (``starts``) and the frame
margin (``margin``). Under a budget of ``B`` seconds a challenge that started
after ``B`` would not have run: where it was kept, the case's result would
have been the incumbent's; its time would have been saved. A relative budget
``xK`` allows ``K`` times the case's first pass, counted as the tool counts it,
in work (``started_work``: millions of voxels transformed before its first
challenge; rows made before the work was recorded fall back on the seconds).
A challenge timed inside another (a kept challenger's own
pipeline challenges its result too) goes with it: skipped with it, and under
a relative budget run with it (the tool lets a challenge that started finish
whole). The errors without the lost challengers are not in the rows: the
table counts the challenges that won and would be lost, which is what a
default budget must not do often.

    python benchmarks/corpus_matrix.py --half tuning --quick --dims 2 --json rows.json
    python benchmarks/time_budget_effect.py rows.json --budgets 30,60,120,x3,x10
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

CHALLENGES = {"coherence": "coherent", "background": "no background", "starts": "first starts",
              "margin": "measured frame"}
"""Each challenge's key in a corpus row, and the name of its incumbent (what stands when it loses)."""


def challenges(row: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The timed challenges of ``row`` that ran: ``(key, facts)`` with ``started_s`` and ``seconds`` (and
    ``started_work``, ``work`` in rows that record work)."""
    found = []
    for key in CHALLENGES:
        facts = row.get(key)
        if isinstance(facts, dict) and facts.get("challenged") and facts.get("started_s") is not None:
            found.append((key, facts))
    return found


def first_pass_s(row: dict[str, Any]) -> float | None:
    """Seconds of ``row``'s reconstruction before its first challenge (its whole time where none ran)."""
    starts = [facts["started_s"] for _, facts in challenges(row)]
    return min(starts) if starts else row.get("solve_s")


def _measures_work(row: dict[str, Any]) -> bool:
    """Whether every timed challenge of ``row`` records its work (rows of a version that counted it)."""
    timed = challenges(row)
    return bool(timed) and all(facts.get("started_work") is not None for _, facts in timed)


def skip_rule(budget: str, row: dict[str, Any]) -> tuple[str, float] | None:
    """What a budget compares for ``row``: ``("started_s", 60.0)`` for ``"60"``; for ``"x3"`` three times the
    first pass, ``("started_work", ...)`` where the row records work, else in seconds. None: nothing to skip."""
    if not budget.startswith("x"):
        return "started_s", float(budget)
    factor = float(budget[1:])
    if _measures_work(row):
        return "started_work", factor * min(facts["started_work"] for _, facts in challenges(row))
    first = first_pass_s(row)
    return None if first is None else ("started_s", factor * first)


def _inside(inner: dict[str, Any], outer: dict[str, Any]) -> bool:
    """Whether challenge ``inner`` ran inside ``outer`` (a challenger's own pipeline challenges its result too: a
    kept more-starts result's ``coherence`` record is its own, timed inside the more starts)."""
    end = inner["started_s"] + (inner.get("seconds") or 0.0)
    return (inner is not outer and outer["started_s"] <= inner["started_s"]
            and end <= outer["started_s"] + (outer.get("seconds") or 0.0) + 0.01)


def skipped_challenges(row: dict[str, Any], limit: float, key: str = "started_s", *,
                       started_ones_finish: bool = False) -> list[tuple[str, dict[str, Any]]]:
    """The challenges of ``row`` a budget of ``limit`` would skip: those whose ``key`` (``started_s``, or
    ``started_work`` for a relative budget) is past it, less those inside another skipped one (they would not
    exist) and, with ``started_ones_finish`` (a relative budget, which lets a challenge that started run whole),
    those inside one that started within it."""
    timed = challenges(row)
    late = [(name, facts) for name, facts in timed if facts[key] > limit]
    on_time = [(name, facts) for name, facts in timed if facts[key] <= limit] if started_ones_finish else []
    return [(name, facts) for name, facts in late
            if not any(_inside(facts, other) for _, other in late + on_time)]


def effect(rows: Sequence[dict[str, Any]], budget: str) -> dict[str, Any]:
    """Over ``rows``: the challenges a budget would skip, the winners among them, and the seconds saved."""
    skipped = lost = 0
    saved = 0.0
    cases_changed = set()
    for row in rows:
        rule = skip_rule(budget, row)
        if rule is None:
            continue
        for key, facts in skipped_challenges(row, rule[1], rule[0], started_ones_finish=budget.startswith("x")):
            skipped += 1
            saved += facts.get("seconds") or 0.0
            if facts.get("chosen") not in (None, CHALLENGES[key]):
                lost += 1
                cases_changed.add(row["label"])
    total = sum(row.get("solve_s") or 0.0 for row in rows)
    return {"budget": budget, "skipped": skipped, "wins_lost": lost, "cases_changed": sorted(cases_changed),
            "seconds": round(total, 1), "seconds_saved": round(saved, 1)}


def main(argv: Sequence[str] | None = None) -> None:
    """Print, for each budget, what it would have skipped in the rows of a corpus run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rows", type=Path, help="JSON written by corpus_matrix.py --json")
    parser.add_argument("--budgets", default="30,60,120,300,x2,x5,x10",
                        help="seconds, or xK for K times each case's first pass")
    args = parser.parse_args(argv)
    rows = [row for row in json.loads(args.rows.read_text())["rows"] if row.get("error") is not None]
    timed = sum(1 for row in rows if challenges(row))
    print(f"{len(rows)} cases, {timed} with a timed challenge that ran")
    print("| budget | challenges skipped | of them kept (wins lost) | reconstruction time (s) | saved (s) |")
    print("|---|---|---|---|---|")
    for budget in args.budgets.split(","):
        found = effect(rows, budget.strip())
        print(f"| {found['budget']} | {found['skipped']} | {found['wins_lost']} | {found['seconds']} | "
              f"{found['seconds_saved']} |")
        for label in found["cases_changed"]:
            print(f"|  | {label} | | | |")


if __name__ == "__main__":
    main()
