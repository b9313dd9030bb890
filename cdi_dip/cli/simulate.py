"""``cdi-dip simulate``: a synthetic scan and its ground truth."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import InvalidInputError
from .common import exit_codes, print_json, setup_logging
from .options import parse_ints


def simulate(
    output: Annotated[Path, typer.Argument(help="CXI file to write; the ground truth goes to <stem>_truth.npy beside it.")],
    kind: Annotated[str, typer.Option(help="crystal (faceted, strained) or cell (non-negative specimen).")] = "crystal",
    shape: Annotated[str, typer.Option(help="Frame shape, e.g. 128,128 or 64,64,64.")] = "128,128",
    peak_counts: Annotated[float, typer.Option(help="Expected photons at the brightest pixel.")] = 1e5,
    offset: Annotated[Optional[str], typer.Option(help="Bragg peak offset from the frame centre in pixels, e.g. 3,-2.")] = None,
    dislocation: Annotated[bool, typer.Option(help="Add a dislocation (phase vortex) to the crystal.")] = False,
    beamstop: Annotated[int, typer.Option(help="Beamstop radius in pixels (0: none).")] = 0,
    gap: Annotated[int, typer.Option(help="Width of a detector gap through the frame, pixels (0: none).")] = 0,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    json_output: Annotated[bool, typer.Option("--json", help="Print what was written as JSON.")] = False,
) -> None:
    """Write a synthetic scan (CXI) and its ground truth, for demos, tests and benchmarks."""
    setup_logging(False, False)
    with exit_codes():
        frame = _write_scan(output, kind=kind, shape=shape, peak_counts=peak_counts, offset=offset,
                            dislocation=dislocation, beamstop=beamstop, gap=gap, seed=seed)
    truth = output.with_name(f"{output.stem}_truth.npy")
    info = {"output": str(output), "ground_truth": str(truth), "kind": kind, "shape": list(frame),
            "peak_counts": peak_counts, "seed": seed}
    if json_output:
        print_json(info)
    else:
        typer.echo(f"wrote {output} and {truth}")


def _write_scan(output: Path, *, kind: str, shape: str, peak_counts: float, offset: str | None,
                dislocation: bool, beamstop: int, gap: int, seed: int) -> tuple[int, ...]:
    """Check the options, simulate and write; return the frame shape. Every failure is an InvalidInputError."""
    try:
        import numpy as np

        from ..simulate import simulate_scan, write_simulated_scan

        if kind not in ("crystal", "cell"):
            raise InvalidInputError(f"--kind {kind!r}: choose crystal or cell")
        frame = tuple(parse_ints(shape, "--shape"))
        if len(frame) not in (2, 3) or min(frame) < 8:
            raise InvalidInputError(f"--shape {shape}: give 2 or 3 sizes of at least 8 pixels, e.g. 128,128")
        offset_px = tuple(parse_ints(offset, "--offset")) if offset else None
        if offset_px is not None and len(offset_px) != len(frame):
            raise InvalidInputError(f"--offset {offset} has {len(offset_px)} values but --shape has {len(frame)}")
        if peak_counts <= 0:
            raise InvalidInputError(f"--peak-counts {peak_counts}: must be positive")
        scan = simulate_scan(kind, frame, rng=np.random.default_rng(seed), peak_counts=peak_counts,
                             offset_px=offset_px, dislocation=dislocation,
                             beamstop_radius_px=beamstop, gap_px=gap)
        output.parent.mkdir(parents=True, exist_ok=True)
        write_simulated_scan(output, scan)
    except OSError as exc:
        raise InvalidInputError(f"cannot write {output}: {exc.strerror}") from None
    except MemoryError:  # where the free memory could not be told beforehand
        raise InvalidInputError(f"--shape {shape}: not enough memory to simulate this frame; give a smaller shape, "
                                "e.g. 128,128") from None
    return frame
