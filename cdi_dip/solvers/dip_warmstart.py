"""Projection warm start of the double DIP: HIO with shrinkwrap inside the DIP's object box.

The double DIP fitted by gradient descent from a random start stagnates on
most hard cases (a dislocation's phase vortex, a beamstop hiding the lowest
frequencies): on simulated 2D crystals fewer than one random start in five
succeeded there, even with the true support. Hybrid input-output escapes such
stagnation, and once it has found the basin the double DIP removes most of
the noise it fits (docs/dip.md). This module finds that basin: several HIO
starts, each beginning with the DIP's object box (half the frame along every
axis) as the support and tightening it by shrinkwrap, the support always kept
inside the box; the start with the lowest free-pixel Poisson deviance (else
training) is kept.

References
----------
J. R. Fienup, Appl. Opt. 21, 2758 (1982) (ER, HIO).
S. Marchesini et al., Phys. Rev. B 68, 140101 (2003) (shrinkwrap).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..metrics import poisson_deviance
from ..physics import FarField, pad_to_frame, project_modulus
from ..support import shrinkwrap, sigma_schedule
from .projections import ObjectConstraints, er_update, hio_update, positive_update

CYCLES = 4
"""ER/HIO cycles of one warm-start run."""

ER_ITERATIONS = 20
"""ER iterations opening each cycle."""

HIO_ITERATIONS = 180
"""HIO iterations of each cycle."""

FINAL_ER_ITERATIONS = 50
"""ER iterations on the final support, closing the run."""

BETA = 0.9
"""HIO feedback parameter."""

SHRINKWRAP_PERIOD = 20
"""Iterations between shrinkwrap updates."""

SHRINKWRAP_SIGMA_PX = (1.5, 0.5)
"""Gaussian sigma of shrinkwrap at the start and at the end of the cycles, pixels."""

ITERATIONS_PER_RUN = CYCLES * (ER_ITERATIONS + HIO_ITERATIONS) + FINAL_ER_ITERATIONS
"""Projection iterations of one warm-start run."""

IterCallback = Callable[[dict[str, Any]], None]


@dataclass
class WarmStart:
    """The kept warm-start run.

    Attributes
    ----------
    obj : torch.Tensor, complex64, frame shape, centred
        Object (zero outside ``support``).
    support : torch.Tensor, bool, frame shape, centred
        Final shrinkwrap support (inside the object box).
    score : float
        Free-pixel (else training) mean Poisson deviance of ``obj``.
    run : int
        Index of the kept run.
    scores : list of float
        Score of every run, in order.
    interrupted : bool
        True when Ctrl-C stopped the runs: the object is then the best of the
        finished runs and the interrupted one.
    """

    obj: torch.Tensor
    support: torch.Tensor
    score: float
    run: int
    scores: list[float]
    interrupted: bool = False


class _Interrupted(KeyboardInterrupt):
    """Ctrl-C inside a run, carrying its current iterate (FFT order)."""

    def __init__(self, obj: torch.Tensor, support: torch.Tensor):
        super().__init__("interrupted")
        self.obj = obj
        self.support = support


def object_box(frame_shape: tuple[int, ...], object_shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """Bool mask (frame shape, centred) of the box the DIP object is padded into."""
    return pad_to_frame(torch.ones(object_shape, dtype=torch.bool, device=device), frame_shape)


def _random_start(amplitude: torch.Tensor, box: torch.Tensor, physics: FarField,
                  generator: torch.Generator) -> torch.Tensor:
    """Measured amplitudes with uniform random phases, back to object space, inside the box (FFT order)."""
    phase = torch.rand(amplitude.shape, generator=generator, device=generator.device).to(amplitude.device)
    obj = physics.ifft(torch.polar(amplitude, phase * (2 * math.pi)))
    return torch.where(box, obj, torch.zeros((), dtype=obj.dtype, device=obj.device))


def _hio(obj: torch.Tensor, projected: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
    return hio_update(obj, projected, support, beta=BETA)


def _update(algorithm: str, obj: torch.Tensor, projected: torch.Tensor, support: torch.Tensor,
            positivity: bool) -> torch.Tensor:
    """One ER or HIO update, with ``Re x >= 0`` when ``positivity``."""
    update = er_update if algorithm == "ER" else _hio
    if positivity:
        return positive_update(algorithm, update, obj, projected, support)
    return update(obj, projected, support)


def hio_in_box(amplitude: torch.Tensor, valid: torch.Tensor, box: torch.Tensor, physics: FarField, *,
               threshold: float, generator: torch.Generator, first_support: torch.Tensor | None = None,
               positivity: bool = False,
               on_step: Callable[[], None] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One warm-start run: ``CYCLES * (ER + HIO) + ER`` with shrinkwrap bounded by the box.

    Parameters
    ----------
    amplitude : torch.Tensor, float32, frame shape, FFT order
        ``sqrt(counts)`` on valid pixels, 0 elsewhere.
    valid : torch.Tensor, bool, frame shape, FFT order
        Pixels whose modulus is imposed; the others float.
    box : torch.Tensor, bool, frame shape, FFT order
        The DIP object box: the first support and a bound on every later one.
    physics : FarField
    threshold : float
        Shrinkwrap threshold, relative to the maximum of the blurred amplitude.
    generator : torch.Generator
        Draws the random starting phases.
    first_support : torch.Tensor, bool, frame shape, FFT order, optional
        First support (cut to the box); default: the box.
    positivity : bool
        Impose ``Re x >= 0`` inside the support (:func:`positive_update`).
    on_step : callable, optional
        Called after every iteration (progress, Ctrl-C).

    Returns
    -------
    obj, support : torch.Tensor
        Complex object (zero outside the support) and bool support, FFT order.
    """
    support = box if first_support is None else first_support & box
    obj = _random_start(amplitude, support, physics, generator)
    shrinkwrap_until = CYCLES * (ER_ITERATIONS + HIO_ITERATIONS)
    plan = [("ER", ER_ITERATIONS), ("HIO", HIO_ITERATIONS)] * CYCLES + [("ER", FINAL_ER_ITERATIONS)]
    zero = torch.zeros((), dtype=obj.dtype, device=obj.device)
    iteration = 0
    try:
        for algorithm, count in plan:
            for _ in range(count):
                projected = physics.ifft(project_modulus(physics.fft(obj), amplitude, valid))
                obj = _update(algorithm, obj, projected, support, positivity)
                iteration += 1
                if iteration <= shrinkwrap_until and iteration % SHRINKWRAP_PERIOD == 0:
                    sigma = sigma_schedule(*SHRINKWRAP_SIGMA_PX, iteration / shrinkwrap_until)
                    support = shrinkwrap(torch.where(support, obj, zero), sigma_px=sigma, threshold=threshold) & box
                if on_step is not None:
                    on_step()
    except KeyboardInterrupt:
        raise _Interrupted(torch.where(support, obj, zero), support) from None
    return torch.where(support, obj, zero), support


def warm_start(counts: torch.Tensor, valid: torch.Tensor, free: torch.Tensor | None, physics: FarField,
               object_shape: tuple[int, ...], *, runs: int, threshold: float, generator: torch.Generator,
               specimen: ObjectConstraints | None = None, on_step: Callable[[], None] | None = None,
               on_run: Callable[[float], None] | None = None) -> WarmStart:
    """Best of ``runs`` box-bounded HIO runs by free-pixel (else training) Poisson deviance.

    Parameters
    ----------
    counts : torch.Tensor, float32, frame shape, centred
        Measured photons (finite, non-negative on ``valid`` and ``free``).
    valid : torch.Tensor, bool, frame shape, centred
        Fitted pixels.
    free : torch.Tensor, bool, frame shape, centred, optional
        Held-out pixels that score the runs.
    physics : FarField
    object_shape : tuple of int
        The DIP object box (half the frame per axis).
    runs : int
        Random starts.
    threshold : float
        Shrinkwrap threshold (0-1).
    generator : torch.Generator
        Source of every run's random phases.
    specimen : ObjectConstraints, optional
        For a specimen (a centrosymmetric pattern): its positivity and first
        support as the projection solvers choose them (:func:`choose_constraints`;
        their shrinkwrap threshold is not used: behind a beamstop 0.15 shrank
        the box-bounded support to a third of a cell's, 0.08 kept it).
        None: a crystal, no positivity, the box as first support.
    on_step : callable, optional
        Called after every projection iteration.
    on_run : callable, optional
        Called with the score of every finished run.

    Returns
    -------
    WarmStart
        Centred object and support of the kept run. Ctrl-C ends the runs
        early: the result is then the best so far, with ``interrupted``.
    """
    frame_shape = physics.shape
    box = physics.to_fft_order(object_box(frame_shape, object_shape, counts.device))
    counts_f = physics.to_fft_order(counts)
    valid_f = physics.to_fft_order(valid)
    score_mask = physics.to_fft_order(free) if free is not None and bool(free.any()) else valid_f
    amplitude = torch.where(valid_f, counts_f.clamp_min(0).sqrt(), torch.zeros((), device=counts.device))
    first_support = None if specimen is None else physics.to_fft_order(specimen.support)
    positivity = specimen is not None and specimen.positivity
    best: tuple[float, torch.Tensor, torch.Tensor, int] | None = None
    scores: list[float] = []
    interrupted = False

    def score_of(obj: torch.Tensor) -> float:
        field = physics.fft(obj)
        score = poisson_deviance(field.real.square() + field.imag.square(), counts_f, score_mask)
        return score if math.isfinite(score) else math.inf

    for run in range(runs):
        try:
            obj, support = hio_in_box(amplitude, valid_f, box, physics, threshold=threshold,
                                      generator=generator, first_support=first_support,
                                      positivity=positivity, on_step=on_step)
        except _Interrupted as stop:
            obj, support, interrupted = stop.obj, stop.support, True
        score = score_of(obj)
        scores.append(score)
        if on_run is not None:
            on_run(score)
        if best is None or score < best[0]:
            best = (score, obj, support, run)
        if interrupted:
            break
    assert best is not None
    score, obj, support, run = best
    return WarmStart(obj=physics.to_centred(obj), support=physics.to_centred(support), score=score, run=run,
                     scores=scores, interrupted=interrupted)


__all__ = ["ITERATIONS_PER_RUN", "WarmStart", "hio_in_box", "object_box", "warm_start"]
