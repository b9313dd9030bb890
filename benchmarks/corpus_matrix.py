"""Methods x families x conditions on one half of the evaluation corpus (issue 15, docs/corpus.md).

Every case of the half (``cdi_dip.corpus.corpus_cases``) is written to a
temporary CXI file (counts, mask, ground truth) and reconstructed through
``cdi_dip.pipeline.reconstruct_scan``, the function ``cdi-dip reconstruct``
calls, with the default configuration and seed 0 (``--seed`` and ``--iterations`` when
given). The written object is scored against the truth with the
symmetry-adjusted error (``cdi_dip.ensemble.compare_objects``), seen on the
truth's frame first where its own differs (``common.score``). A case fails
when its error is above 0.3 or the reconstruction stopped with an error.

    python benchmarks/corpus_matrix.py --threads 2 --json corpus.json --markdown
    python benchmarks/corpus_matrix.py --quick --max-cases 2 --iterations 5 --methods hio
    python benchmarks/corpus_matrix.py --quick --dims 2 --model model.pt --methods net,hio,hio@learned
    python benchmarks/corpus_matrix.py --half tuning --quick --dims 2 --methods hio --config rule.toml

``--config FILE`` reads a TOML configuration as ``cdi-dip reconstruct --config``
does (the options above override it), to measure a setting against the defaults.

A method written ``METHOD@learned`` runs ``--init learned:MODEL`` (``--model``,
default the shipped model); ``net`` is the network's object alone.

Defaults are chosen on ``--half tuning`` only; the published figures come
from ``--half reporting`` (the default).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

from common import limit_threads, machine_description, score

from cdi_dip.cli.common import build_config
from cdi_dip.cli.options import overrides
from cdi_dip.corpus import CorpusCase, corpus_cases, integrated_over_pixels, moved_off_centre, write_case
from cdi_dip.corpus.split import HALVES
from cdi_dip.errors import CdiDipError
from cdi_dip.io.readers import read_object
from cdi_dip.pipeline import reconstruct_scan

FAILURE_ERROR = 0.3
"""A case whose symmetry-adjusted error is above this has failed."""

MATRIX_KEYS = ("method", "family", "condition")
"""The cells of the full matrix; the margins drop ``condition`` or ``family``."""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default="auto,dip,hio", help="comma-separated methods (default auto,dip,hio)")
    parser.add_argument("--half", default="reporting", choices=sorted(HALVES),
                        help="reporting (default: the published figures) or tuning (the only half to choose "
                             "defaults on)")
    parser.add_argument("--dims", default="2,3", help="2, 3 or 2,3 (default)")
    parser.add_argument("--families", default=None, help="comma-separated families (default: all of the half's)")
    parser.add_argument("--conditions", default=None, help="comma-separated conditions (default: all of the half's)")
    parser.add_argument("--per-family", type=int, default=1,
                        help="seeds per (dimension, family, condition) (default 1)")
    parser.add_argument("--max-cases", type=int, default=None, help="stop after this many cases")
    parser.add_argument("--quick", action="store_true", help="small frames (2D 32-64, 3D 24-32 px per axis)")
    parser.add_argument("--off-centre", action="store_true",
                        help="every case's zero frequency at a random point inside its pixel "
                             "(cdi_dip.corpus.moved_off_centre), as on a real detector")
    parser.add_argument("--pixels", action="store_true",
                        help="every case's intensity averaged over each pixel (cdi_dip.corpus.integrated_over_pixels), "
                             "as a real detector records it")
    parser.add_argument("--iterations", type=int, default=None, help="as cdi-dip reconstruct --iterations")
    parser.add_argument("--seed", type=int, default=0,
                        help="as cdi-dip reconstruct --seed (default 0): another draw of the random starts")
    parser.add_argument("--device", default=None, help="as cdi-dip reconstruct --device (default auto)")
    parser.add_argument("--model", type=Path, default=None,
                        help="model file of METHOD@learned and net (default: the shipped model)")
    parser.add_argument("--config", type=Path, default=None,
                        help="TOML configuration of every reconstruction, as cdi-dip reconstruct --config "
                             "(default: none, the tool's defaults)")
    parser.add_argument("--psf", default=None, help="as cdi-dip reconstruct --psf (default: the tool's, none)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    parser.add_argument("--json", type=Path, default=None, help="write every row, the cells and the machine here")
    parser.add_argument("--markdown", action="store_true", help="print the tables as markdown for docs/benchmarks.md")
    return parser.parse_args(argv)


def _names(text: str | None) -> list[str] | None:
    return None if text is None else [part.strip() for part in text.split(",") if part.strip()]


def selected_cases(args: argparse.Namespace) -> Iterator[CorpusCase]:
    """The cases the options select, in the corpus's order."""
    cases = corpus_cases(args.half, dims=tuple(int(d) for d in _names(args.dims) or ()), quick=args.quick,
                         per_family=args.per_family, families=_names(args.families),
                         conditions=_names(args.conditions))
    if args.off_centre:
        cases = map(moved_off_centre, cases)
    if args.pixels:
        cases = map(integrated_over_pixels, cases)
    return islice(cases, args.max_cases)


def method_options(spec: str, model: Path | None) -> dict[str, Any]:
    """``hio`` -> ``{"method": "hio"}``; ``hio@learned`` and ``net`` also name the model (``--init learned:MODEL``)."""
    method, _, init = spec.partition("@")
    learned = "learned" if model is None else f"learned:{model}"
    if init not in ("", "learned"):
        raise SystemExit(f"method {spec!r}: write METHOD or METHOD@learned")
    return {"method": method, "init": learned if init or method == "net" else None}


def reconstruct_file(path: Path, method: str, out: Path, *, iterations: int | None,
                     device: str | None, psf: str | None = None, model: Path | None = None,
                     config: Path | None = None, seed: int = 0) -> tuple[dict[str, Any], float]:
    """``cdi-dip reconstruct PATH --method METHOD --seed SEED [--iterations N] [--device D] [--psf P] [--init ...]
    [--config FILE]``; summary and seconds."""
    cfg = build_config(config, overrides({**method_options(method, model), "seed": seed, "iterations": iterations,
                                        "device": device, "psf": psf}))
    start = time.perf_counter()
    summary = reconstruct_scan(str(path), cfg, out)
    return summary, time.perf_counter() - start


def case_rows(case: CorpusCase, methods: Sequence[str], workdir: Path, *, iterations: int | None,
              device: str | None, psf: str | None = None, model: Path | None = None,
              config: Path | None = None, seed: int = 0) -> Iterator[dict[str, Any]]:
    """One row per method: the case, the method run, its error, its free Poisson deviance per pixel
    (``free_llk``, from the summary) and what a model as good as the counts allow would score there
    (``free_llk_expected``; the fit warning compares their ratio with 2), what ``--psf compare`` decided (``coherence``), what the frame-margin
    more-starts and background challenges decided (``margin``, ``starts``, ``background``), how many support
    modes a masked centre hides in the written support (``hidden_modes``; None where the centre is measured)
    and its time in seconds: ``seconds`` the whole
    command as a user waits for it (reading, solving, writing the result and its report), ``solve_s`` the
    reconstruction alone (the summary's ``wall_s``)."""
    folder = workdir / case.label.replace("/", "_")
    folder.mkdir()
    scan = folder / "scan.cxi"
    write_case(scan, case)
    base = {"label": case.label, "family": case.family, "condition": case.condition, "dim": case.dim,
            "kind": case.kind, "shape": list(case.shape), "seed": case.seed,
            "oversampling": [round(v, 2) for v in case.oversampling]}
    try:
        for method in methods:
            row = {**base, "method": method}
            try:
                summary, seconds = reconstruct_file(scan, method, folder / method.replace("@", "_"),
                                                    iterations=iterations, device=device, psf=psf, model=model,
                                                    config=config, seed=seed)
            except CdiDipError as exc:
                yield {**row, "error": None, "failed": True, "status": f"{type(exc).__name__}: {exc}", "seconds": None}
                continue
            figures = score(read_object(summary["output"]), case.truth)
            yield {**row, **figures, **run_facts(summary["output"]), "used": summary["method"], "failed": not figures["error"] <= FAILURE_ERROR,
                   "status": "ok", "seconds": round(seconds, 2), "solve_s": summary["wall_s"],
                   "free_llk": summary.get("metrics", {}).get("free_llk_poisson"),
                   "free_llk_expected": summary.get("metrics", {}).get("free_llk_poisson_expected"),
                   "coherence": coherence_facts(summary), "margin": challenge_facts(summary, "margin"),
                   "starts": challenge_facts(summary, "starts"), "background": challenge_facts(summary, "background"),
                   "hot_by_model": ((summary.get("method_choice") or {}).get("hot_by_model") or {}).get("pixels"),
                   "hidden_modes": (summary.get("missing_modes") or {}).get("hidden")}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def coherence_facts(summary: dict[str, Any]) -> dict[str, Any] | None:
    """What ``--psf compare`` decided (None without it): the model kept, whether a challenger ran, the blur
    test's ratio and width, the pixel test's ratio and margin (``z``), the free deviance of every candidate and the
    margin of the one kept."""
    record = (summary.get("method_choice") or {}).get("coherence")
    if not isinstance(record, dict):
        return None
    test = record.get("blur_test") or {}
    return {"chosen": record.get("chosen"), "challenged": bool(record.get("compared")),
            "blur_ratio": test.get("ratio"), "blur_sigma_px": test.get("best_sigma_px"),
            "pixel_ratio": (test.get("pixel_test") or {}).get("ratio"),
            "pixel_z": (test.get("pixel_test") or {}).get("margin_z"),
            "free_llk_by_candidate": record.get("free_llk_poisson"), "margin_z": record.get("margin_z"),
            **_timing(record)}


def _timing(record: dict[str, Any]) -> dict[str, Any]:
    """When a challenge started and what it took, in seconds and in work (millions of voxels transformed)."""
    return {key: record.get(key) for key in ("started_s", "seconds", "started_work", "work")}


def challenge_facts(summary: dict[str, Any], key: str) -> dict[str, Any] | None:
    """What the challenge recorded as ``method_choice[key]`` decided (``margin``: the frame margin; ``starts``:
    more starts; ``background``: the counts less a background), None without a record: whether it ran, what was
    kept, the margin in standard errors, and when it started and how long it took (seconds and work; a time
    budget's effect can be read off them: ``benchmarks/time_budget_effect.py``)."""
    record = (summary.get("method_choice") or {}).get(key)
    if not isinstance(record, dict):
        return None
    return {"challenged": bool(record.get("compared")), "chosen": record.get("chosen"),
            "margin_z": record.get("margin_z"), **_timing(record)}


def run_facts(output: str) -> dict[str, Any]:
    """From a written result: every run's ``outside_fraction`` and ``support_restarts`` (when the solver
    measured them) and how many runs were left out for their outside fraction."""
    import h5py

    found: dict[str, Any] = {}

    def visit(name: str, item: Any) -> None:
        if isinstance(item, h5py.Dataset) and name.rsplit("/", 1)[-1] in ("runs", "selection"):
            value = item[()]
            if not isinstance(value, (bytes, str)):
                return
            found[name.rsplit("/", 1)[-1]] = json.loads(value.decode() if isinstance(value, bytes) else value)

    with h5py.File(output, "r") as handle:
        handle.visititems(visit)
    runs = found.get("runs", [])
    dropped = found.get("selection", {}).get("dropped", [])
    return {"outside_fractions": [run.get("outside_fraction") for run in runs],
            "support_restarts": [run.get("support_restarts") for run in runs],
            "dropped_outside": sum(entry.get("reason") == "outside support" for entry in dropped)}


def cells(rows: Iterable[dict[str, Any]], keys: Sequence[str]) -> list[dict[str, Any]]:
    """Rows grouped by ``keys``: n, median error, failure rate and median time of each group.

    A reconstruction that stopped with an error counts as a failure and has
    no error or time; the medians are over the others (None when none).
    """
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in keys), []).append(row)
    out = []
    for key, members in groups.items():
        errors = [r["error"] for r in members if r["error"] is not None]
        times = [r["seconds"] for r in members if r["seconds"] is not None]
        out.append({**dict(zip(keys, key)), "n": len(members),
                    "median_error": statistics.median(errors) if errors else None,
                    "failure_rate": sum(r["failed"] for r in members) / len(members),
                    "median_seconds": statistics.median(times) if times else None})
    return out


def _number(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(groups: Sequence[dict[str, Any]], keys: Sequence[str], *, markdown: bool) -> str:
    """The groups as a markdown table or as aligned text."""
    header = [*keys, "n", "median error", "failure rate", "median time (s)"]
    body = [[str(g[k]) for k in keys] + [str(g["n"]), _number(g["median_error"], 3), _number(g["failure_rate"], 2),
                                         _number(g["median_seconds"], 1)] for g in groups]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in body])
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in [header, *body])


def report(rows: Sequence[dict[str, Any]], *, markdown: bool) -> str:
    """Per method, per method x family, per method x condition, and the full matrix."""
    parts = []
    for title, keys in (("methods", ("method",)), ("method x family", ("method", "family")),
                        ("method x condition", ("method", "condition")), ("method x family x condition", MATRIX_KEYS)):
        parts.append(f"{'### ' if markdown else ''}{title}\n\n{table(cells(rows, keys), keys, markdown=markdown)}")
    return "\n\n".join(parts)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    limit_threads(args.threads)
    methods = _names(args.methods) or []
    rows: list[dict[str, Any]] = []
    machine = machine_description()
    with tempfile.TemporaryDirectory(prefix="cdi-dip-corpus-") as tmp:
        for case in selected_cases(args):
            for row in case_rows(case, methods, Path(tmp), iterations=args.iterations, device=args.device,
                                 psf=args.psf, model=args.model, config=args.config, seed=args.seed):
                rows.append(row)
                print(f"{row['label']} {row['method']}: error {_number(row['error'], 3)}, "
                      f"{_number(row['seconds'], 1)} s, {row['status']}", flush=True)
                if args.json is not None:  # a long run stopped early keeps the rows it made
                    _write_rows(args, rows, machine)
    settings = (f"configuration {args.config}" if args.config else "default configuration") + (f", --psf {args.psf}" if args.psf else "") + \
        (f", model {args.model}" if args.model else "")
    print(f"\nmachine: {machine}\nhalf {args.half}, methods {','.join(methods)}, {settings}, seed {args.seed}, "
          f"iterations {args.iterations or 'default'}, {'quick' if args.quick else 'full'} sizes, "
          f"failure: error > {FAILURE_ERROR}\n")
    print(report(rows, markdown=args.markdown))
    if args.json is not None:
        _write_rows(args, rows, machine)


def _write_rows(args: argparse.Namespace, rows: list[dict[str, Any]], machine: str) -> None:
    """Every row so far, the cells and the machine, as ``args.json`` (replaced whole, never half-written)."""
    text = json.dumps({"machine": machine, "arguments": {k: str(v) for k, v in vars(args).items()},
                       "rows": rows, "cells": cells(rows, MATRIX_KEYS)}, indent=1)
    partial = args.json.with_name(args.json.name + ".partial")
    partial.write_text(text)
    partial.replace(args.json)


if __name__ == "__main__":
    main()
