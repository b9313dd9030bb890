"""``cdi-dip batch``: many scans on a local process pool or a Dask cluster.

The library part (input expansion, executors, resume) is :mod:`cdi_dip.batch`;
this module parses, renders progress and maps outcomes to exit codes.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import InvalidInputError
from . import options as opt
from .common import EXIT_FAILED, build_config, exit_codes, print_json, set_threads, setup_logging, sigterm_as_interrupt
from .render import BatchProgress, render_batch


def batch(
    inputs: Annotated[Optional[list[str]], typer.Argument(
        help="Scans: files (CXI/HDF5/TIFF/NPY/NPZ, file.h5:/dataset), directories (their scan files; "
        "a folder of TIFF frames is one scan), globs, or - to read one input per line from stdin.",
        show_default=False)] = None,
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
    config: Annotated[Optional[Path], typer.Option(
        "--config", help="TOML configuration file for the whole batch (options override it).",
        rich_help_panel=opt.INPUT)] = None,
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
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="Output folder: OUT/<scan-name>/ per scan and OUT/batch.json.",
        rich_help_panel=opt.OUTPUT)] = Path("results"),
    resume: Annotated[bool, typer.Option(
        "--resume", help="Skip scans already reconstructed with the same configuration.",
        rich_help_panel=opt.OUTPUT)] = False,
    strain: opt.Strain = None,
    json_output: Annotated[bool, typer.Option(
        "--json", help="Print batch.json as one JSON object on stdout.", rich_help_panel=opt.OUTPUT)] = False,
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q", help="No progress, no summary.", rich_help_panel=opt.OUTPUT)] = False,
    verbose: opt.Verbose = False,
    gpu: opt.Gpu = False,
    device: opt.Device = None,
    workers: Annotated[Optional[int], typer.Option(
        help="Local worker processes (spawned); 1 runs in this process. With several GPUs and --device "
             "cuda/auto, worker k uses cuda:k (default 1).", show_default=False, rich_help_panel=opt.RUNTIME)] = None,
    scheduler: Annotated[Optional[str], typer.Option(
        help="Dask scheduler address, e.g. tcp://host:8786 (needs Dask: pip install 'cdi-dip\\[cluster]').",
        rich_help_panel=opt.RUNTIME)] = None,
    threads: Annotated[Optional[int], typer.Option(
        "--threads", help="CPU threads of torch and the C kernels in this process (torch.set_num_threads); "
                          "--workers > 1 keeps its own split, CPUs / workers per worker \\[default: torch's default].",
        rich_help_panel=opt.RUNTIME)] = None,
) -> None:
    """Reconstruct many scans, each into OUT/<scan-name>/, and write OUT/batch.json.

    Every scan gets the same configuration and seed, so each result equals what
    `cdi-dip reconstruct` gives for it. A failed scan is recorded and the batch
    goes on. Exit code 0 only if every scan succeeded (or was skipped by
    --resume), else 1; 2 for invalid usage.
    """
    setup_logging(quiet, verbose)
    sigterm_as_interrupt()
    with exit_codes(interrupted=f"interrupted; finished scans are listed in {out / 'batch.json'}: rerun with --resume"):
        set_threads(threads)
        if workers is not None and workers < 1:
            raise InvalidInputError(f"--workers {workers}: give at least 1")
        if workers is not None and scheduler:
            raise InvalidInputError("--workers and --scheduler contradict each other: the Dask cluster sets the parallelism")
        cfg = build_config(config, opt.overrides(locals()))
        from ..batch import expand_inputs, run_batch

        items = inputs or []
        sources = expand_inputs(items, sys.stdin.read() if "-" in items else None)
        mode = "off" if quiet or json_output else ("rich" if sys.stderr.isatty() else "plain")
        with BatchProgress(mode) as progress:
            summary = run_batch(
                sources, cfg, out, workers=workers or 1, scheduler=scheduler, resume=resume,
                mask_specs=mask or (), command_line=shlex.join(sys.argv), on_event=progress,
                strain=strain or "auto",
            )
    if json_output:
        print_json(summary)
    elif not quiet:
        render_batch(summary, out)
    raise typer.Exit(0 if summary["failed"] == 0 else EXIT_FAILED)
