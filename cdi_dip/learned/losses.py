"""Training losses of the learned initialiser, and the symmetries they respect.

Phase retrieval cannot tell an object ``x`` from its circular shift, from
``exp(i c) x`` and from its twin ``conj(x(-r))``: all give the same
``|F x|**2``. A network trained to output one particular copy of a training
target is asked for something the data does not determine, and learns the
average of the copies (seeds 001 and 002 of ``../shared/seeds``). Two ways
out, both here:

- **passive** (the default): the loss compares the network's *measurement*
  with the data, ``|| sqrt(n) - s |F g(n)| ||**2`` on the measured pixels, so
  every symmetric copy of the right answer scores the same and the network may
  output any of them. No ground truth is needed: it trains on measured scans
  too.
- **active**: the training targets are made canonical (centred on their
  centre of mass, global phase fixed so that their sum is real and positive)
  and the loss is the smaller of the distances to the target and to its
  (canonical) twin: the shift and the phase are broken on the target, the
  twin by the minimum.
"""

from __future__ import annotations

import torch

from ..physics import FarField
from .network import scale_to_counts

LOSSES = ("passive", "active")
"""Training losses (:func:`passive_loss`, :func:`active_loss`)."""


def passive_loss(obj: torch.Tensor, counts: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Relative amplitude misfit of the objects' far fields to the data, mean over the batch.

    ``sum_valid (sqrt(n) - s |F x|)**2 / sum_valid n`` with ``s`` the best
    scale (:func:`~.network.scale_to_counts`): 0 for a perfect fit, 1 for a
    zero object. Invariant to a circular shift, a global phase and the twin of
    ``x`` (each leaves ``|F x|`` unchanged) and to the scale of ``x``.

    Parameters
    ----------
    obj : torch.Tensor, complex, shape (batch, *frame), centred
    counts : torch.Tensor, real, shape (batch, *frame), photons
    valid : torch.Tensor, bool, shape (batch, *frame)
        Measured pixels; the others are free.

    Returns
    -------
    torch.Tensor, real, scalar
    """
    physics = FarField(obj.shape[1:])
    magnitude = physics.magnitude(scale_to_counts(obj, counts, valid))
    weights = valid.to(magnitude.dtype)
    dims = tuple(range(1, obj.ndim))
    misfit = ((counts.clamp_min(0).sqrt() - magnitude).square() * weights).sum(dim=dims)
    power = (counts.clamp_min(0) * weights).sum(dim=dims).clamp_min(1e-12)
    return (misfit / power).mean()


def twin(obj: torch.Tensor) -> torch.Tensor:
    """``conj(x(-r))`` about the frame's centre (the copy whose far field is ``conj(F x)``).

    Parameters
    ----------
    obj : torch.Tensor, complex, shape (batch, *frame), centred

    Returns
    -------
    torch.Tensor, complex, same shape
    """
    physics = FarField(obj.shape[1:])
    return physics.inverse(physics.forward(obj).conj())


def canonical(obj: torch.Tensor) -> torch.Tensor:
    """The object rolled so that its ``|x|**2`` centre of mass is on the frame centre, with ``sum x`` real > 0.

    Parameters
    ----------
    obj : torch.Tensor, complex, shape (batch, *frame), centred

    Returns
    -------
    torch.Tensor, complex, same shape
    """
    out = []
    frame = obj.shape[1:]
    for item in obj:
        weight = item.abs().square()
        total = weight.sum().clamp_min(1e-20)
        shifts = []
        for axis, n in enumerate(frame):
            coords = torch.arange(n, device=obj.device, dtype=weight.dtype)
            profile = weight.sum(dim=tuple(a for a in range(len(frame)) if a != axis))
            shifts.append(n // 2 - int(torch.round((profile * coords).sum() / total)))
        item = torch.roll(item, shifts=shifts, dims=tuple(range(len(frame))))
        phase = torch.angle(item.sum())
        out.append(item * torch.exp(-1j * phase))
    return torch.stack(out)


def active_loss(obj: torch.Tensor, truth: torch.Tensor, counts: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Relative distance of the scaled objects to the canonical truth or its canonical twin, mean over the batch.

    ``min(||s x - t||**2, ||s x - t'||**2) / ||t||**2`` with ``t`` =
    :func:`canonical` of the truth, ``t'`` that of its :func:`twin`, ``s``
    the scale that fits the data (:func:`~.network.scale_to_counts`).

    Parameters
    ----------
    obj : torch.Tensor, complex, shape (batch, *frame), centred
        The network's output.
    truth : torch.Tensor, complex, shape (batch, *frame), centred
        Ground truth on the data's scale (``|F truth|**2`` = expected counts).
    counts, valid : torch.Tensor, shape (batch, *frame)
        The data (for the scale).

    Returns
    -------
    torch.Tensor, real, scalar
    """
    scaled = scale_to_counts(obj, counts, valid)
    dims = tuple(range(1, obj.ndim))
    power = truth.abs().square().sum(dim=dims).clamp_min(1e-20)
    distances = [(scaled - target).abs().square().sum(dim=dims) / power
                 for target in (canonical(truth), canonical(twin(truth)))]
    return torch.minimum(*distances).mean()


__all__ = ["LOSSES", "active_loss", "canonical", "passive_loss", "twin"]
