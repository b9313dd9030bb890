"""What a projection iteration costs beyond its FFTs, pass by pass (issue 7).

For each frame, in one process: the FFT pair (forward plus inverse complex64
FFT, the floor), the two fused elementwise passes of an HIO iteration (the
modulus projection and the update, :mod:`cdi_dip.solvers.fused`), and a plain
copy of the frame. Each pass is given with the bytes it must move per element
and the bandwidth that implies, so that the excess over the FFT pair can be
told apart: a pass that runs at the copy's bandwidth is limited by memory, not
by its arithmetic, and the ratio in the last column, (FFT pair + both passes)
/ FFT pair, is the least an iteration can cost on this machine with two
separate elementwise passes.

    python benchmarks/speed_elementwise.py --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from common import limit_threads, machine_description

from cdi_dip.solvers.fused import ModulusTarget, outside_coefficients, select_backend

MODULUS_BYTES = 8 + 8 + 4 + 1
"""Per element: the complex field read and written, the amplitude and the valid flag read."""
UPDATE_BYTES = 8 + 8 + 8 + 1
"""Per element: the projection read and written, the iterate and the support flag read."""
COPY_BYTES = 8 + 8
"""Per element: one complex read and one written."""


def median_ms(function, repeats: int, calls: int) -> float:
    """Median over ``repeats`` of the time per call of ``calls`` back-to-back calls, milliseconds."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            function()
        times.append((time.perf_counter() - start) / calls * 1e3)
    return statistics.median(times)


def measure(shape: tuple[int, ...], repeats: int) -> dict[str, float]:
    """Milliseconds per FFT pair, modulus pass, HIO update pass and frame copy of one frame."""
    generator = torch.Generator().manual_seed(0)
    frame = torch.randn(shape, dtype=torch.complex64, generator=generator)
    target = ModulusTarget.build(torch.rand(shape, generator=generator) * 10,
                                 torch.rand(shape, generator=generator) > 0.05)
    support = torch.rand(shape, generator=generator) > 0.7
    backend = select_backend(torch.device("cpu"))
    dims = tuple(range(len(shape)))
    work, scratch = frame.clone(), torch.empty_like(frame)
    calls = max(3, int(2e7 // frame.numel()))
    coefficients = outside_coefficients("HIO", 0.9)
    return {
        "fft_pair": median_ms(lambda: torch.fft.ifftn(torch.fft.fftn(frame, dim=dims, norm="ortho"), dim=dims,
                                                      norm="ortho"), repeats, calls),
        "modulus": median_ms(lambda: backend.project_modulus_(work, target), repeats, calls),
        "update": median_ms(lambda: backend.update_(work, frame, support, coefficients, 0), repeats, calls),
        "copy": median_ms(lambda: scratch.copy_(frame), repeats, calls),
        "elements": frame.numel(),
        "kernels": backend.name,
    }


def bandwidth_gb_s(bytes_per_element: int, elements: int, ms: float) -> float:
    return bytes_per_element * elements / (ms * 1e-3) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sizes", default="256,512,1024", help="2D frame sizes")
    parser.add_argument("--sizes3d", default="64,128,256", help="3D frame sizes")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    limit_threads(args.threads)
    shapes = [(n, n) for n in map(int, args.sizes.split(",")) if n] + \
             [(n, n, n) for n in map(int, args.sizes3d.split(",")) if n]
    print(f"machine: {machine_description()}")
    print("| frame | FFT pair (ms) | modulus pass (ms, GB/s) | update pass (ms, GB/s) | frame copy (ms, GB/s) | "
          "(FFT pair + passes) / FFT pair |")
    print("|---|---|---|---|---|---|")
    for shape in shapes:
        m = measure(shape, args.repeats)
        n = m["elements"]
        floor = (m["fft_pair"] + m["modulus"] + m["update"]) / m["fft_pair"]
        print(f"| {'x'.join(map(str, shape))} | {m['fft_pair']:.3f} | "
              f"{m['modulus']:.3f} ({bandwidth_gb_s(MODULUS_BYTES, n, m['modulus']):.0f}) | "
              f"{m['update']:.3f} ({bandwidth_gb_s(UPDATE_BYTES, n, m['update']):.0f}) | "
              f"{m['copy']:.3f} ({bandwidth_gb_s(COPY_BYTES, n, m['copy']):.0f}) | {floor:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
