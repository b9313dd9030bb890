"""Precision and recall of the defect finders on real speckle (issue 15).

A hot-pixel finder that flags real bright speckles throws away the data that
carries the highest resolution. This benchmark runs :func:`detect_defects`
exactly as the pipeline does (``[detector]`` defaults, the pipeline's
reference peak) on:

``speckle-2d``
    Forward CDI of extended, irregular, sharp-edged specimens
    (:func:`cdi_dip.simulate.extended_specimen`, spanning 0.6 to 0.75 of
    each axis: single-pixel speckles), 256^2 and 512^2, 1e4 to 1e8 photons
    at the zero frequency (off the frame centre by up to 3 px), Poisson
    noise, without and with a masked beamstop; three 256^2 or two 512^2
    patterns per row. Each pattern is run clean (every flagged pixel is a
    false positive) and with 20 hot pixels planted by
    :func:`cdi_dip.simulate.plant_defects` (recall).

``bragg-3d``
    Strained faceted crystals (:func:`cdi_dip.simulate.faceted_crystal`,
    64^3) at 1e4 to 1e8 photons, three per row, and "coarse" crystals: the
    same far field sampled every second pixel across the detector (crystal
    0.8 of the frame in-plane: single-pixel speckles in each frame, smooth
    along the rocking curve). Planted: 10 hot voxels (:func:`plant_defects`),
    3 detector pixels hot in every frame (2 counts per frame plus 10 times
    the signal around them) and 3 dead detector pixels on the pattern;
    recall and precision count voxels.

``real``
    The APS 34-ID-C scan 54 frames, read as the pipeline reads them. No
    ground truth: every flagged voxel is judged by a written rule (see
    :func:`judge_real`) and where it lies is reported; the stray alien spot
    near row 62, column 100 of the frame sum must be caught as an alien.

Precision counts every pixel flagged on the clean and the planted runs;
recall the planted pixels found. "time" is the finders' time, both runs.

    python benchmarks/defect_precision.py --threads 2
    python benchmarks/defect_precision.py --threads 2 --json out/defect_precision.json
    python benchmarks/defect_precision.py --real-scan ../shared/data/aps34idc_scan54
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from common import limit_threads, machine_description

from cdi_dip._ndimage import box_sum, dilate, label
from cdi_dip.config import DetectorConfig
from cdi_dip.io.readers import read_measurement
from cdi_dip.prepare.defects import detect_defects
from cdi_dip.prepare.stages import defect_options, defect_reference_peak
from cdi_dip.simulate import expected_intensity, extended_specimen, faceted_crystal, plant_defects
from cdi_dip.types import Measurement

REAL_SCAN = Path(__file__).resolve().parents[2] / "shared" / "data" / "aps34idc_scan54"
KNOWN_ALIEN_PX = (62, 100)
"""Row and column of the real scan's stray spot in the frame sum (shared/data/README.md)."""
FINDERS = ("hot", "dead", "alien")
PHOTONS = (1e4, 1e6, 1e8)
PATTERNS_PER_ROW = {256: 3, 512: 2, 64: 3}
"""Simulated patterns per row of the table, by frame size."""


# -- running the finders as the pipeline does ----------------------------------------
def run_finders(counts: np.ndarray, valid: np.ndarray) -> dict[str, np.ndarray]:
    """:func:`detect_defects` with the ``[detector]`` defaults and the pipeline's reference peak."""
    measurement = Measurement(intensity=counts.astype(np.float32), valid=valid, source="bench", name="bench")
    options = defect_options(DetectorConfig())
    options.peak = defect_reference_peak(measurement)
    return detect_defects(measurement.intensity, measurement.valid, options=options)


@dataclass
class Score:
    """Counts behind precision and recall of one finder over one or more patterns."""

    planted: int = 0
    flagged: int = 0
    hits: int = 0
    false_on_clean: int = 0

    def add(self, found: np.ndarray, truth: np.ndarray | None, clean: np.ndarray) -> None:
        truth = np.zeros_like(found) if truth is None else truth
        self.planted += int(truth.sum())
        self.flagged += int(found.sum())
        self.hits += int((found & truth).sum())
        self.false_on_clean += int(clean.sum())

    def as_dict(self) -> dict[str, float | int | None]:
        flagged = self.flagged + self.false_on_clean
        return {"planted": self.planted, "hits": self.hits, "flagged_planted_run": self.flagged,
                "false_on_clean": self.false_on_clean,
                "precision": (self.hits / flagged) if flagged else None,
                "recall": (self.hits / self.planted) if self.planted else None}


@dataclass
class Row:
    """One simulated dataset: scores per finder and the time the finders took."""

    dataset: str
    photons: float
    scores: dict[str, Score] = field(default_factory=lambda: {name: Score() for name in FINDERS})
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {"dataset": self.dataset, "photons": self.photons, "seconds": round(self.seconds, 2),
                **{name: score.as_dict() for name, score in self.scores.items()}}


def score_pattern(row: Row, counts: np.ndarray, valid: np.ndarray, planted: np.ndarray,
                  truth: dict[str, np.ndarray]) -> None:
    """Run the finders on the clean and the planted counts and add to ``row``'s scores."""
    start = time.perf_counter()
    clean = run_finders(counts, valid)
    dirty = run_finders(planted, valid)
    row.seconds += time.perf_counter() - start
    for name in FINDERS:
        row.scores[name].add(dirty[name], truth.get(name), clean[name])


# -- simulated forward CDI speckle -------------------------------------------------
def _speckle_counts(size: int, photons: float, rng: np.random.Generator) -> tuple[np.ndarray, tuple[int, int]]:
    offset = tuple(int(v) for v in rng.integers(-3, 4, size=2))
    specimen = extended_specimen((size, size), rng=rng, extent_fraction=float(rng.uniform(0.6, 0.75)),
                                 greyscale=bool(rng.integers(2)))
    expected = expected_intensity(specimen, offset_px=offset)
    counts = rng.poisson(expected * (photons / expected.max())).astype(np.float32)
    return counts, (size // 2 + offset[0], size // 2 + offset[1])


def speckle_rows(seed: int) -> list[Row]:
    rng = np.random.default_rng(seed)
    rows = []
    for size in (256, 512):
        for beamstop in (0, size // 32):
            for photons in PHOTONS:
                row = Row(f"speckle-2d {size}^2" + (f", beamstop r={beamstop} masked" if beamstop else ""), photons)
                for _ in range(PATTERNS_PER_ROW[size]):
                    counts, centre = _speckle_counts(size, photons, rng)
                    clean = plant_defects(counts, rng=rng, peak=centre, beamstop_radius_px=beamstop)
                    planted = plant_defects(counts, rng=rng, peak=centre, beamstop_radius_px=beamstop, hot=20)
                    valid = ~planted.truth["beamstop"] if beamstop else np.ones(counts.shape, bool)
                    score_pattern(row, clean.counts, valid, planted.counts, planted.truth)
                rows.append(row)
                print(_row_line(row), flush=True)
    return rows


# -- simulated Bragg CDI -----------------------------------------------------------
def _crystal_counts(shape: tuple[int, ...], photons: float, rng: np.random.Generator, coarse: bool) -> np.ndarray:
    """A strained crystal's counts; ``coarse``: far field sampled every 2nd pixel across the detector."""
    frame = (shape[0], 2 * shape[1], 2 * shape[2]) if coarse else shape
    offset = tuple(int(v) for v in rng.integers(-3, 4, size=3))
    crystal = faceted_crystal(frame, rng=rng, size_fraction=0.4, dislocation=bool(rng.integers(2)))
    expected = expected_intensity(crystal, offset_px=offset)
    if coarse:
        expected = expected[:, ::2, ::2]
    return rng.poisson(expected * (photons / expected.max())).astype(np.float32)


def _plant_detector_defects(counts: np.ndarray, rng: np.random.Generator,
                            count: int = 3) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Detector pixels hot in every frame and dead ones (0 in every frame, where the pattern is lit).

    A hot detector pixel adds Poisson counts of mean ``2 + 10 m`` to every
    frame, ``m`` being the mean count per frame of the pixels around it.
    """
    total = counts.sum(axis=0)
    local = box_sum(total, 1) / (9 * counts.shape[0])
    lit = np.flatnonzero(local > 500 / (9 * counts.shape[0]))
    inner = np.zeros(total.shape, dtype=bool)
    inner[2:-2, 2:-2] = True
    picks = rng.choice(lit, size=count, replace=False), rng.choice(np.flatnonzero(inner), size=count, replace=False)
    out = counts.copy()
    truth = {}
    for name, flat in zip(("dead", "hot"), picks):
        pixels = np.zeros(total.shape, dtype=bool)
        pixels.flat[flat] = True
        truth[name] = np.broadcast_to(pixels, counts.shape).copy()
    out[truth["dead"]] = 0
    rate = np.broadcast_to(2 + 10 * local, counts.shape)[truth["hot"]]
    out[truth["hot"]] += rng.poisson(rate)
    return out, truth


def bragg_rows(seed: int) -> list[Row]:
    rng = np.random.default_rng(seed + 1)
    rows = []
    for coarse in (False, True):
        for photons in PHOTONS:
            row = Row("bragg-3d 64^3" + (", coarse pixels" if coarse else ""), photons)
            for _ in range(PATTERNS_PER_ROW[64]):
                counts = _crystal_counts((64, 64, 64), photons, rng, coarse)
                voxels = plant_defects(counts, rng=rng, hot=10)
                planted, truth = _plant_detector_defects(voxels.counts, rng)
                truth["hot"] |= voxels.truth["hot"]
                score_pattern(row, counts, np.ones(counts.shape, bool), planted, truth)
            rows.append(row)
            print(_row_line(row), flush=True)
    return rows


# -- the real scan -----------------------------------------------------------------
def judge_real(counts: np.ndarray, valid: np.ndarray, flagged: np.ndarray, ratio: float = 5.0) -> np.ndarray:
    """Which flagged voxels a physicist would call true hot pixels, by a written rule.

    A flagged voxel is a true defect when its count exceeds ``ratio`` times
    every other valid, unflagged voxel within 2 px in 3D (a 5x5x5 box), so no
    speckle or fringe continues it, and exceeds them by 6 Poisson standard
    deviations. A detector pixel flagged in every frame is judged on the
    frame sum the same way (5x5 box). Otherwise it is a real speckle.

    Returns
    -------
    numpy.ndarray, bool, same shape as ``flagged``
        True on flagged voxels the rule accepts.
    """
    others = valid & ~flagged
    persistent = flagged.all(axis=0) & flagged.any(axis=0)
    verdict = np.zeros(flagged.shape, dtype=bool)
    for where in np.argwhere(flagged & ~persistent[None]):
        box = tuple(slice(max(w - 2, 0), w + 3) for w in where)
        verdict[tuple(where)] = _isolated(counts[tuple(where)], counts[box][others[box]], ratio)
    total = np.where(valid, counts, 0).sum(axis=0)
    for where in np.argwhere(persistent):
        box = tuple(slice(max(w - 2, 0), w + 3) for w in where)
        verdict[:, where[0], where[1]] = _isolated(total[tuple(where)], total[box][~persistent[box]], ratio)
    return verdict


def _isolated(value: float, around: np.ndarray, ratio: float) -> bool:
    top = float(around.max()) if around.size else 0.0
    return value > ratio * top and 2 * (np.sqrt(value + 0.375) - np.sqrt(top + 0.375)) > 6


def _where(mask: np.ndarray, counts: np.ndarray, valid: np.ndarray, peak: tuple[int, ...]) -> dict[str, int]:
    """Flagged voxels by distance to the Bragg peak and by the signal around them."""
    where = np.argwhere(mask)
    distance = np.sqrt(((where - np.array(peak)) ** 2).sum(axis=1)) if where.size else np.zeros(0)
    around = box_sum(np.where(valid & ~mask, counts, 0), 1) / np.maximum(box_sum(valid & ~mask, 1), 1)
    on_signal = around[mask] >= 1.0
    return {"within_10px_of_peak": int((distance <= 10).sum()), "10_to_40px": int(((distance > 10)
            & (distance <= 40)).sum()), "beyond_40px": int((distance > 40).sum()),
            "neighbour_mean_ge_1_count": int(on_signal.sum())}


def real_report(path: Path) -> dict | None:
    if not (path / "frames").is_dir():
        print(f"real scan: {path / 'frames'} is not there, skipped", flush=True)
        return None
    measurement = read_measurement(str(path / "frames"))
    counts, valid = measurement.intensity, measurement.valid
    start = time.perf_counter()
    found = run_finders(counts, valid)
    seconds = time.perf_counter() - start
    peak = tuple(int(i) for i in np.unravel_index(int(np.argmax(np.where(valid, counts, -1))), counts.shape))
    report: dict = {"shape": list(counts.shape), "peak": list(peak), "seconds": round(seconds, 1)}
    for name in FINDERS:
        mask = found[name]
        _, blobs = label(mask)
        entry = {"voxels": int(mask.sum()), "detector_pixels": int(mask.any(axis=0).sum()), "blobs": blobs,
                 **_where(mask, counts, valid, peak)}
        if name == "hot" and mask.any():
            accepted = judge_real(counts, valid, mask)
            entry["rule_true_defects"] = int(accepted.sum())
            entry["rule_precision"] = round(float(accepted.sum() / mask.sum()), 3)
        report[name] = entry
    alien_pixels = found["alien"].any(axis=0)
    row, col = KNOWN_ALIEN_PX
    report["alien"]["known_spot_caught"] = bool(dilate(alien_pixels, 3)[row, col])
    report["alien"]["blobs_away_from_known_spot"] = _other_blobs(found["alien"], KNOWN_ALIEN_PX)
    return report


def _other_blobs(mask: np.ndarray, spot: tuple[int, int], reach_px: int = 10) -> int:
    labels, count = label(mask)
    away = 0
    for ident in range(1, count + 1):
        where = np.argwhere(labels == ident)[:, 1:]
        if np.sqrt(((where - np.array(spot)) ** 2).sum(axis=1)).min() > reach_px:
            away += 1
    return away


# -- output ------------------------------------------------------------------------
def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def _row_line(row: Row) -> str:
    hot, dead, alien = (row.scores[name].as_dict() for name in FINDERS)
    return (f"| {row.dataset} | {row.photons:.0e} | {hot['false_on_clean']} | {hot['hits']}/{hot['planted']} | "
            f"{_percent(hot['precision'])} | {_percent(hot['recall'])} | "
            f"{dead['false_on_clean']} | {dead['hits']}/{dead['planted']} | "
            f"{alien['false_on_clean']} | {row.seconds:.1f} |")


HEADER = ("| dataset | photons at peak | hot flagged on clean | hot found/planted | hot precision | hot recall | "
          "dead flagged on clean | dead found/planted | alien flagged on clean | time (s) |\n"
          "|---|---|---|---|---|---|---|---|---|---|")


def print_real(report: dict) -> None:
    print("\n| finder | voxels | detector pixels | blobs | <= 10 px from peak | 10-40 px | > 40 px | "
          "neighbour mean >= 1 count | rule-judged precision |\n|---|---|---|---|---|---|---|---|---|")
    for name in FINDERS:
        e = report[name]
        print(f"| {name} | {e['voxels']} | {e['detector_pixels']} | {e['blobs']} | {e['within_10px_of_peak']} | "
              f"{e['10_to_40px']} | {e['beyond_40px']} | {e['neighbour_mean_ge_1_count']} | "
              f"{_percent(e.get('rule_precision'))} |")
    alien = report["alien"]
    print(f"known alien near (row, col) {KNOWN_ALIEN_PX}: {'caught' if alien['known_spot_caught'] else 'MISSED'}; "
          f"other alien blobs: {alien['blobs_away_from_known_spot']}; finders took {report['seconds']} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--real-scan", type=Path, default=REAL_SCAN, help="folder holding frames/ (skipped if absent)")
    parser.add_argument("--skip-simulated", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args()
    limit_threads(args.threads)
    start = time.perf_counter()
    rows: list[Row] = []
    if not args.skip_simulated:
        print(HEADER, flush=True)
        rows = speckle_rows(args.seed) + bragg_rows(args.seed)
    real = real_report(args.real_scan)
    if rows:
        print(f"\nmachine: {machine_description()}\n{HEADER}")
        print("\n".join(_row_line(row) for row in rows))
        total = {name: Score() for name in FINDERS}
        for row in rows:
            for name in FINDERS:
                for key in ("planted", "flagged", "hits", "false_on_clean"):
                    setattr(total[name], key, getattr(total[name], key) + getattr(row.scores[name], key))
        print(_row_line(Row("all simulated", float("nan"), total, sum(r.seconds for r in rows))))
    if real is not None:
        print_real(real)
    print(f"\ntotal {time.perf_counter() - start:.0f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": machine_description(), "simulated": [r.as_dict() for r in rows],
                                         "real": real}, indent=1))


if __name__ == "__main__":
    main()
