"""Would choosing between the double DIP and HIO by the free likelihood beat either alone? (issue 15)

The rule ``auto`` now follows on crystals (``auto_compare``). Runs ``dip`` and
``hio`` on crystal cases of one half (``--half``, default tuning) (``corpus_matrix``'s
cases and scoring) and compares three rules per case: always the DIP (what
``auto`` does on 2D crystals), always HIO, and the method whose written object
has the lower free Poisson deviance per pixel (held-out pixels; the same
pixels for both methods, as the preparation picks them from the seed). Every
rule is judged by the symmetry-adjusted error against the truth.

    python benchmarks/method_selection.py --threads 1 --json selection.json
    python benchmarks/method_selection.py --conditions clean --families faceted --per-family 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from common import limit_threads, machine_description
from corpus_matrix import FAILURE_ERROR, case_rows

from cdi_dip.corpus import corpus_cases

METHODS = ("dip", "hio")


def choose_by_free_likelihood(rows: dict[str, dict]) -> dict:
    """Of one case's rows by method, the one with the lowest ``free_llk`` (a failed run never wins)."""
    finished = [row for row in rows.values() if row.get("free_llk") is not None and row["error"] is not None]
    return min(finished, key=lambda row: row["free_llk"]) if finished else next(iter(rows.values()))


def summarise(errors: list[float | None]) -> str:
    done = [e for e in errors if e is not None]
    failures = sum(e is None or e > FAILURE_ERROR for e in errors)
    return f"median {statistics.median(done):.3f}, failures {failures}/{len(errors)}" if done else "no result"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--half", default="tuning", choices=("tuning", "reporting"),
                        help="tuning (default: where the rule was chosen) or reporting (its published figures)")
    parser.add_argument("--families", default="faceted,elongated,dislocated,rounded")
    parser.add_argument("--conditions", default="clean,low-flux,beamstop-masked,hot")
    parser.add_argument("--per-family", type=int, default=1)
    parser.add_argument("--dims", default="2")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    limit_threads(args.threads)
    cases = corpus_cases(args.half, dims=tuple(int(d) for d in args.dims.split(",")), quick=True,
                         per_family=args.per_family, families=args.families.split(","),
                         conditions=args.conditions.split(","))
    table, by_rule = [], {"dip": [], "hio": [], "free likelihood": []}
    with tempfile.TemporaryDirectory(prefix="cdi-dip-selection-") as tmp:
        for case in cases:
            rows = {row["method"]: row for row in case_rows(case, METHODS, Path(tmp), iterations=None, device=None)}
            chosen = choose_by_free_likelihood(rows)
            for method in METHODS:
                by_rule[method].append(rows[method]["error"])
            by_rule["free likelihood"].append(chosen["error"])
            line = {"label": case.label, **{f"{m}_error": rows[m]["error"] for m in METHODS},
                    **{f"{m}_free_llk": rows[m].get("free_llk") for m in METHODS},
                    **{f"{m}_seconds": rows[m]["seconds"] for m in METHODS}, "chosen": chosen["method"]}
            table.append(line)
            print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in line.items()), flush=True)
    print(f"\nmachine: {machine_description()}\n{args.half} half, quick sizes, seed 0, failure: error > {FAILURE_ERROR}")
    for rule, errors in by_rule.items():
        print(f"{rule}: {summarise(errors)}")
    if args.json is not None:
        args.json.write_text(json.dumps({"machine": machine_description(), "cases": table}, indent=1))


if __name__ == "__main__":
    main()
