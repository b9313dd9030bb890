"""Batch throughput: scans per hour for small 2D scans with 1 and more local workers.

Simulates ``--scans`` 2D crystals of ``--size``^2 pixels, writes them as CXI
files, and runs :func:`cdi_dip.batch.run_batch` on them once per worker count
(each run into a fresh output folder, so nothing is resumed). Prints a
Markdown table for docs/benchmarks.md::

    python benchmarks/batch_throughput.py                 # 8 scans of 64x64, HIO, 1 and 2 workers
    python benchmarks/batch_throughput.py --workers 1,2,4 --scans 16

The wall time of a pool includes starting its worker processes (spawn, and
importing torch in each), as it does in real use. One scan is reconstructed in
this process before timing, so that the 1-worker figure does not include the
first imports either.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from cdi_dip import __version__
from cdi_dip.batch import run_batch
from cdi_dip.config import config_from_dict
from cdi_dip.simulate import simulate_scan, write_simulated_scan


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (platform's guess elsewhere)."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def write_scans(folder: Path, count: int, size: int, seed: int) -> list[str]:
    """``count`` simulated 2D crystals with off-centre peaks, as CXI files."""
    rng = np.random.default_rng(seed)
    paths = []
    for index in range(count):
        offset = tuple(int(v) for v in rng.integers(-3, 4, size=2))
        scan = simulate_scan("crystal", (size, size), rng=rng, peak_counts=1e5, offset_px=offset)
        path = folder / f"scan{index:03d}.cxi"
        write_simulated_scan(path, scan)
        paths.append(str(path))
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=8, help="number of scans (default 8)")
    parser.add_argument("--size", type=int, default=64, help="frame size in pixels per axis (default 64)")
    parser.add_argument("--method", default="hio", help="dip, hio, raar or er (default hio)")
    parser.add_argument("--iterations", type=int, default=None, help="iterations (default: the method's)")
    parser.add_argument("--workers", default="1,2", help="worker counts to compare, e.g. 1,2,4 (default 1,2)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    worker_counts = [int(w) for w in args.workers.split(",")]
    cfg = config_from_dict({"method": args.method, "iterations": args.iterations, "seed": args.seed,
                            "device": "cpu"})

    rows = []
    with tempfile.TemporaryDirectory(prefix="cdi-dip-batch-bench-") as tmp:
        root = Path(tmp)
        (root / "scans").mkdir()
        sources = write_scans(root / "scans", args.scans, args.size, args.seed)
        run_batch(sources[:1], cfg, root / "warm-up")  # imports and first-call costs, untimed
        for workers in worker_counts:
            summary = run_batch(sources, cfg, root / f"out-{workers}", workers=workers)
            wall_s = summary["wall_s"]
            rows.append((workers, summary["ok"], summary["failed"], wall_s,
                         wall_s / len(sources), 3600.0 * summary["ok"] / wall_s))

    iterations = cfg.iterations or "default"
    print(f"### Batch throughput: {args.scans} scans of {args.size}x{args.size}, "
          f"{args.method.upper()}, {iterations} iterations, CPU\n")
    print(f"- CPU: {cpu_model()}, {usable_cores()} cores usable, no GPU used")
    print(f"- torch {torch.__version__}, Python {platform.python_version()}, cdi-dip {__version__}")
    print(f"- date: {datetime.date.today().isoformat()}\n")
    print("| workers | scans ok | failed | wall time (s) | s per scan | scans per hour |")
    print("|---:|---:|---:|---:|---:|---:|")
    for workers, ok, failed, wall_s, per_scan_s, per_hour in rows:
        print(f"| {workers} | {ok} | {failed} | {wall_s:.1f} | {per_scan_s:.2f} | {per_hour:.0f} |")
    return 0 if all(row[2] == 0 for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
