"""Generations of projection runs bred with the best one (guided HIO).

A projection run lands in the truth's basin from some random starts and not
from others. Guided HIO (Chen et al. 2007), the genetic algorithm of cohere,
shares what the runs found: after a generation of runs, every run is aligned
to the best one (twin, sub-pixel shift and global phase: the symmetries that
leave its far field unchanged) and bred with it, amplitude
``sqrt(|best| |run|)`` and the phase of the mean of their phasors; the next
generation starts from the children, with the best run's support as the first
support and shrinkwrap on. The best run bred with itself is itself, so every
generation continues from the best object found so far.

References
----------
C.-C. Chen, J. Miao, C. W. Wang, T. K. Lee, "Application of optimization
technique to noncrystalline x-ray diffraction microscopy: guided hybrid
input-output method", Phys. Rev. B 76, 064113 (2007).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .ensemble.align import subpixel_shift, twin
from .ensemble.register import compare_objects
from .solvers.init import StartFrom

def aligned_to(obj: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``obj`` moved onto ``reference`` by the symmetries that leave its far field unchanged.

    Parameters
    ----------
    obj, reference : numpy.ndarray, complex, shape S (2D or 3D), centred

    Returns
    -------
    numpy.ndarray, complex128, shape S
        ``obj`` or its twin, shifted by a sub-pixel amount and multiplied by
        the global phase that best match ``reference``; no phase ramp (a ramp
        would move the far field).
    """
    match = compare_objects(obj, reference, ramp=False)
    moved = twin(obj) if match.twin else np.asarray(obj)
    return subpixel_shift(moved, match.shift_px) * np.exp(1j * match.phase_rad)


def bred(best: np.ndarray, other: np.ndarray) -> np.ndarray:
    """The child of the best run and another: amplitude ``sqrt(|best| |other|)``, phase of their mean phasor.

    Parameters
    ----------
    best : numpy.ndarray, complex, shape S, centred
    other : numpy.ndarray, complex, shape S, centred
        Already aligned to ``best`` (:func:`aligned_to`).

    Returns
    -------
    numpy.ndarray, complex64, shape S
        Zero where either parent is zero.
    """
    amplitude = np.sqrt(np.abs(best) * np.abs(other))
    phasor = _unit(best) + _unit(other)
    return (amplitude * _unit(phasor)).astype(np.complex64)


def _unit(values: np.ndarray) -> np.ndarray:
    """``values / |values|``, 0 where ``values`` is 0."""
    magnitude = np.abs(values)
    return np.divide(values, magnitude, out=np.zeros_like(values, dtype=np.complex128), where=magnitude > 0)


class BredStart(StartFrom):
    """Start a run from a child of the best run (:func:`bred`), on the best run's support.

    Unlike a previous result (:class:`cdi_dip.previous_result.ResultStart`) the support is not held:
    shrinkwrap goes on from it.

    Parameters
    ----------
    obj : numpy.ndarray, complex, frame shape, centred
        The child.
    support : numpy.ndarray, bool, frame shape, centred
        The best run's support.
    """

    support_origin = "best run of the previous generation"


def next_generation(objects: Sequence[np.ndarray], best_support: np.ndarray) -> list[BredStart]:
    """The starts of the next generation: every run's object bred with the best (the first).

    Parameters
    ----------
    objects : sequence of numpy.ndarray, complex, frame shape, centred
        The runs' objects, best first.
    best_support : numpy.ndarray, bool, frame shape, centred

    Returns
    -------
    list of BredStart
        One per object, in order; the first starts from the best object itself.
    """
    best = np.asarray(objects[0])
    starts = [BredStart(best, best_support)]
    for obj in objects[1:]:
        starts.append(BredStart(bred(best, aligned_to(obj, best)), best_support))
    return starts


__all__ = ["BredStart", "aligned_to", "bred", "next_generation"]
