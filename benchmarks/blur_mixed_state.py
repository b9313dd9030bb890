"""Blurred patterns: HIO with the blur as a mixed state of tilted modes, against the blurred modulus step.

Partial coherence blurs the measured intensity, ``n ~ Poisson(|F x|^2 * k)``.
The tool's blurred modulus step scales one far field by ``sqrt(n / (|F x|^2 * k))``,
which is not a projection. The same model written as a mixed state,
``|F x|^2 * k = sum_d k(d) |F(x e^{2 pi i d.r / N})|^2`` (one mode per integer
shift ``d`` of the kernel), has two true projections: the common scaling of
every mode's far field onto the counts, and the least-squares object of the
modes restricted to the support. This benchmark asks whether HIO in that
product space finds the truth where the blurred modulus step does not, with
everything else given: the true kernel width and the true support (magnitudes
above 5 % of the maximum, grown by 1 px). An experiment, not a tool option.

Each case: 5 % of the valid pixels held out at random, two random starts per
algorithm (600 HIO + 100 ER, beta 0.9); the error is the symmetry-adjusted
error of each start against the truth, the deviances (Poisson, per pixel) are
on the fitted and on the held-out pixels, next to the truth's own.

Run: ``python benchmarks/blur_mixed_state.py [--per-family 4] [--families a,b]``
(2D quick tuning patterns of the ``blur`` condition; a few minutes on one core).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import limit_threads, machine_description, score  # noqa: E402

from cdi_dip._ndimage import dilate  # noqa: E402
from cdi_dip.corpus import corpus_cases  # noqa: E402

ITERATIONS = (600, 100)
"""HIO, then ER iterations per start."""

BETA = 0.9
"""HIO's feedback."""


def _fft(array: torch.Tensor) -> torch.Tensor:
    return torch.fft.fftn(array, dim=(-2, -1), norm="ortho")


def _ifft(array: torch.Tensor) -> torch.Tensor:
    return torch.fft.ifftn(array, dim=(-2, -1), norm="ortho")


def blurred(intensity: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """``intensity`` convolved with a unit-sum Gaussian (as the corpus blurs), never below its central weight
    times the intensity (the FFT's rounding would otherwise leave dark pixels at zero)."""
    freqs = [torch.fft.fftfreq(n, dtype=torch.float64) for n in intensity.shape]
    transfer = torch.exp(-2 * math.pi**2 * sigma_px**2 * (freqs[0][:, None] ** 2 + freqs[1][None, :] ** 2))
    central = torch.fft.ifftn(transfer).real[0, 0]
    smooth = torch.fft.ifftn(torch.fft.fftn(intensity) * transfer).real
    return torch.maximum(smooth, central * intensity).clamp_min(1e-9)


def deviance(model: torch.Tensor, counts: torch.Tensor, where: torch.Tensor) -> float:
    """Poisson deviance per pixel of ``model`` against ``counts`` on ``where``."""
    model = model.clamp_min(1e-9)
    log_term = torch.where(counts > 0, counts * torch.log(counts.clamp_min(1e-9) / model), torch.zeros_like(counts))
    return float((2 * (model - counts + log_term))[where].mean())


def tilted_modes(shape: tuple[int, int], sigma_px: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights ``k(d)`` (float64, M) and phase ramps ``e^{2 pi i d.r / N}`` (complex128, M x shape) of the
    integer shifts ``d`` within 3 sigma whose weight is above 1e-3 of the largest."""
    radius = max(1, math.ceil(3 * sigma_px))
    shifts = [(i, j) for i in range(-radius, radius + 1) for j in range(-radius, radius + 1)]
    weights = np.array([math.exp(-(i * i + j * j) / (2 * sigma_px**2)) for i, j in shifts])
    kept = weights > 1e-3 * weights.max()
    shifts, weights = [s for s, k in zip(shifts, kept) if k], weights[kept] / weights[kept].sum()
    y, x = (torch.arange(n, dtype=torch.float64) for n in shape)
    ramps = torch.stack([torch.exp(2j * math.pi * (i * y[:, None] / shape[0] + j * x[None, :] / shape[1]))
                         for i, j in shifts])
    return torch.from_numpy(weights), ramps


def hio_blurred_modulus(counts, fit, support, sigma_px, rng) -> torch.Tensor:
    """HIO with the blurred modulus step ``F sqrt(n / (|F|^2 * k))``; the object (FFT order)."""
    x = torch.from_numpy(rng.standard_normal(counts.shape) + 1j * rng.standard_normal(counts.shape)) * support
    for iteration in range(sum(ITERATIONS)):
        far = _fft(x)
        projected = _ifft(torch.where(fit, far * (counts / blurred(far.abs() ** 2, sigma_px)).sqrt(), far))
        x = torch.where(support, projected, x - BETA * projected) if iteration < ITERATIONS[0] else projected * support
    return x


def hio_mixed_state(counts, fit, support, sigma_px, rng) -> torch.Tensor:
    """HIO in the product space of the tilted modes (``x <- x + P_S((1 + beta) P_M x - x) - beta P_M x``, then
    ER); the object (FFT order)."""
    weights, ramps = tilted_modes(counts.shape, sigma_px)
    weights = weights[:, None, None]

    def modulus(modes):
        far = _fft(modes)
        total = (weights * far.abs() ** 2).sum(0).clamp_min(1e-12)
        return _ifft(torch.where(fit, far * (counts / total).sqrt(), far))

    def object_of(modes):
        return (weights * ramps.conj() * modes).sum(0) * support

    obj = torch.from_numpy(rng.standard_normal(counts.shape) + 1j * rng.standard_normal(counts.shape)) * support
    modes = obj[None] * ramps
    for iteration in range(sum(ITERATIONS)):
        projected = modulus(modes)
        if iteration < ITERATIONS[0]:
            modes = modes + object_of((1 + BETA) * projected - modes)[None] * ramps - BETA * projected
        else:
            modes = object_of(projected)[None] * ramps
    return object_of(modes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-family", type=int, default=4)
    parser.add_argument("--families", default="faceted,elongated,dislocated,rounded")
    parser.add_argument("--starts", type=int, default=2)
    args = parser.parse_args()
    limit_threads(1)
    print(f"# {machine_description()}")
    print("| case | sigma (px) | truth: fit / free deviance | algorithm | error per start | fit / free deviance "
          "per start |")
    print("|---|---|---|---|---|---|")
    errors: dict[str, list[float]] = {"blurred modulus": [], "mixed state": []}
    best: dict[str, list[float]] = {"blurred modulus": [], "mixed state": []}
    for case in corpus_cases("tuning", dims=(2,), quick=True, per_family=args.per_family, conditions=["blur"],
                             families=args.families.split(",")):
        sigma = case.settings.psf_sigma_px
        counts = torch.from_numpy(np.fft.ifftshift(case.counts).astype(np.float64))
        valid = torch.from_numpy(np.fft.ifftshift(case.valid))
        magnitude = np.abs(case.truth)
        support = torch.from_numpy(np.fft.ifftshift(dilate(magnitude > 0.05 * magnitude.max(), 1)))
        rng = np.random.default_rng(0)
        free = valid & torch.from_numpy(rng.random(counts.shape) < 0.05)
        fit = valid & ~free
        truth_model = blurred(_fft(torch.from_numpy(np.fft.ifftshift(case.truth)).to(torch.complex128)).abs() ** 2,
                              sigma)
        truth = f"{deviance(truth_model, counts, fit):.2f} / {deviance(truth_model, counts, free):.2f}"
        for name, algorithm in (("blurred modulus", hio_blurred_modulus), ("mixed state", hio_mixed_state)):
            starts = []
            for _ in range(args.starts):
                obj = algorithm(counts, fit, support, sigma, rng)
                model = blurred(_fft(obj).abs() ** 2, sigma)
                error = score(np.fft.fftshift(obj.numpy()).astype(np.complex64), case.truth)["error"]
                starts.append((error, deviance(model, counts, fit), deviance(model, counts, free)))
            errors[name] += [s[0] for s in starts]
            best[name].append(min(starts, key=lambda s: s[2])[0])
            print(f"| {case.label} | {sigma:.2f} | {truth} | {name} | {', '.join(f'{s[0]:.3f}' for s in starts)} | "
                  f"{', '.join(f'{s[1]:.2f} / {s[2]:.2f}' for s in starts)} |", flush=True)
    for name in errors:
        print(f"# {name}: median error {statistics.median(errors[name]):.3f} over every start; the start with the "
              f"lowest free deviance per case: median {statistics.median(best[name]):.3f}, "
              f"{sum(e > 0.3 for e in best[name])} of {len(best[name])} above 0.3")


if __name__ == "__main__":
    main()
