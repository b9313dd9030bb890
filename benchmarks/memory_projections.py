"""Peak memory of the projection solvers against :mod:`cdi_dip.memory`'s estimate (issue 7).

Each method runs in a fresh subprocess on CPU: the data are set up as the
pipeline does (counts, fit mask and free pixels on the device), the peak
resident set size is reset (``/proc/self/clear_refs``), the solver runs a
short plan that includes shrinkwrap and metric checkpoints, and the peak
(``VmHWM``) less the resident size before the solver is the solver's peak.
The DIP is not run (its speed and memory are another benchmark's): its
estimate from :func:`cdi_dip.solvers.dip.estimate_dip_memory_bytes` is shown.

    python benchmarks/memory_projections.py --size 256 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = r'''
import json, sys, dataclasses
import numpy as np, torch
sys.path.insert(0, sys.argv[4])
from speed_projections import simulated_counts
from cdi_dip.config import Method, ProjectionConfig, RunConfig
from cdi_dip.physics import FarField
from cdi_dip.solvers import Problem
from cdi_dip.solvers.projections import ProjectionRun, solve_projections

def status(key):
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)

size, method = int(sys.argv[1]), sys.argv[2]
torch.set_num_threads(int(sys.argv[3]))
shape = (size,) * 3
counts = torch.from_numpy(simulated_counts(shape))
valid = torch.ones(shape, dtype=torch.bool)
free = torch.rand(shape, generator=torch.Generator().manual_seed(0)) < 0.05
valid &= ~free
plan = f"10*{method}+10*ER" if method != "ER" else "20*ER"
projection = dataclasses.replace(ProjectionConfig(), plan=plan, shrinkwrap_period=5, metric_period=5)
cfg = RunConfig(method=Method(method.lower()), device="cpu", projection=projection).validate()
with open("/proc/self/clear_refs", "w") as handle:
    handle.write("5")
before = status("VmRSS")
output = solve_projections(Problem.build(counts, valid, FarField(shape), free=free), ProjectionRun.from_config(cfg),
                           rng=torch.Generator().manual_seed(0))
print(json.dumps({"before": before, "peak": status("VmHWM"), "kernels": output.extra["kernels"]}))
'''


def measure(size: int, method: str, threads: int, kernels: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "CDI_DIP_KERNELS": kernels}
    here = os.path.dirname(os.path.abspath(__file__))
    result = subprocess.run([sys.executable, "-c", CHILD, str(size), method, str(threads), here],
                            capture_output=True, text=True, env=env, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--kernels", default="auto", help="CDI_DIP_KERNELS for the children (auto, c, torch)")
    args = parser.parse_args()
    from common import machine_description

    from cdi_dip.config import Method, RunConfig
    from cdi_dip.solvers import estimate_memory_bytes

    shape = (args.size,) * 3
    print(f"machine: {machine_description()}; frame {args.size}^3; kernels {args.kernels}")
    print("| method | measured peak (GiB) | estimate (GiB) | estimate / measured |")
    print("|---|---|---|---|")
    gib = 2.0**30
    for method in ("ER", "HIO", "RAAR"):
        figures = measure(args.size, method, args.threads, args.kernels)
        peak = figures["peak"] - figures["before"]
        estimate = estimate_memory_bytes(RunConfig(method=Method(method.lower())).validate(), shape)
        print(f"| {method} ({figures['kernels']}) | {peak / gib:.2f} | {estimate / gib:.2f} | "
              f"{estimate / peak:.2f} |", flush=True)
    dip = estimate_memory_bytes(RunConfig(method=Method.DIP).validate(), shape)
    print(f"| DIP | not run | {dip / gib:.2f} | |")


if __name__ == "__main__":
    main()
