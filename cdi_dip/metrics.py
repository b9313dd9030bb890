"""Data-fit figures of merit, computed in float64 on the host or device.

Every function takes the measured counts, the model intensities and a boolean
mask of the pixels to use (True = use); excluded pixels never contribute.
"""

from __future__ import annotations

import torch


def _masked(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return values.double()[mask]


def r_factor(model_intensity: torch.Tensor, counts: torch.Tensor, mask: torch.Tensor) -> float:
    """Crystallographic R-factor on amplitudes.

    ``R = sum |sqrt(n) - sqrt(m)| / sum sqrt(n)`` over the masked pixels.
    0 is a perfect fit; a random object gives about 0.5-1.
    """
    n = _masked(counts, mask).clamp_min(0).sqrt()
    m = _masked(model_intensity, mask).clamp_min(0).sqrt()
    denominator = n.sum()
    if denominator <= 0:
        return float("nan")
    return float((n - m).abs().sum() / denominator)


def poisson_deviance(model_intensity: torch.Tensor, counts: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean Poisson deviance per pixel (a normalised negative log-likelihood).

    ``D = 2/N * sum[m - n + n*log(n/m)]``. Where the model equals the
    expectation of Poisson counts, ``D`` is close to 1 for counts >> 1 and
    smaller for faint pixels; a poor fit gives much larger values.
    """
    n = _masked(counts, mask).clamp_min(0)
    m = _masked(model_intensity, mask).clamp_min(1e-9)
    if n.numel() == 0:
        return float("nan")
    log_term = torch.where(n > 0, n * torch.log(n.clamp_min(1e-12) / m), torch.zeros_like(n))
    return float(2.0 * (m - n + log_term).mean())


def chi_square(model_intensity: torch.Tensor, counts: torch.Tensor, mask: torch.Tensor) -> float:
    """Reduced chi-square with Poisson variance ``max(m, 1)``: ~1 at noise level."""
    n = _masked(counts, mask)
    m = _masked(model_intensity, mask)
    if n.numel() == 0:
        return float("nan")
    return float(((n - m).square() / m.clamp_min(1.0)).mean())


def data_metrics(
    model_intensity: torch.Tensor,
    counts: torch.Tensor,
    valid: torch.Tensor,
    free: torch.Tensor | None = None,
) -> dict[str, float]:
    """All data-fit figures at once.

    Parameters
    ----------
    model_intensity, counts : torch.Tensor, real, shape S
    valid : torch.Tensor, bool, shape S
        Pixels used for fitting (free pixels already removed).
    free : torch.Tensor, bool, shape S, optional
        Held-out pixels, never used in fitting.

    Returns
    -------
    dict
        ``r_factor``, ``llk_poisson``, ``chi2`` and, with ``free``,
        ``free_llk_poisson`` and ``free_r_factor``.
    """
    result = {
        "r_factor": r_factor(model_intensity, counts, valid),
        "llk_poisson": poisson_deviance(model_intensity, counts, valid),
        "chi2": chi_square(model_intensity, counts, valid),
    }
    if free is not None and bool(free.any()):
        result["free_llk_poisson"] = poisson_deviance(model_intensity, counts, free)
        result["free_r_factor"] = r_factor(model_intensity, counts, free)
    return result
