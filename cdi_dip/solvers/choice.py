"""``--method auto``: the method that suits the data, chosen from the pattern itself.

A centrosymmetric pattern comes from a real-valued specimen (HIO with
positivity); anything else is a crystal (the double DIP), except where the
double DIP would take too long on a CPU.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from ..config import Method, RunConfig
from ..types import Measurement
from .friedel import FriedelAsymmetry
from .projections import choose_positivity

log = logging.getLogger(__name__)


AUTO_DIP_MAX_CPU_VOXELS = 64**3
"""Largest frame (pixels or voxels) for which ``auto`` runs the double DIP on a
CPU: a 64^3 frame takes it about 9 minutes on one core (docs/dip.md), and its
time grows with the frame; larger frames get HIO there, the DIP on a GPU."""


def auto_evidence(asymmetry: FriedelAsymmetry | None, cfg: RunConfig) -> dict[str, Any]:
    """What ``auto`` read from the pattern: the Friedel asymmetry, its error, the threshold and the centre."""
    if asymmetry is None:
        return {"positivity": "forced"}
    evidence: dict[str, Any] = {"friedel_asymmetry": asymmetry.value,
                                "friedel_asymmetry_error": asymmetry.standard_error,
                                "threshold": cfg.projection.positivity_max_asymmetry}
    if any(asymmetry.centre_offset_px):
        evidence["centre_offset_px"] = list(asymmetry.centre_offset_px)
    return evidence


def _evidence_text(evidence: dict[str, Any]) -> str:
    if "friedel_asymmetry" not in evidence:
        return "positivity forced"
    text = f"Friedel asymmetry {evidence['friedel_asymmetry']:.2g} +- {evidence['friedel_asymmetry_error']:.1g}"
    if "centre_offset_px" in evidence:
        offset = ", ".join(f"{d:+.2f}" for d in evidence["centre_offset_px"])
        text += f" about a centre ({offset}) px from the centre pixel"
    return text


def decide_method(measurement: Measurement, cfg: RunConfig, device: torch.device) -> tuple[Method, dict[str, Any]]:
    """The method that runs, and for ``auto`` the record of why (empty otherwise).

    ``cfg.method``, or for ``auto`` the best measured for this kind of data.
    A centrosymmetric pattern (Friedel asymmetry, about the centre pixel or
    the best sub-pixel centre, within two standard errors of
    ``projection.positivity_max_asymmetry``, or ``projection.positivity``
    forced on) comes from a real specimen: HIO with positivity (on simulated
    cells behind a 4 px beamstop, median error 0.148 against the double DIP's
    0.24). Anything else is a crystal: the double DIP (0.025 against HIO's
    0.087 on 2D crystals; docs/dip.md), except on a CPU for frames larger
    than :data:`AUTO_DIP_MAX_CPU_VOXELS` (HIO, with a warning). A projection
    plan (``--plan``) asks for the projection solvers: HIO (the plan names
    the algorithms).

    Returns
    -------
    method : Method
    record : dict
        For ``auto``: ``kind`` (specimen or crystal), ``method``, ``reason``
        and the evidence (:func:`auto_evidence`); the summary keeps it as
        ``method_choice.auto``.
    """
    if cfg.method is not Method.AUTO:
        return cfg.method, {}
    if cfg.projection.plan is not None:  # a projection plan asks for the projection solvers
        return Method.HIO, {"kind": "unknown", "method": "hio", "reason": "a projection plan was given"}
    counts = torch.from_numpy(np.where(measurement.valid, measurement.intensity, 0.0).astype(np.float32))
    specimen, asymmetry = choose_positivity(counts, torch.from_numpy(measurement.valid), cfg.projection)
    evidence = auto_evidence(asymmetry, cfg)
    detail = _evidence_text(evidence)
    if specimen:
        log.info("method auto: hio (centrosymmetric pattern, %s)", detail)
        return Method.HIO, {"kind": "specimen", "method": "hio",
                            "reason": f"centrosymmetric pattern ({detail}): a real specimen, HIO with positivity",
                            **evidence}
    voxels = int(np.prod(measurement.shape))
    if device.type == "cpu" and voxels > AUTO_DIP_MAX_CPU_VOXELS:
        log.warning("method auto: hio, not dip: a %s frame would take the double DIP well over 15 minutes on a "
                    "CPU; use a GPU, --max-size 64, or --method dip to run it anyway",
                    "x".join(map(str, measurement.shape)))
        return Method.HIO, {"kind": "crystal", "method": "hio",
                            "reason": f"a crystal ({detail}); HIO, since the frame is too large for the double "
                                      "DIP on a CPU", **evidence}
    log.info("method auto: dip (crystal, %s)", detail)
    return Method.DIP, {"kind": "crystal", "method": "dip", "reason": f"a crystal ({detail}): the double DIP",
                        **evidence}


def choose_method(measurement: Measurement, cfg: RunConfig, device: torch.device) -> Method:
    """The method that runs (:func:`decide_method` without its record)."""
    return decide_method(measurement, cfg, device)[0]


__all__ = ["AUTO_DIP_MAX_CPU_VOXELS", "auto_evidence", "choose_method", "decide_method"]
