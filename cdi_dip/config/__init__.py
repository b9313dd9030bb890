"""Typed, validated run configuration (see :mod:`cdi_dip.config.options` for every field)."""

from .options import (
    DEFAULT_RUNS,
    AlienHandling,
    CentreMethod,
    DetectorConfig,
    DipConfig,
    DipLoss,
    DipParam,
    InputConfig,
    Method,
    NoiseModel,
    PrepConfig,
    ProjectionConfig,
    RimHandling,
    RunConfig,
    check_finite,
    config_from_dict,
    load_toml,
    merge,
)

__all__ = [
    "DEFAULT_RUNS", "AlienHandling", "CentreMethod", "DetectorConfig", "DipConfig", "DipLoss", "DipParam",
    "InputConfig", "Method", "NoiseModel", "PrepConfig", "ProjectionConfig", "RimHandling", "RunConfig",
    "check_finite", "config_from_dict", "load_toml", "merge",
]
