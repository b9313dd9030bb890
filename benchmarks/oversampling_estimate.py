"""How far the autocorrelation's oversampling estimate is from the truth's, on a corpus half.

``prep.bin_min_oversampling`` bins a frame over the voxel budget along the axes
whose oversampling, estimated from the autocorrelation's extent
(:func:`cdi_dip.support.object_extent_px`, also the double DIP's box), stays
above a floor after binning. An estimate that is too high bins too far and
aliases the object, so the floor must allow for the estimate's error. This
prints, per case (clean by default), the truth's oversampling per axis
(:attr:`cdi_dip.corpus.CorpusCase.oversampling`), the estimate and their
ratio, then the ratio's 5 %, 50 % and 95 % points and its largest value.
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
from cdi_dip.support import object_extent_px


def estimated_oversampling(counts: np.ndarray, valid: np.ndarray) -> tuple[float, ...]:
    """Frame over the autocorrelation's object extent, per axis (as ``bin_oversampled`` estimates it)."""
    extents = object_extent_px(torch.from_numpy(counts.astype(np.float32)), torch.from_numpy(valid),
                               FarField(counts.shape))
    return tuple(n / max(e, 1.0) for n, e in zip(counts.shape, extents))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_corpus_arguments(parser, half="tuning", conditions="clean")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    limit_threads(args.threads)
    print(machine_description())
    ratios: list[float] = []
    for case in selected_corpus_cases(args):
        estimate = estimated_oversampling(case.counts, case.valid)
        ratio = [e / t for e, t in zip(estimate, case.oversampling)]
        ratios += ratio
        print(json.dumps({"case": case.label, "true": [round(t, 2) for t in case.oversampling],
                          "estimated": [round(e, 2) for e in estimate], "ratio": [round(r, 2) for r in ratio]}))
    low, median, high = np.percentile(ratios, [5, 50, 95])
    print(f"estimate / truth over {len(ratios)} axes: 5 % {low:.2f}, median {median:.2f}, 95 % {high:.2f}, "
          f"largest {max(ratios):.2f}")


if __name__ == "__main__":
    main()
