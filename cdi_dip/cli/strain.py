"""``cdi-dip strain``: displacement and strain along Q of a 3D Bragg result."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from . import options as opt
from .common import exit_codes, print_json, setup_logging


def strain(
    result: Annotated[Path, typer.Argument(help="A 3D Bragg result .cxi written by cdi-dip reconstruct.")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Folder for strain.cxi, the TIFFs, the VTI and strain.png \\[default: beside the result].")] = None,
    d_spacing_nm: opt.DSpacingNm = None,
    bragg_angle_deg: opt.BraggAngleDeg = None,
    frame: Annotated[Optional[str], typer.Option("--frame", help="Frame of the files: detector (the sheared array as reconstructed), lab (orthogonal, axes z along the beam, y up, x) or crystal (orthogonal, axis 0 along Q); lab and crystal resample onto isotropic voxels and need the rocking step \\[default: lab].")] = None,
    energy_kev: opt.EnergyKev = None,
    distance_m: opt.DistanceM = None,
    rocking_step_deg: opt.RockingStepDeg = None,
    detector_angles: opt.DetectorAngles = None,
    json_output: opt.Json = False,
    verbose: opt.Verbose = False,
) -> None:
    """Unwrap the phase in the support, and write the displacement and strain along Q (lab frame by default).

    --d-spacing-nm and --bragg-angle-deg default to those the result was reconstructed with.
    """
    setup_logging(False, verbose)
    with exit_codes():
        from ..config import GeometryConfig
        from ..strain_result import DEFAULT_FRAME, strain_of_result

        geometry = GeometryConfig(**opt.overrides(locals()).get("geometry", {}))
        geometry.validate()
        summary = strain_of_result(result, out, geometry=geometry, frame=frame or DEFAULT_FRAME,
                                   command_line=shlex.join(sys.argv))
    if json_output:
        print_json(summary)
    else:
        voxel = ", ".join(f"{v:.3g}" for v in summary["voxel_size_nm"])
        typer.echo(f"{summary['frame']} frame, voxel ({voxel}) nm, grid {tuple(summary['shape'])}")
        typer.echo(f"strain along Q: rms {summary.get('strain_rms', float('nan')):.3g}, "
                   f"range [{summary.get('strain_min', float('nan')):.3g}, {summary.get('strain_max', float('nan')):.3g}] "
                   f"over {summary.get('voxels', 0)} voxels")
        if "note" in summary:
            typer.echo(summary["note"])
        typer.echo("wrote " + ", ".join(summary["files"]))
