"""Preparation of a measurement for the solvers.

Two stages, each a function of a :class:`~cdi_dip.types.Measurement`:

1. :func:`condition_detector`: dark subtraction and flat field
   (:mod:`cdi_dip.prepare.corrections`), defects found in the data and excluded by
   reason (:mod:`cdi_dip.prepare.defects`: gaps, saturation, hot and dead pixels,
   beamstop, aliens), binning;
2. :func:`prepare`: photon threshold, the zero frequency found (the Bragg
   peak, or the centre of Friedel symmetry when a beamstop hides it), an
   FFT-friendly frame cut around it (cropping or padding with excluded
   pixels, optionally capped in size), the detector region recorded.

Every excluded pixel keeps its reason (``Measurement.masks``) through both
stages, so the result file can say why each pixel was left out.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np

from ..config import AlienHandling, CentreMethod, DetectorConfig, PrepConfig, RimHandling
from ..errors import InvalidInputError
from ..types import Measurement
from .corrections import bin_frames, correct_measurement
from .defects import REASONS, DefectOptions, detect_defects, find_saturated, guess_saturation, peak_guess
from .frame import MIN_FRAME, choose_frame, fft_friendly_above, fft_friendly_below, oversampled_binning
from .frame import signal_half_widths, signal_sizes
from .frame import is_fft_friendly  # noqa: F401  (importable from here, as before)
from .symmetry import friedel_centre

log = logging.getLogger(__name__)

def apply_threshold(intensity: np.ndarray, threshold: float) -> np.ndarray:
    """Counts below ``threshold`` photons set to zero (they stay valid pixels)."""
    if threshold <= 0:
        return intensity
    return np.where(intensity < threshold, 0, intensity).astype(intensity.dtype)


def _brightest_pixel(intensity: np.ndarray, valid: np.ndarray) -> tuple[int, ...]:
    masked = np.where(valid, intensity, -np.inf)
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(masked)), intensity.shape))


def _centre_of_mass(intensity: np.ndarray, valid: np.ndarray) -> tuple[int, ...]:
    weights = np.where(valid, intensity, 0).astype(np.float64)
    total = weights.sum()
    grids = np.indices(intensity.shape, sparse=True)
    return tuple(int(round(float((g * weights).sum() / total))) for g in grids)


FRIEDEL_CENTRE_DIMS = (2,)
"""Numbers of dimensions where ``auto`` centring always takes the centre of Friedel symmetry
(:func:`cdi_dip.prepare.symmetry.friedel_centre`). The brightest pixel of a pattern need not be its
zero frequency: a dislocation or a domain boundary darkens the centre and brightens a lobe 1-4 px
away, and behind a beamstop the brightest valid pixel is a speckle. A frame centred on it drops
measured rows on one side and leaves the object a phase ramp to carry. On the 2D tuning half (quick
frames, seeds 1000-1003) the two centres differed on 36 of 240 patterns, where the Friedel centre
was the true zero frequency in 33 and the default's median error went 0.049 -> 0.025 (7 better, 3
worse by 0.05; docs/benchmarks.md "Centring on the centre of Friedel symmetry"). In 2D the search is
cheap; 3D keeps the brightest pixel unless a beamstop touches it (:data:`BEAMSTOP_SEARCH_PX`)."""

BEAMSTOP_SEARCH_PX = {2: 12, 3: 2}
"""How close (px) excluded pixels must be to the brightest valid pixel for ``auto`` centring to
suspect a hidden zero frequency, by number of dimensions, where :data:`FRIEDEL_CENTRE_DIMS` does
not already take the Friedel centre. Behind a beamstop the brightest valid pixel of a forward-CDI
pattern is often a speckle 7-9 px from the true centre (18 of 60 simulated cells); 12 px centred
all 60 and moved none of 80 crystal frames. 3D Bragg data have no beamstop, and the Friedel search
of a large stack is costly, so there only pixels touching the peak count."""


def _peak_hidden(intensity: np.ndarray, valid: np.ndarray, peak: tuple[int, ...]) -> bool:
    """True when excluded pixels lie near the brightest valid pixel (a beamstop's edge)."""
    reach = BEAMSTOP_SEARCH_PX.get(intensity.ndim, 2)
    window = tuple(slice(max(p - reach, 0), p + reach + 1) for p in peak)
    return not bool(valid[window].all())


def find_centre(intensity: np.ndarray, valid: np.ndarray, method: CentreMethod) -> tuple[int, ...]:
    """Position of the zero frequency (Bragg peak or direct beam), in pixels.

    Parameters
    ----------
    intensity : numpy.ndarray, shape (ny, nx) or (nz, ny, nx)
        Counts, 0 on excluded pixels.
    valid : numpy.ndarray, bool, same shape
    method : CentreMethod
        ``max``: brightest valid pixel; ``com``: centre of mass; ``friedel``:
        centre of symmetry; ``none``: the array centre; ``auto``: ``friedel``
        in 2D (:data:`FRIEDEL_CENTRE_DIMS`); in 3D ``max`` unless excluded
        pixels lie near it (:data:`BEAMSTOP_SEARCH_PX`: a beamstop), then
        ``friedel``.
    """
    if method is CentreMethod.NONE:
        return tuple(n // 2 for n in intensity.shape)
    if method is CentreMethod.COM:
        return _centre_of_mass(intensity, valid)
    if method is CentreMethod.FRIEDEL:
        return friedel_centre(intensity, valid)
    if method is CentreMethod.AUTO and intensity.ndim in FRIEDEL_CENTRE_DIMS:
        return friedel_centre(intensity, valid)
    peak = _brightest_pixel(intensity, valid)
    if method is CentreMethod.AUTO and _peak_hidden(intensity, valid, peak):
        return friedel_centre(intensity, valid)
    return peak


def centred_window(centre: int, length: int, max_size: int | None) -> tuple[int, int]:
    """Detector range ``[start, stop)`` of an FFT-friendly frame centred on ``centre``.

    When the peak is near the middle of the axis (a symmetric crop would keep
    at least 3/4 of it), the frame keeps the size of the detector axis (the
    FFT-friendly size at or below it) and is shifted to centre the peak: the
    few rows beyond the detector edge become excluded pixels (free in every
    method), so the object keeps the sampling ``wavelength * distance / (N *
    pixel)`` of the full detector. A peak far off centre gets a larger, padded
    frame so that no measured data is lost. ``max_size`` caps the result.
    """
    symmetric = 2 * min(centre, length - centre)
    if symmetric >= 0.75 * length:
        size = fft_friendly_below(length)
    else:
        size = fft_friendly_above(2 * max(centre, length - centre))
    if max_size is not None:
        size = min(size, fft_friendly_below(max_size))
    start = centre - size // 2
    return start, start + size


def extract_window(array: np.ndarray, roi: list[tuple[int, int]], fill: float | bool) -> np.ndarray:
    """Copy of ``array[roi]`` where parts of ``roi`` outside the array hold ``fill``."""
    out = np.full([stop - start for start, stop in roi], fill, dtype=array.dtype)
    source, target = [], []
    for (start, stop), n in zip(roi, array.shape):
        lo, hi = max(start, 0), min(stop, n)
        source.append(slice(lo, hi))
        target.append(slice(lo - start, hi - start))
    out[tuple(target)] = array[tuple(source)]
    return out


def _oversampling(intensity: np.ndarray, valid: np.ndarray, window: list[tuple[int, int]]) -> tuple[float, ...]:
    """Oversampling per axis of the pattern in ``window`` (frame over the object extent the autocorrelation's
    support gives, :func:`cdi_dip.support.autocorrelation_extent_px`)."""
    import torch

    from ..physics import FarField
    from ..support import autocorrelation_extent_px

    counts = extract_window(intensity, window, 0.0).astype(np.float32)
    used = extract_window(valid, window, False)
    extents = autocorrelation_extent_px(torch.from_numpy(counts), torch.from_numpy(used), FarField(counts.shape))
    return tuple(n / e for n, e in zip(counts.shape, extents))


def bin_oversampled(measurement: Measurement, cfg: PrepConfig, *, voxel_budget: int | None) -> Measurement:
    """The measurement binned along its oversampled axes where its signal exceeds the voxel budget
    (``cfg.bin_min_oversampling``, :func:`cdi_dip.prepare.frame.oversampled_binning`); as it is otherwise.

    Nothing is binned without the setting, with ``max_size`` or a budget
    absent, after ``--bin``, or where the region with signal fits the budget
    (cutting to it loses nothing). ``notes["auto_bin"]`` records the factors,
    the oversampling they were chosen from and why.
    """
    if (cfg.bin_min_oversampling is None or cfg.max_size is not None or voxel_budget is None
            or any(b > 1 for b in measurement.binning)):
        return measurement
    intensity = apply_threshold(measurement.intensity, cfg.threshold)
    trusted = measurement.valid if measurement.provisional is None else measurement.valid & ~measurement.provisional
    if not (intensity[trusted] > 0).any():
        return measurement  # prepare() refuses it with its own message
    centre = find_centre(intensity, trusted, cfg.centre)
    signal = signal_sizes(signal_half_widths(intensity, trusted, centre), measurement.shape)
    if int(np.prod(signal)) <= voxel_budget:
        return measurement
    window = [(c - s // 2, c - s // 2 + s) for c, s in zip(centre, signal)]
    oversampling = _oversampling(intensity, trusted, window)
    factors = oversampled_binning(signal, oversampling, voxel_budget, cfg.bin_min_oversampling)
    if all(f == 1 for f in factors):
        return measurement
    why = (f"the region with signal ({'x'.join(map(str, signal))}) exceeds the {voxel_budget}-voxel budget; "
           f"oversampled {' x '.join(f'{o:.1f}' for o in oversampling)} per axis, it was binned by "
           f"{'x'.join(map(str, factors))} (keeping at least {cfg.bin_min_oversampling:g}) before any cut: the same "
           "voxels over less of the field of view")
    log.info("frame: %s", why)
    binned = bin_measurement(measurement, list(factors))
    note = {"factors": list(factors), "oversampling": [round(o, 3) for o in oversampling],
            "min_oversampling": cfg.bin_min_oversampling, "why": why}
    return replace(binned, notes={**binned.notes, "auto_bin": note})


def prepare(measurement: Measurement, cfg: PrepConfig, *, voxel_budget: int | None = None) -> Measurement:
    """Threshold, centre and frame a measurement for the solvers.

    Parameters
    ----------
    measurement : Measurement
        As read from disk (and conditioned by :func:`condition_detector`).
    cfg : PrepConfig
    voxel_budget : int, optional
        Largest frame (voxels) when ``cfg.max_size`` is not set: a larger
        frame is cut to the signal and shrunk to fit
        (:func:`cdi_dip.prepare.frame.choose_frame`). None: no budget.

    Returns
    -------
    Measurement
        A new measurement whose peak is at the array centre, with an
        FFT-friendly shape, ``roi`` recording the detector pixels used, and
        the masks by reason cut to the same frame (plus ``"padding"`` for
        pixels beyond the detector).

    Raises
    ------
    InvalidInputError
        When nothing valid is left, or the frame would be too small.
    """
    intensity = apply_threshold(measurement.intensity, cfg.threshold)
    valid = measurement.valid
    if not valid.any() or not (intensity[valid] > 0).any():
        raise InvalidInputError(
            f"{measurement.source}: no valid pixel with counts above the threshold "
            f"({cfg.threshold:g}): check the mask and --threshold"
        )
    if min(intensity.shape) < MIN_FRAME:
        raise InvalidInputError(
            f"{measurement.source}: the detector region {intensity.shape} is smaller than {MIN_FRAME} pixels along "
            f"an axis: give a larger region of the detector"
        )
    trusted = valid if measurement.provisional is None else valid & ~measurement.provisional
    centre = find_centre(intensity, trusted, cfg.centre)  # a half-covered beamstop rim would pull it
    window = [centred_window(c, n, cfg.max_size) for c, n in zip(centre, intensity.shape)]
    sizes = [stop - start for start, stop in window]
    notes = {**measurement.notes, "centre_px": [int(c) for c in centre]}
    if cfg.max_size is None and voxel_budget is not None:
        choice = choose_frame(intensity, trusted, centre, sizes, voxel_budget)
        if choice is not None:
            log.info("frame: %s", choice.reason)
            notes["auto_frame"] = choice.as_note()
            window = [(c - s // 2, c - s // 2 + s) for c, s in zip(centre, choice.sizes)]
            sizes = list(choice.sizes)
    if min(sizes) < MIN_FRAME:
        raise InvalidInputError(
            f"{measurement.source}: the frame around the peak at {centre} would be {tuple(sizes)}, "
            f"smaller than {MIN_FRAME} pixels per axis: use a larger detector region or --centre none"
        )
    framed = extract_window(intensity, window, 0.0).astype(np.float32)
    framed_valid = extract_window(valid, window, False)
    masks = {reason: extract_window(mask, window, False) for reason, mask in measurement.masks.items()}
    excluded = {reason: int(np.count_nonzero(mask)) for reason, mask in masks.items()}
    inside = extract_window(np.ones(valid.shape, dtype=bool), window, False)
    if not inside.all():
        masks["padding"] = ~inside
        excluded["padding"] = int(np.count_nonzero(~inside))
    framed[~framed_valid] = 0
    provisional = None
    if measurement.provisional is not None:
        provisional = extract_window(measurement.provisional, window, False) & framed_valid
        provisional = provisional if provisional.any() else None
    log.info("peak at %s, frame %s from array region %s", centre, tuple(sizes), window)
    return replace(
        measurement,
        intensity=framed,
        valid=framed_valid,
        excluded={reason: n for reason, n in excluded.items() if n},
        masks={reason: mask for reason, mask in masks.items() if mask.any()},
        roi=detector_roi(measurement, window),
        notes=notes,
        provisional=provisional,
    )


def detector_roi(measurement: Measurement, window: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Detector pixels ``[start, stop)`` per axis covered by ``window`` of the measurement's array.

    Composes the measurement's own ``roi`` (where its array sits on the
    detector) with its ``binning`` (detector pixels per array pixel).
    """
    origin = [start for start, _ in measurement.roi] if measurement.roi else [0] * measurement.ndim
    binning = measurement.binning or (1,) * measurement.ndim
    return [(o + s * b, o + e * b) for (s, e), o, b in zip(window, origin, binning)]


# -- detector conditioning -------------------------------------------------------------
def frames_roi(cfg: DetectorConfig, measurement: Measurement) -> list[tuple[int, int]] | None:
    """The detector region of the frames as ``(start, stop)`` pairs of the detector axes.

    ``detector.roi`` (``--roi``) when given; else the region the input's
    ``metadata.json`` names (:attr:`ScanMeta.detector_roi`), when it has the
    frames' size (otherwise a warning, and none); else None.
    """
    if cfg.roi is not None:
        return [(int(cfg.roi[0]), int(cfg.roi[1])), (int(cfg.roi[2]), int(cfg.roi[3]))]
    if measurement.meta.detector_roi is None:
        return None
    y0, y1, x0, x1 = measurement.meta.detector_roi
    if (y1 - y0, x1 - x0) != tuple(measurement.shape[-2:]):
        log.warning("%s: the metadata's detector region %d:%d, %d:%d does not match the %dx%d frames; ignoring it",
                    measurement.source, y0, y1, x0, x1, *measurement.shape[-2:])
        return None
    return [(y0, y1), (x0, x1)]


def _place_on_detector(measurement: Measurement, roi: list[tuple[int, int]] | None) -> Measurement:
    """Record that the frames are the detector region ``roi`` (checked against their size)."""
    if roi is None:
        return measurement
    frame_shape = measurement.shape[-2:]
    for (start, stop), n in zip(roi, frame_shape):
        if stop - start != n:
            raise InvalidInputError(
                f"{measurement.source}: --roi {start}:{stop} spans {stop - start} pixels but the frames have "
                f"{n} along that axis; give the detector region the frames were read from"
            )
    axes = [(0, measurement.shape[0])] if measurement.ndim == 3 else []
    return replace(measurement, roi=axes + list(roi))


def defect_options(cfg: DetectorConfig) -> DefectOptions:
    """The defect finders' settings from the ``[detector]`` configuration."""
    return DefectOptions(
        beamstop=cfg.find_beamstop,
        beamstop_radius_px=cfg.beamstop_radius,
        gaps=cfg.find_gaps,
        gap_fill_value=cfg.gap_fill_value,
        hot=cfg.find_hot,
        dead=cfg.find_dead,
        saturation=False,  # a property of the raw counts: see exclude_saturated
        aliens=AlienHandling(cfg.aliens) is not AlienHandling.OFF,
    )


def defect_reference_peak(measurement: Measurement) -> tuple[int, ...] | None:
    """The zero frequency the defect finders measure from (beamstop search, alien mirror).

    2D frames: the centre of Friedel symmetry, which a beamstop, unmasked or
    not, cannot hide. 3D stacks (Bragg CDI, no beamstop): the brightest valid
    pixel, or the middle of a saturated (clipped) peak.
    """
    if measurement.ndim == 2 and measurement.valid.any():
        return friedel_centre(measurement.intensity, measurement.valid)
    return peak_guess(measurement.intensity, measurement.valid, measurement.masks.get("saturated"))


def _hold_out_rim(measurement: Measurement, rim: np.ndarray, handling: RimHandling) -> Measurement:
    """The rim of a found beamstop shadow: provisional (``test``: see :mod:`cdi_dip.prepare.rim`) or kept (``keep``)."""
    if not rim.any() or handling is RimHandling.KEEP:
        return measurement
    previous = measurement.provisional if measurement.provisional is not None else np.zeros_like(rim)
    return replace(measurement, provisional=previous | rim)


def exclude_defects(measurement: Measurement, cfg: DetectorConfig) -> Measurement:
    """Find detector defects in the data and exclude them, each under its reason.

    With ``detector.aliens = "report"`` aliens are found and counted
    (``notes["aliens_kept_px"]``) but stay valid. The rim of a found
    beamstop shadow stays valid too, as ``provisional`` pixels
    (``detector.beamstop_rim = "test"``), unless ``"exclude"`` asks for it to
    be excluded under ``beamstop_rim``. Saturation is not looked
    for here (see :func:`exclude_saturated`).

    Parameters
    ----------
    measurement : Measurement
    cfg : DetectorConfig

    Returns
    -------
    Measurement
    """
    options = defect_options(cfg)
    options.peak = defect_reference_peak(measurement)
    notes = dict(measurement.notes)
    found = detect_defects(measurement.intensity, measurement.valid, options=options)
    for reason in REASONS:
        if reason == "invalid_input":
            continue
        if reason == "alien" and AlienHandling(cfg.aliens) is AlienHandling.REPORT:
            kept = int(np.count_nonzero(found[reason]))
            if kept:
                notes["aliens_kept_px"] = kept
                log.warning("%s: %d alien pixels found and kept (detector.aliens = report)",
                            measurement.source, kept)
            continue
        if reason == "beamstop_rim" and RimHandling(cfg.beamstop_rim) is not RimHandling.EXCLUDE:
            measurement = _hold_out_rim(measurement, found[reason], RimHandling(cfg.beamstop_rim))
            continue
        measurement = measurement.exclude(reason, found[reason])
    return replace(measurement, notes=notes)


def exclude_saturated(measurement: Measurement, cfg: DetectorConfig) -> Measurement:
    """Exclude pixels at or above the detector's saturation, on the raw counts per frame.

    The level is ``detector.saturation`` when given; otherwise a clipping
    plateau in the data, if there is one (several pixels sharing exactly the
    largest count: ``notes["clipping_plateau_counts"]``). Run it before
    dark and flat corrections, which change the counts.
    """
    level = cfg.saturation
    notes = dict(measurement.notes)
    if level is None:
        level = guess_saturation(measurement.intensity, measurement.valid)
        if level is None:
            return measurement
        notes["clipping_plateau_counts"] = level
        log.warning("%s: %d pixels share the largest count %g: excluded as saturated (set --saturation to "
                    "override)", measurement.source,
                    int(np.count_nonzero(measurement.valid & (measurement.intensity >= level))), level)
    saturated = find_saturated(measurement.intensity, level, valid=measurement.valid)
    return replace(measurement.exclude("saturated", saturated), notes=notes)


def _bin_factors(factors: list[int], ndim: int) -> tuple[int, ...]:
    if len(factors) == 1:
        return (int(factors[0]),) * ndim
    if ndim == 3 and len(factors) == 2:
        return (1, int(factors[0]), int(factors[1]))
    if len(factors) != ndim:
        raise InvalidInputError(
            f"--bin {','.join(map(str, factors))}: give one factor, or one per axis ({ndim} for this data)"
        )
    return tuple(int(f) for f in factors)


def bin_measurement(measurement: Measurement, factors: list[int]) -> Measurement:
    """Sum blocks of detector pixels (exact Poisson counts; a block with an excluded pixel is excluded).

    An excluded block keeps the reason of its excluded pixels (the first one
    in the measurement's order of reasons). Provisional pixels (a beamstop's
    rim) are excluded first, under ``beamstop_rim``. The pixel size in the geometry is
    multiplied by the factors of the detector axes.

    Parameters
    ----------
    measurement : Measurement
    factors : list of int
        One factor for every axis, one per axis, or (stacks) two for the
        detector axes.

    Returns
    -------
    Measurement
    """
    steps = _bin_factors(factors, measurement.ndim)
    if all(step == 1 for step in steps):
        return measurement
    if measurement.provisional is not None:  # a binned pixel part rim, part lit: not testable, so excluded
        measurement = measurement.exclude("beamstop_rim", measurement.provisional)
    intensity, valid = bin_frames(measurement.intensity, measurement.valid, steps)
    masks: dict[str, np.ndarray] = {}
    taken = valid.copy()
    for reason, mask in measurement.masks.items():
        blocks, _ = bin_frames(mask.astype(np.float32), np.ones(mask.shape, dtype=bool), steps)
        mask_binned = (blocks > 0) & ~taken
        if mask_binned.any():
            masks[reason] = mask_binned
            taken |= mask_binned
    if not taken.all():  # blocks cut at the edge, or excluded for an unrecorded reason
        masks["binning"] = ~taken
    meta = measurement.meta
    if meta.pixel_size_m is not None:
        meta = replace(meta, pixel_size_m=(meta.pixel_size_m[0] * steps[-2], meta.pixel_size_m[1] * steps[-1]))
    if meta.rocking_step_deg is not None and len(steps) == 3:  # frames summed: a coarser rocking step
        meta = replace(meta, rocking_step_deg=meta.rocking_step_deg * steps[0])
    binning = tuple(b * s for b, s in zip(measurement.binning or (1,) * measurement.ndim, steps))
    log.info("binned %s by %s to %s", measurement.shape, steps, intensity.shape)
    return replace(measurement, intensity=intensity, valid=valid, masks=masks, meta=meta, binning=binning,
                   excluded={reason: int(np.count_nonzero(mask)) for reason, mask in masks.items()})


def condition_detector(
    measurement: Measurement,
    cfg: DetectorConfig,
    *,
    dark: np.ndarray | None = None,
    flat: np.ndarray | None = None,
) -> Measurement:
    """Detector corrections, defect exclusion and binning of a measurement as read.

    Parameters
    ----------
    measurement : Measurement
        As read (:func:`cdi_dip.io.read_measurement`).
    cfg : DetectorConfig
    dark, flat : numpy.ndarray, optional
        Calibration images (``detector.dark``/``detector.flat`` as read):
        one detector frame (cut with ``detector.roi``), or one per frame.

    Returns
    -------
    Measurement
        Corrected counts; excluded pixels recorded by reason (``saturated``,
        ``dark``, ``flat``, ``gap``, ``hot``, ``beamstop``, ``dead``,
        ``alien``...); ``roi`` in detector pixels; ``binning`` set.

    Notes
    -----
    Order: saturation (raw counts), dark, flat, the other defects, binning.
    """
    roi = frames_roi(cfg, measurement)
    conditioned = exclude_saturated(measurement, cfg)
    conditioned = correct_measurement(conditioned, dark=dark, flat=flat, roi=roi,
                                      hot_dark_counts=cfg.dark_hot_counts, min_flat_relative=cfg.flat_min_relative)
    conditioned = _place_on_detector(conditioned, roi)
    conditioned = exclude_defects(conditioned, cfg)
    if not conditioned.valid.any():
        raise InvalidInputError(f"{measurement.source}: every pixel is excluded ({conditioned.excluded}); "
                                "check the mask, --dark/--flat and --saturation")
    if cfg.bin is not None:
        conditioned = bin_measurement(conditioned, cfg.bin)
    return conditioned
