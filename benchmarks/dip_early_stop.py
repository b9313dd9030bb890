"""Which early stop of the double DIP lands nearer its truly best iterate: free pixels or windowed variance.

On small 2D cases of the corpus's **tuning** half (seeds 1000-1999; never the
reporting half), the double DIP runs at its defaults but with a fixed budget
and no early stop (``dip.patience`` larger than the budget, no polish). At
every check (each ``CHECK_PERIOD`` iterations of the fit) the iterate is
recorded and scored against the ground truth with the symmetry-adjusted error
(``cdi_dip.ensemble.compare_objects``). Each criterion is then replayed on the
recorded trajectory, exactly as the solver applies it:

- ``free``: keep the iterate with the lowest free-pixel loss; stop once it is
  ``--free-patience`` iterations old (``dip.patience``);
- ``variance``: ES-WMV (``cdi_dip.solvers.early_stop.WindowedVariance``) fed
  from the end of the learning-rate warm-up; keep the iterate at the variance
  minimum; stop after ``P`` checks without a new minimum;
- ``both``: stop at the first of the two, keep the best free-loss iterate so far.

For each case and criterion it prints the stop iteration, the kept iteration,
the iteration of the true best and the error of the kept iterate minus the
best error; then the medians per criterion and, for the variance criterion, a
grid over ``--windows`` x ``--patiences`` (checks) on the same trajectories.

    python benchmarks/dip_early_stop.py --threads 1                  # 6 cases, ~5 min on a free core
    python benchmarks/dip_early_stop.py --threads 1 --per-family 2   # docs/dip.md's table: 12 cases, ~10 min
    python benchmarks/dip_early_stop.py --per-family 4 --families faceted,dislocated,rounded,elongated

``--save`` keeps the recorded trajectories and ``--load`` replays them, so
other windows and patiences can be tried without running the DIP again.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from common import limit_threads, machine_description

from cdi_dip.config import DipConfig, Method, RunConfig
from cdi_dip.corpus import CorpusCase, corpus_cases
from cdi_dip.ensemble import compare_objects
from cdi_dip.physics import FarField, pad_to_frame
from cdi_dip.prepare.free_pixels import select_free_islands
from cdi_dip.solvers import Problem
from cdi_dip.solvers import dip as dip_module
from cdi_dip.solvers.early_stop import WindowedVariance

CRITERIA = ("free", "variance", "both")

FAILURE_ERROR = 0.3
"""A case whose best iterate is this far from the truth failed (as in corpus_matrix.py); its excess means little."""


@dataclass
class Trajectory:
    """The checked iterates of one fit: iteration, free loss and true error at each check."""

    label: str
    frame: int
    iterations: list[int] = field(default_factory=list)
    free_losses: list[float] = field(default_factory=list)
    errors: list[float] = field(default_factory=list)
    objects: list[torch.Tensor] = field(default_factory=list)
    warmup: int = 0
    seconds: float = 0.0


@dataclass
class Outcome:
    """Where one criterion stopped on one trajectory and what it kept."""

    stop: int  # iteration the fit ends at (the budget when it never fires)
    kept: int  # iteration of the returned iterate
    excess: float  # error of the kept iterate minus the best error


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", default="faceted,dislocated,rounded",
                        help="comma-separated tuning families (default faceted,dislocated,rounded)")
    parser.add_argument("--conditions", default="clean,low-flux",
                        help="comma-separated tuning conditions (default clean,low-flux)")
    parser.add_argument("--per-family", type=int, default=1,
                        help="cases per (family, condition) (default 1; docs/dip.md's table: 2)")
    parser.add_argument("--min-frame", type=int, default=48,
                        help="skip quick frames smaller than this, px (default 48; quick frames are 32, 48 or 64)")
    parser.add_argument("--iterations", type=int, default=800, help="fit budget, no early stop (default 800)")
    parser.add_argument("--free-patience", type=int, default=400, help="dip.patience, iterations (default 400)")
    parser.add_argument("--window", type=int, default=None,
                        help="W of the variance rows, checks (default: dip.variance_window)")
    parser.add_argument("--patience", type=int, default=None,
                        help="P of the variance rows, checks (default: dip.variance_patience / 10)")
    parser.add_argument("--windows", default="5,10,20,40", help="W values of the grid, checks")
    parser.add_argument("--patiences", default="10,20,40", help="P values of the grid, checks")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=None, help="write every trajectory's figures here")
    parser.add_argument("--save", default=None, help="save the recorded trajectories (torch.save), after each case")
    parser.add_argument("--load", default=None, help="replay trajectories saved by --save instead of running")
    return parser.parse_args(argv)


def tuning_cases(families: Sequence[str], conditions: Sequence[str], per_family: int,
                 min_frame: int) -> Iterator[CorpusCase]:
    """``per_family`` quick 2D tuning cases per (family, condition) with a frame of at least ``min_frame``."""
    taken: dict[tuple[str, str], int] = {}
    for case in corpus_cases("tuning", dims=(2,), quick=True, per_family=50, families=families,
                             conditions=conditions):
        key = (case.family, case.condition)
        if case.shape[0] < min_frame or taken.get(key, 0) >= per_family:
            continue
        taken[key] = taken.get(key, 0) + 1
        yield case
        if len(taken) == len(families) * len(conditions) and min(taken.values()) >= per_family:
            return


def problem_of(case: CorpusCase) -> Problem:
    """The case's counts with 5% free pixels (islands, seed 0), as the pipeline holds them out."""
    free = select_free_islands(case.valid, 0.05, rng=np.random.default_rng(0))
    return Problem.build(torch.from_numpy(case.counts.astype(np.float32)), torch.from_numpy(case.valid & ~free),
                         FarField(case.shape), free=torch.from_numpy(free))


def record_fit(case: CorpusCase, iterations: int) -> Trajectory:
    """Run the double DIP without early stop and record every checked iterate of its fit."""
    record = Trajectory(label=case.label, frame=case.shape[0])
    original = dip_module._Runner._check

    def recording_check(runner, traj, obj, loss, free_loss, **options):
        original(runner, traj, obj, loss, free_loss, **options)
        if runner.stage == "fit":
            record.iterations.append(traj.iteration)
            record.free_losses.append(free_loss)
            record.objects.append(obj.detach().clone())
            record.warmup = traj.warmup

    cfg = RunConfig(method=Method.DIP, iterations=iterations,
                    dip=DipConfig(patience=10 * iterations, polish_iterations=0)).validate()
    start = time.perf_counter()
    dip_module._Runner._check = recording_check
    try:
        dip_module.solve_dip(problem_of(case), dip_module.DipRun.from_config(cfg),
                             rng=torch.Generator().manual_seed(0))
    finally:
        dip_module._Runner._check = original
    record.seconds = time.perf_counter() - start
    record.errors = [float(compare_objects(pad_to_frame(obj, case.shape).numpy(), case.truth).error)
                     for obj in record.objects]
    return record


def replay_free(t: Trajectory, patience: int) -> tuple[int, int]:
    """(stop, kept) of the free-pixel criterion (``run_fit``: stop once the best is ``patience`` old)."""
    best, best_iteration = np.inf, -1
    for iteration, loss in zip(t.iterations, t.free_losses):
        if loss < best:
            best, best_iteration = loss, iteration
        if iteration + 1 - best_iteration > patience:
            return iteration + 1, best_iteration
    return t.iterations[-1], best_iteration


def replay_variance(t: Trajectory, window: int, patience: int) -> tuple[int, int]:
    """(stop, kept) of ES-WMV fed from the end of the warm-up (kept: the last iterate before it fills)."""
    criterion = WindowedVariance(window, patience)
    for iteration, obj in zip(t.iterations, t.objects):
        if iteration < t.warmup:
            continue
        criterion.update(obj, iteration)
        if criterion.stop:
            return iteration, criterion.min_iteration
    kept = criterion.min_iteration if criterion.min_iteration >= 0 else t.iterations[-1]
    return t.iterations[-1], kept


def replay_both(t: Trajectory, free_patience: int, window: int, patience: int) -> tuple[int, int]:
    """(stop, kept): stop at the first criterion to fire, keep the best free-loss iterate up to there."""
    stop = min(replay_free(t, free_patience)[0], replay_variance(t, window, patience)[0])
    seen = [(loss, iteration) for iteration, loss in zip(t.iterations, t.free_losses) if iteration <= stop]
    return stop, min(seen)[1]


def outcome(t: Trajectory, stop: int, kept: int) -> Outcome:
    errors = dict(zip(t.iterations, t.errors))
    return Outcome(stop=stop, kept=kept, excess=errors[kept] - min(t.errors))


def outcomes(t: Trajectory, free_patience: int, window: int, patience: int) -> dict[str, Outcome]:
    return {"free": outcome(t, *replay_free(t, free_patience)),
            "variance": outcome(t, *replay_variance(t, window, patience)),
            "both": outcome(t, *replay_both(t, free_patience, window, patience))}


def case_table(trajectories: list[Trajectory], free_patience: int, window: int, patience: int) -> str:
    header = ("| case | px | best it | best error | " + " | ".join(f"{c} stop/kept | {c} excess" for c in CRITERIA)
              + " | fit s |")
    lines = [header, "|" + "---|" * (5 + 2 * len(CRITERIA))]
    for t in trajectories:
        best = int(np.argmin(t.errors))
        cells = []
        for name, result in outcomes(t, free_patience, window, patience).items():
            cells += [f"{result.stop}/{result.kept}", f"{result.excess:+.4f}"]
        name = t.label.removeprefix("tuning/2d/")
        lines.append(f"| {name} | {t.frame} | {t.iterations[best]} | {t.errors[best]:.4f} | " + " | ".join(cells)
                     + f" | {t.seconds:.0f} |")
    return "\n".join(lines)


def summary_row(name: str, results: list[Outcome], trajectories: list[Trajectory]) -> str:
    best = [t.iterations[int(np.argmin(t.errors))] for t in trajectories]
    distance = [abs(r.kept - b) for r, b in zip(results, best)]
    return (f"| {name} | {statistics.median(r.excess for r in results):.4f} | {max(r.excess for r in results):.4f} "
            f"| {statistics.median(distance):.0f} | {statistics.median(r.stop for r in results):.0f} |")


def summary_table(trajectories: list[Trajectory], free_patience: int, window: int, patience: int,
                  windows: Sequence[int], patiences: Sequence[int]) -> str:
    lines = ["| criterion | median excess error | max excess error | median abs(kept - best) it | median stop it |",
             "|---|---|---|---|---|"]
    per_case = [outcomes(t, free_patience, window, patience) for t in trajectories]
    for name in CRITERIA:
        label = name if name == "free" else f"{name} (W={window}, P={patience})"
        lines.append(summary_row(label, [o[name] for o in per_case], trajectories))
    for w in windows:
        for p in patiences:
            results = [outcome(t, *replay_variance(t, w, p)) for t in trajectories]
            lines.append(summary_row(f"variance W={w} P={p}", results, trajectories))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    limit_threads(args.threads)
    defaults = DipConfig()
    window = args.window or defaults.variance_window
    patience = args.patience or max(1, defaults.variance_patience // dip_module.CHECK_PERIOD)
    families, conditions = args.families.split(","), args.conditions.split(",")
    trajectories = [] if args.load is None else [Trajectory(**t) for t in torch.load(args.load)]
    for case in tuning_cases(families, conditions, args.per_family, args.min_frame) if args.load is None else ():
        trajectories.append(record_fit(case, args.iterations))
        print(f"{case.label}: {trajectories[-1].seconds:.0f} s", flush=True)
        if args.save:
            torch.save([asdict(t) for t in trajectories], args.save)
    print(f"\n{machine_description()}; budget {args.iterations}, free patience {args.free_patience} it, "
          f"variance W={window} P={patience} checks of {dip_module.CHECK_PERIOD} it\n")
    print(case_table(trajectories, args.free_patience, window, patience))
    print()
    grid = [int(w) for w in args.windows.split(",")], [int(p) for p in args.patiences.split(",")]
    print(summary_table(trajectories, args.free_patience, window, patience, *grid))
    solved = [t for t in trajectories if min(t.errors) < FAILURE_ERROR]
    if solved and len(solved) < len(trajectories):
        print(f"\nWithout the {len(trajectories) - len(solved)} failed cases (best error >= {FAILURE_ERROR}):\n")
        print(summary_table(solved, args.free_patience, window, patience, *grid))
    if args.json:
        records: list[dict[str, Any]] = []
        for t in trajectories:
            record = {"label": t.label, "frame": t.frame, "iterations": t.iterations, "free_losses": t.free_losses,
                      "errors": t.errors, "seconds": t.seconds}
            record["outcomes"] = {k: asdict(v) for k, v in outcomes(t, args.free_patience, window, patience).items()}
            records.append(record)
        with open(args.json, "w") as handle:
            json.dump(records, handle, indent=1)


if __name__ == "__main__":
    main()
