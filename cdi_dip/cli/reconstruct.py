"""``cdi-dip reconstruct``: one scan into OUT/<scan-name>/ (or OUT/NAME/ with ``--name``)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from . import options as opt
from .common import EXIT_INTERRUPTED, build_config, exit_codes, print_json, set_threads, setup_logging, sigterm_as_interrupt
from .render import RunProgress, render_summary


def reconstruct(
    input: Annotated[str, typer.Argument(help="CXI/HDF5 file (file.h5:/dataset), TIFF file, directory or glob of TIFF frames, NPY/NPZ.")],
    mask: opt.Masks = None,
    dark: opt.Dark = None,
    flat: opt.Flat = None,
    roi: opt.Roi = None,
    energy_kev: opt.EnergyKev = None,
    distance_m: opt.DistanceM = None,
    pixel_size_m: opt.PixelSizeM = None,
    rocking_step_deg: opt.RockingStepDeg = None,
    detector_angles: opt.DetectorAngles = None,
    d_spacing_nm: opt.DSpacingNm = None,
    bragg_angle_deg: opt.BraggAngleDeg = None,
    allow_external_links: opt.AllowExternalLinks = False,
    config: opt.Config = None,
    max_size: opt.MaxSize = None,
    max_voxels: opt.MaxVoxels = None,
    centre: opt.Centre = None,
    threshold: opt.Threshold = None,
    bin: opt.Bin = None,
    saturation: opt.Saturation = None,
    beamstop_radius: opt.BeamstopRadius = None,
    aliens: opt.Aliens = None,
    method: opt.Method = None,
    iterations: opt.Iterations = None,
    runs: opt.Runs = None,
    keep: opt.Keep = None,
    seed: opt.Seed = None,
    plan: opt.Plan = None,
    beta: opt.Beta = None,
    support_threshold: opt.SupportThreshold = None,
    shrinkwrap_threshold: opt.ShrinkwrapThreshold = None,
    param: opt.Param = None,
    dip_weights: opt.DipWeights = None,
    noise: opt.Noise = None,
    psf: opt.Psf = None,
    background: opt.Background = None,
    time_budget: opt.TimeBudget = None,
    challenge_time_factor: opt.ChallengeTimeFactor = None,
    init: opt.Init = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder; results go to OUT/<scan-name>/.",
                                      rich_help_panel=opt.OUTPUT)] = Path("results"),
    name: Annotated[Optional[str], typer.Option(
        "--name", help="Name of the result folder: OUT/NAME/ instead of OUT/<scan-name>/ (made safe as one "
                       "folder name; the files inside keep the scan's name).", rich_help_panel=opt.OUTPUT)] = None,
    strain: opt.Strain = None,
    json_output: opt.Json = False,
    quiet: opt.Quiet = False,
    verbose: opt.Verbose = False,
    gpu: opt.Gpu = False,
    device: opt.Device = None,
    threads: opt.Threads = None,
) -> None:
    """Reconstruct one scan and write OUT/<scan-name>/ or OUT/NAME/ (CXI, TIFFs, report.png, summary.json)."""
    setup_logging(quiet, verbose)
    sigterm_as_interrupt()
    with exit_codes(failures=True, interrupted="interrupted before any result could be written"):
        set_threads(threads)
        cfg = build_config(config, opt.overrides(locals()))
        from ..pipeline import reconstruct_scan

        show_progress = not quiet and not json_output and sys.stderr.isatty()
        with RunProgress(show_progress) as progress:
            summary = reconstruct_scan(
                input, cfg, out, mask_specs=mask or (), command_line=shlex.join(sys.argv), on_iter=progress,
                name=name, strain=strain or "auto",
            )
    if json_output:
        print_json(summary)
    elif not quiet:
        render_summary(summary)
    if summary.get("interrupted"):
        raise typer.Exit(EXIT_INTERRUPTED)
