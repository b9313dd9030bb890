"""A result fitted on a frame with an unmeasured margin, written on the measured frame.

The frame-margin challenge (:func:`cdi_dip.reconstruction.reconstruct`,
``frame_margin``) fits the object on voxels finer than the measured frame's;
what the counts measured of it is its far field on the measured pixels. The
result written is that: every array seen on the measured frame
(:func:`cdi_dip.prepare.margin.seen_on_frame`, a Fourier cut, unitary, so the
model of every measured pixel and every fit figure is unchanged). Results of
one scan thus share their frame and voxel size whatever the challenge decided.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from .ensemble import ensemble_statistics
from .prepare.margin import (MARGIN_REASON, measured_measurement, measured_part, on_measured_frame_support,
                             seen_on_frame)
from .types import AlignInfo, EnsembleResult, Measurement, PrtfResult, Result


def on_measured_frame(result: Result, measured: Measurement) -> Result:
    """``result`` (fitted on a frame with a margin) on the measured frame of ``measured``.

    Parameters
    ----------
    result : Result
        Its arrays on the frame with a margin.
    measured : Measurement
        The measurement as the challenge received it: its shape and detector region.

    Returns
    -------
    Result
        The object and its spread maps seen on the measured frame; the
        support the voxels more than half inside the fine one (and
        ``metrics["support_size"]`` its count); the model,
        free pixels and masks cut to the measured pixels; shifts and ramps
        of the alignment, and the PRTF's frequencies, in the measured
        frame's voxels.
    """
    shape = measured.shape
    ratios = [n / m for n, m in zip(result.obj.shape, shape)]
    masks = {name: measured_part(mask, shape).copy() for name, mask in result.masks.items()
             if name != f"excluded/{MARGIN_REASON}"}
    support = on_measured_frame_support(result.support, shape)
    metrics = {**result.metrics, **({"support_size": int(support.sum())} if "support_size" in result.metrics else {})}
    return dataclasses.replace(
        result,
        obj=seen_on_frame(result.obj, shape).astype(np.complex64),
        support=support,
        metrics=metrics,
        measurement=measured_measurement(result.measurement, shape, measured.roi),
        model_intensity=None if result.model_intensity is None else measured_part(result.model_intensity, shape).copy(),
        free=None if result.free is None else measured_part(result.free, shape).copy(),
        masks=masks,
        obj_std=_spread_on(result.obj_std, shape),
        align=_align_on(result.align, ratios),
        ensemble=None if result.ensemble is None else _ensemble_on(result.ensemble, shape, ratios),
        prtf=None if result.prtf is None else _prtf_on(result.prtf, ratios),
    )


def _spread_on(spread: np.ndarray | None, shape: Sequence[int]) -> np.ndarray | None:
    """A non-negative per-voxel map (a standard deviation) on the measured frame: its magnitude seen there."""
    return None if spread is None else np.abs(seen_on_frame(spread, shape)).astype(np.float32)


def _align_on(align: AlignInfo, ratios: Sequence[float]) -> AlignInfo:
    """The alignment in the measured frame's voxels, ``ratios`` times larger than the fine ones per axis."""
    return dataclasses.replace(align, **_moves_on(align.shift_px, align.ramp_rad_per_px, ratios))


def _moves_on(shift_px: Sequence[float], ramp_rad_per_px: Sequence[float],
              ratios: Sequence[float]) -> dict[str, tuple[float, ...]]:
    """A shift (pixels) and a phase ramp (radians per pixel) in voxels ``ratios`` times larger per axis."""
    return {"shift_px": tuple(shift / ratio for shift, ratio in zip(shift_px, ratios)),
            "ramp_rad_per_px": tuple(ramp * ratio for ramp, ratio in zip(ramp_rad_per_px, ratios))}


def _ensemble_on(ensemble: EnsembleResult, shape: Sequence[int], ratios: Sequence[float]) -> EnsembleResult:
    """The averaged runs on the measured frame: their matched objects and supports seen there, and the
    statistics (mean, spread maps, majority support, errors) measured again from them
    (:func:`cdi_dip.ensemble.ensemble_statistics`); which runs they were, and how each was matched (twin,
    shift and ramp, in the measured voxels), stay."""
    objects = [seen_on_frame(obj, shape).astype(np.complex64) for obj in ensemble.objects]
    supports = [on_measured_frame_support(support, shape) for support in ensemble.supports]
    measured = ensemble_statistics(objects, supports, pairwise=ensemble.pairwise_errors is not None)
    transforms = [dataclasses.replace(transform, **_moves_on(transform.shift_px, transform.ramp_rad_per_px, ratios))
                  for transform in ensemble.transforms]
    return dataclasses.replace(measured, members=ensemble.members, transforms=transforms)


def _prtf_on(prtf: PrtfResult, ratios: Sequence[float]) -> PrtfResult:
    """The PRTF with its frequencies and resolution in the measured frame's voxels (the mean ratio of the
    axes, which the FFT-friendly sizes make differ by a few per cent); the resolution in metres is physical
    and stays."""
    ratio = math.prod(ratios) ** (1 / len(ratios))
    return dataclasses.replace(
        prtf, frequency_per_px=np.asarray(prtf.frequency_per_px) * ratio,
        resolution_px=None if prtf.resolution_px is None else prtf.resolution_px / ratio)


__all__ = ["on_measured_frame"]
