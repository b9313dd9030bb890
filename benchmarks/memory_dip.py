"""How honest is ``estimate_dip_memory_bytes``? Measured peak memory of double-DIP runs on the CPU.

Three measurements per frame shape, each in a fresh subprocess:

- *peak tensor memory*: the peak of the memory timeline that
  ``torch.profiler`` (``profile_memory=True``) records for the CPU during
  ``solve_dip``: every byte torch allocates, nothing else;
- *peak RSS*: the process's peak resident memory during ``solve_dip``
  (``ru_maxrss``) minus its resident memory just before (imports, data and a
  warm-up of the kernels already paid for); noisy, because the allocator
  reuses and keeps pages;
- *saved tensors*: the bytes autograd keeps for one backward pass of the
  two generators (``torch.autograd.graph.saved_tensors_hooks``, unique
  storages), plus parameters, gradients and Adam moments: the part of the
  estimate that grows with the network.

    python benchmarks/memory_dip.py --threads 1
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

import numpy as np
import torch

SHAPES = [(128, 128), (256, 256), (48, 48, 48), (64, 64, 64)]


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize()


def _data(frame_shape: tuple[int, ...]):
    from cdi_dip.physics import FarField, pad_to_frame
    from cdi_dip.solvers.dip import object_shape

    rng = np.random.default_rng(0)
    small = object_shape(frame_shape)
    obj = np.zeros(small, np.complex64)
    inner = tuple(slice(n // 5, n - n // 5) for n in small)
    obj[inner] = np.exp(1j * rng.uniform(0, 0.5, size=obj[inner].shape))
    physics = FarField(frame_shape)
    intensity = physics.intensity(pad_to_frame(torch.from_numpy(obj), frame_shape))
    counts = torch.poisson(intensity * (1e5 / intensity.max()), generator=torch.Generator().manual_seed(0))
    free = torch.from_numpy(rng.random(frame_shape) < 0.05)
    return counts.float(), ~free, free, physics


def saved_tensor_bytes(frame_shape: tuple[int, ...], channels: int) -> int:
    """Bytes autograd saves in one forward of both generators and the loss, plus 4x the parameters."""
    from cdi_dip.config import DipParam
    from cdi_dip.solvers.dip import object_shape
    from cdi_dip.solvers.nets import DoubleDip

    model = DoubleDip(object_shape(frame_shape), DipParam.MAG_PHASE, channels=channels, depth=4,
                      generator=torch.Generator().manual_seed(0))
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        obj = model()
        loss = obj.abs().sum()
    loss.backward()
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    return sum(storages.values()) + 4 * params


def measure_child(frame_shape: tuple[int, ...], iterations: int, threads: int) -> dict:
    """Run in a subprocess: resident memory before and at the peak of one solve."""
    torch.set_num_threads(threads)
    from cdi_dip.config import DipConfig, Method, RunConfig
    from cdi_dip.solvers import Problem
    from cdi_dip.solvers.dip import DipRun, estimate_dip_memory_bytes, solve_dip

    counts, valid, free, physics = _data(frame_shape)
    warm = RunConfig(method=Method.DIP, iterations=2,
                     dip=DipConfig(warm_start_runs=1, prefit_iterations=2, polish_iterations=2)).validate()
    # Warm up kernels and allocator pools on a small frame so that their cost is not counted.
    small_counts, small_valid, small_free, small_physics = _data(tuple(32 for _ in frame_shape))
    solve_dip(Problem.build(small_counts, small_valid, small_physics, free=small_free), DipRun.from_config(warm),
              rng=torch.Generator().manual_seed(0))
    cfg = RunConfig(method=Method.DIP, iterations=iterations,
                    dip=DipConfig(warm_start_runs=1, prefit_iterations=10, polish_iterations=5)).validate()
    before = _rss_bytes()
    solve_dip(Problem.build(counts, valid, physics, free=free), DipRun.from_config(cfg),
              rng=torch.Generator().manual_seed(0))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"shape": list(frame_shape), "rss_increase": max(peak - before, 0),
            "tensor_peak": profiled_peak_bytes(counts, valid, free, physics, cfg),
            "estimate": estimate_dip_memory_bytes(frame_shape, cfg),
            "saved_tensors": saved_tensor_bytes(frame_shape, cfg.dip.channels)}


def profiled_peak_bytes(counts, valid, free, physics, cfg) -> int:
    """Peak of the CPU memory timeline of one ``solve_dip`` under ``torch.profiler``."""
    import os
    import tempfile
    import warnings

    from torch.profiler import ProfilerActivity, profile

    from cdi_dip.solvers import Problem
    from cdi_dip.solvers.dip import DipRun, solve_dip

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True,
                 with_stack=True) as prof:
        solve_dip(Problem.build(counts, valid, physics, free=free), DipRun.from_config(cfg),
                  rng=torch.Generator().manual_seed(0))
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "timeline.json")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            prof.export_memory_timeline(path, device="cpu")
        with open(path) as handle:
            _times, sizes = json.load(handle)
    return int(np.asarray(sizes).sum(axis=1).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        shape = tuple(int(n) for n in args.child.split("x"))
        print(json.dumps(measure_child(shape, args.iterations, args.threads)))
        return
    mib = 2**20
    print("| frame | estimate (MiB) | peak tensor memory (MiB) | estimate / peak | peak RSS increase (MiB) | "
          "saved tensors + 4x params (MiB) |")
    print("|---|---|---|---|---|---|")
    for shape in SHAPES:
        text = subprocess.run([sys.executable, __file__, "--child", "x".join(map(str, shape)),
                               "--iterations", str(args.iterations), "--threads", str(args.threads)],
                              check=True, capture_output=True, text=True).stdout
        row = json.loads(text.strip().splitlines()[-1])
        ratio = row["estimate"] / row["tensor_peak"] if row["tensor_peak"] else float("nan")
        print(f"| {'x'.join(map(str, shape))} | {row['estimate'] / mib:.0f} | {row['tensor_peak'] / mib:.0f} | "
              f"{ratio:.2f} | {row['rss_increase'] / mib:.0f} | {row['saved_tensors'] / mib:.0f} |", flush=True)


if __name__ == "__main__":
    main()
