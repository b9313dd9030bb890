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
  (:class:`~cdi_dip.types.EnsembleResult`, plain data in :mod:`cdi_dip.types`;
  :mod:`cdi_dip.io.result_cxi` stores it).

Everything runs on the host in NumPy (float64/complex128 internally). Arrays
are centred: the origin of every axis is at index ``n // 2``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import InvalidInputError
from ..types import EnsembleResult
from .align import pad_or_crop, twin
from .fourier import apply_ramp, centred_fft, centred_ifft, shift_spectrum
from .register import Comparison, compare_objects, pairwise_errors

log = logging.getLogger(__name__)

SIGNIFICANT_AMPLITUDE = 0.1
"""Fraction of the maximum mean amplitude above which a phase spread is reported."""

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
