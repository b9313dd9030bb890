"""``cdi-dip train``: train the learned initialiser on simulated scans or on measured ones."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import (EXIT_INTERRUPTED, check_model_output, exit_codes, print_json, set_threads, setup_logging,
                     sigterm_as_interrupt)
from .options import Device, Json, Quiet, Threads, Verbose, parse_names

_DEFAULTS = "\\[default: {}]"


def train(
    output: Annotated[Path, typer.Argument(help="Model file to write (.pt); refused if it exists, unless --resume.")],
    dim: Annotated[int, typer.Option(help="2 or 3: the data the model is for.")] = 2,
    size: Annotated[Optional[int], typer.Option(help="Frame size per axis the model is trained on, pixels " + _DEFAULTS.format("128 in 2D, 64 in 3D") + ".")] = None,
    loss: Annotated[str, typer.Option(help="passive (fits the measurement only: any symmetric copy of the object is right) or active (canonical ground truth: centred, global phase fixed, nearer of object and twin).")] = "passive",
    steps: Annotated[int, typer.Option(help="Optimiser steps in all (--resume continues up to this).")] = 2000,
    batch_size: Annotated[int, typer.Option("--batch", help="Samples per step.")] = 16,
    learning_rate: Annotated[float, typer.Option(help="Adam's initial learning rate (a cosine takes it to a tenth).")] = 2e-3,
    width: Annotated[int, typer.Option(help="Channels of the network's first level.")] = 16,
    depth: Annotated[int, typer.Option(help="Down-sampling levels of the network.")] = 4,
    families: Annotated[Optional[str], typer.Option(help="Comma-separated object families to simulate " + _DEFAULTS.format("the tuning half's") + ".")] = None,
    conditions: Annotated[Optional[str], typer.Option(help="Comma-separated detector conditions " + _DEFAULTS.format("clean,low-flux,beamstop-masked,gaps,blur") + ".")] = None,
    scans: Annotated[Optional[list[Path]], typer.Option("--scans", help="Train on these measured scans instead (files, frame folders, or folders of scans; passive loss, no ground truth); repeat to add.")] = None,
    pool: Annotated[int, typer.Option(help="Simulated samples made at once (renewed with fresh seeds every --reuse passes).")] = 256,
    reuse: Annotated[int, typer.Option(help="Passes through a pool before it is renewed.")] = 2,
    validation: Annotated[int, typer.Option(help="Validation samples of fresh seeds.")] = 32,
    checkpoint_every: Annotated[int, typer.Option(help="Steps between validation and writing the file.")] = 100,
    seed: Annotated[int, typer.Option(help="Seed of the weights and the batch order.")] = 0,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the training stored in OUTPUT (same network and loss).")] = False,
    device: Device = None,
    threads: Threads = None,
    json_output: Json = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Train the learned initialiser (--init learned:MODEL.pt, --method net) on simulated or measured scans."""
    setup_logging(quiet, verbose)
    sigterm_as_interrupt()
    with exit_codes():
        from ..device import resolve_device
        from ..learned.training import TrainConfig, train as run_training

        set_threads(threads)
        check_model_output(output, resume=resume)
        cfg = TrainConfig(dim=dim, size=size or (128 if dim == 2 else 64), width=width, depth=depth, loss=loss,
                          steps=steps, batch=batch_size, learning_rate=learning_rate, pool=pool, reuse=reuse,
                          validation=validation, checkpoint_every=checkpoint_every, seed=seed)
        if families:
            cfg.families = parse_names(families)
        if conditions:
            cfg.conditions = parse_names(conditions)
        measured, source, skipped = None, "simulated", []
        cfg.validate(measured=bool(scans))
        if scans:
            from ..learned.measured import measured_samples

            measured, used, skipped = measured_samples(scans, cfg.size, cfg.dim)
            source = f"{len(used)} measured scans: " + ", ".join(used[:5]) + (" ..." if len(used) > 5 else "")
        summary = run_training(output, cfg, measured=measured, resume=resume,
                               device=resolve_device(device or "auto"), source=source,
                               on_progress=None if quiet or json_output else _progress)
    summary["skipped_scans"] = skipped
    if json_output:
        print_json(summary)
    else:
        typer.echo(f"wrote {summary['path']}: step {summary['step']} of {summary['steps']} in "
                   f"{summary['seconds']:.0f} s, validation {_figures(summary['validation'])}")
    if summary["interrupted"]:
        raise typer.Exit(EXIT_INTERRUPTED)


def _figures(record: dict) -> str:
    parts = [f"passive loss {record['passive_loss']:.4f}"] if "passive_loss" in record else []
    if "median_error" in record:
        parts.append(f"median error {record['median_error']:.3f}")
    return ", ".join(parts) or "not run"


def _progress(progress: dict) -> None:
    if "passive_loss" in progress:
        typer.echo(f"step {progress['step']}/{progress['steps']}: loss {progress['loss']:.4f}, validation "
                   f"{_figures(progress)}", err=True)
