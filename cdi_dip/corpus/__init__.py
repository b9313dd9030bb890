"""An evaluation corpus: object families x detector conditions, split into a tuning and a reporting half.

Defaults are chosen on the tuning half only; the reporting half gives the
published figures (docs/corpus.md). ``benchmarks/corpus_matrix.py`` runs
methods over a half and prints the matrix.

- :mod:`.shapes`: outlines that fill a requested extent per axis (oversampling control);
- :mod:`.crystals`, :mod:`.specimens`: the object families;
- :mod:`.detector`: detector conditions applied to the expected intensity;
- :mod:`.catalogue`: families and conditions by name, with their parameter draws;
- :mod:`.split`: the two halves (the only place they are defined);
- :mod:`.cases`: :class:`CorpusCase`, :func:`corpus_cases`, :func:`write_case`.
"""

from .cases import CorpusCase, corpus_cases, integrated_over_pixels, moved_off_centre, object_extent_px, write_case
from .catalogue import CONDITIONS, FAMILIES
from .detector import DetectorSettings, detect
from .split import HALVES

__all__ = ["CONDITIONS", "FAMILIES", "HALVES", "CorpusCase", "DetectorSettings", "corpus_cases", "detect",
           "integrated_over_pixels", "moved_off_centre", "object_extent_px", "write_case"]
