"""Ensembles of reconstructions: matching, averaging, uncertainty maps and the PRTF.

Several random starts of a phase-retrieval run give objects that agree only up
to the trivial symmetries (global phase, shift, twin, phase ramp). This module
brings them into one frame and measures how much they agree:

- :func:`match_to_reference` moves one object onto a reference with exactly
  the transform :func:`cdi_dip.align.compare_objects` finds;
- :func:`ensemble_statistics` matches every member to the first (the best)
  one and returns the mean object, per-voxel standard deviations of amplitude
  and phase, union and majority supports and the pairwise error matrix
  (:class:`EnsembleResult`);
- :func:`prtf` and :func:`resolution_from_prtf` give the phase-retrieval
  transfer function and the half-period resolution where it falls below
  ``1/e``; :func:`compute_prtf` bundles both, in pixels and, when the
  geometry is known, in metres (:class:`PrtfResult`).

Everything runs on the host in NumPy (float64/complex128 internally). Arrays
are centred: the origin of every axis is at index ``n // 2``.

References
----------
H. N. Chapman et al., "High-resolution ab initio three-dimensional x-ray
diffraction microscopy", J. Opt. Soc. Am. A 23, 1179 (2006) (PRTF, 1/e
criterion).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .align import _apply_ramp, _centred_fft, _centred_ifft, _shift_spectrum, compare_objects, pad_or_crop, twin
from .errors import InvalidInputError
from .types import ScanMeta

log = logging.getLogger(__name__)

PRTF_THRESHOLD = float(np.exp(-1.0))
"""The usual PRTF resolution criterion, ``1/e``."""

SIGNIFICANT_AMPLITUDE = 0.1
"""Fraction of the maximum mean amplitude above which a phase spread is reported."""

ENSEMBLE_DATASETS = ("mean", "amplitude_std", "phase_std_rad", "support_union", "support_majority",
                     "errors_to_reference", "twin", "pairwise_errors")
"""Names under which :func:`ensemble_datasets` stores an ensemble (e.g. in a result CXI)."""

PRTF_DATASETS = ("frequency_per_px", "values", "threshold", "resolution_px", "resolution_m", "members")
"""Names under which :func:`prtf_datasets` stores a PRTF (``resolution_*`` NaN when unknown)."""


# -- matching one object onto a reference ------------------------------------------
def _complex(array: Any) -> np.ndarray:
    return np.asarray(array).astype(np.complex128, copy=False)


def _comparison_shape(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...]:
    """The frame :func:`compare_objects` works in: the larger size per axis."""
    return tuple(max(m, n) for m, n in zip(a, b))


def apply_transform(obj: np.ndarray, transform: dict[str, Any]) -> np.ndarray:
    """Apply a registration found by :func:`cdi_dip.align.compare_objects`.

    ``T(x) = exp(i phase) * exp(i g . (r - c)) * x'(r - s)`` with ``x'`` either
    ``x`` or its twin ``conj(x(-r))``, the sub-pixel shift ``s`` applied as a
    linear phase on the centred spectrum (as ``compare_objects`` does). The
    scale factor is *not* applied.

    Parameters
    ----------
    obj : numpy.ndarray, complex, shape S (2D or 3D), centred
        Already in the comparison frame (see :func:`match_to_reference`).
    transform : dict
        ``twin`` (bool), ``shift_px``, ``ramp_rad_per_px`` (one value per
        axis) and ``phase_rad`` (float), as returned by ``compare_objects``.

    Returns
    -------
    numpy.ndarray, complex128, shape S
    """
    x = _complex(obj)
    if transform["twin"]:
        x = twin(x)
    moved = _centred_ifft(_shift_spectrum(_centred_fft(x), transform["shift_px"]))
    return _apply_ramp(moved, transform["ramp_rad_per_px"]) * np.exp(1j * transform["phase_rad"])


def move_support(support: np.ndarray, transform: dict[str, Any]) -> np.ndarray:
    """Move a support with the twin flip and the whole-pixel part of a registration.

    Parameters
    ----------
    support : numpy.ndarray, bool, shape S, in the comparison frame
    transform : dict
        As for :func:`apply_transform` (only ``twin`` and ``shift_px`` matter).

    Returns
    -------
    numpy.ndarray, bool, shape S
        The support flipped about the centre (twin) and rolled by the rounded
        shift.
    """
    moved = np.asarray(support, dtype=bool)
    if transform["twin"]:
        moved = twin(moved.astype(np.float64)).real > 0.5
    shift = [int(round(s)) for s in transform["shift_px"]]
    return np.roll(moved, shift, axis=tuple(range(moved.ndim)))


def match_to_reference(obj: np.ndarray, reference: np.ndarray, support: np.ndarray | None = None,
                       *, transform: dict[str, Any] | None = None) -> np.ndarray:
    """Move ``obj`` onto ``reference`` through the trivial symmetries.

    Twin, sub-pixel shift, linear phase ramp and global phase are found by
    :func:`cdi_dip.align.compare_objects` and applied with
    :func:`apply_transform`; the scale is left alone, so amplitudes of
    members that fit the same data stay comparable.

    Parameters
    ----------
    obj : numpy.ndarray, complex, 2D or 3D, centred
    reference : numpy.ndarray, complex, same number of dimensions, centred
        The two may differ in shape: the registration runs in the frame of the
        larger size per axis, and the result is centre-cropped (or padded) to
        the reference's shape.
    support : numpy.ndarray, bool, shape of ``reference``, optional
        Register on these pixels of the reference only.
    transform : dict, optional
        A ``compare_objects`` result already computed for this pair (saves
        the registration).

    Returns
    -------
    numpy.ndarray, shape of ``reference``
        complex64 when ``obj`` is complex64, else complex128.

    Raises
    ------
    InvalidInputError
        As :func:`cdi_dip.align.compare_objects` (dimensions, NaN, zero reference).
    """
    array = np.asarray(obj)
    if transform is None:
        transform = compare_objects(array, reference, support=support)
    frame = _comparison_shape(array.shape, np.shape(reference))
    matched = pad_or_crop(apply_transform(pad_or_crop(_complex(array), frame), transform), np.shape(reference))
    return matched.astype(np.complex64) if array.dtype == np.complex64 else matched


# -- ensemble statistics ---------------------------------------------------------------
@dataclass
class EnsembleResult:
    """An ensemble of reconstructions matched to its first (best) member.

    Attributes
    ----------
    objects : numpy.ndarray, complex64, shape (K, *S)
        The members, each moved onto member 0 (twin, shift, ramp, phase).
    supports : numpy.ndarray, bool, shape (K, *S)
        Their supports, moved with them (twin flip, rounded shift).
    mean : numpy.ndarray, complex64, shape S
        Mean of the matched members.
    amplitude_std : numpy.ndarray, float32, shape S
        Per-voxel standard deviation of ``|x_k|`` (``ddof=1``; zeros for K = 1).
    phase_std_rad : numpy.ndarray, float32, shape S
        Per-voxel standard deviation of ``angle(x_k * conj(mean))`` (the phase
        relative to the mean phase, wrapped to ``(-pi, pi]``), radians; NaN
        where ``|mean|`` is below :data:`SIGNIFICANT_AMPLITUDE` of its maximum.
    support_union, support_majority : numpy.ndarray, bool, shape S
        Voxels inside any member's support, and inside more than half of them.
    errors_to_reference : numpy.ndarray, float64, shape (K,)
        Symmetry-adjusted error of each member against member 0 (0 for itself).
    pairwise_errors : numpy.ndarray or None, float64, shape (K, K)
        ``[i, j]``: error of member ``i`` against member ``j`` as reference
        (see :func:`pairwise_errors`); None when not computed.
    members : tuple of int
        Indices (into the input sequence) of the members used.
    transforms : list of dict
        The ``compare_objects`` result that matched each member.
    """

    objects: np.ndarray
    supports: np.ndarray
    mean: np.ndarray
    amplitude_std: np.ndarray
    phase_std_rad: np.ndarray
    support_union: np.ndarray
    support_majority: np.ndarray
    errors_to_reference: np.ndarray
    pairwise_errors: np.ndarray | None = None
    members: tuple[int, ...] = ()
    transforms: list[dict[str, Any]] = field(default_factory=list)

    @property
    def size(self) -> int:
        """Number of members K."""
        return int(self.errors_to_reference.shape[0])

    def summary(self) -> dict[str, Any]:
        """Scalars worth a line in ``summary.json`` and the HTML report.

        Returns
        -------
        dict
            ``members`` (K), ``twins`` (members matched through the twin),
            ``mean_error_to_best`` and ``max_error_to_best`` (over members
            1..K-1; NaN for K = 1), ``mean_pairwise_error`` (off-diagonal, when
            computed), ``median_amplitude_std_rel`` (median of
            ``amplitude_std / max |mean|`` on the majority support) and
            ``median_phase_std_rad`` (median on the majority support).
        """
        others = self.errors_to_reference[1:]
        inside = self.support_majority
        peak = float(np.abs(self.mean).max()) if self.mean.size else 0.0
        phase = self.phase_std_rad[inside] if inside.any() else np.array([])
        phase = phase[np.isfinite(phase)]
        out: dict[str, Any] = {
            "members": self.size,
            "twins": int(sum(bool(t.get("twin")) for t in self.transforms)),
            "mean_error_to_best": float(others.mean()) if others.size else float("nan"),
            "max_error_to_best": float(others.max()) if others.size else float("nan"),
            "median_amplitude_std_rel": (float(np.median(self.amplitude_std[inside]) / peak)
                                         if inside.any() and peak > 0 else float("nan")),
            "median_phase_std_rad": float(np.median(phase)) if phase.size else float("nan"),
        }
        if self.pairwise_errors is not None and self.size > 1:
            off = ~np.eye(self.size, dtype=bool)
            out["mean_pairwise_error"] = float(self.pairwise_errors[off].mean())
        return out


def _stack(objects: Sequence[np.ndarray] | np.ndarray, name: str) -> np.ndarray:
    arrays = [np.asarray(o) for o in objects]
    if not arrays:
        raise InvalidInputError(f"no {name} given: pass at least one reconstruction")
    shape = arrays[0].shape
    if len(shape) not in (2, 3):
        raise InvalidInputError(f"{name}[0] has shape {shape}: give 2D or 3D arrays")
    for index, array in enumerate(arrays):
        if array.shape != shape:
            raise InvalidInputError(f"{name}[{index}] has shape {array.shape} but {name}[0] has {shape}: "
                                    "give members of one frame shape")
    return np.stack(arrays)


def _select(count: int, keep: int | Sequence[int] | None) -> tuple[int, ...]:
    if keep is None:
        return tuple(range(count))
    if isinstance(keep, (int, np.integer)):
        if not 1 <= int(keep) <= count:
            raise InvalidInputError(f"keep={keep}: choose between 1 and the number of members ({count})")
        return tuple(range(int(keep)))
    chosen = tuple(int(k) for k in keep)
    if not chosen or any(not 0 <= k < count for k in chosen) or len(set(chosen)) != len(chosen):
        raise InvalidInputError(f"keep={list(chosen)}: give distinct member indices in 0..{count - 1}")
    return chosen


def _phase_spread(matched: np.ndarray, mean: np.ndarray, level: float) -> np.ndarray:
    """Standard deviation of the phase relative to the mean phase, NaN where ``|mean|`` is weak."""
    amplitude = np.abs(mean)
    peak = amplitude.max()
    if matched.shape[0] < 2 or peak <= 0:
        spread = np.zeros(mean.shape)
    else:
        relative = np.angle(matched * np.conj(mean)[None])
        spread = relative.std(axis=0, ddof=1)
    return np.where(amplitude > level * peak, spread, np.nan)


def ensemble_statistics(objects: Sequence[np.ndarray] | np.ndarray, supports: Sequence[np.ndarray] | np.ndarray,
                        *, keep: int | Sequence[int] | None = None, pairwise: bool = True,
                        significant_amplitude: float = SIGNIFICANT_AMPLITUDE) -> EnsembleResult:
    """Match an ensemble of reconstructions to its first member and measure their spread.

    Parameters
    ----------
    objects : sequence of numpy.ndarray, complex, each shape S (2D or 3D)
        The members, best first (e.g. sorted by free-pixel likelihood); member
        0 is the reference frame (pass the aligned best result so that the
        maps line up with the written object).
    supports : sequence of numpy.ndarray, bool, each shape S
        Their supports.
    keep : int or sequence of int, optional
        An int ``k``: use the first ``k`` members; a sequence: use these
        indices (the first one becomes the reference). Default: all.
    pairwise : bool
        Also compute the K x K :func:`pairwise_errors` (K (K - 1) registrations).
    significant_amplitude : float
        Fraction of the maximum ``|mean|`` above which the phase spread is
        reported (NaN elsewhere: the phase of a near-zero mean is noise).

    Returns
    -------
    EnsembleResult

    Raises
    ------
    InvalidInputError
        No members, shapes that differ, supports that do not match, bad ``keep``.
    """
    stack = _stack(objects, "objects")
    masks = _stack(supports, "supports").astype(bool)
    if masks.shape != stack.shape:
        raise InvalidInputError(f"{masks.shape[0]} supports of shape {masks.shape[1:]} for {stack.shape[0]} "
                                f"objects of shape {stack.shape[1:]}: give one support per object, same shape")
    if not 0 <= significant_amplitude < 1:
        raise InvalidInputError(f"significant_amplitude={significant_amplitude}: choose a fraction in [0, 1)")
    members = _select(stack.shape[0], keep)
    reference = _complex(stack[members[0]])
    matched = [reference]
    moved = [masks[members[0]]]
    identity = {"error": 0.0, "twin": False, "shift_px": (0.0,) * reference.ndim,
                "ramp_rad_per_px": (0.0,) * reference.ndim, "phase_rad": 0.0, "scale": 1.0}
    transforms = [identity]
    for index in members[1:]:
        transform = compare_objects(stack[index], reference)
        matched.append(match_to_reference(_complex(stack[index]), reference, transform=transform))
        moved.append(move_support(masks[index], transform))
        transforms.append(transform)
        log.debug("member %d matched: error %.4f, twin %s", index, transform["error"], transform["twin"])
    matched_stack = np.stack(matched)
    mean = matched_stack.mean(axis=0)
    ddof = 1 if len(matched) > 1 else 0
    support_stack = np.stack(moved)
    return EnsembleResult(
        objects=matched_stack.astype(np.complex64),
        supports=support_stack,
        mean=mean.astype(np.complex64),
        amplitude_std=np.abs(matched_stack).std(axis=0, ddof=ddof).astype(np.float32),
        phase_std_rad=_phase_spread(matched_stack, mean, significant_amplitude).astype(np.float32),
        support_union=support_stack.any(axis=0),
        support_majority=support_stack.sum(axis=0) * 2 > len(members),
        errors_to_reference=np.array([t["error"] for t in transforms], dtype=np.float64),
        pairwise_errors=pairwise_errors(matched_stack) if pairwise and len(members) > 1 else None,
        members=members,
        transforms=transforms,
    )


def pairwise_errors(objects: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """Symmetry-adjusted error of every member against every other.

    Parameters
    ----------
    objects : sequence of numpy.ndarray, complex, 2D or 3D
        At least two objects of one dimensionality; shapes may differ (each
        pair is compared in the frame of the larger size per axis).

    Returns
    -------
    numpy.ndarray, float64, shape (K, K)
        ``[i, j]`` = :func:`cdi_dip.align.symmetry_adjusted_error` of member
        ``i`` with member ``j`` as the reference (not symmetric: the error is
        relative to the reference's norm); 0 on the diagonal.

    Raises
    ------
    InvalidInputError
        Fewer than two objects, or objects that :func:`compare_objects` refuses.
    """
    arrays = [np.asarray(o) for o in objects]
    if len(arrays) < 2:
        raise InvalidInputError(f"{len(arrays)} object(s) given: pairwise errors need at least two")
    count = len(arrays)
    errors = np.zeros((count, count))
    for i in range(count):
        for j in range(count):
            if i != j:
                errors[i, j] = compare_objects(arrays[i], arrays[j])["error"]
    return errors


# -- PRTF and resolution -----------------------------------------------------------------
def _check_prtf_inputs(objects: Sequence[np.ndarray] | np.ndarray, counts: np.ndarray,
                       valid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    stack = _stack(objects, "objects")
    counts = np.asarray(counts, dtype=np.float64)
    valid = np.asarray(valid, dtype=bool)
    if stack.shape[1:] != counts.shape or valid.shape != counts.shape:
        raise InvalidInputError(f"objects of shape {stack.shape[1:]}, counts {counts.shape} and valid {valid.shape} "
                                "differ: the PRTF needs objects in the detector frame (the full frame, not cropped)")
    return stack, counts, valid


def _frequency_radius(shape: Sequence[int], spacing: Sequence[float]) -> np.ndarray:
    """``|q|`` of every pixel of a centred spectrum, cycles per unit of ``spacing``."""
    ndim = len(shape)
    radius2 = np.zeros([1] * ndim)
    for axis, (n, step) in enumerate(zip(shape, spacing)):
        q = (np.arange(n, dtype=np.float64) - n // 2) / (n * step)
        radius2 = radius2 + (q**2).reshape([n if a == axis else 1 for a in range(ndim)])
    return np.sqrt(radius2)


def _check_spacing(spacing: Sequence[float] | None, ndim: int) -> tuple[float, ...]:
    if spacing is None:
        return (1.0,) * ndim
    values = tuple(float(s) for s in spacing)
    if len(values) != ndim or not all(np.isfinite(s) and s > 0 for s in values):
        raise InvalidInputError(f"spacing={list(values)}: give {ndim} positive pixel sizes, one per axis")
    return values


def _shell_ratio(numerator: np.ndarray, denominator: np.ndarray, use: np.ndarray,
                 spacing: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Shell sums ``sum num / sum den`` over the ``use`` pixels, shells out to the Nyquist sphere."""
    shape = numerator.shape
    radius = _frequency_radius(shape, spacing)
    width = max(1.0 / (n * step) for n, step in zip(shape, spacing))  # the coarsest frequency step
    nyquist = min(0.5 / step for step in spacing)  # the largest sphere inside the frame
    count = max(int(np.floor(nyquist / width + 1e-9)), 1)
    index = np.floor(radius / width + 1e-9).astype(np.int64)
    keep = use & (index < count)
    num = np.bincount(index[keep], weights=numerator[keep], minlength=count)
    den = np.bincount(index[keep], weights=denominator[keep], minlength=count)
    with np.errstate(invalid="ignore", divide="ignore"):
        values = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return (np.arange(count) + 0.5) * width, values


def _mean_amplitude(stack: np.ndarray, ramp_rad_per_px: Sequence[float] | None) -> np.ndarray:
    """``|<F(x_k exp(i g . (r - c)))>_k|`` on the centred detector grid."""
    total = np.zeros(stack.shape[1:], dtype=np.complex128)
    for obj in stack:
        obj = _complex(obj)
        if ramp_rad_per_px is not None:
            obj = _apply_ramp(obj, ramp_rad_per_px)
        total += _centred_fft(obj)
    return np.abs(total / stack.shape[0])


def prtf(objects_matched: Sequence[np.ndarray] | np.ndarray, counts: np.ndarray, valid: np.ndarray, *,
         ramp_rad_per_px: Sequence[float] | None = None,
         spacing: Sequence[float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Phase-retrieval transfer function of an ensemble, averaged in shells of ``|q|``.

    ``PRTF(q) = sum_shell |<F(x_k)>_k| / sum_shell sqrt(I)``: the ratio of
    the mean complex far field of the members to the measured amplitude,
    summed over the valid pixels with ``I > 0`` of each circular (2D) or
    spherical (3D) shell. (The sum ratio is the amplitude-weighted mean of the
    per-pixel ratio: faint, shot-noise-dominated pixels do not blow it up.)
    Members that agree in phase give 1 where they fit the data; where their
    phases are random it falls to about ``1/sqrt(K)``.

    The members must be phase-aligned *in reciprocal space too*: matching them
    in real space (:func:`ensemble_statistics`) removes relative shifts
    (reciprocal-space phase ramps), twins and global phases. They must also
    sit in the *same reciprocal frame as the counts*: a real-space phase ramp
    moves the far field, so members whose ramp was removed by
    :func:`cdi_dip.align.align_object` (a Bragg peak off the frame centre) must
    get it back: pass the removed ramp (``AlignInfo.ramp_rad_per_px``) as
    ``ramp_rad_per_px``. A real-space shift only changes far-field phases, the
    same for every matched member, so it needs nothing.

    Parameters
    ----------
    objects_matched : sequence of numpy.ndarray, complex, each shape S (2D or 3D)
        Matched members in the full detector frame (unitary, centred FFT
        convention of :class:`cdi_dip.physics.FarField`).
    counts : numpy.ndarray, real, shape S
        Measured intensities (photons).
    valid : numpy.ndarray, bool, shape S
        True where a pixel was measured; excluded pixels never count.
    ramp_rad_per_px : sequence of float, optional
        Ramp multiplied back into every member, ``x exp(i g . (r - c))``.
    spacing : sequence of float, optional
        Object pixel size per axis. Default 1: frequencies in cycles per
        pixel; with sizes in metres, cycles per metre.

    Returns
    -------
    shell_freq : numpy.ndarray, float64, shape (M,)
        Centre of each shell (cycles per pixel, or per unit of ``spacing``);
        shells are as wide as the coarsest frequency step and reach the
        largest sphere inside the frame (0.5 cycles/px without ``spacing``).
    prtf_values : numpy.ndarray, float64, shape (M,)
        The PRTF per shell; NaN for shells without usable pixels.
    """
    stack, counts, valid = _check_prtf_inputs(objects_matched, counts, valid)
    spacing_values = _check_spacing(spacing, counts.ndim)
    if ramp_rad_per_px is not None and len(ramp_rad_per_px) != counts.ndim:
        raise InvalidInputError(f"ramp_rad_per_px has {len(ramp_rad_per_px)} values for {counts.ndim}D objects")
    use = valid & (counts > 0) & np.isfinite(counts)
    return _shell_ratio(_mean_amplitude(stack, ramp_rad_per_px), np.sqrt(np.where(use, counts, 0.0)), use,
                        spacing_values)


def resolution_from_prtf(freq: np.ndarray, values: np.ndarray, threshold: float = PRTF_THRESHOLD) -> float | None:
    """Half-period resolution ``1 / (2 q)`` where the PRTF first falls below ``threshold``.

    The crossing frequency ``q`` is linearly interpolated between the last
    shell at or above the threshold and the first below it (shells without
    data, NaN, are skipped).

    Parameters
    ----------
    freq : numpy.ndarray, shape (M,)
        Shell frequencies, increasing (cycles per pixel, or per metre).
    values : numpy.ndarray, shape (M,)
        PRTF per shell.
    threshold : float
        Criterion, ``1/e`` by default.

    Returns
    -------
    float or None
        The resolution in pixels (or metres, as ``freq``); None when the PRTF
        never falls below the threshold (the resolution is then limited by the
        detector edge, at best ``1 / (2 freq[-1])``) or there are no data.
    """
    freq = np.asarray(freq, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    if freq.shape != values.shape or freq.ndim != 1:
        raise InvalidInputError(f"freq {freq.shape} and values {values.shape}: give two 1D arrays of equal length")
    finite = np.isfinite(values) & np.isfinite(freq)
    q, v = freq[finite], values[finite]
    below = np.flatnonzero(v < threshold)
    if below.size == 0:
        return None
    j = int(below[0])
    if j == 0:
        crossing = q[0]
    else:
        crossing = q[j - 1] + (v[j - 1] - threshold) * (q[j] - q[j - 1]) / (v[j - 1] - v[j])
    return float(1.0 / (2.0 * crossing)) if crossing > 0 else None


def object_pixel_size_m(meta: ScanMeta | None, shape: Sequence[int]) -> tuple[float, ...] | None:
    """Object-plane pixel size per axis from the far-field geometry.

    ``dx_a = wavelength * distance / (N_a * detector_pixel_a)`` for the two
    detector axes of a 2D (forward CDI) frame of shape ``(N_y, N_x)``.

    Parameters
    ----------
    meta : ScanMeta or None
    shape : sequence of int
        Frame shape (after preprocessing; the frame is not binned).

    Returns
    -------
    tuple of float or None
        ``(dy_m, dx_m)`` in metres, or None when the geometry is incomplete
        or the frame is 3D: in Bragg CDI the first axis is a rocking angle,
        whose voxel size needs the angular step and the Bragg angle, which
        :class:`~cdi_dip.types.ScanMeta` does not hold.
    """
    if meta is None or len(shape) != 2:
        return None
    if meta.wavelength_m is None or meta.distance_m is None or meta.pixel_size_m is None:
        return None
    return tuple(meta.wavelength_m * meta.distance_m / (int(n) * float(p)) for n, p in zip(shape, meta.pixel_size_m))


@dataclass
class PrtfResult:
    """A PRTF curve and the resolution it gives.

    Attributes
    ----------
    frequency_per_px : numpy.ndarray, float64, shape (M,)
        Shell centres, cycles per object pixel.
    values : numpy.ndarray, float64, shape (M,)
        PRTF per shell (NaN where a shell has no usable pixel).
    threshold : float
        The criterion used (``1/e``).
    resolution_px : float or None
        Half-period resolution in object pixels (None: never below threshold).
    resolution_m : float or None
        The same in metres, when the geometry is known (2D), computed with
        shells in physical frequency (exact for non-square pixels).
    members : int
        Runs in the ensemble (0: unknown). Members with random phases give a
        PRTF of about ``1/sqrt(members)``, so the ``1/e`` criterion needs at
        least 8 of them (:attr:`criterion_reachable`).
    """

    frequency_per_px: np.ndarray
    values: np.ndarray
    threshold: float = PRTF_THRESHOLD
    resolution_px: float | None = None
    resolution_m: float | None = None
    members: int = 0

    @property
    def random_phase_floor(self) -> float:
        """The PRTF of members whose phases are random, ``1/sqrt(members)`` (NaN when unknown)."""
        return 1.0 / np.sqrt(self.members) if self.members > 0 else float("nan")

    @property
    def criterion_reachable(self) -> bool:
        """Whether members disagreeing at random could bring the PRTF below the threshold."""
        return not self.members or self.random_phase_floor < self.threshold

    def summary(self) -> dict[str, Any]:
        """``resolution_px``, ``resolution_nm`` (None when unknown), the criterion, and the members."""
        out = {"resolution_px": self.resolution_px,
               "resolution_nm": None if self.resolution_m is None else self.resolution_m * 1e9,
               "criterion": f"PRTF < {self.threshold:.3f}", "members": self.members}
        if not self.criterion_reachable:
            out["note"] = (f"{self.members} runs: a PRTF of random phases is {self.random_phase_floor:.2f}, above the "
                           "criterion; keep at least 8 runs (--runs 16 --keep 8) for a resolution")
        return out


def compute_prtf(objects_matched: Sequence[np.ndarray] | np.ndarray, counts: np.ndarray, valid: np.ndarray, *,
                 ramp_rad_per_px: Sequence[float] | None = None, meta: ScanMeta | None = None,
                 threshold: float = PRTF_THRESHOLD) -> PrtfResult:
    """PRTF and resolution of an ensemble, in pixels and (2D, known geometry) metres.

    Parameters are as for :func:`prtf`; ``meta`` gives the geometry
    (:func:`object_pixel_size_m`).

    Returns
    -------
    PrtfResult
    """
    freq, values = prtf(objects_matched, counts, valid, ramp_rad_per_px=ramp_rad_per_px)
    result = PrtfResult(freq, values, threshold, resolution_from_prtf(freq, values, threshold),
                        members=len(objects_matched))
    pixel = object_pixel_size_m(meta, np.shape(counts))
    if pixel is not None:
        freq_m, values_m = prtf(objects_matched, counts, valid, ramp_rad_per_px=ramp_rad_per_px, spacing=pixel)
        result.resolution_m = resolution_from_prtf(freq_m, values_m, threshold)
    return result


# -- storage --------------------------------------------------------------------------------
def ensemble_datasets(ensemble: EnsembleResult) -> dict[str, np.ndarray]:
    """The arrays of an ensemble worth storing, by the names of :data:`ENSEMBLE_DATASETS`.

    Supports become uint8 (1 = inside); a missing pairwise matrix is left out.
    """
    data = {
        "mean": ensemble.mean.astype(np.complex64),
        "amplitude_std": ensemble.amplitude_std.astype(np.float32),
        "phase_std_rad": ensemble.phase_std_rad.astype(np.float32),
        "support_union": ensemble.support_union.astype(np.uint8),
        "support_majority": ensemble.support_majority.astype(np.uint8),
        "errors_to_reference": ensemble.errors_to_reference.astype(np.float64),
        "twin": np.array([bool(t.get("twin")) for t in ensemble.transforms], dtype=np.uint8),
    }
    if ensemble.pairwise_errors is not None:
        data["pairwise_errors"] = ensemble.pairwise_errors.astype(np.float64)
    return data


def ensemble_from_datasets(data: dict[str, Any]) -> EnsembleResult:
    """Inverse of :func:`ensemble_datasets`, without the members themselves.

    ``objects`` and ``supports`` come back empty (shape ``(0, *S)``): only the
    maps, supports, errors and twin flags are stored.
    """
    mean = np.asarray(data["mean"]).astype(np.complex64)
    errors = np.asarray(data["errors_to_reference"], dtype=np.float64).reshape(-1)
    twins = np.asarray(data.get("twin", np.zeros(errors.shape)), dtype=bool).reshape(-1)
    pairwise = data.get("pairwise_errors")
    return EnsembleResult(
        objects=np.zeros((0, *mean.shape), dtype=np.complex64),
        supports=np.zeros((0, *mean.shape), dtype=bool),
        mean=mean,
        amplitude_std=np.asarray(data["amplitude_std"], dtype=np.float32),
        phase_std_rad=np.asarray(data["phase_std_rad"], dtype=np.float32),
        support_union=np.asarray(data["support_union"]).astype(bool),
        support_majority=np.asarray(data["support_majority"]).astype(bool),
        errors_to_reference=errors,
        pairwise_errors=None if pairwise is None else np.asarray(pairwise, dtype=np.float64),
        members=tuple(range(errors.size)),
        transforms=[{"twin": bool(t), "error": float(e)} for t, e in zip(twins, errors)],
    )


def prtf_datasets(result: PrtfResult) -> dict[str, np.ndarray]:
    """The arrays of a PRTF by the names of :data:`PRTF_DATASETS` (unknown resolutions as NaN)."""
    def number(value: float | None) -> np.ndarray:
        return np.float64(np.nan if value is None else value)

    return {"frequency_per_px": np.asarray(result.frequency_per_px, dtype=np.float64),
            "values": np.asarray(result.values, dtype=np.float64),
            "threshold": np.float64(result.threshold),
            "resolution_px": number(result.resolution_px),
            "resolution_m": number(result.resolution_m),
            "members": np.int64(result.members)}


def prtf_from_datasets(data: dict[str, Any]) -> PrtfResult:
    """Inverse of :func:`prtf_datasets` (NaN resolutions become None)."""
    def number(value: Any) -> float | None:
        value = float(np.asarray(value))
        return value if np.isfinite(value) else None

    return PrtfResult(np.asarray(data["frequency_per_px"], dtype=np.float64),
                      np.asarray(data["values"], dtype=np.float64),
                      float(np.asarray(data.get("threshold", PRTF_THRESHOLD))),
                      number(data.get("resolution_px", np.nan)), number(data.get("resolution_m", np.nan)),
                      int(np.asarray(data.get("members", 0))))
