"""Double DIP against HIO on simulated crystals, at default settings (issue 3's benchmark).

Cases (see ``common.crossed_crystal_cases``):

- 2D: 20 faceted crystals, 128^2 frames, 1e5 photons at the peak (Poisson
  noise), Bragg peak off-centre by up to 6 px per axis; odd cases have a
  dislocation, cases with ``i // 2`` odd a 3 px beamstop (5 of each
  combination);
- 3D: 5 crystals, 64^3 frames, same photons and offsets, odd cases with a
  dislocation line, no beamstop (Bragg geometry: the direct beam is not on
  the detector).

Each case is prepared and reconstructed exactly as the CLI does it
(``pipeline.reconstruct(prepare(...), cfg)`` with ``cfg`` at its defaults) and
scored with ``compare_objects`` (symmetry-adjusted error). The evaluation seed
is 7; the DIP defaults were tuned on seeds 2026 and 11 only (docs/dip.md).

    python benchmarks/quality_dip.py --only 2d --threads 2 --json benchmarks/out/eval_2d.json
    python benchmarks/quality_dip.py --only 3d --cases 3d-00,3d-01 --json benchmarks/out/eval_3d_a.json
    python benchmarks/quality_dip.py --report benchmarks/out/eval_2d.json benchmarks/out/eval_3d_*.json

Long runs can be split (``--cases``, ``--count``) and resumed: with
``--json`` every finished case is written at once and cases already in the
file (same seed, method and settings) are skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from common import CrystalCase, as_measurement, crossed_crystal_cases, limit_threads, machine_description, score

from cdi_dip.config import Method, RunConfig, config_from_dict
from cdi_dip.pipeline import reconstruct
from cdi_dip.prepare.stages import prepare

EVALUATION_SEED = 7
"""Simulation seed of the reported benchmark; never used to choose a default."""

SHAPES = {2: (128, 128), 3: (64, 64, 64)}
COUNTS = {2: 20, 3: 5}
BEAMSTOP_PX = {2: 3, 3: 0}
GROUP_ORDER = ["2d", "2d-beamstop", "3d", "3d-beamstop"]


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["dip.learning_rate=0.02", "iterations=3000"]`` -> nested dict (values as JSON, else strings)."""
    tree: dict[str, Any] = {}
    for item in items:
        key, _, text = item.partition("=")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        node = tree
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return tree


def make_config(method: str, overrides: dict[str, Any]) -> RunConfig:
    """Default configuration of ``method`` on the CPU, with ``overrides`` (DIP only)."""
    data = {"method": method, "device": "cpu"}
    if method == Method.DIP.value:
        data.update(overrides)
    return config_from_dict(data)


def select_cases(args: argparse.Namespace) -> list[CrystalCase]:
    dims = {"2d": [2], "3d": [3], "all": [2, 3]}[args.only]
    wanted = set(args.cases.split(",")) if args.cases else None
    cases: list[CrystalCase] = []
    for dim in dims:
        count = COUNTS[dim] if args.count is None else min(args.count, COUNTS[dim])
        made = crossed_crystal_cases(COUNTS[dim], seed=args.seed, shape=SHAPES[dim], beamstop_px=BEAMSTOP_PX[dim])
        cases += [c for c in made[:count] if wanted is None or c.key in wanted]
    return cases


def run_case(case: CrystalCase, method: str, cfg: RunConfig) -> dict[str, Any]:
    """Reconstruct one case with one method; return its figures."""
    start, cpu_start = time.perf_counter(), time.process_time()
    result = reconstruct(prepare(as_measurement(case.scan, case.key), cfg.prep), cfg)
    wall_s, cpu_s = time.perf_counter() - start, time.process_time() - cpu_start
    figures = score(result.obj, case.scan.ground_truth)
    solver = result.solver
    record = {
        "key": case.key, "group": case.group, "label": case.label, "method": method,
        "error": figures["error"], "phase_error_rad": figures["phase_error_rad"],
        "r_factor": result.metrics.get("r_factor"), "free_llk_poisson": result.metrics.get("free_llk_poisson"),
        "wall_s": wall_s, "cpu_s": cpu_s, "iterations": sum(r["iterations"] for r in result.runs),
    }
    for name in ("stop_iteration", "work_iterations", "probe_losses", "kept_probe", "polish_kept", "early_stop"):
        if name in solver:
            record[name] = solver[name]
    return record


def load_records(path: Path | None) -> list[dict[str, Any]]:
    if path is None or not path.exists():
        return []
    with open(path) as handle:
        return json.load(handle)["records"]


def save_records(path: Path, records: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as handle:
        json.dump({"meta": meta, "records": records}, handle, indent=1)
    os.replace(tmp, path)


def _fmt(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_tables(records: list[dict[str, Any]], methods: list[str]) -> None:
    """Per-case table, then medians per subgroup with the ratio of the first method to the second."""
    by_case: dict[str, dict[str, dict[str, Any]]] = {}
    for rec in records:
        by_case.setdefault(rec["key"], {})[rec["method"]] = rec
    head = " | ".join(f"{m} error | {m} phase (rad) | {m} time (s)" for m in methods)
    print(f"| case | {head} |")
    print("|---|" + "---|" * (3 * len(methods)))
    for key in sorted(by_case):
        recs = by_case[key]
        label = next(iter(recs.values()))["label"]
        cells = " | ".join(f"{_fmt(recs[m]['error'])} | {_fmt(recs[m]['phase_error_rad'])} | "
                           f"{_fmt(recs[m]['wall_s'], 1)}" if m in recs else "- | - | -" for m in methods)
        print(f"| {key}: {label} | {cells} |")
    print()
    ratio_head = f" {methods[0]}/{methods[1]} |" if len(methods) > 1 else ""
    print("| subgroup | n | " + " | ".join(f"{m} median error | {m} median wall / CPU time (s)" for m in methods)
          + " |" + ratio_head)
    print("|---|---|" + "---|" * (2 * len(methods)) + ("---|" if len(methods) > 1 else ""))
    groups = sorted({r["group"] for r in records}, key=lambda g: GROUP_ORDER.index(g) if g in GROUP_ORDER else 99)
    for group in groups:
        medians = {}
        cells = []
        for method in methods:
            recs = [r for r in records if r["group"] == group and r["method"] == method]
            if recs:
                medians[method] = statistics.median(r["error"] for r in recs)
                cpu = [r["cpu_s"] for r in recs if "cpu_s" in r]
                cpu_text = f"{statistics.median(cpu):.1f}" if len(cpu) == len(recs) else "-"
                cells.append(f"{medians[method]:.4f} | {statistics.median(r['wall_s'] for r in recs):.1f} / {cpu_text}")
            else:
                cells.append("- | -")
        n = len({r["key"] for r in records if r["group"] == group})
        ratio = ""
        if len(methods) > 1:
            ratio = (f" {medians[methods[0]] / medians[methods[1]]:.2f} |"
                     if methods[0] in medians and methods[1] in medians and medians[methods[1]] > 0 else " - |")
        print(f"| {group} | {n} | " + " | ".join(cells) + " |" + ratio)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["2d", "3d", "all"], default="all")
    parser.add_argument("--count", type=int, default=None, help="first N cases of each selected dimension")
    parser.add_argument("--cases", default=None, help="comma-separated case keys, e.g. 2d-00,2d-05,3d-01")
    parser.add_argument("--seed", type=int, default=EVALUATION_SEED,
                        help="simulation seed (7: evaluation; the defaults were tuned on 2026 and 11)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--methods", default="dip,hio")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting of the dip runs, e.g. dip.learning_rate=0.02 (tuning only)")
    parser.add_argument("--json", type=Path, default=None, help="per-case results; resumes from it if present")
    parser.add_argument("--report", type=Path, nargs="+", default=None,
                        help="only print the tables of these JSON files")
    args = parser.parse_args()
    methods = args.methods.split(",")

    if args.report:
        records, metas = [], []
        for path in args.report:
            with open(path) as handle:
                data = json.load(handle)
            records += data["records"]
            metas.append(data["meta"])
        for meta in {json.dumps(m, sort_keys=True) for m in metas}:
            print(f"- {meta}")
        print()
        print_tables(records, methods)
        return

    limit_threads(args.threads)
    overrides = parse_overrides(args.overrides)
    meta = {"seed": args.seed, "overrides": overrides, "machine": machine_description(),
            "command": " ".join(sys.argv)}
    records = load_records(args.json)
    done = {(r["key"], r["method"]) for r in records}
    for case in select_cases(args):
        for method in methods:
            if (case.key, method) in done:
                continue
            record = run_case(case, method, make_config(method, overrides))
            records.append(record)
            print(f"{case.key} {method:4s} error {record['error']:.4f} phase {record['phase_error_rad']:.3f} "
                  f"time {record['wall_s']:.1f} s (cpu {record['cpu_s']:.1f} s)  ({case.label})", flush=True)
            if args.json is not None:
                save_records(args.json, records, meta)
    print(f"\nmachine: {meta['machine']}")
    print(f"seed {args.seed}, overrides {overrides or 'none'}\n")
    print_tables(records, methods)


if __name__ == "__main__":
    main()
