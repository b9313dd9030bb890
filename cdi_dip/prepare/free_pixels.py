"""Held-out ("free") pixels for validation, in small separated islands.

A free pixel must not be predictable from the fitted ones: at an oversampling
of 2 the intensity is correlated over about 2 pixels, so a lone free pixel
between fitted neighbours would be interpolated by any solver. Free pixels are
therefore taken in small cubes (islands) of ``island_px`` pixels per side,
separated from each other by at least one fitted pixel, and only where every
pixel of the island is valid, so that the held-out fraction is a fraction of
the *valid* pixels whatever the mask (beamstop, gaps) removes.
"""

from __future__ import annotations

import itertools
import logging

import numpy as np

from ..errors import InvalidInputError

log = logging.getLogger(__name__)


def _island_origins(shape: tuple[int, ...], island_px: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Per axis, the first index of every island slot of a grid of pitch ``island_px + 1``.

    The grid starts at a random offset so that different seeds use different
    pixels.
    """
    pitch = island_px + 1
    origins = []
    for n in shape:
        offset = int(rng.integers(0, pitch))
        origins.append(np.arange(offset, n - island_px + 1, pitch))
    return origins


def select_free_islands(
    valid: np.ndarray,
    fraction: float = 0.05,
    island_px: int = 2,
    rng: np.random.Generator | None = None,
    *,
    exclude_centre_px: int = 3,
) -> np.ndarray:
    """Choose about ``fraction`` of the valid pixels as free pixels, in islands.

    Island slots tile the array on a grid of pitch ``island_px + 1`` (so two
    islands never touch, not even at a corner); the slots that are wholly
    valid and keep clear of the ``exclude_centre_px`` pixels around the
    centre ``n // 2`` (the zero frequency, which carries most of the signal)
    are candidates, and ``round(fraction * n_valid / island_px**ndim)`` of
    them are drawn at random. When the mask leaves too few candidates, all of
    them are used and a warning is logged.

    Parameters
    ----------
    valid : numpy.ndarray of bool, shape (ny, nx) or (nz, ny, nx)
        True = usable pixel.
    fraction : float
        Target fraction of the valid pixels to hold out, in [0, 0.5]; 0
        selects none.
    island_px : int
        Side of an island, pixels (1 gives single pixels on a sparse grid).
    rng : numpy.random.Generator
        Source of the random choice (required: the caller owns the seed).
    exclude_centre_px : int
        Radius around the array centre kept out of every island, pixels.

    Returns
    -------
    numpy.ndarray of bool, same shape
        True on free pixels (a subset of ``valid``).

    Raises
    ------
    InvalidInputError
        For a fraction outside [0, 0.5], an island side below 1, or no ``rng``.
    """
    valid = np.asarray(valid, dtype=bool)
    if not 0 <= fraction <= 0.5:
        raise InvalidInputError(f"free fraction {fraction}: must be between 0 and 0.5")
    if island_px < 1:
        raise InvalidInputError(f"free island side {island_px}: must be at least 1 pixel")
    if rng is None:
        raise InvalidInputError("select_free_islands needs a numpy Generator (rng=np.random.default_rng(seed))")
    free = np.zeros(valid.shape, dtype=bool)
    n_valid = int(valid.sum())
    wanted = int(round(fraction * n_valid / island_px**valid.ndim))
    if wanted == 0:
        return free
    origins = _island_origins(valid.shape, island_px, rng)
    if any(o.size == 0 for o in origins):
        return free
    grid = np.ix_(*origins)
    candidate = np.ones([o.size for o in origins], dtype=bool)
    grids = np.indices(valid.shape, sparse=True)
    outside_centre = sum((g - n // 2) ** 2 for g, n in zip(grids, valid.shape)) > exclude_centre_px**2
    usable = valid & outside_centre
    for step in itertools.product(range(island_px), repeat=valid.ndim):
        candidate &= usable[tuple(g + s for g, s in zip(grid, step))]
    slots = np.flatnonzero(candidate)
    if slots.size < wanted:
        log.warning("only %d free islands fit the valid pixels (%d wanted): %.3f of the valid pixels are free",
                    slots.size, wanted, slots.size * island_px**valid.ndim / max(n_valid, 1))
        wanted = slots.size
    chosen = np.unravel_index(rng.choice(slots, size=wanted, replace=False), candidate.shape)
    starts = [o[c] for o, c in zip(origins, chosen)]
    for step in itertools.product(range(island_px), repeat=valid.ndim):
        free[tuple(s + t for s, t in zip(starts, step))] = True
    return free
