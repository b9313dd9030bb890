"""How close to the truth the photons of a corpus case allow any reconstruction to come (issue 15).

A reconstruction can only hold what the pattern measured. Where the expected
counts fall below about one photon per pixel the measured intensity says
nothing about that frequency, so the best any method can do there is to leave
it out. The *photon floor* of a case is the symmetry-adjusted error
(``cdi_dip.ensemble.compare_objects``, the one every corpus figure uses) of the
truth low-passed to the pixels whose expected counts reach ``--min-photons``
(default 1), against the truth itself: the error of a reconstruction with every
phase exactly right where the photons suffice and nothing elsewhere. It is
optimistic in one way, a real reconstruction also carries the noise of the
pixels it kept, and not a strict bound in another: a support or positivity
can extrapolate a little beyond the measured band. A case whose floor is well
above a target cannot be expected to meet it with any method, whatever its
defaults.

    python benchmarks/photon_floor.py --half tuning --quick --conditions low-flux --per-family 2
    python benchmarks/photon_floor.py --half reporting --conditions low-flux,clean --markdown
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Sequence

import numpy as np
from common import add_corpus_arguments, limit_threads, machine_description, score, selected_corpus_cases

from cdi_dip.corpus import CorpusCase
from cdi_dip.simulate import expected_intensity


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_corpus_arguments(parser, half="reporting")
    parser.add_argument("--min-photons", type=float, default=1.0,
                        help="expected counts a pixel needs to be kept (default 1)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table for docs/benchmarks.md")
    return parser.parse_args(argv)


def expected_counts(case: CorpusCase) -> np.ndarray:
    """The noise-free counts of the case's truth, scaled so that its valid pixels hold the measured photons.

    Returns
    -------
    numpy.ndarray, float64, frame shape, centred
        Expected photons per pixel (the detector's own conditions, such as a
        beamstop or blur, are not modelled: this is the coherent pattern of
        the truth at the case's photon level).
    """
    intensity = expected_intensity(np.asarray(case.truth))
    valid = np.asarray(case.valid, dtype=bool)
    return intensity * float(np.asarray(case.counts)[valid].sum()) / float(intensity[valid].sum())


def low_passed(truth: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """The truth with every frequency outside ``keep`` (bool, centred frame) set to zero; complex64, centred."""
    spectrum = np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(truth)))
    kept = np.fft.fftshift(np.fft.ifftn(np.fft.ifftshift(np.where(keep, spectrum, 0))))
    return kept.astype(np.complex64)


def photon_floor(case: CorpusCase, min_photons: float) -> dict[str, float]:
    """The case's floor: ``error`` of the truth kept where the expected counts reach ``min_photons``, and
    ``kept_fraction`` of the frame's pixels that do."""
    truth = np.asarray(case.truth).astype(np.complex64)
    keep = expected_counts(case) >= min_photons
    return {"error": score(low_passed(truth, keep), truth)["error"], "kept_fraction": float(keep.mean())}


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    limit_threads(args.threads)
    cases = selected_corpus_cases(args)
    rows = []
    for case in cases:
        floor = photon_floor(case, args.min_photons)
        rows.append((case, floor))
        print(f"{case.label} {'x'.join(map(str, case.shape))} {case.kind}: photons {float(np.asarray(case.counts).sum()):.3g}, "
              f"kept {floor['kept_fraction']:.3f} of the frame, floor {floor['error']:.3f}", flush=True)
    print(f"\nmachine: {machine_description()}; half {args.half}, {'quick' if args.quick else 'full-size'} frames, "
          f"pixels kept at >= {args.min_photons:g} expected photons")
    for kind in sorted({case.kind for case, _ in rows}):
        errors = [floor["error"] for case, floor in rows if case.kind == kind]
        print(f"{kind}: {len(errors)} cases, median floor {statistics.median(errors):.3f}, "
              f"max {max(errors):.3f}")
    if args.markdown:
        print("\n| case | frame | photons | pixels kept | floor |\n|---|---|---|---|---|")
        for case, floor in rows:
            print(f"| {case.label} | {'x'.join(map(str, case.shape))} | {float(np.asarray(case.counts).sum()):.3g} | "
                  f"{floor['kept_fraction']:.3f} | {floor['error']:.3f} |")


if __name__ == "__main__":
    main()
