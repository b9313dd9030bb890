"""Ensembles of reconstructions: matching onto one reference, averaging and spread maps.

Several random starts of a phase-retrieval run give objects that agree only up
to the trivial symmetries (global phase, shift, twin, phase ramp). This module
brings them into one frame and measures how much they agree:

- :func:`match_to_reference` moves one object onto a reference with exactly
  the transform :func:`cdi_dip.ensemble.register.compare_objects` finds
  (:func:`apply_transform`, :func:`move_support`);
- :func:`ensemble_statistics` matches every member to the first (the best)
  one and returns the mean object, per-voxel standard deviations of amplitude
  and phase, union and majority supports and the pairwise error matrix
  (:class:`EnsembleResult`); :func:`ensemble_datasets` and
  :func:`ensemble_from_datasets` convert it to and from stored arrays.

Everything runs on the host in NumPy (float64/complex128 internally). Arrays
are centred: the origin of every axis is at index ``n // 2``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InvalidInputError
from .align import pad_or_crop, twin
from .fourier import apply_ramp, centred_fft, centred_ifft, shift_spectrum
from .register import Comparison, compare_objects, pairwise_errors

log = logging.getLogger(__name__)

SIGNIFICANT_AMPLITUDE = 0.1
"""Fraction of the maximum mean amplitude above which a phase spread is reported."""

ENSEMBLE_DATASETS = ("mean", "amplitude_std", "phase_std_rad", "support_union", "support_majority",
                     "errors_to_reference", "twin", "pairwise_errors")
"""Names under which :func:`ensemble_datasets` stores an ensemble (e.g. in a result CXI)."""


def _complex(array: Any) -> np.ndarray:
    return np.asarray(array).astype(np.complex128, copy=False)


def _comparison_shape(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...]:
    """The frame :func:`compare_objects` works in: the larger size per axis."""
    return tuple(max(m, n) for m, n in zip(a, b))


def apply_transform(obj: np.ndarray, transform: Comparison) -> np.ndarray:
    """Apply a registration found by :func:`~cdi_dip.ensemble.register.compare_objects`.

    ``T(x) = exp(i phase) * exp(i g . (r - c)) * x'(r - s)`` with ``x'`` either
    ``x`` or its twin ``conj(x(-r))``, the sub-pixel shift ``s`` applied as a
    linear phase on the centred spectrum (as ``compare_objects`` does). The
    scale factor is *not* applied.

    Parameters
    ----------
    obj : numpy.ndarray, complex, shape S (2D or 3D), centred
        Already in the comparison frame (see :func:`match_to_reference`).
    transform : Comparison
        As returned by ``compare_objects``: ``twin``, ``shift_px`` (px),
        ``ramp_rad_per_px`` (rad/px, one value per axis) and ``phase_rad`` (rad)
        are applied.

    Returns
    -------
    numpy.ndarray, complex128, shape S
    """
    x = _complex(obj)
    if transform.twin:
        x = twin(x)
    moved = centred_ifft(shift_spectrum(centred_fft(x), transform.shift_px))
    return apply_ramp(moved, transform.ramp_rad_per_px) * np.exp(1j * transform.phase_rad)


def move_support(support: np.ndarray, transform: Comparison) -> np.ndarray:
    """Move a support with the twin flip and the whole-pixel part of a registration.

    Parameters
    ----------
    support : numpy.ndarray, bool, shape S, in the comparison frame
    transform : Comparison
        As for :func:`apply_transform` (only ``twin`` and ``shift_px`` matter).

    Returns
    -------
    numpy.ndarray, bool, shape S
        The support flipped about the centre (twin) and rolled by the rounded
        shift.
    """
    moved = np.asarray(support, dtype=bool)
    if transform.twin:
        moved = twin(moved.astype(np.float64)).real > 0.5
    shift = [int(round(s)) for s in transform.shift_px]
    return np.roll(moved, shift, axis=tuple(range(moved.ndim)))


def match_to_reference(obj: np.ndarray, reference: np.ndarray, support: np.ndarray | None = None,
                       *, transform: Comparison | None = None) -> np.ndarray:
    """Move ``obj`` onto ``reference`` through the trivial symmetries.

    Twin, sub-pixel shift, linear phase ramp and global phase are found by
    :func:`~cdi_dip.ensemble.register.compare_objects` and applied with
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
    transform : Comparison, optional
        A ``compare_objects`` result already computed for this pair (saves
        the registration).

    Returns
    -------
    numpy.ndarray, shape of ``reference``
        complex64 when ``obj`` is complex64, else complex128.

    Raises
    ------
    InvalidInputError
        As :func:`~cdi_dip.ensemble.register.compare_objects` (dimensions, NaN, zero reference).
    """
    array = np.asarray(obj)
    if transform is None:
        transform = compare_objects(array, reference, support=support)
    frame = _comparison_shape(array.shape, np.shape(reference))
    matched = pad_or_crop(apply_transform(pad_or_crop(_complex(array), frame), transform), np.shape(reference))
    return matched.astype(np.complex64) if array.dtype == np.complex64 else matched


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
    transforms : list of Comparison
        The ``compare_objects`` result that matched each member
        (:meth:`Comparison.identity` for member 0). From stored datasets
        (:func:`ensemble_from_datasets`) only ``error`` and ``twin`` are known;
        the other fields are NaN.
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
    transforms: list[Comparison] = field(default_factory=list)

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
            "twins": int(sum(bool(t.twin) for t in self.transforms)),
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


def stack_members(objects: Sequence[np.ndarray] | np.ndarray, name: str) -> np.ndarray:
    """The members of an ensemble as one array, checked.

    Parameters
    ----------
    objects : sequence of numpy.ndarray, each shape S (2D or 3D), or an array of shape (K, *S)
    name : str
        What they are, for the error messages (``"objects"``, ``"supports"``).

    Returns
    -------
    numpy.ndarray, shape (K, *S), the common dtype of the members

    Raises
    ------
    InvalidInputError
        No members, members that are not 2D or 3D, or shapes that differ.
    """
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
    stack = stack_members(objects, "objects")
    masks = stack_members(supports, "supports").astype(bool)
    if masks.shape != stack.shape:
        raise InvalidInputError(f"{masks.shape[0]} supports of shape {masks.shape[1:]} for {stack.shape[0]} "
                                f"objects of shape {stack.shape[1:]}: give one support per object, same shape")
    if not 0 <= significant_amplitude < 1:
        raise InvalidInputError(f"significant_amplitude={significant_amplitude}: choose a fraction in [0, 1)")
    members = _select(stack.shape[0], keep)
    reference = _complex(stack[members[0]])
    matched = [reference]
    moved = [masks[members[0]]]
    transforms = [Comparison.identity(reference.ndim)]
    for index in members[1:]:
        transform = compare_objects(stack[index], reference)
        matched.append(match_to_reference(_complex(stack[index]), reference, transform=transform))
        moved.append(move_support(masks[index], transform))
        transforms.append(transform)
        log.debug("member %d matched: error %.4f, twin %s", index, transform.error, transform.twin)
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
        errors_to_reference=np.array([t.error for t in transforms], dtype=np.float64),
        pairwise_errors=pairwise_errors(matched_stack) if pairwise and len(members) > 1 else None,
        members=members,
        transforms=transforms,
    )


def ensemble_datasets(ensemble: EnsembleResult) -> dict[str, np.ndarray]:
    """The arrays of an ensemble worth storing, by the names of :data:`ENSEMBLE_DATASETS`.

    Parameters
    ----------
    ensemble : EnsembleResult

    Returns
    -------
    dict of str to numpy.ndarray
        ``mean`` (complex64, S), ``amplitude_std`` and ``phase_std_rad``
        (float32, S; radians), ``support_union`` and ``support_majority``
        (uint8, S; 1 = inside), ``errors_to_reference`` (float64, (K,)),
        ``twin`` (uint8, (K,)) and, when computed, ``pairwise_errors``
        (float64, (K, K)).
    """
    data = {
        "mean": ensemble.mean.astype(np.complex64),
        "amplitude_std": ensemble.amplitude_std.astype(np.float32),
        "phase_std_rad": ensemble.phase_std_rad.astype(np.float32),
        "support_union": ensemble.support_union.astype(np.uint8),
        "support_majority": ensemble.support_majority.astype(np.uint8),
        "errors_to_reference": ensemble.errors_to_reference.astype(np.float64),
        "twin": np.array([bool(t.twin) for t in ensemble.transforms], dtype=np.uint8),
    }
    if ensemble.pairwise_errors is not None:
        data["pairwise_errors"] = ensemble.pairwise_errors.astype(np.float64)
    return data


def _stored_comparison(error: float, is_twin: bool, ndim: int) -> Comparison:
    """What the stored datasets keep of a comparison: the error and the twin flag (the rest NaN)."""
    unknown = float("nan")
    return Comparison(error=error, twin=is_twin, shift_px=(unknown,) * ndim, ramp_rad_per_px=(unknown,) * ndim,
                      phase_rad=unknown, scale=unknown, phase_error_rad=unknown)


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
        transforms=[_stored_comparison(float(e), bool(t), mean.ndim) for t, e in zip(twins, errors)],
    )
