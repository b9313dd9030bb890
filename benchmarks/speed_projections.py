"""Time per iteration of ER, HIO and RAAR against the FFT floor (issue 7's benchmark).

For each frame size, in one process on one device:

- the *FFT pair*: one forward plus one inverse complex64 FFT of the frame
  (``torch.fft.fftn`` + ``ifftn``, what every projection iteration must do);
- each algorithm through the real solver (:func:`cdi_dip.solvers.projections.solve_projections`),
  with shrinkwrap off and with the default shrinkwrap (every 20 iterations).

Solver timings are differences of two runs (``long`` and ``short`` iterations)
so that the set-up (initial support, random start, copies) cancels; the
convergence metrics are switched off inside the timed window (one metric
evaluation at the end of each run, the same in both). The ratio column is
time per iteration / FFT-pair time, the figure of merit (target <= 1.2).

    python benchmarks/speed_projections.py --threads 2
    python benchmarks/speed_projections.py --device cuda --sizes 256,512,1024 --sizes3d 64,128,256
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch

from common import limit_threads, machine_description

from cdi_dip.config import Method, ProjectionConfig, RunConfig
from cdi_dip.device import resolve_device
from cdi_dip.physics import FarField
from cdi_dip.simulate import expected_intensity, faceted_crystal
from cdi_dip.solvers.projections import solve_projections


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def fft_pair_seconds(shape: tuple[int, ...], device: torch.device, repeats: int) -> float:
    """Median time of one fftn + ifftn of a complex64 frame."""
    x = torch.randn(shape, dtype=torch.complex64, device=device)
    dims = tuple(range(len(shape)))
    for _ in range(2):
        x = torch.fft.ifftn(torch.fft.fftn(x, dim=dims, norm="ortho"), dim=dims, norm="ortho")
    synchronise(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        x = torch.fft.ifftn(torch.fft.fftn(x, dim=dims, norm="ortho"), dim=dims, norm="ortho")
        synchronise(device)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def simulated_counts(shape: tuple[int, ...]) -> np.ndarray:
    """Noise-free intensities of a faceted crystal (speed does not depend on the noise)."""
    obj = faceted_crystal(shape, rng=np.random.default_rng(0))
    intensity = expected_intensity(obj)
    return (intensity * (1e5 / intensity.max())).astype(np.float32)


def solver_seconds(counts: torch.Tensor, valid: torch.Tensor, physics: FarField, algorithm: str,
                   iterations: int, shrinkwrap_period: int, device: torch.device) -> float:
    """Wall time of a plan of ``iterations`` of one algorithm through the real solver."""
    projection = dataclasses.replace(ProjectionConfig(), plan=f"{iterations}*{algorithm}",
                                     shrinkwrap_period=shrinkwrap_period, metric_period=10**9)
    cfg = RunConfig(method=Method.HIO, device=str(device), projection=projection).validate()
    generator = torch.Generator(device=device).manual_seed(0)
    synchronise(device)
    start = time.perf_counter()
    solve_projections(counts, valid, physics, cfg, generator=generator)
    synchronise(device)
    return time.perf_counter() - start


def per_iteration(counts, valid, physics, algorithm, shrinkwrap_period, device, short, long) -> float:
    """(time of ``long`` iterations - time of ``short``) / (long - short), best of two."""
    best = float("inf")
    for _ in range(2):
        t_short = solver_seconds(counts, valid, physics, algorithm, short, shrinkwrap_period, device)
        t_long = solver_seconds(counts, valid, physics, algorithm, long, shrinkwrap_period, device)
        best = min(best, (t_long - t_short) / (long - short))
    return best


def iteration_counts(voxels: int) -> tuple[int, int]:
    """Short and long runs: fewer iterations for big frames (the difference must be >= 20 for shrinkwrap)."""
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
    args = parser.parse_args()
    limit_threads(args.threads)
    device = resolve_device(args.device)
    shapes = [(n, n) for n in map(int, args.sizes.split(",") if args.sizes else [])]
    shapes += [(n, n, n) for n in map(int, args.sizes3d.split(",") if args.sizes3d else [])]
    print(f"machine: {machine_description()}, device {device}")
    print("| frame | FFT pair (ms) | ER | HIO | RAAR | ER + SW | HIO + SW | RAAR + SW |")
    print("|---|---|---|---|---|---|---|---|")
    for shape in shapes:
        voxels = int(np.prod(shape))
        physics = FarField(shape)
        counts = torch.from_numpy(simulated_counts(shape)).to(device)
        valid = torch.ones(shape, dtype=torch.bool, device=device)
        fft_s = fft_pair_seconds(shape, device, repeats=5 if voxels >= 2**24 else 20)
        short, long = iteration_counts(voxels)
        cells = []
        for period in (0, 20):
            for algorithm in ("ER", "HIO", "RAAR"):
                seconds = per_iteration(counts, valid, physics, algorithm, period, device, short, long)
                cells.append(f"{seconds * 1e3:.2f} ms ({seconds / fft_s:.2f}x)")
        print(f"| {'x'.join(map(str, shape))} | {fft_s * 1e3:.2f} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
