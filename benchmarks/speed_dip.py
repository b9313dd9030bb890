"""Time per iteration of the double DIP's data fit, and what it is made of (issue 7).

For each frame, in one process on one device, with the default networks
(``dip.channels``, ``dip.depth``, the ``mag-phase`` object):

- *FFT pair*: one forward plus one inverse complex64 FFT of the frame, the
  floor of a projection iteration;
- *generators*: the forward and backward pass of the two generators alone
  (their output summed into a scalar);
- *fit step*: one full Adam step of the fit as :func:`cdi_dip.solvers.dip.solve_dip`
  takes it: generators, zero-padding into the frame, FFT, masked amplitude
  loss, backward pass (which holds the adjoint FFT), optimiser step.

Each figure is the median over ``--repeats`` timings of ``--steps`` steps,
after two warm-up steps. In 3D the generators and the fit step are timed twice
in the same process: with the generators' own 3D convolutions
(:class:`cdi_dip.solvers.conv3d.CpuConv3d`, oneDNN at every size on a CPU) and
with PyTorch's choice of kernel (``pytorch_dispatch``, the code before
2026-12-06), the baseline of the ratio. The time to the final error of a whole run, warm
start included, is the wall time that ``benchmarks/quality_dip.py`` records.

    python benchmarks/speed_dip.py --threads 2
    python benchmarks/speed_dip.py --device cuda --sizes 256,512 --sizes3d 64,128
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from common import limit_threads, machine_description

from cdi_dip.config import DipConfig, DipLoss, DipParam
from cdi_dip.physics import FarField, pad_to_frame
from cdi_dip.solvers.conv3d import pytorch_dispatch
from cdi_dip.solvers.dip import data_loss, object_shape
from cdi_dip.solvers.nets import DoubleDip


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(step, device: torch.device, steps: int, repeats: int) -> float:
    """Median seconds per call of ``step`` over ``repeats`` batches of ``steps`` calls."""
    for _ in range(2):
        step()
    _sync(device)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        _sync(device)
        samples.append((time.perf_counter() - start) / steps)
    return statistics.median(samples)


def measure(frame: tuple[int, ...], device: torch.device, steps: int, repeats: int) -> dict[str, float]:
    """Seconds per FFT pair, generator pass and fit step on ``frame``."""
    opts = DipConfig()
    physics = FarField(frame)
    gen = torch.Generator().manual_seed(0)
    counts = torch.poisson(torch.rand(frame, generator=gen) * 100, generator=gen).to(device)
    valid = (torch.rand(frame, generator=gen) > 0.05).to(device)
    field = torch.randn(frame, dtype=torch.complex64, generator=gen).to(device)
    model = DoubleDip(object_shape(frame), DipParam.MAG_PHASE, channels=opts.channels, depth=opts.depth,
                      generator=torch.Generator().manual_seed(1), device=device)
    optimizer = torch.optim.Adam(model.parameters(), lr=opts.learning_rate)

    def fft_pair() -> None:
        torch.fft.ifftn(torch.fft.fftn(field))

    def generators() -> None:
        model.zero_grad(set_to_none=True)
        obj = model()
        (obj.real.sum() + obj.imag.sum()).backward()

    def fit_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = data_loss(physics.intensity(pad_to_frame(model(), frame)), counts, valid, DipLoss.AMPLITUDE)
        loss.backward()
        optimizer.step()

    row = {"fft_pair": _timed(fft_pair, device, steps * 10, repeats),
           "generators": _timed(generators, device, steps, repeats),
           "fit_step": _timed(fit_step, device, steps, repeats),
           "parameters": sum(p.numel() for p in model.parameters())}
    if len(frame) == 3:
        with pytorch_dispatch():
            row["generators_pytorch"] = _timed(generators, device, steps, repeats)
            row["fit_step_pytorch"] = _timed(fit_step, device, steps, repeats)
    return row


def _ms(row: dict[str, float], key: str) -> str:
    return f"{row[key] * 1e3:.1f}" if key in row else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--sizes", default="128,256", help="2D frame sizes")
    parser.add_argument("--sizes3d", default="32,64", help="3D frame sizes")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    limit_threads(args.threads)
    device = torch.device(args.device)
    frames = [(int(n),) * 2 for n in args.sizes.split(",") if n] + [(int(n),) * 3 for n in args.sizes3d.split(",") if n]
    print(f"machine: {machine_description()}, device {device}")
    print("| frame | object box | parameters | FFT pair (ms) | generators fwd+bwd (ms) | fit step (ms) | "
          "fit step / FFT pair | 3D, PyTorch's kernels: generators / fit step (ms) |")
    print("|---|---|---|---|---|---|---|---|")
    for frame in frames:
        row = measure(frame, device, args.steps, args.repeats)
        print(f"| {'x'.join(map(str, frame))} | {'x'.join(map(str, object_shape(frame)))} | {row['parameters']} | "
              f"{row['fft_pair'] * 1e3:.2f} | {_ms(row, 'generators')} | {_ms(row, 'fit_step')} | "
              f"{row['fit_step'] / row['fft_pair']:.0f}x | {_ms(row, 'generators_pytorch')} / "
              f"{_ms(row, 'fit_step_pytorch')} |", flush=True)


if __name__ == "__main__":
    main()
