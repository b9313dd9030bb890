"""Residual phase ramp of the written object, per method (issue 15).

Simulates crystals with an off-centre Bragg peak (2D: ``crystal_cases_2d``,
every third with a dislocation, which splits the peak; 3D: the same offsets
and alternate dislocations), reconstructs each as the CLI does, and compares
the written object with the ground truth twice: as written (global phase,
scale, shift and twin removed, ``cdi-dip compare --no-ramp``) and with a phase
ramp removed as well (``cdi-dip compare``). A ramp left in the object shows as
the difference.

    python benchmarks/residual_ramp.py --methods auto,dip,hio,raar,er --count 6 --threads 1
    python benchmarks/residual_ramp.py --dim 3 --size 32 --methods hio --count 2 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from common import crystal_cases_2d, limit_threads, machine_description

from cdi_dip.config import Method, RunConfig
from cdi_dip.ensemble import compare_objects
from cdi_dip.pipeline import reconstruct
from cdi_dip.prepare.stages import condition_detector, prepare
from cdi_dip.simulate import simulate_scan


def cases_3d(count: int, *, seed: int, size: int) -> list[tuple[str, object]]:
    """3D crystals with peaks off-centre by up to 4 px; odd cases with a dislocation line."""
    rng = np.random.default_rng(seed)
    cases = []
    for index in range(count):
        offset = tuple(int(v) for v in rng.integers(-4, 5, size=3))
        dislocation = index % 2 == 1
        scan = simulate_scan("crystal", (size,) * 3, rng=rng, offset_px=offset, dislocation=dislocation)
        cases.append((f"{index}: offset {offset}{', dislocation' if dislocation else ''}", scan))
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default="hio", help="comma-separated: auto, dip, hio, raar, er")
    parser.add_argument("--dim", type=int, default=2, choices=(2, 3))
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--count", type=int, default=6)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--iterations", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    limit_threads(args.threads)
    if args.dim == 2:
        cases = [(case.label, case.scan) for case in crystal_cases_2d(args.count, seed=args.seed,
                                                                       shape=(args.size, args.size))]
    else:
        cases = cases_3d(args.count, seed=args.seed, size=args.size)
    rows, differences = [], []
    for method in args.methods.split(","):
        cfg = RunConfig(method=Method(method), iterations=args.iterations, device="cpu").validate()
        for label, scan in cases:
            start = time.perf_counter()
            result = reconstruct(prepare(condition_detector(scan.to_measurement("sim"), cfg.detector), cfg.prep), cfg)
            written = compare_objects(result.obj, scan.ground_truth, ramp=False).error
            removed = compare_objects(result.obj, scan.ground_truth).error
            differences.append(written - removed)
            rows.append(f"| {method} ({result.method}) | {label} | {written:.4f} | {removed:.4f} | "
                        f"{written - removed:+.4f} | {time.perf_counter() - start:.0f} |")
            print(rows[-1], flush=True)
    print(f"\nmachine: {machine_description()}")
    print(f"{args.dim}D, {args.size} px per axis, {args.iterations or 'default'} iterations")
    print("| method | case | error as written | error, ramp removed | difference | time (s) |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    print(f"\nlargest difference {max(differences):.4f}, median {statistics.median(differences):.4f} "
          f"(n = {len(differences)})")


if __name__ == "__main__":
    main()
