"""A series of scans: the next scan started from the previous scan's result (``--init RESULT.cxi``).

At a beamline a crystal is often measured again and again while something
changes it (heating, gas, a field): each scan is close to the one before.
This benchmark makes such a pair from every selected corpus case: scan 1 is
the case as the corpus draws it; scan 2 is the same object with a smooth extra
phase (a strain step: a random linear plus quadratic field of ``--step`` radians
peak to peak over the object) detected again under the case's own detector
settings with a fresh draw of the noise and defects (for conditions whose
zero frequency sits on the centre pixel: not ``off-centre``). Then

- scan 1 is reconstructed as a user runs it (``cdi-dip reconstruct``, default settings),
- scan 2 as a user runs it, from random phases, and
- scan 2 with ``--init`` scan 1's result,

and the errors against scan 2's truth (symmetry-adjusted) and the times are printed.

    python benchmarks/series_start.py --half tuning --quick --conditions clean,low-flux --per-family 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from common import add_corpus_arguments, limit_threads, machine_description, score, selected_corpus_cases

from cdi_dip.cli.common import build_config
from cdi_dip.cli.options import overrides
from cdi_dip.corpus import CorpusCase, write_case
from cdi_dip.corpus.cases import case_key
from cdi_dip.corpus.detector import detect
from cdi_dip.io.readers import read_object
from cdi_dip.pipeline import reconstruct_scan
from cdi_dip.simulate import expected_intensity


def strain_step(truth: np.ndarray, step_rad: float, rng: np.random.Generator) -> np.ndarray:
    """A smooth phase field (radians, ``truth.shape``): linear plus quadratic over the object, ``step_rad``
    from its lowest to its highest value on the object's voxels (amplitude above 10 % of the peak)."""
    grids = np.meshgrid(*[np.linspace(-1.0, 1.0, n) for n in truth.shape], indexing="ij")
    field = sum(rng.normal() * g + rng.normal() * g * g for g in grids)
    inside = np.abs(truth) > 0.1 * np.abs(truth).max()
    span = float(np.ptp(field[inside])) or 1.0
    return step_rad * (field - field[inside].min()) / span


def next_scan(case: CorpusCase, step_rad: float) -> CorpusCase:
    """The case's object after a strain step, detected again with the case's settings and a fresh draw."""
    dim = case.truth.ndim
    rng = np.random.default_rng([case.seed, dim, case_key(case.family), case_key(case.condition),
                                 case_key("series")])
    truth = (case.truth * np.exp(1j * strain_step(case.truth, step_rad, rng))).astype(np.complex64)
    detection = detect(expected_intensity(truth), case.settings, rng)  # scaled to the case's peak photons
    return replace(case, label=f"{case.label}+step", truth=truth, counts=detection.counts, valid=detection.valid)


def reconstruct(scan: Path, out: Path, init: str | None) -> tuple[dict, float]:
    """``cdi-dip reconstruct SCAN --out OUT [--init INIT]``, default settings, seed 0: its summary and seconds."""
    cfg = build_config(None, overrides({"init": init}))
    start = time.perf_counter()
    summary = reconstruct_scan(str(scan), cfg, out)
    return summary, time.perf_counter() - start


def pair_row(case: CorpusCase, step_rad: float, folder: Path) -> dict:
    """Scan 1, then scan 2 from random phases and from scan 1's result: errors, free deviances, times."""
    second = next_scan(case, step_rad)
    write_case(folder / "first.cxi", case)
    write_case(folder / "second.cxi", second)
    first, first_s = reconstruct(folder / "first.cxi", folder / "a", None)
    row = {"label": case.label, "first_error": score(read_object(first["output"]), case.truth)["error"],
           "first_s": round(first_s, 1), "method": first["method"]}
    for name, init in (("random", None), ("from_first", first["output"])):
        summary, seconds = reconstruct(folder / "second.cxi", folder / name, init)
        row[f"{name}_error"] = score(read_object(summary["output"]), second.truth)["error"]
        row[f"{name}_free"] = summary.get("metrics", {}).get("free_llk_poisson")
        row[f"{name}_s"] = round(seconds, 1)
        row[f"{name}_method"] = summary["method"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_corpus_arguments(parser, half="tuning", conditions="clean,low-flux")
    parser.add_argument("--step", type=float, default=0.5, help="strain step, radians peak to peak (default 0.5)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    parser.add_argument("--json", type=Path, help="write every row here")
    args = parser.parse_args()
    limit_threads(args.threads)
    rows = []
    for case in selected_corpus_cases(args):
        with tempfile.TemporaryDirectory() as tmp:
            row = pair_row(case, args.step, Path(tmp))
        rows.append(row)
        print(f"{row['label']}: scan 1 {row['first_error']:.3f} ({row['method']}); scan 2 from random phases "
              f"{row['random_error']:.3f} in {row['random_s']} s, from scan 1's result {row['from_first_error']:.3f} "
              f"in {row['from_first_s']} s", flush=True)
        if args.json:
            args.json.write_text(json.dumps({"machine": machine_description(), "rows": rows}, indent=1))
    for key in ("random", "from_first"):
        errors = [r[f"{key}_error"] for r in rows]
        print(f"{key}: median error {statistics.median(errors):.3f}, failures (> 0.3) {sum(e > 0.3 for e in errors)} "
              f"of {len(errors)}, median time {statistics.median(r[f'{key}_s'] for r in rows):.1f} s")
    better = sum(r["from_first_error"] < r["random_error"] - 0.05 for r in rows)
    worse = sum(r["from_first_error"] > r["random_error"] + 0.05 for r in rows)
    print(f"from scan 1's result against random phases: better {better}, worse {worse} (by 0.05); "
          f"machine: {machine_description()}")


if __name__ == "__main__":
    main()
