"""Hot pixels the preparation left in, found with the first reconstruction's model.

The preparation finds hot pixels in the counts alone
(:func:`cdi_dip.prepare.defects.find_hot_pixels`). In a 2D frame a candidate
must also stand above its centrosymmetric partner, so that real single-pixel
speckles are kept; but strain breaks that symmetry, and a hot pixel whose
mirror holds a bright speckle stays in the data (9 of 274 planted on the
tuning half's 2D ``hot`` patterns, on 5 of 48, each 10 times above its
brightest neighbour and less than 2.5 times above its partner). One such pixel
among the held-out ones pushes the free deviance into the hundreds or
thousands per pixel, and every later choice is made on that deviance: the
double DIP's best iterate, ``auto``'s comparison, the partial-coherence
challengers, more starts, the frame margin.

The first reconstruction's model is a better reference than the partner: it
is the expected count at every pixel. After the first pass
(:func:`cdi_dip.reconstruction.reconstruct`), a pixel that stands far above
its neighbours, as a hot one must, *and* far above the model there
(:func:`cdi_dip.prepare.defects.find_hot_pixels_by_model`) is excluded as
``hot``, and the scan is reconstructed again from the start without it, on
the same held-out pixels less the hot ones. The first pass, scored on those
pixels, is kept instead where it fits them significantly better
(:func:`cdi_dip.reconstruction.reconstruct`); the summary's
``method_choice.hot_by_model`` says which pixels, both passes' free deviance
and which was kept.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from .prepare.defects import find_hot_pixels_by_model
from .types import Result

log = logging.getLogger(__name__)

LISTED_PIXELS = 20
"""At most this many of the pixels found are listed (as indices) in the record."""

HOT_PASS_LABELS = ("first pass", "again without them")
"""The two results compared once hot pixels are found: the first pass (fitted with them) and the
reconstruction without them."""


class HotPixelsFound(Exception):
    """The first pass's model shows hot pixels that the preparation left in; raised to start again without them.

    Attributes
    ----------
    mask : numpy.ndarray of bool, frame shape
        The pixels found (valid in the first pass's measurement).
    first : Result
        The first pass, fitted with them.
    background : numpy.ndarray or None, frame shape
        The background the first pass fitted the counts less (its model does not include it); None: none.
    record : dict
        What :func:`hot_pixel_record` says about them, for ``method_choice.hot_by_model``.
    """

    def __init__(self, mask: np.ndarray, first: Result, background: np.ndarray | None,
                 record: dict[str, Any]) -> None:
        super().__init__(f"{record['pixels']} hot pixels found with the model")
        self.mask, self.first, self.background, self.record = mask, first, background, record


def hot_pixels_by_model(result: Result) -> np.ndarray | None:
    """The hot pixels ``result``'s model shows among the valid pixels of the measurement it fitted (the held-out
    ones included); None where there are none, or where it has no model or was interrupted."""
    if result.interrupted or result.model_intensity is None:
        return None
    measurement = result.measurement
    hot = find_hot_pixels_by_model(measurement.intensity, measurement.valid, result.model_intensity)
    return hot if hot.any() else None


def hot_pixel_record(hot: np.ndarray, first: Result) -> dict[str, Any]:
    """The summary's record of the pixels ``hot`` that ``first``'s model showed: how many, where (at most
    :data:`LISTED_PIXELS`), their counts against the model's, and what the first pass scored with them."""
    counts, model = first.measurement.intensity, first.model_intensity
    where = [tuple(int(i) for i in index) for index in np.argwhere(hot)]
    pixels = len(where)
    return {
        "pixels": pixels,
        "where": [list(index) for index in where[:LISTED_PIXELS]],
        "counts": [float(counts[index]) for index in where[:LISTED_PIXELS]],
        "model_counts": [float(model[index]) for index in where[:LISTED_PIXELS]],
        "first_method": first.method,
        "first_free_llk_poisson": first.metrics.get("free_llk_poisson"),
        "first_wall_s": first.wall_s,
    }


def check_first_pass(result: Result, background: np.ndarray | None = None) -> None:
    """Raise :class:`HotPixelsFound` where ``result``'s model shows hot pixels the preparation left in;
    ``background``: what the result fitted the counts less (carried along to score it later)."""
    hot = hot_pixels_by_model(result)
    if hot is None:
        return
    record = hot_pixel_record(hot, result)
    log.warning("%d hot pixel(s) far above the first reconstruction's model and their neighbours, at %s: "
                "excluded, reconstructing again", record["pixels"], record["where"][:5])
    raise HotPixelsFound(hot, result, background, record)


__all__ = ["HOT_PASS_LABELS", "LISTED_PIXELS", "HotPixelsFound", "check_first_pass", "hot_pixel_record",
           "hot_pixels_by_model"]
