"""Specimen families of the evaluation corpus (forward CDI ground truths): non-negative, sharp-edged.

Each family is a function ``(shape, rng, **params) -> complex64 array`` whose
imaginary part is zero and whose real part (a density, arbitrary units) is
>= 0, centred in the frame:

- :func:`membrane_cell`: :func:`cdi_dip.simulate.cell_specimen` (body,
  nucleus, nucleolus, granules, texture) with a dense membrane, 2D and 3D;
- :func:`lithography_pattern`: a binary test pattern (bars, blocks, letters,
  frames between corner marks), 2D;
- :func:`porous_particle`: thresholded smooth noise inside a smooth particle
  with a solid skin, 2D and 3D.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._ndimage import dilate
from ..errors import InvalidInputError
from ..simulate import _check_shape, _edge, _smooth_noise, cell_specimen
from .shapes import blob_level, check_oversampling, fit_outline, half_extents_px

CELL_FILL = 0.4
"""Extent of :func:`cdi_dip.simulate.cell_specimen`'s body over its frame at ``size_fraction=0.5`` (about
0.8 of the half-frame box): the sub-frame a cell is drawn on is its requested extent over this."""

GLYPHS = {
    "C": (".###.", "#...#", "#....", "#....", "#....", "#...#", ".###."),
    "D": ("####.", "#...#", "#...#", "#...#", "#...#", "#...#", "####."),
    "E": ("#####", "#....", "#....", "####.", "#....", "#....", "#####"),
    "F": ("#####", "#....", "#....", "####.", "#....", "#....", "#...."),
    "H": ("#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"),
    "I": ("#####", "..#..", "..#..", "..#..", "..#..", "..#..", "#####"),
    "L": ("#....", "#....", "#....", "#....", "#....", "#....", "#####"),
    "P": ("####.", "#...#", "#...#", "####.", "#....", "#....", "#...."),
    "T": ("#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."),
    "X": ("#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#"),
}
"""5 x 7 bitmaps of the letters a lithographic pattern may hold (``#`` = material)."""

TILE_KINDS = ("bars", "blocks", "letters", "frame")
"""What one tile of a lithographic pattern holds."""


def _embed_centred(patch: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``patch`` in a zero frame of ``shape``, its centre at ``n // 2`` (cropped where larger than the frame)."""
    out = np.zeros(shape, dtype=patch.dtype)
    source, target = [], []
    for m, n in zip(patch.shape, shape):
        size = min(m, n)
        start_patch = (m - size) // 2
        start_frame = n // 2 - size // 2
        source.append(slice(start_patch, start_patch + size))
        target.append(slice(start_frame, start_frame + size))
    out[tuple(target)] = patch[tuple(source)]
    return out


def _crop_to_content(array: np.ndarray) -> np.ndarray:
    """The bounding box of the nonzero values of ``array``."""
    nonzero = np.nonzero(array)
    return array[tuple(slice(int(i.min()), int(i.max()) + 1) for i in nonzero)]


def membrane_cell(shape: Sequence[int], rng: np.random.Generator, *, oversampling: Sequence[float],
                  membrane_px: int = 1, membrane_density: float = 0.4) -> np.ndarray:
    """A cell with a membrane and organelles (:func:`cdi_dip.simulate.cell_specimen`, real part).

    The cell is drawn on a sub-frame of about ``extent / CELL_FILL`` pixels,
    cropped to its content and centred in the frame; its extent is the
    requested one to within about 15% (the body is a random ellipse), so a
    case records the oversampling it measures.

    Parameters
    ----------
    shape : sequence of int
        Frame shape, ``(ny, nx)`` or ``(nz, ny, nx)``.
    rng : numpy.random.Generator
    oversampling : sequence of float
        Requested frame size over cell extent, per axis, each in [1.5, 8].
    membrane_px : int
        Membrane thickness, pixels (also around holes in the cytoplasm).
    membrane_density : float
        Density added on the membrane (the cytoplasm is ~0.5).

    Returns
    -------
    numpy.ndarray, complex64, ``shape``
        Real, >= 0.
    """
    frame = _check_shape(shape)
    extents = [n / s for n, s in zip(frame, check_oversampling(frame, oversampling))]
    sub = tuple(max(8, int(round(e / CELL_FILL))) for e in extents)
    density = np.real(cell_specimen(sub, rng=rng, size_fraction=0.5)).astype(np.float64)
    body = density > 0
    membrane = body & dilate(~body, membrane_px)
    density = density + membrane_density * membrane
    return _embed_centred(_crop_to_content(density), frame).astype(np.complex64)


def _glyph(letter: str, scale: int) -> np.ndarray:
    """A letter's bitmap, each bit ``scale x scale`` pixels."""
    bits = np.array([[c == "#" for c in row] for row in GLYPHS[letter]], dtype=np.float64)
    return np.kron(bits, np.ones((scale, scale)))


def _tile_bars(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Line pairs of a random pitch (2 to 6 px) and orientation."""
    pitch = int(rng.integers(2, 7))
    index = np.indices(size)[int(rng.integers(0, 2))]
    return ((index % pitch) < max(pitch // 2, 1)).astype(np.float64)


def _tile_blocks(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A checkerboard of 2 to 6 px squares."""
    cell = int(rng.integers(2, 7))
    rows, cols = np.indices(size)
    return (((rows // cell) + (cols // cell)) % 2).astype(np.float64)


def _tile_letters(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """One to three random letters, as large as fit side by side (1 px apart per bit)."""
    count = int(rng.integers(1, 4))
    scale = max(1, min(size[0] // 7, size[1] // (6 * count)))
    letters = [_glyph(str(rng.choice(list(GLYPHS))), scale) for _ in range(count)]
    gap = np.zeros((7 * scale, scale))
    row = np.concatenate([part for letter in letters for part in (letter, gap)][:-1], axis=1)
    return _embed_centred(row, size)


def _tile_frame(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A hollow rectangle with walls 1 to 3 px thick."""
    wall = int(rng.integers(1, 4))
    tile = np.ones(size)
    tile[wall:size[0] - wall, wall:size[1] - wall] = 0
    return tile


_TILES = {"bars": _tile_bars, "blocks": _tile_blocks, "letters": _tile_letters, "frame": _tile_frame}


def _corner_marks(size: tuple[int, int]) -> np.ndarray:
    """L-shaped alignment marks in the four corners (they set the pattern's extent)."""
    arm, width = max(3, min(size) // 8), max(1, min(size) // 32)
    marks = np.zeros(size)
    for rows in (slice(0, arm), slice(size[0] - arm, size[0])):
        for cols in (slice(0, width), slice(size[1] - width, size[1])):
            marks[rows, cols] = 1
    for rows in (slice(0, width), slice(size[0] - width, size[0])):
        for cols in (slice(0, arm), slice(size[1] - arm, size[1])):
            marks[rows, cols] = 1
    return marks


def lithography_pattern(shape: Sequence[int], rng: np.random.Generator, *, oversampling: Sequence[float],
                        tiles: Sequence[int] = (2, 2)) -> np.ndarray:
    """A binary lithographic test pattern: a grid of tiles between four corner marks.

    Each tile holds, at random, line pairs, a checkerboard, letters
    (:data:`GLYPHS`) or a hollow frame (:data:`TILE_KINDS`); the marks make
    the pattern span exactly ``n_i / oversampling_i`` pixels per axis.

    Parameters
    ----------
    shape : sequence of int
        Frame shape ``(ny, nx)`` (2D only).
    rng : numpy.random.Generator
    oversampling : sequence of float
        Frame size over pattern extent, per axis, each in [1.5, 8].
    tiles : sequence of int
        Tiles along y and x.

    Returns
    -------
    numpy.ndarray, complex64, ``shape``
        Real, 0 or 1.
    """
    frame = _check_shape(shape)
    if len(frame) != 2:
        raise InvalidInputError(f"shape {frame}: a lithographic pattern is 2D; give (ny, nx)")
    size = tuple(int(round(n / s)) for n, s in zip(frame, check_oversampling(frame, oversampling)))
    pattern = _corner_marks(size)
    margin = max(3, min(size) // 8) + 1
    inner = [s - 2 * margin for s in size]
    steps = [max(i // t, 1) for i, t in zip(inner, tiles)]
    for ty in range(int(tiles[0])):
        for tx in range(int(tiles[1])):
            tile_size = (max(steps[0] - 2, 1), max(steps[1] - 2, 1))
            tile = _TILES[str(rng.choice(TILE_KINDS))](tile_size, rng)
            y0, x0 = margin + ty * steps[0] + 1, margin + tx * steps[1] + 1
            pattern[y0:y0 + tile_size[0], x0:x0 + tile_size[1]] = tile
    return _embed_centred(pattern, frame).astype(np.complex64)


def porous_particle(shape: Sequence[int], rng: np.random.Generator, *, oversampling: Sequence[float],
                    porosity: float = 0.3, pore_px: float = 2.0, roughness: float = 0.15,
                    skin_px: float = 1.0) -> np.ndarray:
    """A porous particle: a smooth blob whose inside is solid where smooth noise is above a threshold.

    Parameters
    ----------
    shape : sequence of int
        Frame shape, ``(ny, nx)`` or ``(nz, ny, nx)``.
    rng : numpy.random.Generator
    oversampling : sequence of float
        Frame size over particle extent, per axis, each in [1.5, 8].
    porosity : float
        Fraction of the particle's inside that is pore (empty), in [0, 0.8].
    pore_px : float
        Correlation length of the noise (pore size / 2), pixels.
    roughness : float
        Outline roughness (:func:`.shapes.blob_level`).
    skin_px : float
        A solid skin this thick along the outline, pixels (keeps the extent).

    Returns
    -------
    numpy.ndarray, complex64, ``shape``
        Real, in [0, 1].
    """
    frame = _check_shape(shape)
    if not 0 <= porosity <= 0.8:
        raise InvalidInputError(f"porosity={porosity}: must be in [0, 0.8]")
    level = blob_level(len(frame), rng, roughness=roughness)
    distance = fit_outline(level, frame, half_extents_px(frame, oversampling))
    amplitude = _edge(distance)
    noise = _smooth_noise(frame, rng, sigma_px=pore_px)
    inside = amplitude > 0.5
    solid = (noise > np.quantile(noise[inside], porosity)) | (distance < skin_px)
    return (amplitude * solid).astype(np.complex64)
