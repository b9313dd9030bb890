"""How far the autocorrelation's oversampling estimates are from the truth's, on a corpus half.

``prep.bin_min_oversampling`` bins a frame over the voxel budget along the axes
whose oversampling, estimated from the autocorrelation, stays above a floor
after binning. An estimate that is too high bins too far and aliases the
object, so the floor must allow for the estimate's error. Two estimates of
the object's extent are compared: the autocorrelation's support
(:func:`cdi_dip.support.autocorrelation_extent_px`, which the binning uses)
and its profile's extrapolated zero crossing
(:func:`cdi_dip.support.object_extent_px`, the double DIP's box). This
prints, per case (clean by default), the truth's oversampling per axis
(:attr:`cdi_dip.corpus.CorpusCase.oversampling`) and both estimates over it,
then for each the ratio's 5 %, 50 % and 95 % points and its largest value.
No reconstruction: seconds on quick frames.

    python benchmarks/oversampling_estimate.py --half tuning --dims 3 --quick --per-family 4
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from common import add_corpus_arguments, limit_threads, machine_description, selected_corpus_cases

from cdi_dip.physics import FarField
from cdi_dip.support import autocorrelation_extent_px, object_extent_px


ESTIMATES = {"support": autocorrelation_extent_px, "profile": object_extent_px}
"""The extent estimates compared, by name."""


def estimated_oversampling(counts: np.ndarray, valid: np.ndarray, estimate: str) -> tuple[float, ...]:
    """Frame over the object extent ``estimate`` gives, per axis."""
    extents = ESTIMATES[estimate](torch.from_numpy(counts.astype(np.float32)), torch.from_numpy(valid),
                                  FarField(counts.shape))
    return tuple(n / max(e, 1.0) for n, e in zip(counts.shape, extents))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_corpus_arguments(parser, half="tuning", conditions="clean")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    limit_threads(args.threads)
    print(machine_description())
    ratios: dict[str, list[float]] = {name: [] for name in ESTIMATES}
    for case in selected_corpus_cases(args):
        row = {"case": case.label, "true": [round(t, 2) for t in case.oversampling]}
        for name in ESTIMATES:
            ratio = [e / t for e, t in zip(estimated_oversampling(case.counts, case.valid, name), case.oversampling)]
            ratios[name] += ratio
            row[f"{name} / true"] = [round(r, 2) for r in ratio]
        print(json.dumps(row))
    for name, values in ratios.items():
        low, median, high = np.percentile(values, [5, 50, 95])
        print(f"{name}: estimate / truth over {len(values)} axes: 5 % {low:.2f}, median {median:.2f}, "
              f"95 % {high:.2f}, largest {max(values):.2f}")


if __name__ == "__main__":
    main()
