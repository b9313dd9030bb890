"""``cdi-dip inspect``: what was read and found, without reconstructing."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import InvalidInputError
from . import options as opt
from .common import build_config, exit_codes, print_json, setup_logging
from .render import render_inspection


def inspect(
    input: Annotated[str, typer.Argument(help="Any input reconstruct accepts.")],
    mask: opt.Masks = None,
    dark: opt.Dark = None,
    flat: opt.Flat = None,
    roi: opt.Roi = None,
    energy_kev: opt.EnergyKev = None,
    distance_m: opt.DistanceM = None,
    pixel_size_m: opt.PixelSizeM = None,
    rocking_step_deg: opt.RockingStepDeg = None,
    detector_angles: opt.DetectorAngles = None,
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
    png: Annotated[Optional[Path], typer.Option(
        help="Also draw the frame(s) with the excluded pixels coloured by reason into this PNG.",
        rich_help_panel=opt.OUTPUT)] = None,
    json_output: opt.Json = False,
) -> None:
    """Show what was read and found: shape, counts, peak, excluded pixels by reason, geometry, suggested frame."""
    setup_logging(False, False)
    with exit_codes():
        cfg = build_config(config, opt.overrides(locals()))
        from ..inspection import describe, inspect_input

        inspection = inspect_input(input, cfg, mask_specs=mask or ())
        info = describe(inspection, source=input)
        if png is not None:
            from ..report.png import write_mask_figure

            _check_parent(png)
            info["png"] = str(write_mask_figure(inspection.conditioned, png))
    if json_output:
        print_json(info)
    else:
        render_inspection(info, input)


def _check_parent(path: Path) -> None:
    """An output file's folder must exist and be writable."""
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise InvalidInputError(f"{path}: folder {folder} does not exist; create it or choose another path")
    if not os.access(folder, os.W_OK):
        raise InvalidInputError(f"{path}: folder {folder} is not writable; choose another path")
