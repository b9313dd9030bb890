"""Command-line options shared by ``reconstruct``, ``batch`` and ``inspect``.

Each option is declared once here as an ``Annotated`` type (its flag and its
help); the commands list the ones they take, and :func:`run_overrides` turns
their values into the nested dictionary that :func:`cdi_dip.config.config_from_dict`
validates (after merging over a TOML file). ``None`` means "not given".
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ..errors import InvalidInputError

Method = Annotated[Optional[str], typer.Option("--method", "-m", help="auto, dip, hio, raar or er [default: auto: dip for crystals, hio for specimens]")]
Gpu = Annotated[bool, typer.Option("--gpu", help="Run on CUDA (same as --device cuda).")]
Device = Annotated[Optional[str], typer.Option(help="auto, cpu, cuda or cuda:N [default: auto]")]
Masks = Annotated[Optional[list[str]], typer.Option("--mask", help="Mask file (nonzero = excluded); repeat to combine.")]
Iterations = Annotated[Optional[int], typer.Option("--iterations", "-n", help="Iterations: HIO/RAAR/ER: the length of the default plan; double DIP: its data-fit iterations, with the warm start and pre-fit shortened in proportion below the default (1000 in 2D, 1500 in 3D), so a small number is a short run.")]
Runs = Annotated[Optional[int], typer.Option(help="Random starts; the best by free likelihood is kept.")]
Keep = Annotated[Optional[int], typer.Option(help="Best runs averaged into the result, with uncertainty maps and the PRTF [default: half the runs].")]
Seed = Annotated[Optional[int], typer.Option(help="Base random seed.")]
Plan = Annotated[Optional[str], typer.Option(help="Projection plan, e.g. '3*(20*ER+180*HIO)+20*ER'.")]
Param = Annotated[Optional[str], typer.Option(help="Double DIP object: mag-phase (crystals) or real-imag (specimens with Re >= 0).")]
Noise = Annotated[Optional[str], typer.Option(help="Noise model for validation, run selection and the DIP loss: poisson, gaussian or amplitude.")]
MaxSize = Annotated[Optional[int], typer.Option("--max-size", help="Cap the frame at this many pixels per axis.")]
Centre = Annotated[Optional[str], typer.Option(help="Zero frequency: auto, max, com, friedel or none.")]
Threshold = Annotated[Optional[float], typer.Option(help="Photon threshold: counts below it become 0.")]
Dark = Annotated[Optional[str], typer.Option(help="Dark (no-beam) image to subtract; pixels with dark > 1 count are excluded.")]
Flat = Annotated[Optional[str], typer.Option(help="Flat-field (white-field) image; pixels below mean - 3 std are excluded.")]
Roi = Annotated[Optional[str], typer.Option(help="Detector region of the frames, y0,y1,x0,x1 (cuts a full-detector dark/flat).")]
Bin = Annotated[Optional[str], typer.Option("--bin", help="Binning factors, e.g. 2 or 1,2,2 (sums counts).")]
Saturation = Annotated[Optional[float], typer.Option(help="Detector saturation, counts: pixels at or above are excluded.")]
BeamstopRadius = Annotated[Optional[float], typer.Option("--beamstop-radius", help="Beamstop radius in pixels around the peak (default: found from the data).")]
Aliens = Annotated[Optional[str], typer.Option(help="Stray 'alien' scattering: mask (exclude), report (find only) or off [default: mask].")]
AllowExternalLinks = Annotated[bool, typer.Option(
    "--allow-external-links",
    help="Follow HDF5 external links and virtual-dataset sources outside the input file's folder, and external "
         "raw storage (only for files you trust).")]
Config = Annotated[Optional[Path], typer.Option("--config", help="TOML configuration file (options override it).")]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout, nothing else.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress, no summary table.")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Log what the library does.")]


def parse_ints(text: str, name: str) -> list[int]:
    """``"128,128"`` -> ``[128, 128]``; an InvalidInputError naming the option otherwise."""
    try:
        values = [int(part) for part in text.replace("x", ",").split(",") if part.strip()]
    except ValueError:
        raise InvalidInputError(f"{name} {text!r}: give integers separated by commas, e.g. 128,128") from None
    if not values:
        raise InvalidInputError(f"{name} is empty: give integers separated by commas, e.g. 128,128")
    return values


def device_choice(gpu: bool, device: str | None) -> str | None:
    """``--gpu`` and ``--device`` as one device name (None: not given)."""
    if gpu and device is not None and not device.strip().lower().startswith("cuda"):
        raise InvalidInputError(f"--gpu and --device {device} contradict each other: give one of them")
    return "cuda" if gpu and device is None else device


def detector_overrides(*, dark: str | None = None, flat: str | None = None, roi: str | None = None,
                       bin: str | None = None, saturation: float | None = None,
                       beamstop_radius: float | None = None, aliens: str | None = None) -> dict[str, Any]:
    """The ``[detector]`` settings given on the command line (files are read, and checked, later)."""
    return {
        "dark": dark, "flat": flat,
        "roi": parse_ints(roi, "--roi") if roi is not None else None,
        "bin": parse_ints(bin, "--bin") if bin is not None else None,
        "saturation": saturation, "beamstop_radius": beamstop_radius, "aliens": aliens,
    }


def run_overrides(*, method: str | None = None, iterations: int | None = None, runs: int | None = None,
                  keep: int | None = None, seed: int | None = None, gpu: bool = False, device: str | None = None,
                  noise: str | None = None, max_size: int | None = None, centre: str | None = None,
                  threshold: float | None = None, plan: str | None = None, param: str | None = None,
                  allow_external_links: bool = False, **detector: Any) -> dict[str, Any]:
    """Everything a reconstruction command was given, as nested configuration data.

    Parameters
    ----------
    method, iterations, runs, keep, seed, gpu, device, noise, max_size, centre, threshold, plan, param
        The command's options (None: not given).
    allow_external_links : bool
        The flag ``--allow-external-links``; not given (False) leaves a TOML
        file's ``input.allow_external_links`` standing.
    **detector
        The options of :func:`detector_overrides`.

    Returns
    -------
    dict
        Top-level keys and ``input``, ``prep``, ``projection``, ``dip``, ``detector`` tables, with
        the options not given left out (so a TOML file's values stand).
    """
    data = {
        "method": method, "iterations": iterations, "runs": runs, "keep": keep, "seed": seed,
        "device": device_choice(gpu, device), "noise": noise,
        "input": {"allow_external_links": True if allow_external_links else None},
        "prep": {"max_size": max_size, "centre": centre, "threshold": threshold},
        "projection": {"plan": plan},
        "dip": {"param": param},
        "detector": detector_overrides(**detector),
    }
    return drop_unset(data)


def drop_unset(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` without None values and without tables left empty."""
    clean: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            value = drop_unset(value)
            if value:
                clean[key] = value
        elif value is not None:
            clean[key] = value
    return clean
