"""Is the rim of a found beamstop shadow lit? A test against a first reconstruction.

A beamstop the tool finds (a dark region at the zero frequency) has a rim:
the ring of pixels just outside the dark ones. Behind a real beamstop that
ring is often half covered (a penumbra) and its counts are too low; behind a
sharp shadow it is fully lit, and those are the brightest low frequencies
left, the ones a reconstruction needs most (leaving them out cost the double
DIP 0-35 % in error on planted crystals, docs/benchmarks.md). Counting
cannot tell the two apart (so close to the zero frequency the intensity falls
so steeply that a rim pixel dimmed to 50 % is still brighter than its
neighbours further out); a reconstruction can: fitted without the rim, it
predicts the rim's counts from the rest of the pattern.

:func:`check_rim` compares the rim's measured counts with what a first
reconstruction predicts there. Summed over the rim they agree to a few
percent when it is lit (0.97-1.00 on planted crystals, a single pixel to
about 15 %) and fall short by the covered fraction when it is not (0.49-0.50
with the rim's counts halved). HIO's prediction serves as well since HIO
fits a masked centre's hidden modes: on the tuning half behind an unmasked
beamstop (3D) it was 0.99-1.01 of a lit rim's counts and 1.99-2.01 of a
half-covered one's wherever HIO found the object, and never judged a
half-covered rim lit where it failed (docs/benchmarks.md).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
import numpy as np

from ..types import BeamstopRim, Measurement

log = logging.getLogger(__name__)

RIM_TOLERANCE = 0.1
"""Largest relative difference between the rim's measured and predicted counts (summed) for which
the rim counts as lit. A rim dimmed by more than this stays excluded."""

PIXEL_TOLERANCE = 0.25
"""Largest relative difference for one rim pixel (or three Poisson standard deviations of its counts)."""

MIN_AGREEING_FRACTION = 0.75
"""Fewest rim pixels that must agree within :data:`PIXEL_TOLERANCE` for the rim to count as lit: a
reconstruction that missed the pattern can match the sum by chance, not the pixels (on planted crystals
every pixel of a lit rim agreed to 20 %; a failed reconstruction's ranged from 0.4 to 1.9)."""


@dataclass(frozen=True)
class RimTest:
    """The outcome of :func:`check_rim`.

    Attributes
    ----------
    pixels : int
        Rim pixels tested.
    measured_counts, predicted_counts : float
        Their summed counts, measured and predicted by the first reconstruction (photons).
    tolerance : float
        Relative difference allowed: :data:`RIM_TOLERANCE`, or three Poisson
        standard deviations of the measured sum where that is larger.
    agreeing_fraction : float
        Fraction of the rim pixels whose counts agree with the prediction
        within :data:`PIXEL_TOLERANCE` (or three Poisson standard deviations).
    scaled_agreeing_fraction : float
        The same with the prediction scaled to the measured sum: high for a
        rim dimmed evenly (a penumbra), low where the first reconstruction
        missed the object's low frequencies.
    """

    pixels: int
    measured_counts: float
    predicted_counts: float
    tolerance: float
    agreeing_fraction: float
    scaled_agreeing_fraction: float = math.nan

    @property
    def ratio(self) -> float:
        """Measured over predicted counts (NaN when nothing is predicted)."""
        return self.measured_counts / self.predicted_counts if self.predicted_counts > 0 else math.nan

    @property
    def lit(self) -> bool:
        """True when the measured counts are those predicted: summed within ``tolerance``, pixel by pixel mostly."""
        return (math.isfinite(self.ratio) and abs(self.ratio - 1.0) <= self.tolerance
                and self.agreeing_fraction >= MIN_AGREEING_FRACTION)

    @property
    def conclusive(self) -> bool:
        """True when the prediction has the rim's shape (scaled to its sum, most pixels agree), so that its
        verdict stands, lit or dimmed; False where the first reconstruction missed the centre of the pattern."""
        return self.scaled_agreeing_fraction >= MIN_AGREEING_FRACTION

    def outcome(self, readmitted: bool, challenge_margin_z: float | None = None) -> BeamstopRim:
        """The test and the decision taken, for the result (:attr:`cdi_dip.types.Result.beamstop_rim`);
        ``challenge_margin_z``: by what normal score (:func:`cdi_dip.metrics.challenge_margin`) a reconstruction
        with the rim fitted the held-out pixels better than the first pass, where one challenged it."""
        return BeamstopRim(pixels=self.pixels, readmitted=readmitted, measured_counts=self.measured_counts,
                           predicted_counts=self.predicted_counts, ratio=self.ratio, tolerance=self.tolerance,
                           agreeing_fraction=self.agreeing_fraction, lit=self.lit,
                           scaled_agreeing_fraction=self.scaled_agreeing_fraction,
                           challenge_margin_z=challenge_margin_z)


def check_rim(measurement: Measurement, model_intensity: np.ndarray) -> RimTest:
    """Compare the provisional (rim) pixels' counts with a reconstruction's prediction.

    Parameters
    ----------
    measurement : Measurement
        With ``provisional`` set; their counts are in ``intensity``.
    model_intensity : numpy.ndarray, the measurement's shape
        ``|F x|^2`` of a reconstruction fitted without the provisional pixels, photons.

    Returns
    -------
    RimTest
    """
    if measurement.provisional is None:
        raise ValueError("check_rim needs a measurement with provisional pixels")
    if model_intensity.shape != measurement.shape:
        raise ValueError(f"model intensity {model_intensity.shape} does not match the frame {measurement.shape}")
    rim = measurement.provisional
    counts = measurement.intensity[rim].astype(np.float64)
    model = model_intensity[rim].astype(np.float64)
    measured, predicted = float(counts.sum()), float(model.sum())
    tolerance = max(RIM_TOLERANCE, 3.0 / math.sqrt(measured)) if measured > 0 else RIM_TOLERANCE
    scale = measured / predicted if predicted > 0 else 0.0
    result = RimTest(pixels=int(np.count_nonzero(rim)), measured_counts=measured, predicted_counts=predicted,
                     tolerance=tolerance, agreeing_fraction=_agreeing_fraction(counts, model),
                     scaled_agreeing_fraction=_agreeing_fraction(counts, scale * model))
    verdict = "lit" if result.lit else "covered" if result.conclusive else "not predicted (the centre was missed)"
    log.info("beamstop rim: %d pixels, %.0f counts measured, %.0f predicted (ratio %.3f): %s", result.pixels,
             measured, predicted, result.ratio, verdict)
    return result


def _agreeing_fraction(counts: np.ndarray, model: np.ndarray) -> float:
    """Fraction of pixels whose counts are within :data:`PIXEL_TOLERANCE` of the model (or three Poisson
    standard deviations of it); 0 for no pixels."""
    if counts.size == 0:
        return 0.0
    pixel_tolerance = np.maximum(PIXEL_TOLERANCE * model, 3.0 * np.sqrt(np.maximum(model, 1.0)))
    return float(np.mean(np.abs(counts - model) <= pixel_tolerance))


def without_rim(measurement: Measurement) -> Measurement:
    """The measurement with its provisional pixels excluded (under ``beamstop_rim``)."""
    if measurement.provisional is None:
        return measurement
    return measurement.exclude("beamstop_rim", measurement.provisional)


def with_rim(measurement: Measurement) -> Measurement:
    """The measurement with its provisional pixels fitted like any other, but never held out
    (``never_free``): its free pixels are then those of the first pass, without the rim."""
    return replace(measurement, provisional=None, never_free=measurement.provisional)


__all__ = ["MIN_AGREEING_FRACTION", "PIXEL_TOLERANCE", "RIM_TOLERANCE", "RimTest", "check_rim", "with_rim",
           "without_rim"]
