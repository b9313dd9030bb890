"""``cdi-dip compare``: symmetry-adjusted errors between objects."""

from __future__ import annotations

from typing import Annotated

import typer

from ..errors import InvalidInputError
from . import options as opt
from .common import exit_codes, print_json, setup_logging
from .render import render_comparison


def compare(
    objects: Annotated[list[str], typer.Argument(help="Two objects (RESULT REFERENCE), or three or more for all their "
                                                 "pairwise errors: result .cxi, .npy/.npz, or file.h5:/dataset.")],
    ramp: Annotated[bool, typer.Option("--ramp/--no-ramp", help="Remove a linear phase ramp before measuring the "
                                       "error (default); --no-ramp measures the object as written.")] = True,
    allow_external_links: opt.AllowExternalLinks = False,
    json_output: opt.Json = False,
) -> None:
    """Symmetry-adjusted error between objects (global phase and scale, shift, twin and phase ramp removed)."""
    setup_logging(False, False)
    with exit_codes():
        if len(objects) < 2:
            raise InvalidInputError("compare needs at least two objects: RESULT REFERENCE (or more for pairwise errors)")
        from ..ensemble import compare_objects
        from ..io.readers import read_object

        arrays = [read_object(spec, allow_external_links=allow_external_links) for spec in objects]
        if len(arrays) == 2:
            from dataclasses import asdict

            figures = {"result": objects[0], "reference": objects[1], **asdict(compare_objects(*arrays, ramp=ramp))}
        else:
            import numpy as np

            from ..ensemble import pairwise_errors

            matrix = pairwise_errors(arrays, ramp=ramp)
            off = ~np.eye(len(arrays), dtype=bool)
            figures = {"objects": list(objects), "pairwise_errors": matrix.tolist(),
                       "mean_pairwise_error": float(matrix[off].mean()), "max_pairwise_error": float(matrix[off].max())}
    if json_output:
        print_json(figures)
    else:
        render_comparison(figures)
