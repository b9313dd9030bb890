"""Quality of the default reconstruction on simulated 2D cells behind a beamstop (forward CDI).

Simulates N cell-like specimens (128^2 frames, 1e6 photons at the brightest
pixel, Poisson noise, the direct beam off-centre by up to 4 px per axis, a
beamstop of 4 px radius on it), prepares each as a scan read from disk
(detector conditioning, centring, framing), reconstructs it with the default
plan of a method through the pipeline, and reports the symmetry-adjusted error
against the ground truth.

    python benchmarks/quality_cells.py --count 10 --threads 2
    python benchmarks/quality_cells.py --count 10 --seed 7 --json out/cells.json

The projection settings for a missing centre were chosen on seeds 99 and 5;
the default seed 7 was kept for evaluation.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from common import cell_cases_2d, limit_threads, machine_description, score

from cdi_dip.config import CentreMethod, Method, RunConfig
from cdi_dip.pipeline import reconstruct
from cdi_dip.prepare.stages import condition_detector, prepare


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", default="hio", help="hio, raar, er or dip (default: hio)")
    parser.add_argument("--count", type=int, default=10, help="number of simulated cells")
    parser.add_argument("--seed", type=int, default=7,
                        help="simulation seed (the defaults were tuned on seeds 99 and 5, not this one)")
    parser.add_argument("--beamstop", type=float, default=4.0, help="beamstop radius, pixels (0: none)")
    parser.add_argument("--peak-counts", type=float, default=1e6, help="photons at the brightest pixel")
    parser.add_argument("--centre", default=None, choices=[m.value for m in CentreMethod],
                        help="how preparation finds the direct beam (default: the configuration's default)")
    parser.add_argument("--iterations", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="write the per-case results to this JSON file")
    return parser.parse_args()


def run_case(case, cfg: RunConfig) -> dict:
    """Prepare, reconstruct and score one simulated cell; the row of the table."""
    start = time.perf_counter()
    prepared = prepare(condition_detector(case.scan.to_measurement("cell"), cfg.detector), cfg.prep)
    result = reconstruct(prepared, cfg)
    seconds = time.perf_counter() - start
    true_centre = [n // 2 + k for n, k in zip(case.scan.counts.shape, case.scan.offset_px)]
    found_centre = [int(c) for c in prepared.notes["centre_px"]]
    return {"case": case.label, **score(result.obj, case.scan.ground_truth),
            "r_factor": float(result.metrics["r_factor"]), "time_s": seconds,
            "support_px": int(result.support.sum()), "truth_px": int((abs(case.scan.ground_truth) > 0).sum()),
            "centre_found": found_centre, "centre_true": true_centre, "centred": found_centre == true_centre}


def main() -> None:
    args = parse_args()
    limit_threads(args.threads)
    cfg = RunConfig(method=Method(args.method), iterations=args.iterations, device="cpu")
    if args.centre is not None:
        cfg.prep.centre = CentreMethod(args.centre)
    cfg.validate()
    cases = cell_cases_2d(args.count, seed=args.seed, peak_counts=args.peak_counts,
                          beamstop_radius_px=args.beamstop)
    rows = []
    for case in cases:
        rows.append(run_case(case, cfg))
        row = rows[-1]
        print(f"{row['case']}: error {row['error']:.3f}, {row['time_s']:.1f} s", flush=True)
    errors = [row["error"] for row in rows]
    machine = machine_description()
    print(f"\nmachine: {machine}")
    print(f"method {args.method}, default plan, {cfg.iterations or 'default'} iterations, {cfg.runs} starts, "
          f"cells {args.peak_counts:g} photons, beamstop {args.beamstop:g} px, seed {args.seed}, "
          f"centring {cfg.prep.centre.value}")
    print("| case | error | R-factor | support (px) | truth (px) | centred | time (s) |\n|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['case']} | {row['error']:.3f} | {row['r_factor']:.3f} | {row['support_px']} | "
              f"{row['truth_px']} | {'yes' if row['centred'] else 'no'} | {row['time_s']:.1f} |")
    median = statistics.median(errors)
    print(f"\nmedian symmetry-adjusted error: {median:.4f} (n = {len(errors)}; "
          f"{sum(e > 0.4 for e in errors)} above 0.4; {sum(not r['centred'] for r in rows)} mis-centred)")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": machine, "args": {k: str(v) for k, v in vars(args).items()},
                                         "config": cfg.to_dict(), "median_error": median, "cases": rows},
                                        indent=2))


if __name__ == "__main__":
    main()
