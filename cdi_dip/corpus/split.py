"""The one place the corpus is split into a tuning half and a reporting half (docs/corpus.md says why).

Rule: defaults (plans, thresholds, budgets, method choices) are chosen on the
**tuning** half only; the **reporting** half is never looked at while tuning,
and its figures are the ones published. The halves share no
``(family, condition, seed)``: their seed ranges are disjoint, and the
reporting half adds families and conditions the tuning half never holds.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InvalidInputError
from .catalogue import CONDITIONS, FAMILIES


@dataclass(frozen=True)
class Half:
    """One half of the corpus.

    Attributes
    ----------
    name : str
        ``"tuning"`` or ``"reporting"``.
    families, conditions : tuple of str
        Names in :data:`~.catalogue.FAMILIES` and :data:`~.catalogue.CONDITIONS`.
    seeds : range
        Case seeds: case ``k`` of every (family, condition, dimension) uses ``seeds[k]``.
    """

    name: str
    families: tuple[str, ...]
    conditions: tuple[str, ...]
    seeds: range


SHARED_FAMILIES = ("faceted", "elongated", "dislocated", "rounded", "cell", "lithography")
SHARED_CONDITIONS = ("clean", "low-flux", "beamstop-masked", "beamstop-unmasked", "gaps", "hot", "saturated", "blur",
                     "truncated", "off-centre")

HALVES: dict[str, Half] = {
    "tuning": Half("tuning", SHARED_FAMILIES, SHARED_CONDITIONS, range(1000, 2000)),
    "reporting": Half("reporting", SHARED_FAMILIES + ("domains", "irregular", "porous"),
                      SHARED_CONDITIONS + ("background", "beamline"), range(5000, 6000)),
}
"""The two halves: the reporting half holds every family and condition, three families
(domains, irregular, porous) and two conditions (background, beamline) only it holds, and seeds
5000-5999 where the tuning half has 1000-1999."""


TRAINING_SEEDS = range(100_000, 1_000_000)
"""Seeds of the samples a learned model trains on (``cdi-dip train``): disjoint from both halves."""

VALIDATION_SEEDS = range(20_000, 30_000)
"""Seeds of a training run's validation samples: disjoint from both halves and from training."""

TRAINING_FAMILIES = SHARED_FAMILIES
"""Families a learned model trains on by default: the tuning half's (the reporting-only families
domains, irregular and porous stay unseen)."""

TRAINING_CONDITIONS = ("clean", "low-flux", "beamstop-masked", "gaps", "blur")
"""Detector conditions a learned model trains on by default: the tuning half's whose file mask tells
the truth (hot pixels, saturation and an unmasked beamstop are found by the preparation before a
network sees the data)."""


def half(name: str) -> Half:
    """The half called ``name``.

    Raises
    ------
    InvalidInputError
        An unknown name.
    """
    if name not in HALVES:
        raise InvalidInputError(f"half {name!r}: choose {' or '.join(HALVES)}")
    return HALVES[name]


def _check_catalogue() -> None:
    """Every name a half uses exists in the catalogue (checked on import)."""
    unknown_training = [n for n in TRAINING_FAMILIES if n not in FAMILIES] + \
        [n for n in TRAINING_CONDITIONS if n not in CONDITIONS]
    if unknown_training:
        raise RuntimeError(f"the training set names unknown families or conditions: {unknown_training}")
    for spec in HALVES.values():
        unknown = [n for n in spec.families if n not in FAMILIES] + [n for n in spec.conditions if n not in CONDITIONS]
        if unknown:
            raise RuntimeError(f"corpus half {spec.name} names unknown families or conditions: {unknown}")


_check_catalogue()
