"""Shared pieces of the benchmark scripts: machine description, simulated cases, scoring."""

from __future__ import annotations

import datetime
import os
import platform
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from cdi_dip.corpus import CorpusCase, corpus_cases
from cdi_dip.corpus.split import HALVES
from cdi_dip.ensemble import compare_objects
from cdi_dip.prepare.margin import seen_on_frame
from cdi_dip.simulate import SimulatedScan, simulate_scan
from cdi_dip.types import Measurement


def machine_description() -> str:
    """One line: CPU model, cores used, torch version, date (for docs/benchmarks.md)."""
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{cpu}, {torch.get_num_threads()} threads, {gpu}, torch {torch.__version__}, "
            f"{datetime.date.today().isoformat()}")


def limit_threads(threads: int | None) -> None:
    """Use ``threads`` CPU threads (the CI and the brief assume 2 cores)."""
    if threads:
        torch.set_num_threads(threads)
        os.environ["OMP_NUM_THREADS"] = str(threads)


def add_method_argument(parser, default: str = "hio") -> None:
    """``--method`` of a benchmark whose figures in docs/benchmarks.md were measured with ``default``."""
    parser.add_argument("--method", default=default,
                        help=f"auto, dip, hio, raar or er (default {default}: the method docs/benchmarks.md measured)")


def add_corpus_arguments(parser, *, half: str, conditions: str = "low-flux") -> None:
    """``--half`` (default ``half``), ``--dims``, ``--quick``, ``--conditions`` (default ``conditions``),
    ``--families`` and ``--per-family``: which corpus cases a benchmark runs (:func:`selected_corpus_cases`)."""
    parser.add_argument("--half", default=half, choices=sorted(HALVES), help=f"corpus half (default {half})")
    parser.add_argument("--dims", default="2", help="2, 3 or 2,3 (default 2)")
    parser.add_argument("--quick", action="store_true", help="small frames (2D 32-64, 3D 24-32 px per axis)")
    parser.add_argument("--conditions", default=conditions,
                        help=f"comma-separated conditions (default {conditions})")
    parser.add_argument("--families", default=None, help="comma-separated families (default: all of the half's)")
    parser.add_argument("--per-family", type=int, default=1,
                        help="seeds per (dimension, family, condition) (default 1)")


def _names(text: str | None) -> list[str] | None:
    return None if text is None else [part.strip() for part in text.split(",") if part.strip()]


def selected_corpus_cases(args) -> Iterator[CorpusCase]:
    """The corpus cases :func:`add_corpus_arguments`' options select, in the corpus's order."""
    return corpus_cases(args.half, dims=tuple(int(d) for d in args.dims.split(",")), quick=args.quick,
                        per_family=args.per_family, families=_names(args.families), conditions=_names(args.conditions))


@dataclass
class Case:
    """One simulated benchmark case."""

    label: str
    scan: SimulatedScan


def crystal_cases_2d(count: int, *, seed: int, shape=(128, 128), peak_counts=1e5,
                     dislocation_every: int = 3, beamstop_radius_px: int = 0) -> list[Case]:
    """2D crystals with off-centre peaks; every ``dislocation_every``-th has a dislocation."""
    rng = np.random.default_rng(seed)
    cases = []
    for index in range(count):
        offset = tuple(int(v) for v in rng.integers(-6, 7, size=len(shape)))
        dislocation = dislocation_every > 0 and index % dislocation_every == dislocation_every - 1
        scan = simulate_scan("crystal", shape, rng=rng, peak_counts=peak_counts, offset_px=offset,
                             dislocation=dislocation, beamstop_radius_px=beamstop_radius_px)
        label = f"{index}: offset {offset}{', dislocation' if dislocation else ''}"
        cases.append(Case(label, scan))
    return cases


def cell_cases_2d(count: int, *, seed: int, shape=(128, 128), peak_counts=1e6, max_offset_px: int = 4,
                  beamstop_radius_px: float = 4) -> list[Case]:
    """2D cells (forward CDI) behind a beamstop, the direct beam off-centre by up to ``max_offset_px`` per axis."""
    rng = np.random.default_rng(seed)
    cases = []
    for index in range(count):
        offset = tuple(int(v) for v in rng.integers(-max_offset_px, max_offset_px + 1, size=len(shape)))
        scan = simulate_scan("cell", shape, rng=rng, peak_counts=peak_counts, offset_px=offset,
                             beamstop_radius_px=beamstop_radius_px)
        cases.append(Case(f"{index}: offset {offset}", scan))
    return cases


def as_measurement(scan: SimulatedScan, name: str) -> Measurement:
    """A simulated scan as if read from disk."""
    return Measurement(intensity=scan.counts, valid=scan.valid, meta=scan.meta, source=name, name=name,
                       roi=[(0, n) for n in scan.counts.shape])


def score(obj: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Symmetry-adjusted error and phase error against the ground truth.

    An object on another frame than the truth's (a frame cut to an FFT-friendly
    size, padded around an off-centre peak, or with an unmeasured margin) has
    the truth's reciprocal pixels but not its real-space voxels: it is seen on
    the truth's frame first (:func:`cdi_dip.prepare.margin.seen_on_frame`), so
    that the two are compared voxel for voxel.
    """
    if obj.shape != truth.shape:
        obj = seen_on_frame(obj, truth.shape)
    figures = compare_objects(obj, truth)
    return {"error": float(figures.error), "phase_error_rad": float(figures.phase_error_rad)}


@dataclass
class CrystalCase:
    """One case of the double-DIP benchmark (issue 3), with what makes it hard."""

    dim: int
    index: int
    dislocation: bool
    beamstop_px: int
    offset_px: tuple[int, ...]
    scan: SimulatedScan

    @property
    def key(self) -> str:
        """Unique name of the case within one simulation seed, e.g. ``2d-07``."""
        return f"{self.dim}d-{self.index:02d}"

    @property
    def group(self) -> str:
        """Subgroup the medians are taken over: ``2d``, ``2d-beamstop``, ``3d`` (``3d-beamstop``)."""
        return f"{self.dim}d" + ("-beamstop" if self.beamstop_px > 0 else "")

    @property
    def label(self) -> str:
        parts = [f"offset {self.offset_px}"]
        if self.dislocation:
            parts.append("dislocation")
        if self.beamstop_px:
            parts.append(f"beamstop {self.beamstop_px} px")
        return ", ".join(parts)


def crossed_crystal_cases(count: int, *, seed: int, shape: tuple[int, ...], peak_counts: float = 1e5,
                          beamstop_px: int = 3, max_offset_px: int = 6) -> list[CrystalCase]:
    """Faceted crystals with off-centre peaks, dislocation and beamstop crossed.

    Case ``i`` has a dislocation when ``i`` is odd and a beamstop of radius
    ``beamstop_px`` when ``i // 2`` is odd, so that every block of four holds
    each combination once (20 cases: 5 of each). ``beamstop_px = 0`` gives no
    beamstop anywhere. The cases depend only on ``seed``, ``count`` and
    ``shape``: any subset can be re-made alone.
    """
    rng = np.random.default_rng(seed)
    cases = []
    for index in range(count):
        offset = tuple(int(v) for v in rng.integers(-max_offset_px, max_offset_px + 1, size=len(shape)))
        dislocation = index % 2 == 1
        radius = beamstop_px if (index // 2) % 2 == 1 else 0
        scan = simulate_scan("crystal", shape, rng=rng, peak_counts=peak_counts, offset_px=offset,
                             dislocation=dislocation, beamstop_radius_px=radius)
        cases.append(CrystalCase(dim=len(shape), index=index, dislocation=dislocation, beamstop_px=radius,
                                 offset_px=offset, scan=scan))
    return cases
