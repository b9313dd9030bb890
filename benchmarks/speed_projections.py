"""Time per iteration of ER, HIO and RAAR against the FFT floor (issue 7's benchmark).

For each frame size, in one process on one device:

- the *FFT pair*: one forward plus one inverse complex64 FFT of the frame
  (``torch.fft.fftn`` + ``ifftn``, what every projection iteration must do);
- each algorithm through the real solver (:func:`cdi_dip.solvers.projections.solve_projections`),
  with shrinkwrap off and with the default shrinkwrap (every 20 iterations),
  and HIO with the default shrinkwrap *and* the default convergence metrics
  (every 20 iterations: one more FFT and the float64 likelihoods).

Solver timings are differences of two runs (``long`` and ``short`` iterations)
so that the set-up (initial support, random start, copies) cancels; outside the
"defaults" column the convergence metrics are switched off inside the timed
window (one metric evaluation at the end of each run, the same in both).

The FFT pair is timed the same way, as the difference of ``long`` and
``short`` back-to-back pairs, right before each solver run: on a shared
machine a long run is preempted as often as the solver's, where the median of
single pairs would leave the preemptions out and flatter the floor. Each cell
is the median over the repeats of the time per iteration and of the ratio
(time per iteration / FFT-pair time, the figure of merit; target <= 1.2).
``--clock cpu`` times with the process's CPU time instead of the wall clock:
with one thread it leaves out the time the process waits for a core.

    python benchmarks/speed_projections.py --threads 1
    python benchmarks/speed_projections.py --device cuda --sizes 256,512,1024 --sizes3d 64,128,256
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import numpy as np
import torch

from common import limit_threads, machine_description

from cdi_dip.config import Method, ProjectionConfig, RunConfig
from cdi_dip.device import resolve_device
from cdi_dip.physics import FarField
from cdi_dip.simulate import expected_intensity, faceted_crystal
from cdi_dip.solvers import Problem
from cdi_dip.solvers.projections import ProjectionRun, solve_projections

COLUMNS = (  # label, algorithm, shrinkwrap period, metric period (None: off in the timed window)
    ("ER", "ER", 0, None),
    ("HIO", "HIO", 0, None),
    ("RAAR", "RAAR", 0, None),
    ("ER + SW", "ER", 20, None),
    ("HIO + SW", "HIO", 20, None),
    ("RAAR + SW", "RAAR", 20, None),
    ("HIO defaults", "HIO", 20, 20),
)


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
clock = time.perf_counter


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def fft_pairs_seconds(shape: tuple[int, ...], device: torch.device, pairs: int) -> float:
    """Time of ``pairs`` back-to-back fftn + ifftn of a complex64 frame (after two for warm-up)."""
    x = torch.randn(shape, dtype=torch.complex64, device=device)
    dims = tuple(range(len(shape)))
    for _ in range(2):
        x = torch.fft.ifftn(torch.fft.fftn(x, dim=dims, norm="ortho"), dim=dims, norm="ortho")
    synchronise(device)
    start = clock()
    for _ in range(pairs):
        x = torch.fft.ifftn(torch.fft.fftn(x, dim=dims, norm="ortho"), dim=dims, norm="ortho")
    synchronise(device)
    return clock() - start


def simulated_counts(shape: tuple[int, ...]) -> np.ndarray:
    """Noise-free intensities of a faceted crystal (speed does not depend on the noise)."""
    obj = faceted_crystal(shape, rng=np.random.default_rng(0))
    intensity = expected_intensity(obj)
    return (intensity * (1e5 / intensity.max())).astype(np.float32)


def solver_seconds(counts: torch.Tensor, valid: torch.Tensor, physics: FarField, algorithm: str,
                   iterations: int, shrinkwrap_period: int, device: torch.device,
                   metric_period: int | None = None) -> float:
    """Wall time of a plan of ``iterations`` of one algorithm through the real solver."""
    projection = dataclasses.replace(ProjectionConfig(), plan=f"{iterations}*{algorithm}",
                                     shrinkwrap_period=shrinkwrap_period,
                                     metric_period=metric_period or 10**9)
    cfg = RunConfig(method=Method.HIO, device=str(device), projection=projection).validate()
    generator = torch.Generator(device=device).manual_seed(0)
    synchronise(device)
    start = clock()
    solve_projections(Problem.build(counts, valid, physics), ProjectionRun.from_config(cfg), rng=generator)
    synchronise(device)
    return clock() - start


@dataclasses.dataclass
class Cell:
    """One table cell: medians over the repeats."""

    seconds: float
    ratio: float
    ratios: list[float]

    def text(self) -> str:
        return f"{self.seconds * 1e3:.2f} ms ({self.ratio:.2f}x)"


def measure_cell(counts, valid, physics, algorithm, shrinkwrap_period, metric_period, device, short, long,
                 repeats: int) -> Cell:
    """Per-iteration time ``(t_long - t_short) / (long - short)`` and its ratio to the FFT pair timed alike."""
    seconds, ratios = [], []
    for _ in range(repeats):
        fft_short = fft_pairs_seconds(physics.shape, device, short)
        t_short = solver_seconds(counts, valid, physics, algorithm, short, shrinkwrap_period, device, metric_period)
        fft_long = fft_pairs_seconds(physics.shape, device, long)
        t_long = solver_seconds(counts, valid, physics, algorithm, long, shrinkwrap_period, device, metric_period)
        per_iteration = (t_long - t_short) / (long - short)
        seconds.append(per_iteration)
        ratios.append(per_iteration / ((fft_long - fft_short) / (long - short)))
    return Cell(float(np.median(seconds)), float(np.median(ratios)), ratios)


def iteration_counts(voxels: int) -> tuple[int, int]:
    """Short and long runs: fewer iterations for big frames (the difference a multiple of 20, for shrinkwrap)."""
    if voxels >= 2**24:
        return 20, 40
    if voxels >= 2**21:
        return 20, 60
    return 20, 120


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sizes", default="256,512,1024", help="2D frame sizes")
    parser.add_argument("--sizes3d", default="64,128,256", help="3D frame sizes")
    parser.add_argument("--repeats", type=int, default=3, help="repeats per cell (2 for frames of 2^24 voxels)")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall")
    parser.add_argument("--columns", default=",".join(label for label, *_ in COLUMNS),
                        help="comma-separated column labels to measure")
    parser.add_argument("--json", default=None, help="also write the cells to this JSON file")
    args = parser.parse_args()
    global clock
    clock = CLOCKS[args.clock]
    limit_threads(args.threads)
    device = resolve_device(args.device)
    shapes = [(n, n) for n in map(int, args.sizes.split(",") if args.sizes else [])]
    shapes += [(n, n, n) for n in map(int, args.sizes3d.split(",") if args.sizes3d else [])]
    columns = [column for column in COLUMNS if column[0] in args.columns.split(",")]
    print(f"machine: {machine_description()}, device {device}, {args.clock} clock")
    print("| frame | FFT pair (ms) | " + " | ".join(label for label, *_ in columns) + " |")
    print("|---|---|" + "---|" * len(columns))
    rows = []
    for shape in shapes:
        voxels = int(np.prod(shape))
        physics = FarField(shape)
        counts = torch.from_numpy(simulated_counts(shape)).to(device)
        valid = torch.ones(shape, dtype=torch.bool, device=device)
        repeats = min(args.repeats, 2) if voxels >= 2**24 else args.repeats
        short, long = iteration_counts(voxels)
        fft_s = (fft_pairs_seconds(shape, device, long) - fft_pairs_seconds(shape, device, short)) / (long - short)
        cells = {label: measure_cell(counts, valid, physics, algorithm, period, metrics, device, short, long,
                                     repeats)
                 for label, algorithm, period, metrics in columns}
        rows.append({"shape": list(shape), "fft_pair_s": fft_s,
                     "cells": {label: dataclasses.asdict(cell) for label, cell in cells.items()}})
        print(f"| {'x'.join(map(str, shape))} | {fft_s * 1e3:.2f} | "
              + " | ".join(cell.text() for cell in cells.values()) + " |", flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"machine": machine_description(), "device": str(device), "clock": args.clock, "rows": rows},
                      handle, indent=1)


if __name__ == "__main__":
    main()
