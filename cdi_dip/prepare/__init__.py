"""From raw detector frames to the frame a solver fits.

- :mod:`.corrections`: dark and flat corrections, detector region, binning;
- :mod:`.defects`: excluded pixels found in the data, by reason (saturation,
  gaps, hot and dead pixels, beamstop, aliens);
- :mod:`.symmetry`: Friedel symmetry: the centre of a pattern and its mirror image;
- :mod:`.rim`: the one-pixel rim of a found beamstop shadow (held out, then tested);
- :mod:`.stages`: :func:`condition_detector` (the two above, in order) and
  :func:`prepare` (centring and framing);
- :mod:`.free_pixels`: the held-out pixels of a run.
"""

from .stages import condition_detector, prepare

__all__ = ["condition_detector", "prepare"]
