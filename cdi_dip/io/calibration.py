"""A scan's dark and flat (white-field) images, found beside a folder of raw frames.

Raw detector frames are rarely usable without the detector's calibration: a
Timepix's pixels differ in sensitivity by about 20 % RMS, which a coherent
model cannot fit and which shows as a misfit of 15-30 % pixel to pixel near
the Bragg peak. Beamlines keep the dark and the white field next to the scan
(the APS 34-ID-C layout: ``scan/frames/*.tif``, ``scan/dark.tif``,
``scan/whitefield.tif``, ``scan/metadata.json``). When ``--dark``/``--flat``
are not given and the input is a folder (or glob) of frames, they are looked
for under the names of :data:`CALIBRATION_NAMES` in the frames' folder, then
in its parent, as ``metadata.json`` is (:mod:`cdi_dip.io.metadata`). A file
that is one of the frames is never taken; two candidates for one role in the
same folder are ambiguous, and neither is used (a warning says so). ``none``
(``--dark none``) turns the search off for that role.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from .readers import NUMPY_SUFFIXES, TIFF_SUFFIXES, is_glob, split_spec, input_paths

log = logging.getLogger(__name__)

__all__ = ["CALIBRATION_NAMES", "NO_CALIBRATION", "Calibration", "find_calibration", "resolve_calibration"]

CALIBRATION_NAMES: dict[str, tuple[str, ...]] = {
    "dark": ("dark", "darkfield", "dark_field"),
    "flat": ("whitefield", "white_field", "white", "flatfield", "flat_field", "flat"),
}
"""File stems (case-insensitive) taken as a scan's dark and flat, per role."""

CALIBRATION_SUFFIXES = TIFF_SUFFIXES + NUMPY_SUFFIXES
"""Formats a found calibration image may have (HDF5 files hold data too often to be guessed)."""

NO_CALIBRATION = "none"
"""The value of ``--dark``/``--flat`` that means: no such image, and do not look for one."""


@dataclass(frozen=True)
class Calibration:
    """The dark and flat a scan uses, and which of them were found rather than given.

    Attributes
    ----------
    dark, flat : str or None
        Paths (or specs) of the images; None: none.
    found : dict of str to str
        ``{"dark": path, "flat": path}`` for the images found beside the frames.
    """

    dark: str | None = None
    flat: str | None = None
    found: dict[str, str] = field(default_factory=dict)

    def without_found(self) -> "Calibration":
        """The same calibration with the found images dropped (the given ones stay)."""
        return Calibration(dark=None if "dark" in self.found else self.dark,
                           flat=None if "flat" in self.found else self.flat)


def _frame_folders(source: str) -> list[Path]:
    """The folder holding the frames of a folder or glob input, then its parent; [] for a file input."""
    if is_glob(source):
        folder = Path(source).expanduser().parent
    else:
        path, key = split_spec(source)
        if key is not None or not path.is_dir():
            return []
        folder = path
    return [folder, folder.parent] if folder.parent != folder else [folder]


def _candidates(folder: Path, role: str, frames: set[Path]) -> list[Path]:
    """Regular files in ``folder`` named as ``role``'s calibration, frames left out."""
    stems = CALIBRATION_NAMES[role]
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return []
    return [p for p in entries
            if p.stem.lower() in stems and p.suffix.lower() in CALIBRATION_SUFFIXES
            and p.is_file() and p.resolve() not in frames]


def find_calibration(source: str) -> dict[str, str]:
    """The dark and flat beside a folder or glob of frames, by role (roles with none are absent).

    Parameters
    ----------
    source : str
        The input as the user typed it.

    Returns
    -------
    dict of str to str
        ``"dark"`` and/or ``"flat"`` -> file path.
    """
    folders = _frame_folders(source)
    if not folders:
        return {}
    frames = {p.resolve() for p in input_paths(source) if p.is_file()}
    if not is_glob(source):
        frames |= {p.resolve() for p in folders[0].iterdir() if p.suffix.lower() in TIFF_SUFFIXES}
    found: dict[str, str] = {}
    for role in CALIBRATION_NAMES:
        for folder in folders:
            candidates = _candidates(folder, role, frames)
            if len(candidates) > 1:
                names = ", ".join(p.name for p in candidates)
                log.warning("calibration: %s in %s could each be the %s; using none (give --%s FILE)",
                            names, folder, role, role)
                break
            if candidates:
                found[role] = str(candidates[0])
                break
    return found


def resolve_calibration(source: str, dark: str | None, flat: str | None) -> Calibration:
    """The calibration a scan uses: the images given, else those found beside its frames.

    Parameters
    ----------
    source : str
        The input spec.
    dark, flat : str or None
        ``detector.dark``/``detector.flat`` as configured: a file, None (look
        for one) or :data:`NO_CALIBRATION`.

    Returns
    -------
    Calibration
    """
    given = {"dark": dark, "flat": flat}
    wanted = [role for role, spec in given.items() if spec is None]
    found = {role: path for role, path in find_calibration(source).items() if role in wanted} if wanted else {}
    chosen = {role: found.get(role) if spec is None else (None if spec.lower() == NO_CALIBRATION else spec)
              for role, spec in given.items()}
    return Calibration(dark=chosen["dark"], flat=chosen["flat"], found=found)
