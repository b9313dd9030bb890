"""``--method auto``: the method that suits the data, chosen from the pattern itself.

A centrosymmetric pattern comes from a real-valued specimen (HIO with
positivity); anything else is a crystal (the double DIP), except where the
double DIP would take too long on a CPU.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from ..config import Method, RunConfig
from ..types import Measurement
from .projections import choose_positivity

log = logging.getLogger(__name__)


AUTO_DIP_MAX_CPU_VOXELS = 64**3
"""Largest frame (pixels or voxels) for which ``auto`` runs the double DIP on a
CPU: a 64^3 frame takes it about 9 minutes on one core (docs/dip.md), and its
time grows with the frame; larger frames get HIO there, the DIP on a GPU."""


def choose_method(measurement: Measurement, cfg: RunConfig, device: torch.device) -> Method:
    """The method that runs: ``cfg.method``, or for ``auto`` the best measured for this kind of data.

    A centrosymmetric pattern (Friedel asymmetry within two standard errors
    of ``projection.positivity_max_asymmetry``, or ``projection.positivity``
    forced on) comes from a real specimen: HIO with positivity (on simulated
    cells behind a 4 px beamstop, median error 0.148 against the double DIP's
    0.24). Anything else is a crystal: the double DIP (0.025 against HIO's
    0.087 on 2D crystals; docs/dip.md), except on a CPU for frames larger
    than :data:`AUTO_DIP_MAX_CPU_VOXELS` (HIO, with a warning). A projection
    plan (``--plan``) asks for the projection solvers: HIO (the plan names
    the algorithms).
    """
    if cfg.method is not Method.AUTO:
        return cfg.method
    if cfg.projection.plan is not None:  # a projection plan asks for the projection solvers
        return Method.HIO
    counts = torch.from_numpy(np.where(measurement.valid, measurement.intensity, 0.0).astype(np.float32))
    specimen, asymmetry = choose_positivity(counts, torch.from_numpy(measurement.valid), cfg.projection)
    detail = "forced" if asymmetry is None else f"Friedel asymmetry {asymmetry.value:.2g} +- {asymmetry.standard_error:.1g}"
    if specimen:
        log.info("method auto: hio (centrosymmetric pattern, %s)", detail)
        return Method.HIO
    voxels = int(np.prod(measurement.shape))
    if device.type == "cpu" and voxels > AUTO_DIP_MAX_CPU_VOXELS:
        log.warning("method auto: hio, not dip: a %s frame would take the double DIP well over 15 minutes on a "
                    "CPU; use a GPU, --max-size 64, or --method dip to run it anyway",
                    "x".join(map(str, measurement.shape)))
        return Method.HIO
    log.info("method auto: dip (crystal, %s)", detail)
    return Method.DIP


__all__ = ["AUTO_DIP_MAX_CPU_VOXELS", "choose_method"]
