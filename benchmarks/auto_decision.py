"""Does ``auto`` tell a specimen from a crystal? The Friedel test on every case of a corpus half (issue 15).

``--method auto`` and automatic positivity call a pattern a real-valued
specimen when its Friedel asymmetry plus two standard errors is at most
``projection.positivity_max_asymmetry``
(:func:`cdi_dip.solvers.projections.choose_positivity`). This benchmark
reads every case of a corpus half as ``cdi-dip reconstruct`` reads it (the
file written, then loaded and prepared: found defects excluded, frame
centred and cut) and measures the asymmetry about the centre pixel
(:func:`cdi_dip.solvers.friedel.pixel_asymmetry`, the measure before the
sub-pixel centre) and about the best centre
(:func:`cdi_dip.solvers.friedel.friedel_asymmetry`, the one ``auto`` uses).
No reconstruction: seconds per case.

``--off-centre`` moves the zero frequency of every case (any condition) to a
random point inside its pixel (up to half a pixel per axis), as on a real
detector (:func:`cdi_dip.corpus.moved_off_centre`).

    python benchmarks/auto_decision.py --half tuning --dims 2 --per-family 2
    python benchmarks/auto_decision.py --half tuning --dims 2,3 --conditions clean,off-centre,blur
    python benchmarks/auto_decision.py --half tuning --dims 2 --off-centre
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from common import limit_threads, machine_description

from cdi_dip.config import RunConfig
from cdi_dip.corpus import corpus_cases, moved_off_centre, write_case
from cdi_dip.pipeline import load_scan
from cdi_dip.solvers.friedel import FriedelAsymmetry, friedel_asymmetry, pixel_asymmetry


def called_specimen(asymmetry: FriedelAsymmetry, threshold: float) -> bool:
    """The rule of :func:`cdi_dip.solvers.projections.choose_positivity`."""
    return asymmetry.value + 2 * asymmetry.standard_error <= threshold


def measure_case(case, folder: Path, cfg: RunConfig) -> dict:
    """Both measures on one case, read as the pipeline reads it."""
    path = folder / "case.cxi"
    write_case(path, case)
    measurement = load_scan(str(path), cfg)
    counts = torch.from_numpy(np.where(measurement.valid, measurement.intensity, 0.0).astype(np.float32))
    valid = torch.from_numpy(measurement.valid)
    before, now = pixel_asymmetry(counts, valid), friedel_asymmetry(counts, valid)
    threshold = cfg.projection.positivity_max_asymmetry
    offset = tuple(case.settings.centre_offset_px[:case.truth.ndim])
    return {"case": case.label, "kind": case.kind, "condition": case.condition, "true_offset_px": offset,
            "pixel": before.value, "pixel_specimen": called_specimen(before, threshold),
            "best": now.value, "best_specimen": called_specimen(now, threshold),
            "found_offset_px": now.centre_offset_px}


def summary_rows(rows: list[dict]) -> list[tuple]:
    """Per condition and kind: cases, and how many each measure calls right."""
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in rows:
        groups[(row["condition"], row["kind"])].append(row)
    table = []
    for (condition, kind), group in sorted(groups.items()):
        right = (lambda key: sum(r[key] == (kind == "specimen") for r in group))
        table.append((condition, kind, len(group), right("pixel_specimen"), right("best_specimen")))
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--half", default="tuning")
    parser.add_argument("--dims", default="2")
    parser.add_argument("--per-family", type=int, default=1)
    parser.add_argument("--conditions", default=None, help="comma-separated; default all of the half's")
    parser.add_argument("--families", default=None)
    parser.add_argument("--full", action="store_true", help="full-size frames (default: quick)")
    parser.add_argument("--off-centre", action="store_true",
                        help="every case's zero frequency at a random point of its pixel")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    limit_threads(args.threads)
    cfg = RunConfig()
    split = (lambda text: None if text is None else text.split(","))
    cases = corpus_cases(args.half, dims=[int(d) for d in args.dims.split(",")], quick=not args.full,
                         per_family=args.per_family, families=split(args.families), conditions=split(args.conditions))
    print(f"# {machine_description()}")
    print("| case | kind | true offset (px) | pixel: asymmetry | best centre: asymmetry | found offset (px) |")
    print("|---|---|---|---|---|---|")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            row = measure_case(moved_off_centre(case) if args.off_centre else case, Path(tmp), cfg)
            rows.append(row)
            mark = (lambda specimen: "specimen" if specimen else "crystal")
            print(f"| {row['case']} | {row['kind']} | {row['true_offset_px']} | {row['pixel']:.2g} "
                  f"({mark(row['pixel_specimen'])}) | {row['best']:.2g} ({mark(row['best_specimen'])}) | "
                  f"{row['found_offset_px']} |", flush=True)
    print("\n| condition | kind | cases | called right, about the pixel | called right, about the best centre |")
    print("|---|---|---|---|---|")
    for condition, kind, n, before, now in summary_rows(rows):
        print(f"| {condition} | {kind} | {n} | {before} | {now} |")
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
