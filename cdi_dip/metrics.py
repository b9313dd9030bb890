"""Data-fit figures of merit, computed in float64 on the host or device.

Every function takes the measured counts, the model intensities and a boolean
mask of the pixels to use (True = use); excluded pixels never contribute.
"""

from __future__ import annotations

import functools
import math

import numpy as np
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
    n = _masked(counts, mask)
    if n.numel() == 0:
        return float("nan")
    return float(_deviance_terms(_masked(model_intensity, mask), n).mean())


def _deviance_terms(model_intensity: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """``2 [m - n + n log(n/m)]`` elementwise, with ``n`` clipped at 0 and ``m`` at 1e-9 (``n log n`` = 0 at 0)."""
    n = counts.clamp_min(0)
    m = model_intensity.clamp_min(1e-9)
    log_term = torch.where(n > 0, n * torch.log(n.clamp_min(1e-12) / m), torch.zeros_like(n))
    return 2.0 * (m - n + log_term)


def poisson_deviance_map(model_intensity: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Poisson deviance of every pixel, ``2 [m - n + n log(n/m)]`` (the terms :func:`poisson_deviance` averages).

    Parameters
    ----------
    model_intensity, counts : numpy.ndarray, real, shape S
        Expected and measured photons.

    Returns
    -------
    numpy.ndarray, float64, shape S
        Non-negative; about 1 where the model is the counts' expectation and counts >> 1.
    """
    as_float64 = (torch.from_numpy(np.asarray(values, dtype=np.float64)) for values in (model_intensity, counts))
    return _deviance_terms(*as_float64).numpy()


def _paired_differences(counts: np.ndarray, incumbent: np.ndarray, challenger: np.ndarray,
                        free: np.ndarray) -> np.ndarray:
    """Per held-out pixel, the incumbent's Poisson deviance less the challenger's (positive: the challenger
    fits the pixel better), float64, one value per ``free`` pixel."""
    measured = counts[free]
    return poisson_deviance_map(incumbent[free], measured) - poisson_deviance_map(challenger[free], measured)


def _mean_margin(difference: np.ndarray) -> float | None:
    """The mean of paired differences in standard errors of the mean; None with fewer than two or no spread."""
    if difference.size < 2:
        return None
    spread = float(np.std(difference, ddof=1))
    if not np.isfinite(spread) or spread == 0:
        return None
    return float(np.mean(difference) / (spread / np.sqrt(difference.size)))


def signed_rank_margin(difference: np.ndarray) -> float | None:
    """Wilcoxon's signed-rank statistic of paired differences as a normal score ``z`` (positive: the positive
    differences rank higher), zeros dropped, tied magnitudes given their mean rank and the variance corrected
    for them. None with fewer than two non-zero differences.

    Parameters
    ----------
    difference : numpy.ndarray, float, shape (n,)
    """
    difference = np.asarray(difference, dtype=np.float64)
    difference = difference[np.isfinite(difference) & (difference != 0)]
    count = difference.size
    if count < 2:
        return None
    magnitude = np.abs(difference)
    _, inverse, ties = np.unique(magnitude, return_inverse=True, return_counts=True)
    first_rank = np.concatenate(([0], np.cumsum(ties)[:-1])) + 1.0
    ranks = (first_rank + (ties - 1) / 2.0)[inverse]  # each tied group's mean rank
    positive = float(ranks[difference > 0].sum())
    expected = count * (count + 1) / 4.0
    variance = count * (count + 1) * (2 * count + 1) / 24.0 - float(np.sum(ties ** 3 - ties)) / 48.0
    if variance <= 0:
        return None
    return float((positive - expected) / math.sqrt(variance))


def paired_deviance_margin(counts: np.ndarray, incumbent: np.ndarray, challenger: np.ndarray,
                           free: np.ndarray) -> float | None:
    """How far below ``incumbent``'s Poisson deviance on the ``free`` pixels ``challenger``'s lies, in standard
    errors of the mean paired difference (``z``; positive: the challenger fits them better). None with fewer
    than two free pixels or where the two models fit every one alike.

    Parameters
    ----------
    counts, incumbent, challenger : numpy.ndarray, float, frame shape
        Measured photons and two models of them, photons.
    free : numpy.ndarray, bool, frame shape
        The held-out pixels.
    """
    return _mean_margin(_paired_differences(counts, incumbent, challenger, free))


def challenge_margin(counts: np.ndarray, incumbent: np.ndarray, challenger: np.ndarray,
                     free: np.ndarray) -> float | None:
    """How much better ``challenger`` fits the ``free`` pixels than ``incumbent``, as a normal score ``z``
    (positive: better): where the challenger's mean deviance there is lower, the larger of the paired mean's
    ``z`` (:func:`paired_deviance_margin`) and the signed-rank ``z`` (:func:`signed_rank_margin`), otherwise
    the mean's. None where neither can be measured.

    The mean's standard error is ruled by a few pixels beside a bright peak, where a small relative misfit
    is a deviance of thousands: a challenger that fits 88 % of the held-out pixels better and its total
    deviance 140 times lower can score ``z`` 1.85 by the mean alone (a double DIP's second seed on a clean
    tuning pattern, docs/benchmarks.md, twenty-fifth session), and 8.6 by the ranks. The ranks alone would
    prefer a model that fits most pixels a little better and the bright ones far worse, so they count only
    where the total is lower too.

    Parameters
    ----------
    counts, incumbent, challenger, free : numpy.ndarray, frame shape
        As :func:`paired_deviance_margin`: the measured photons, two models of them and the held-out pixels.
    """
    difference = _paired_differences(counts, incumbent, challenger, free)
    mean = _mean_margin(difference)
    if difference.size == 0 or not np.mean(difference) > 0:
        return mean
    rank = signed_rank_margin(difference)
    scores = [z for z in (mean, rank) if z is not None]
    return max(scores) if scores else None


EXPECTED_TABLE_RANGE = (1e-6, 100.0)
"""Mean intensities (photons) between which :func:`expected_deviance_terms` interpolates an exact table; below it
the leading term ``2 m log(1/m)``, above it the series ``1 + 1/(6m) + 1/(6m^2)`` (both within 1e-5 there)."""

_TABLE_POINTS = 4001


@functools.lru_cache(maxsize=1)
def _expected_deviance_table() -> tuple[float, float, np.ndarray]:
    """``E[d(n, m)]`` for ``n ~ Poisson(m)`` on a grid uniform in ``log m`` over :data:`EXPECTED_TABLE_RANGE`:
    ``(log m_0, step, values)``, summed exactly over every count with a probability above about 1e-15."""
    low, high = (math.log(v) for v in EXPECTED_TABLE_RANGE)
    log_m = np.linspace(low, high, _TABLE_POINTS)
    m = np.exp(log_m)[None, :]
    n = np.arange(0, int(EXPECTED_TABLE_RANGE[1] + 12 * math.sqrt(EXPECTED_TABLE_RANGE[1]) + 40),
                  dtype=np.float64)[:, None]
    log_factorial = np.array([math.lgamma(k + 1.0) for k in n[:, 0]])[:, None]
    probability = np.exp(n * np.log(m) - m - log_factorial)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = 2.0 * (m - n + np.where(n > 0, n * np.log(np.maximum(n, 1.0) / m), 0.0))
    return low, (high - low) / (_TABLE_POINTS - 1), (probability * terms).sum(axis=0)


def expected_deviance_terms(model_intensity: torch.Tensor) -> torch.Tensor:
    """The Poisson deviance each pixel would score, on average, were its counts drawn from the model itself.

    ``E[2 (m - n + n log(n/m))]`` for ``n ~ Poisson(m)``: about ``1 + 1/(6m)``
    for ``m >> 1``, 1.15 at its largest (``m`` near 1), and towards 0 as
    ``m`` does (``2 m log(1/m)``): a faint pixel whose count is almost
    always 0 says little. It is what a model as good as the counts allow
    scores, pixel by pixel.

    Parameters
    ----------
    model_intensity : torch.Tensor, real, any shape
        Expected photons per pixel.

    Returns
    -------
    torch.Tensor, float64, same shape
    """
    m = model_intensity.double().clamp_min(0)
    low, step, table = _expected_deviance_table()
    values = torch.as_tensor(table, dtype=torch.float64, device=m.device)
    position = ((m.clamp(*EXPECTED_TABLE_RANGE).log() - low) / step).clamp(0, _TABLE_POINTS - 1)
    below = position.floor().long().clamp(max=_TABLE_POINTS - 2)
    weight = position - below
    inside = values[below] * (1 - weight) + values[below + 1] * weight
    faint = 2.0 * m * torch.log(1.0 / m.clamp_min(1e-300))
    bright = 1.0 + 1.0 / (6.0 * m.clamp_min(1.0)) + 1.0 / (6.0 * m.clamp_min(1.0).square())
    return torch.where(m < EXPECTED_TABLE_RANGE[0], faint, torch.where(m > EXPECTED_TABLE_RANGE[1], bright, inside))


def expected_poisson_deviance(model_intensity: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean of :func:`expected_deviance_terms` over the masked pixels: the :func:`poisson_deviance` a model as
    good as the counts allow would score there, on average (NaN for an empty mask).

    About 1 where counts are high; much less where most pixels expect a
    fraction of a photon (0.3-0.6 per pixel on the corpus's low-flux
    patterns), so that a deviance judged against 1 there looks better than
    it is.
    """
    m = _masked(model_intensity, mask)
    if m.numel() == 0:
        return float("nan")
    return float(expected_deviance_terms(m).mean())


def deviance_excess(metrics: dict, pixels: str = "free") -> float | None:
    """The Poisson deviance per pixel over what a model as good as the counts allow would score there.

    ``metrics["free_llk_poisson"] / metrics["free_llk_poisson_expected"]``
    (``pixels="free"``) or ``llk_poisson / llk_poisson_expected``
    (``"fitted"``), from :func:`data_metrics`: about 1 for a fit at the
    noise level at any photon count. Without the expectation (results
    written before it was recorded) the deviance itself, which is the same
    where counts are high. None where the deviance is not known or not finite.
    """
    key = "free_llk_poisson" if pixels == "free" else "llk_poisson"
    value, expected = metrics.get(key), recorded_expectation(metrics, key)
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value) / expected if expected is not None else float(value)


def recorded_expectation(metrics: dict, key: str) -> float | None:
    """``metrics[key + "_expected"]`` (what a model as good as the counts allow would score, e.g. for
    ``key="free_llk_poisson"``) where it is a finite positive number, else None (not recorded, or degenerate)."""
    expected = metrics.get(f"{key}_expected")
    if isinstance(expected, (int, float)) and math.isfinite(expected) and expected > 0:
        return float(expected)
    return None


class MaskedFigures:
    """:func:`poisson_deviance` and :func:`r_factor` of many models against the same counts and mask.

    What depends on the counts alone (which pixels, their square roots,
    which are non-zero) is worked out once, so that each call gathers the
    model on the masked pixels once and takes logarithms only where counts
    are non-zero: what a solver needs at every metric checkpoint. The
    figures are those of the two functions, to float64 rounding.

    Parameters
    ----------
    counts : torch.Tensor, real, shape S
        Measured photons.
    mask : torch.Tensor, bool, shape S
        Pixels to use.
    """

    def __init__(self, counts: torch.Tensor, mask: torch.Tensor):
        self._index = torch.nonzero(mask.reshape(-1)).squeeze(1)
        n = counts.reshape(-1).index_select(0, self._index).double().clamp_min(0)
        self._positive = torch.nonzero(n > 0).squeeze(1)
        self._n_positive = n.index_select(0, self._positive)
        self._sqrt_n = n.sqrt()
        self._count = int(n.numel())
        self._sum_n = float(n.sum()) if self._count else 0.0
        self._sum_sqrt_n = float(self._sqrt_n.sum()) if self._count else 0.0

    def __call__(self, model_intensity: torch.Tensor) -> tuple[float, float]:
        """``(poisson_deviance, r_factor)`` of a model, shape S, photons."""
        if self._count == 0:
            return float("nan"), float("nan")
        m = model_intensity.reshape(-1).index_select(0, self._index).double()
        floored = m.clamp_min(1e-9)
        log_term = torch.dot(self._n_positive, torch.log(self._n_positive / floored.index_select(0, self._positive)))
        deviance = 2.0 * (floored.sum() - self._sum_n + log_term) / self._count
        misfit = (self._sqrt_n - m.clamp_min(0).sqrt()).abs().sum()
        r = misfit / self._sum_sqrt_n if self._sum_sqrt_n > 0 else torch.tensor(float("nan"))
        return float(deviance), float(r)


def chi_square(model_intensity: torch.Tensor, counts: torch.Tensor, mask: torch.Tensor) -> float:
    """Reduced chi-square with Poisson variance ``max(m, 1)``: ~1 at noise level."""
    n = _masked(counts, mask)
    m = _masked(model_intensity, mask)
    if n.numel() == 0:
        return float("nan")
    return float(((n - m).square() / m.clamp_min(1.0)).mean())


def amplitude_deviance(model_intensity: torch.Tensor, counts: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean of ``4 (sqrt(n) - sqrt(m))**2``: the amplitude (variance-stabilised) misfit.

    ``sqrt`` of a Poisson count has a variance close to 1/4 for counts >> 1,
    so the figure is close to 1 at the noise level, like the Poisson
    deviance.
    """
    n = _masked(counts, mask).clamp_min(0)
    m = _masked(model_intensity, mask).clamp_min(0)
    if n.numel() == 0:
        return float("nan")
    return float(4.0 * (n.sqrt() - m.sqrt()).square().mean())


LIKELIHOODS = {
    "poisson": poisson_deviance,
    "gaussian": chi_square,
    "amplitude": amplitude_deviance,
}
"""Negative log-likelihood per pixel (normalised to ~1 at the noise level) of each noise model."""


def negative_log_likelihood(model_intensity: torch.Tensor, counts: torch.Tensor, mask: torch.Tensor,
                            noise: str = "poisson") -> float:
    """Normalised negative log-likelihood of the counts under a noise model.

    Parameters
    ----------
    model_intensity, counts : torch.Tensor, real, shape S
        Model intensities and measured counts, photons.
    mask : torch.Tensor, bool, shape S
        Pixels to use.
    noise : {"poisson", "gaussian", "amplitude"}
        :func:`poisson_deviance`, :func:`chi_square` (Gaussian with Poisson
        variance) or :func:`amplitude_deviance`.

    Returns
    -------
    float
        About 1 for a fit at the noise level; NaN for an empty mask.
    """
    return LIKELIHOODS[str(noise)](model_intensity, counts, mask)


def data_metrics(
    model_intensity: torch.Tensor,
    counts: torch.Tensor,
    valid: torch.Tensor,
    free: torch.Tensor | None = None,
    noise: str = "poisson",
) -> dict[str, float]:
    """All data-fit figures at once.

    Parameters
    ----------
    model_intensity, counts : torch.Tensor, real, shape S
    valid : torch.Tensor, bool, shape S
        Pixels used for fitting (free pixels already removed).
    free : torch.Tensor, bool, shape S, optional
        Held-out pixels, never used in fitting.
    noise : {"poisson", "gaussian", "amplitude"}
        The noise model; besides the Poisson figures, its own likelihood is
        reported as ``llk_<noise>`` (and ``free_llk_<noise>``).

    Returns
    -------
    dict
        ``r_factor``, ``llk_poisson``, ``chi2``, ``llk_<noise>`` and, with
        ``free``, ``free_llk_poisson``, ``free_llk_poisson_expected``
        (:func:`expected_poisson_deviance` of the held-out pixels: what a
        model as good as the counts allow would score there),
        ``free_llk_<noise>`` and ``free_r_factor``; without ``free``,
        ``llk_poisson_expected`` (the same of the fitted pixels).
    """
    result = {
        "r_factor": r_factor(model_intensity, counts, valid),
        "llk_poisson": poisson_deviance(model_intensity, counts, valid),
        "chi2": chi_square(model_intensity, counts, valid),
    }
    if noise != "poisson":
        result[f"llk_{noise}"] = negative_log_likelihood(model_intensity, counts, valid, noise)
    if free is not None and bool(free.any()):
        result["free_llk_poisson"] = poisson_deviance(model_intensity, counts, free)
        result["free_llk_poisson_expected"] = expected_poisson_deviance(model_intensity, free)
        result["free_r_factor"] = r_factor(model_intensity, counts, free)
        if noise != "poisson":
            result[f"free_llk_{noise}"] = negative_log_likelihood(model_intensity, counts, free, noise)
    else:
        result["llk_poisson_expected"] = expected_poisson_deviance(model_intensity, valid)
    return result
