"""Time per HIO iteration: cdi-dip against the peer cohere-core (issue 7).

cohere-core is installed from PyPI into a separate virtualenv (it pins its own
NumPy and is not a dependency of this project)::

    python3 -m venv /tmp/peer && /tmp/peer/bin/pip install cohere-core
    python benchmarks/peer_cohere.py --peer-python /tmp/peer/bin/python --size 128 --iterations 40

Both run on the same simulated 3D crystal (noise-free intensities of
``cdi_dip.simulate.faceted_crystal``), the same number of HIO iterations, one
process each, the same number of threads (``OMP_NUM_THREADS``; NumPy's FFT is
single-threaded whatever the setting). cohere is timed through its own
``Rec.iterate()`` with its numpy backend:

- *as shipped*: HIO with shrinkwrap every iteration (Gaussian, threshold 0.1,
  sigma 1.0: the settings cohere ships for the 34-ID-C example);
- *best settings*: plain HIO without shrinkwrap, its cheapest loop.

cdi-dip is timed through :func:`cdi_dip.solvers.projections.solve_projections`
the same two ways (shrinkwrap every 20 iterations, its default, and none),
as the difference of a long and a short run so that set-up cancels (median
of three). The machine may be shared: run it more than once and compare.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import torch
from common import limit_threads, machine_description

from cdi_dip.physics import FarField
from cdi_dip.simulate import expected_intensity, faceted_crystal

DRIVER = textwrap.dedent('''
    import json, sys, time
    import cohere_core.controller.phasing as phasing
    data_file, iterations, shrinkwrap = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
    params = {"algorithm_sequence": f"{iterations}*HIO", "hio_beta": 0.9, "initial_support_area": (.5, .5, .5)}
    if shrinkwrap:
        params.update({"shrink_wrap_trigger": [1, 1], "shrink_wrap_type": "GAUSS",
                       "shrink_wrap_threshold": 0.1, "shrink_wrap_gauss_sigma": 1.0})
    rec = phasing.create_rec(params, data_file, "np", -1, debug=True)
    start = time.perf_counter()
    rec.iterate()
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "dtype": str(rec.ds_image.dtype)}))
''')


def peer_seconds(python: str, data_file: Path, iterations: int, shrinkwrap: bool, threads: int) -> dict:
    """Run cohere's ``Rec.iterate`` in the peer virtualenv; its wall time and image dtype."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as handle:
        handle.write(DRIVER)
    try:
        output = subprocess.run([python, handle.name, str(data_file), str(iterations), "1" if shrinkwrap else "0"],
                                capture_output=True, text=True, env=env, check=True).stdout
    finally:
        os.unlink(handle.name)
    return json.loads(output.strip().splitlines()[-1])


def ours_per_iteration(counts: np.ndarray, iterations: int, shrinkwrap_period: int, repeats: int = 3) -> float:
    """cdi-dip's HIO seconds per iteration: median over repeats of (long - short) / (iterations - 10)."""
    from speed_projections import solver_seconds

    shape = counts.shape
    tensor = torch.from_numpy(counts)
    valid = torch.ones(shape, dtype=torch.bool)
    physics = FarField(shape)
    device = torch.device("cpu")
    samples = []
    for _ in range(repeats):
        short = solver_seconds(tensor, valid, physics, "HIO", 10, shrinkwrap_period, device)
        long = solver_seconds(tensor, valid, physics, "HIO", iterations, shrinkwrap_period, device)
        samples.append((long - short) / (iterations - 10))
    return float(np.median(samples))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peer-python", required=True, help="python of the virtualenv with cohere-core")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    limit_threads(args.threads)
    shape = (args.size,) * 3
    intensity = expected_intensity(faceted_crystal(shape, rng=np.random.default_rng(0)))
    counts = (intensity * (1e5 / intensity.max())).astype(np.float32)
    with tempfile.TemporaryDirectory() as folder:
        data_file = Path(folder) / "data.npy"
        np.save(data_file, counts)
        rows = []
        for label, peer_sw, our_period in (("as shipped (shrinkwrap)", True, 20), ("best settings (no shrinkwrap)",
                                                                                    False, 0)):
            start = time.perf_counter()
            peer = peer_seconds(args.peer_python, data_file, args.iterations, peer_sw, args.threads)
            ours = ours_per_iteration(counts, args.iterations, our_period)
            peer_per = peer["seconds"] / args.iterations
            rows.append(f"| {label} | {peer_per * 1e3:.1f} ms ({peer['dtype']}) | {ours * 1e3:.1f} ms | "
                        f"{peer_per / ours:.1f}x |")
            print(rows[-1], f"({time.perf_counter() - start:.0f} s)", flush=True)
    print(f"\nmachine: {machine_description()}; frame {args.size}^3, {args.iterations} HIO iterations")
    print("| cohere-core setting | cohere per iteration | cdi-dip per iteration | cdi-dip faster by |")
    print("|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
