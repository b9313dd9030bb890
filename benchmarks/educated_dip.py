"""Educated double DIP (``--dip-weights``) against the double DIP from random weights (issue "learned phase retrieval").

1. Pretrain the generators (:mod:`cdi_dip.learned.dip_pretraining`, Reptile)
   on simulated 2D scans of the tuning half's crystal families, drawn from
   ``TRAINING_SEEDS`` (never the reporting half's 5000-5999 nor the validation seeds),
   on ``--size`` px frames; or load them with ``--model``.
2. On tuning-half corpus cases (``corpus_cases("tuning", dims=(2,), quick=True)``,
   crystal families, cases with a ``--size`` px frame whose object box is the
   model's) run the solver from random weights with its defaults (HIO warm
   start, pre-fit, fit, polish) and the educated solver (``dip.weights``), and
   record the error against the truth (``symmetry_adjusted_error``) at every
   check (every 10 iterations); its cost is left out of the times.
3. Report the random DIP's final error and, for each educated variant, the
   iterations (all the solver's steps: warm start, pre-fit, fit) and seconds
   to reach it, or its best error when it never does.

Default (about 10 minutes on 2 shared CPU cores, one thread)::

    python benchmarks/educated_dip.py --threads 1

More: ``--samples 600 --cases 12 --variants random,educated,educated-nowarm``.
Variants: ``random`` (defaults), ``educated`` (the educated default: the
pretrained weights with the random DIP's HIO warm start and pre-fit),
``educated-nowarm`` (pretrained weights fitted to the data at once, on the
whole box), ``random-nowarm`` (random weights, no warm start: the plain
recipe).

The error at each check is of the iterate the solver checks (its masked
object before the polish); the final error is of the solver's output.
The script wraps ``cdi_dip.solvers.dip._Runner._check`` to see those iterates.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common import limit_threads, machine_description
from cdi_dip.config import config_from_dict
from cdi_dip.corpus import corpus_cases
from cdi_dip.ensemble import symmetry_adjusted_error
from cdi_dip.learned.dip_generators import load_dip_weights
from cdi_dip.learned.dip_pretraining import CRYSTAL_FAMILIES, PretrainConfig, pretrain, save_generators
from cdi_dip.physics import FarField, pad_to_frame
from cdi_dip.reconstruction import hold_out_free_pixels
from cdi_dip.solvers import Problem
from cdi_dip.solvers import dip as dip_module
from cdi_dip.support import object_extent_px

CONDITIONS = ("clean", "low-flux", "beamstop-masked", "gaps")
VARIANTS = {
    "random": {},
    "educated": {"weights": True},
    "educated-nowarm": {"weights": True, "warm_start_runs": 0},
    "random-nowarm": {"warm_start_runs": 0},
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--size", type=int, default=64, help="frame size, px (default 64)")
    parser.add_argument("--model", type=Path, help="pretrained generators to use instead of pretraining")
    parser.add_argument("--save-model", type=Path, default=Path("educated_dip_model.pt"),
                        help="where the pretrained generators are written")
    parser.add_argument("--samples", type=int, default=100, help="pretraining scans (default 100)")
    parser.add_argument("--inner-steps", type=int, default=20, help="Adam steps per pretraining scan")
    parser.add_argument("--meta-step", type=float, default=0.5)
    parser.add_argument("--cases", type=int, default=3, help="tuning-half cases compared (default 3)")
    parser.add_argument("--variants", default="random,educated", help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--seed", type=int, default=0, help="solver seed")
    parser.add_argument("--json", type=Path, help="write every record (with the error curves) here")
    return parser.parse_args()


def get_model(args: argparse.Namespace) -> tuple[Path, dict[str, Any]]:
    """The pretrained model file: ``--model``, or pretrained now and written to ``--save-model``."""
    if args.model is not None:
        return args.model, load_dip_weights(args.model).training
    cfg = PretrainConfig(size=args.size, samples=args.samples, inner_steps=args.inner_steps,
                         meta_step=args.meta_step)

    def progress(info: dict[str, Any]) -> None:
        if info["sample"] % 25 == 0:
            print(f"  pretraining scan {info['sample']}/{info['samples']}: loss {info['loss_before']:.3f} -> "
                  f"{info['loss_after']:.3f} ({info['seconds']:.0f} s)", flush=True)

    model, record = pretrain(cfg, on_progress=progress)
    save_generators(args.save_model, model, cfg, record)
    return args.save_model, record


def select_cases(args: argparse.Namespace, box: tuple[int, ...]) -> list[Any]:
    """Tuning-half crystal cases with a ``--size`` frame whose object box is ``box``: one per (family, seed),
    the conditions taken in turn (:data:`CONDITIONS`), so that a few cases cover several of each."""
    chosen, taken = [], set()
    cases = corpus_cases("tuning", dims=(2,), quick=True, per_family=200, families=CRYSTAL_FAMILIES,
                         conditions=CONDITIONS)
    for case in cases:
        wanted = CONDITIONS[len(chosen) % len(CONDITIONS)]
        if (case.counts.shape != (args.size, args.size) or case.condition != wanted
                or (case.family, case.seed) in taken):
            continue
        physics = FarField(case.counts.shape)
        extent = object_extent_px(torch.from_numpy(case.counts.astype(np.float32)),
                                  torch.from_numpy(case.valid), physics)
        if dip_module.object_shape(case.counts.shape, extent) != box:
            continue
        chosen.append(case)
        taken.add((case.family, case.seed))
        if len(chosen) == args.cases:
            break
    return chosen


class Tracker:
    """Wraps ``_Runner._check`` to record ``(stage, work iterations, seconds, error)`` at every check."""

    def __init__(self, truth: np.ndarray):
        self.truth = truth
        self.curve: list[dict[str, Any]] = []
        self.start = time.perf_counter()
        self.excluded = 0.0  # seconds spent scoring: left out of the times
        self.original = dip_module._Runner._check

    def __enter__(self) -> Tracker:
        tracker = self

        def check(runner, traj, obj, loss, free_loss):
            tracker.original(runner, traj, obj, loss, free_loss)
            began = time.perf_counter()
            frame = pad_to_frame(obj.detach(), runner.frame_shape).cpu().numpy()
            error = float(symmetry_adjusted_error(frame, tracker.truth))
            tracker.curve.append({"stage": runner.stage, "work": runner.work_done, "fit": traj.iteration,
                                  "seconds": began - tracker.start - tracker.excluded, "error": error})
            tracker.excluded += time.perf_counter() - began

        dip_module._Runner._check = check
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        dip_module._Runner._check = self.original

    def seconds(self) -> float:
        return time.perf_counter() - self.start - self.excluded


def run_variant(case: Any, variant: str, model: Path, seed: int) -> dict[str, Any]:
    """One solver run of ``case``: its final error, time, stop and the error curve."""
    spec = VARIANTS[variant]
    dip: dict[str, Any] = {}
    if spec.get("weights"):
        dip["weights"] = str(model)
    if "warm_start_runs" in spec:
        dip["warm_start_runs"] = spec["warm_start_runs"]
    cfg = config_from_dict({"method": "dip", "seed": seed, "dip": dip})
    free = hold_out_free_pixels(case.valid, cfg)
    problem = Problem.build(torch.from_numpy(case.counts.astype(np.float32)), torch.from_numpy(case.valid & ~free),
                            FarField(case.counts.shape), free=torch.from_numpy(free))
    with Tracker(case.truth) as tracker:
        output = dip_module.solve_dip(problem, dip_module.DipRun.from_config(cfg),
                                      rng=torch.Generator().manual_seed(seed))
        seconds = tracker.seconds()
    final = float(symmetry_adjusted_error(output.obj, case.truth))
    return {"case": case.label, "variant": variant, "final_error": final,
            "seconds": seconds, "work_iterations": output.extra.get("work_iterations"),
            "stop_iteration": output.extra.get("stop_iteration"), "curve": tracker.curve,
            "dip_weights": output.extra.get("dip_weights", {}).get("warm_start_runs")}


def time_to(record: dict[str, Any], target: float) -> dict[str, Any]:
    """First check of ``record`` at or below ``target``: its work iterations and seconds (else None)."""
    for point in record["curve"]:
        if point["error"] <= target:
            return {"work": point["work"], "seconds": point["seconds"]}
    best = min((p["error"] for p in record["curve"]), default=math.nan)
    return {"work": None, "seconds": None, "best": min(best, record["final_error"])}


def print_table(records: list[dict[str, Any]], variants: list[str]) -> None:
    """The comparison table (markdown)."""
    others = [v for v in variants if v != "random"]
    head = "| case | random: final error | random: iterations | random: s |"
    for v in others:
        head += f" {v}: final error | {v}: iterations to random's error | {v}: s to it |"
    print(head)
    print("|" + "---|" * (4 + 3 * len(others)))
    by_case: dict[str, dict[str, dict[str, Any]]] = {}
    for r in records:
        by_case.setdefault(r["case"], {})[r["variant"]] = r
    for label, runs in by_case.items():
        base = runs["random"]
        row = f"| {label} | {base['final_error']:.4f} | {base['work_iterations']} | {base['seconds']:.1f} |"
        for v in others:
            reached = time_to(runs[v], base["final_error"])
            if reached["work"] is None:
                row += f" {runs[v]['final_error']:.4f} | never (best {reached['best']:.4f}) | - |"
            else:
                row += f" {runs[v]['final_error']:.4f} | {reached['work']} | {reached['seconds']:.1f} |"
        print(row)


def main() -> None:
    args = parse_args()
    limit_threads(args.threads)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if "random" not in variants or any(v not in VARIANTS for v in variants):
        raise SystemExit(f"--variants: give random and any of {', '.join(VARIANTS)}")
    print(machine_description(), flush=True)
    started = time.perf_counter()
    model, training = get_model(args)
    print(f"model {model}: {training.get('samples')} scans in {training.get('seconds', 0):.0f} s", flush=True)
    box = tuple(load_dip_weights(model).architecture.object_shape)
    cases = select_cases(args, box)
    records = []
    for case in cases:
        for variant in variants:
            record = run_variant(case, variant, model, args.seed)
            records.append(record)
            print(f"  {case.label} {variant}: final error {record['final_error']:.4f}, {record['seconds']:.1f} s, "
                  f"{record['work_iterations']} iterations", flush=True)
    print_table(records, variants)
    print(f"total {time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine_description(), "training": {
            k: v for k, v in training.items() if k != "history"}, "records": records}, indent=1))


if __name__ == "__main__":
    main()
