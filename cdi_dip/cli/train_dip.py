"""``cdi-dip train-dip``: pretrain the double DIP's generators on simulated scans (for ``--dip-weights``).

A command of its own rather than a mode of ``cdi-dip train``: the two train
different things with different settings (a batch-trained U-Net with pools,
validation and resumable checkpoints; one pair of generators adapted to one
scan at a time), so one command would take options the other mode ignores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import (EXIT_INTERRUPTED, check_model_output, exit_codes, print_json, set_threads, setup_logging,
                     sigterm_as_interrupt)
from .options import Device, Json, Quiet, Threads, Verbose, parse_names

_DEFAULTS = "\\[default: {}]"


def train_dip(
    output: Annotated[Path, typer.Argument(help="Model file to write (.pt); refused if it exists.")],
    dim: Annotated[int, typer.Option(help="2 or 3: the data the generators are for.")] = 2,
    size: Annotated[int, typer.Option(help="Frame size per axis, pixels; the object box is half of it and a run must have that box.")] = 64,
    param: Annotated[str, typer.Option(help="mag-phase (crystals) or real-imag (specimens): a run's --param must be the same.")] = "mag-phase",
    samples: Annotated[int, typer.Option(help="Simulated scans, each adapted to once.")] = 200,
    inner_steps: Annotated[int, typer.Option(help="Adam steps of the data loss per scan.")] = 20,
    learning_rate: Annotated[float, typer.Option(help="Adam's learning rate in those steps (the run's dip.learning_rate).")] = 0.01,
    meta_step: Annotated[float, typer.Option(help="Fraction of the way to the adapted weights the generators move on the first scan, 0-1 (decays to a tenth).")] = 0.5,
    channels: Annotated[int, typer.Option(help="Channels of each generator (the run's dip.channels).")] = 32,
    depth: Annotated[int, typer.Option(help="Upsampling blocks of each generator (the run's dip.depth).")] = 4,
    families: Annotated[Optional[str], typer.Option(help="Comma-separated object families " + _DEFAULTS.format("the tuning half's crystals for mag-phase, its specimens for real-imag") + ".")] = None,
    conditions: Annotated[Optional[str], typer.Option(help="Comma-separated detector conditions " + _DEFAULTS.format("clean,low-flux,beamstop-masked,gaps,blur") + ".")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the fixed inputs, the first weights and the scans.")] = 0,
    device: Device = None,
    threads: Threads = None,
    json_output: Json = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Pretrain the double DIP's generators on simulated scans (reconstruct --dip-weights MODEL.pt)."""
    setup_logging(quiet, verbose)
    sigterm_as_interrupt()
    with exit_codes():
        from ..device import resolve_device
        from ..learned.dip_pretraining import PretrainConfig, pretrain, save_generators

        set_threads(threads)
        check_model_output(output)
        cfg = PretrainConfig(dim=dim, size=size, param=param, channels=channels, depth=depth, samples=samples,
                             inner_steps=inner_steps, inner_learning_rate=learning_rate, meta_step=meta_step,
                             seed=seed)
        if families:
            cfg.families = parse_names(families)
        if conditions:
            cfg.conditions = parse_names(conditions)
        cfg.validate()
        model, record = pretrain(cfg, device=resolve_device(device or "auto"),
                                 on_progress=None if quiet or json_output else _progress)
        save_generators(output, model, cfg, record)
    summary = {"path": str(output), "samples": record["samples"], "seconds": record["seconds"],
               "interrupted": record["interrupted"], "architecture": cfg.architecture.to_dict()}
    if json_output:
        print_json(summary)
    else:
        typer.echo(f"wrote {output}: generators for a {cfg.architecture.describe()}, pretrained on "
                   f"{record['samples']} scans in {record['seconds']:.0f} s")
    if record["interrupted"]:
        raise typer.Exit(EXIT_INTERRUPTED)


def _progress(info: dict) -> None:
    if info["sample"] % 10 == 0 or info["sample"] + 1 == info["samples"]:
        typer.echo(f"scan {info['sample'] + 1}/{info['samples']}: data loss {info['loss_before']:.4f} -> "
                   f"{info['loss_after']:.4f} after adapting ({info['seconds']:.0f} s)", err=True)
