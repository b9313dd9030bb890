"""Typed, validated run configuration.

Configuration is validated once, at the edge: :func:`load_config`,
:func:`config_from_dict` and :func:`load_toml` raise
:class:`~cdi_dip.errors.InvalidInputError` naming the field for unknown keys
and out-of-range values. Inside the library, a :class:`RunConfig` is trusted.

A TOML file mirrors the dataclasses of :mod:`cdi_dip.config.options`::

    method = "hio"
    runs = 4
    [input]
    allow_external_links = false
    [prep]
    max_size = 128
    [projection]
    plan = "3*(20*ER+180*HIO)+20*ER"
    [dip]
    learning_rate = 0.01

The package: :mod:`~cdi_dip.config.options` (every setting, its range and
meaning), :mod:`~cdi_dip.config.schema` (the generic field declaration,
validation and coercion), :mod:`~cdi_dip.config.plan` (algorithm plans).
It imports nothing from the solvers, the pipeline, io or the command line.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError
from .options import (
    DEFAULT_CHALLENGE_TIME_FACTOR,
    DEFAULT_POOR_FIT_DIP_STARTS,
    DEFAULT_RUNS,
    AlienHandling,
    CentreMethod,
    DetectorConfig,
    DipConfig,
    GeometryConfig,
    DipLoss,
    DipParam,
    EarlyStop,
    InputConfig,
    Method,
    NoiseModel,
    PrepConfig,
    ProjectionConfig,
    RimHandling,
    RunConfig,
)
from .schema import coerce, merge


def config_from_dict(data: dict[str, Any]) -> RunConfig:
    """Build and validate a :class:`RunConfig` from plain data (e.g. parsed TOML)."""
    return coerce("", RunConfig, data).validate()


def load_toml(path: Path) -> dict[str, Any]:
    """Read a TOML configuration file into plain data (validated later, merged with CLI options)."""
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise InvalidInputError(f"configuration file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInputError(f"configuration file {path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            f"configuration file {path} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
            f"{exc.start}): save it as UTF-8, as TOML requires"
        ) from None
    except OSError as exc:
        raise InvalidInputError(f"cannot read configuration file {path}: {exc.strerror}") from None


def load_config(path: Path | None = None, overrides: dict[str, Any] | None = None) -> RunConfig:
    """The validated configuration of a TOML file (if any) with ``overrides`` (e.g. CLI options) laid over it."""
    base = load_toml(path) if path is not None else {}
    return config_from_dict(merge(base, overrides or {}))


__all__ = [
    "DEFAULT_CHALLENGE_TIME_FACTOR",
    "DEFAULT_POOR_FIT_DIP_STARTS",
    "DEFAULT_RUNS", "AlienHandling", "CentreMethod", "DetectorConfig", "DipConfig", "DipLoss", "DipParam", "EarlyStop",
    "GeometryConfig", "InputConfig", "Method", "NoiseModel", "PrepConfig", "ProjectionConfig", "RimHandling", "RunConfig",
    "config_from_dict", "load_config", "load_toml", "merge",
]
