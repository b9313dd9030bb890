"""Typed, validated run configuration.

Configuration is validated once, at the edge: :func:`load_toml` and
:func:`config_from_dict` raise :class:`~cdi_dip.errors.InvalidInputError`
naming the field for unknown keys and out-of-range values. Inside the
library, a :class:`RunConfig` is trusted.

A TOML file mirrors the dataclasses::

    method = "hio"
    runs = 4
    [prep]
    max_size = 128
    [projection]
    plan = "3*(20*ER+180*HIO)+20*ER"
    [dip]
    learning_rate = 0.01
"""

from __future__ import annotations

import dataclasses
import enum
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import InvalidInputError


class Method(str, enum.Enum):
    """Reconstruction method."""

    DIP = "dip"
    HIO = "hio"
    RAAR = "raar"
    ER = "er"


class CentreMethod(str, enum.Enum):
    """How the zero frequency is found before centring the frame."""

    AUTO = "auto"  # maximum if it is measured, Friedel symmetry otherwise
    MAX = "max"
    COM = "com"
    FRIEDEL = "friedel"
    NONE = "none"


class DipParam(str, enum.Enum):
    """Parameterisation of the double-DIP object."""

    MAG_PHASE = "mag-phase"  # crystals: A >= 0, phase pi*tanh(.)
    REAL_IMAG = "real-imag"  # specimens: Re >= 0, Im free


class DipLoss(str, enum.Enum):
    """Data loss of the double DIP."""

    AMPLITUDE = "amplitude"
    POISSON = "poisson"


def _check_range(name: str, value: float, low: float | None, high: float | None) -> None:
    if low is not None and value < low:
        raise InvalidInputError(f"configuration: {name} = {value} is below its minimum {low}")
    if high is not None and value > high:
        raise InvalidInputError(f"configuration: {name} = {value} is above its maximum {high}")


@dataclass
class PrepConfig:
    """Preparation of the detector data before any solver sees it."""

    max_size: int | None = None
    """Cap on the frame size along every axis (pixels); None: no cap. The frame
    is cropped around the centred peak to at most this size (FFT-friendly)."""
    centre: CentreMethod = CentreMethod.AUTO
    """How the zero frequency is found: auto, max, com, friedel or none."""
    threshold: float = 0.0
    """Photon threshold: counts below it are set to zero (still valid)."""
    free_fraction: float = 0.05
    """Fraction of valid pixels held out as free pixels for validation (0-0.2)."""

    def validate(self) -> None:
        if self.max_size is not None:
            _check_range("prep.max_size", self.max_size, 8, None)
        _check_range("prep.threshold", self.threshold, 0.0, None)
        _check_range("prep.free_fraction", self.free_fraction, 0.0, 0.2)


@dataclass
class ProjectionConfig:
    """Projection solvers (ER, HIO, RAAR) with shrinkwrap."""

    plan: str | None = None
    """Algorithm plan such as ``"3*(20*ER+180*HIO)+20*ER"``; None: the default
    plan for the method, scaled to ``RunConfig.iterations``."""
    beta: float = 0.9
    """Feedback parameter of HIO and RAAR (0-1)."""
    support_threshold: float = 0.1
    """Relative threshold of the autocorrelation for the initial support (0-1)."""
    shrinkwrap_threshold: float = 0.25
    """Relative threshold of the blurred amplitude in shrinkwrap (0-1)."""
    shrinkwrap_sigma_start: float = 1.5
    """Gaussian sigma of shrinkwrap at the start, pixels."""
    shrinkwrap_sigma_end: float = 0.5
    """Gaussian sigma of shrinkwrap at the end, pixels."""
    shrinkwrap_period: int = 20
    """Iterations between shrinkwrap updates; 0 switches shrinkwrap off."""
    metric_period: int = 20
    """Iterations between convergence metrics (each costs a host sync)."""

    def validate(self) -> None:
        _check_range("projection.beta", self.beta, 0.0, 1.0)
        _check_range("projection.support_threshold", self.support_threshold, 0.0, 1.0)
        _check_range("projection.shrinkwrap_threshold", self.shrinkwrap_threshold, 0.0, 1.0)
        _check_range("projection.shrinkwrap_sigma_start", self.shrinkwrap_sigma_start, 0.0, 20.0)
        _check_range("projection.shrinkwrap_sigma_end", self.shrinkwrap_sigma_end, 0.0, 20.0)
        _check_range("projection.shrinkwrap_period", self.shrinkwrap_period, 0, None)
        _check_range("projection.metric_period", self.metric_period, 1, None)
        if self.plan is not None:
            from .solvers.plan import parse_plan  # local: avoid import cycle

            parse_plan(self.plan)


@dataclass
class DipConfig:
    """Double deep image prior (docs/dip.md: what each setting does and how its default was measured)."""

    param: DipParam = DipParam.MAG_PHASE
    """Object parameterisation: mag-phase (crystals) or real-imag (specimens)."""
    loss: DipLoss = DipLoss.AMPLITUDE
    """Data loss: amplitude (L2 on sqrt counts) or poisson (likelihood)."""
    learning_rate: float = 0.01
    """Adam learning rate."""
    channels: int = 32
    """Channels of the generator's hidden layers."""
    depth: int = 4
    """Number of upsampling blocks of each generator."""
    warm_start_runs: int = 8
    """HIO runs inside the object box that start the networks (the best by free
    likelihood is kept); 0: random starts with probes, on the whole box."""
    warm_start_threshold: float = 0.08
    """Shrinkwrap threshold of the warm start, relative to the blurred amplitude's maximum (0-1)."""
    prefit_iterations: int = 300
    """Adam iterations fitting the networks to the warm-start object before the data fit."""
    support_margin_px: int | None = 1
    """The data fit masks the object with the warm-start support dilated by this
    many pixels; None: no mask (the whole box). Ignored without a warm start."""
    warmup_iterations: int = 100
    """The learning rate ramps up linearly over this many data-fit iterations
    after the pre-fit (0: none)."""
    probes: int = 4
    """Without a warm start: short probe starts per run; the best by training loss is continued."""
    probe_iterations: int = 250
    """Iterations of each probe."""
    polish_iterations: int = 20
    """ER iterations at the end with the support from the DIP amplitude; 0: none."""
    patience: int = 400
    """Early stop when the free-pixel loss has not improved for this many iterations."""
    mixed_precision: bool = False
    """On CUDA, run the generators' convolutions in bfloat16 autocast (not yet
    measured on a GPU: off by default)."""

    def validate(self) -> None:
        _check_range("dip.learning_rate", self.learning_rate, 1e-6, 1.0)
        _check_range("dip.channels", self.channels, 1, 1024)
        _check_range("dip.depth", self.depth, 1, 8)
        _check_range("dip.warm_start_runs", self.warm_start_runs, 0, 1000)
        _check_range("dip.warm_start_threshold", self.warm_start_threshold, 0.0, 1.0)
        _check_range("dip.prefit_iterations", self.prefit_iterations, 0, None)
        if self.support_margin_px is not None:
            _check_range("dip.support_margin_px", self.support_margin_px, 0, 64)
        _check_range("dip.warmup_iterations", self.warmup_iterations, 0, None)
        _check_range("dip.probes", self.probes, 1, 64)
        _check_range("dip.probe_iterations", self.probe_iterations, 1, None)
        _check_range("dip.polish_iterations", self.polish_iterations, 0, None)
        _check_range("dip.patience", self.patience, 1, None)


DEFAULT_RUNS = {Method.HIO: 4, Method.RAAR: 4, Method.ER: 4, Method.DIP: 1}
"""Random starts when none are asked for. Projection runs are cheap and about
one start in four stagnates on simulated crystals (docs/benchmarks.md); the
double DIP already probes several starts inside one run."""


@dataclass
class RunConfig:
    """Everything one reconstruction needs besides the data."""

    method: Method = Method.HIO
    """Reconstruction method: dip, hio, raar or er."""
    iterations: int | None = None
    """Total iterations; None: the method's default."""
    runs: int | None = None
    """Random starts; the best by free (else training) likelihood is kept.
    None: the method's default, set by :meth:`validate` (see ``DEFAULT_RUNS``)."""
    seed: int = 0
    """Base random seed; run k uses seed + k."""
    device: str = "auto"
    """auto, cpu, cuda or cuda:N."""
    prep: PrepConfig = field(default_factory=PrepConfig)
    projection: ProjectionConfig = field(default_factory=ProjectionConfig)
    dip: DipConfig = field(default_factory=DipConfig)

    def validate(self) -> "RunConfig":
        """Check every field; return self so calls can chain."""
        if self.iterations is not None:
            _check_range("iterations", self.iterations, 1, None)
        if self.runs is None:
            self.runs = DEFAULT_RUNS[self.method]
        _check_range("runs", self.runs, 1, 1000)
        _check_range("seed", self.seed, 0, 2**63 - 1)
        from .device import _DEVICE_PATTERN  # local: keeps torch import lazy-friendly

        if not _DEVICE_PATTERN.match(self.device.strip().lower()):
            raise InvalidInputError(f"configuration: device = {self.device!r}: use auto, cpu, cuda or cuda:N")
        self.prep.validate()
        self.projection.validate()
        self.dip.validate()
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain data (enums as strings), for JSON, TOML and the result file."""
        return _plain(dataclasses.asdict(self))


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _coerce(section: str, cls: type, data: dict[str, Any]) -> Any:
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys and bad types."""
    known = {f.name: f for f in fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{section}.{key}" if section else key
        if key not in known:
            raise InvalidInputError(
                f"configuration: unknown key {name!r}; known keys here: {', '.join(sorted(known))}"
            )
        default = getattr(cls(), key)
        if dataclasses.is_dataclass(default):
            if not isinstance(value, dict):
                raise InvalidInputError(f"configuration: {name} must be a table of settings")
            kwargs[key] = _coerce(name, type(default), value)
        elif isinstance(default, enum.Enum):
            try:
                kwargs[key] = type(default)(value)
            except ValueError:
                choices = ", ".join(m.value for m in type(default))
                raise InvalidInputError(f"configuration: {name} = {value!r}; choose one of {choices}") from None
        else:
            kwargs[key] = _check_scalar(name, known[key].type, value)
    return cls(**kwargs)


def _check_scalar(name: str, annotation: Any, value: Any) -> Any:
    text = str(annotation)
    if value is None and "None" in text:
        return None
    if "bool" in text:
        if not isinstance(value, bool):
            raise InvalidInputError(f"configuration: {name} must be true or false, got {value!r}")
        return value
    if text.startswith("int") or text == "int | None":
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidInputError(f"configuration: {name} must be an integer, got {value!r}")
        return value
    if text.startswith("float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidInputError(f"configuration: {name} must be a number, got {value!r}")
        return float(value)
    if text.startswith("str"):
        if not isinstance(value, str):
            raise InvalidInputError(f"configuration: {name} must be a string, got {value!r}")
        return value
    return value


def config_from_dict(data: dict[str, Any]) -> RunConfig:
    """Build and validate a :class:`RunConfig` from plain data (e.g. parsed TOML)."""
    return _coerce("", RunConfig, data).validate()


def load_toml(path: Path) -> dict[str, Any]:
    """Read a TOML configuration file into plain data (validated later, merged with CLI options)."""
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise InvalidInputError(f"configuration file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInputError(f"configuration file {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise InvalidInputError(f"cannot read configuration file {path}: {exc.strerror}") from None


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge ``overrides`` (e.g. CLI options) over ``base`` (e.g. TOML)."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged
