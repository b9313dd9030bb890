"""Typed, validated run configuration.

Configuration is validated once, at the edge: :func:`load_toml` and
:func:`config_from_dict` raise :class:`~cdi_dip.errors.InvalidInputError`
naming the field for unknown keys and out-of-range values. Inside the
library, a :class:`RunConfig` is trusted.

A TOML file mirrors the dataclasses::

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
"""

from __future__ import annotations

import dataclasses
import enum
import math
import numbers
import tomllib
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError
from .plan import parse_plan


class Method(str, enum.Enum):
    """Reconstruction method."""

    AUTO = "auto"  # dip for crystals, hio for specimens (a centrosymmetric pattern): the best measured
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


class NoiseModel(str, enum.Enum):
    """Noise model of the counts: the likelihood used for validation and run selection.

    Each is normalised so that a fit at the noise level scores about 1 per pixel.
    """

    POISSON = "poisson"  # Poisson deviance: the exact model of photon counting
    GAUSSIAN = "gaussian"  # intensity least squares, variance max(n, 1)
    AMPLITUDE = "amplitude"  # 4 (sqrt(n) - sqrt(m))**2: variance-stabilised Poisson


class AlienHandling(str, enum.Enum):
    """What to do with aliens (stray scattering not centrosymmetric about the peak)."""

    MASK = "mask"  # find them and exclude them from every fit
    REPORT = "report"  # find and report them, but keep fitting them
    OFF = "off"  # do not look for them


class RimHandling(str, enum.Enum):
    """What to do with the one-pixel rim around a beamstop shadow the tool found."""

    TEST = "test"  # hold it out of a first pass, fit it again where that pass predicts its counts
    EXCLUDE = "exclude"  # always exclude it (a beamstop with a soft edge)
    KEEP = "keep"  # always fit it (a sharp shadow)


class DipParam(str, enum.Enum):
    """Parameterisation of the double-DIP object."""

    MAG_PHASE = "mag-phase"  # crystals: A >= 0, phase pi*tanh(.)
    REAL_IMAG = "real-imag"  # specimens: Re >= 0, Im free


class DipLoss(str, enum.Enum):
    """Data loss of the double DIP (``--noise`` picks the one of the same name)."""

    AMPLITUDE = "amplitude"  # (sqrt(n) - sqrt(m))**2: robust default
    POISSON = "poisson"  # m - n log m: the likelihood of photon counting
    GAUSSIAN = "gaussian"  # (m - n)**2 / max(n, 1): intensity least squares


def _check_range(name: str, value: float, low: float | None, high: float | None) -> None:
    if _non_finite(value):  # NaN passes every comparison
        raise InvalidInputError(f"configuration: {name} = {value} is not a finite number; give a number")
    if low is not None and value < low:
        raise InvalidInputError(f"configuration: {name} = {value} is below its minimum {low}")
    if high is not None and value > high:
        raise InvalidInputError(f"configuration: {name} = {value} is above its maximum {high}")


def check_finite(config: Any, section: str = "") -> None:
    """Refuse NaN and infinity in every float field of a configuration dataclass and of its sections.

    One check over :func:`dataclasses.fields` rather than one per field: a NaN
    passes every range check (``nan < low`` is false), so a field forgotten
    here would run on garbage. Optional floats and lists are checked too.

    Parameters
    ----------
    config : dataclass instance
        A :class:`RunConfig` or one of its sections.
    section : str
        Dotted prefix of the field names in messages (``"projection"``).

    Raises
    ------
    InvalidInputError
        Naming the first non-finite field and its default value.
    """
    for item in fields(config):
        name = f"{section}.{item.name}" if section else item.name
        value = getattr(config, item.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            check_finite(value, name)
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        for index, element in enumerate(values):
            if _non_finite(element):
                where = f"{name}[{index}]" if values is value else name
                raise InvalidInputError(
                    f"configuration: {where} = {element} is not a finite number; "
                    f"give a number{_default_hint(item)}"
                )


def _non_finite(value: Any) -> bool:
    """A real number (not an integer) that is NaN or infinite."""
    return isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral) and not math.isfinite(value)


def _default_hint(item: dataclasses.Field) -> str:
    """`` (default X)`` for a field with a plain default, else nothing."""
    if item.default is dataclasses.MISSING or item.default is None:
        return ""
    return f" (default {item.default})"


@dataclass
class InputConfig:
    """How input files (data, masks, darks and flats) are read."""

    allow_external_links: bool = False
    """Follow HDF5 external links and virtual-dataset sources that lead outside
    the input file's folder, and read external raw storage (values kept in
    another file). Off by default: a crafted file could otherwise make the
    tool read any file of the machine into its result."""

    def validate(self) -> None:
        """Nothing to check beyond the type."""


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
class DetectorConfig:
    """Detector corrections and defect finding, applied to the frames as read.

    Order: dark subtraction, flat field, defect finding (gaps, saturation, hot
    pixels, beamstop, dead pixels, aliens), binning. Every excluded pixel is
    recorded under its reason and written into the result file.
    """

    dark: str | None = None
    """Dark (no-beam) image file, any supported format; one frame or one per frame."""
    flat: str | None = None
    """Flat-field (white-field) image file."""
    roi: list[int] | None = None
    """Detector region the frames were read from, ``[y0, y1, x0, x1]`` (stop
    exclusive), used to cut a full-detector dark and flat; None: the frames
    are the whole detector."""
    dark_hot_counts: float = 1.0
    """Pixels whose dark exceeds this many counts are excluded (beamline rule: dark > 1)."""
    flat_min_relative: float | None = None
    """Pixels whose flat is below this fraction of its mean are excluded; None:
    the beamline rule ``flat < mean - 3 std``."""
    saturation: float | None = None
    """Detector saturation, counts per frame: pixels at or above are excluded;
    None: only a visible clipping plateau is."""
    beamstop_radius: float | None = None
    """Beamstop as a disc (ball in 3D) of this radius in pixels around the peak;
    None: found from the data (a dark region at the peak)."""
    find_beamstop: bool | None = None
    """Look for a beamstop shadow; None: in 2D frames (forward CDI) only."""
    beamstop_rim: RimHandling = RimHandling.TEST
    """The one-pixel rim around a found shadow, which a real beamstop's edge may half cover:
    ``test`` holds it out of a first reconstruction and fits it again when that
    reconstruction predicts its counts to within ``RIM_TOLERANCE`` (a sharp
    shadow; :mod:`cdi_dip.rim`), ``exclude`` always excludes it, ``keep``
    always fits it."""
    find_gaps: bool = True
    """Look for detector gaps (lines of zeros or of a fill value)."""
    gap_fill_value: float | None = None
    """Value the detector writes into gaps; None: 0."""
    find_hot: bool = True
    """Look for hot pixels (isolated counts far above their neighbours)."""
    find_dead: bool | None = None
    """Look for dead pixels (zero where the neighbours must have signal); None: 3D stacks only."""
    aliens: AlienHandling = AlienHandling.MASK
    """Aliens: mask (exclude), report (find only) or off."""
    bin: list[int] | None = None
    """Binning factors per axis (two: the detector axes of a stack); None: none."""

    def validate(self) -> None:
        if self.roi is not None and (len(self.roi) != 4 or any(not isinstance(v, int) for v in self.roi)
                                     or not (0 <= self.roi[0] < self.roi[1] and 0 <= self.roi[2] < self.roi[3])):
            raise InvalidInputError(
                f"configuration: detector.roi (--roi) = {self.roi}: give y0,y1,x0,x1 with 0 <= start < stop"
            )
        _check_range("detector.dark_hot_counts", self.dark_hot_counts, 0.0, None)
        if self.flat_min_relative is not None:
            _check_range("detector.flat_min_relative", self.flat_min_relative, 0.0, 0.99)
        if self.saturation is not None:
            _check_range("detector.saturation", self.saturation, 1e-9, None)
        if self.beamstop_radius is not None:
            _check_range("detector.beamstop_radius", self.beamstop_radius, 0.0, None)
        if self.bin is not None:
            if len(self.bin) not in (1, 2, 3) or any(isinstance(v, bool) or not isinstance(v, int) for v in self.bin):
                raise InvalidInputError(f"configuration: detector.bin (--bin) = {self.bin}: give 1 to 3 integers")
            for factor in self.bin:
                _check_range("detector.bin", factor, 1, 16)


@dataclass
class ProjectionConfig:
    """Projection solvers (ER, HIO, RAAR) with shrinkwrap."""

    plan: str | None = None
    """Algorithm plan such as ``"3*(20*ER+180*HIO)+20*ER"``; None: the default
    plan for the method, scaled to ``RunConfig.iterations``."""
    beta: float = 0.9
    """Feedback parameter of HIO and RAAR (0-1)."""
    support_threshold: float = 0.1
    """Relative threshold of the autocorrelation for the initial support (0-1),
    when the centre is measured (see ``missing_centre``)."""
    shrinkwrap_threshold: float = 0.25
    """Relative threshold of the blurred amplitude in shrinkwrap (0-1), when
    the centre is measured (see ``missing_centre_shrinkwrap_threshold``)."""
    shrinkwrap_sigma_start: float = 1.5
    """Gaussian sigma of shrinkwrap at the start, pixels."""
    shrinkwrap_sigma_end: float = 0.5
    """Gaussian sigma of shrinkwrap at the end, pixels."""
    shrinkwrap_period: int = 20
    """Iterations between shrinkwrap updates; 0 switches shrinkwrap off."""
    metric_period: int = 20
    """Iterations between convergence metrics (each costs a host sync)."""
    positivity: bool | None = None
    """Constrain the object's real part to be non-negative inside the support
    (Fienup 1982): real, non-negative specimens in forward CDI. None:
    automatic, on when the measured pattern is centrosymmetric (Friedel
    asymmetry plus two standard errors at most ``positivity_max_asymmetry``):
    the diffraction of a real object is, while a crystal's displacement field
    (its phase) breaks the symmetry, so strained crystals keep it off. true or
    false forces it (never force it on for a crystal with a strain phase)."""
    positivity_max_asymmetry: float = 0.004
    """Largest Friedel asymmetry (0-1, see
    :func:`cdi_dip.solvers.projections.friedel_asymmetry`) for which automatic
    positivity is on. Simulated cells with 10% absorption measure 1e-3 to
    3e-3, simulated strained crystals 6e-3 and more."""
    missing_centre: bool | None = None
    """Treat the zero frequency as unmeasured (a beamstop): initial support of
    the object's size from half the autocorrelation, and shrinkwrap with
    ``missing_centre_shrinkwrap_threshold``. None: when at least the 3x3
    pixels around the zero frequency are excluded."""
    half_support_threshold: float = 0.05
    """Relative threshold (0-1) of the autocorrelation's envelope, outside its
    core, for the half-autocorrelation support (missing centre only)."""
    missing_centre_shrinkwrap_threshold: float = 0.15
    """Relative threshold (0-1) of shrinkwrap when the centre is missing:
    the unmeasured low frequencies leave a slow amplitude error across the
    object, which ``shrinkwrap_threshold`` (0.25) cuts into."""

    def validate(self) -> None:
        _check_range("projection.beta", self.beta, 0.0, 1.0)
        _check_range("projection.support_threshold", self.support_threshold, 0.0, 1.0)
        _check_range("projection.shrinkwrap_threshold", self.shrinkwrap_threshold, 0.0, 1.0)
        _check_range("projection.shrinkwrap_sigma_start", self.shrinkwrap_sigma_start, 0.0, 20.0)
        _check_range("projection.shrinkwrap_sigma_end", self.shrinkwrap_sigma_end, 0.0, 20.0)
        _check_range("projection.shrinkwrap_period", self.shrinkwrap_period, 0, None)
        _check_range("projection.metric_period", self.metric_period, 1, None)
        _check_range("projection.positivity_max_asymmetry", self.positivity_max_asymmetry, 0.0, 1.0)
        _check_range("projection.half_support_threshold", self.half_support_threshold, 0.0, 1.0)
        _check_range("projection.missing_centre_shrinkwrap_threshold", self.missing_centre_shrinkwrap_threshold,
                     0.0, 1.0)
        if self.plan is not None:
            parse_plan(self.plan)


@dataclass
class DipConfig:
    """Double deep image prior (docs/dip.md: what each setting does and how its default was measured)."""

    param: DipParam | None = None
    """Object parameterisation: mag-phase (crystals) or real-imag (specimens);
    None: real-imag when the pattern is centrosymmetric (the projection
    solvers' automatic positivity test, ``projection.positivity``), else mag-phase."""
    loss: DipLoss = DipLoss.AMPLITUDE
    """Data loss: amplitude (L2 on sqrt counts) or poisson (likelihood)."""
    learning_rate: float = 0.01
    """Adam learning rate."""
    channels: int = 32
    """Channels of the generator's hidden layers."""
    depth: int = 4
    """Number of upsampling blocks of each generator."""
    warm_start_runs: int | None = None
    """HIO runs inside the object box that start the networks (the best by free
    likelihood is kept); 0: random starts with probes, on the whole box.
    None: 16 in 2D (a run costs about a second there; behind a beamstop grown
    by the found mask's one-pixel margin, 8 runs missed the basin in 3 of 6
    planted cases and 16 found it in 2 of those 3), 8 in 3D, for the default
    budget; fewer in proportion (at least 1) when ``iterations`` is smaller."""
    warm_start_threshold: float = 0.08
    """Shrinkwrap threshold of the warm start, relative to the blurred amplitude's maximum (0-1)."""
    prefit_iterations: int | None = None
    """Adam iterations fitting the networks to the warm-start object before the
    data fit. None: 300 for the default budget, fewer in proportion when
    ``iterations`` is smaller than the default (a short run stays short)."""
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
        if self.warm_start_runs is not None:
            _check_range("dip.warm_start_runs", self.warm_start_runs, 0, 1000)
        _check_range("dip.warm_start_threshold", self.warm_start_threshold, 0.0, 1.0)
        if self.prefit_iterations is not None:
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

    method: Method = Method.AUTO
    """Reconstruction method: auto, dip, hio, raar or er. ``auto`` (resolved by
    :func:`cdi_dip.pipeline.choose_method` once the data are known): the double
    DIP for crystals, HIO for specimens whose pattern is centrosymmetric, the
    best of each on the benchmarks (docs/dip.md)."""
    iterations: int | None = None
    """Total iterations; None: the method's default."""
    runs: int | None = None
    """Random starts; the best by free (else training) likelihood is kept.
    None: the method's default, set by :meth:`validate` (see ``DEFAULT_RUNS``;
    for ``auto``, once the method is chosen: :meth:`with_method`)."""
    keep: int | None = None
    """How many of the best runs are matched and averaged into the result (with a
    per-voxel uncertainty map and the PRTF); None: half of the runs, at least 1."""
    keep_max_error: float = 0.2
    """A kept run whose symmetry-adjusted error against the best run exceeds this
    is left out of the average. Two good runs of a simulated crystal at 1e5
    photons differ by 0.07-0.13 (each about 0.08 from the truth); stagnated
    starts by 0.5 or more; on the real 34-ID-C scan the second-best run differed
    by 0.23 and averaging it in worsened the free likelihood from 1.18 to 1.58."""
    seed: int = 0
    """Base random seed; run k uses seed + k."""
    noise: NoiseModel | None = None
    """Noise model: the likelihood used for validation (free pixels), run
    selection and the double DIP's loss. None: Poisson for validation and
    selection, and each solver's own loss (``dip.loss``)."""
    device: str = "auto"
    """auto, cpu, cuda or cuda:N."""
    input: InputConfig = field(default_factory=InputConfig)
    prep: PrepConfig = field(default_factory=PrepConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    projection: ProjectionConfig = field(default_factory=ProjectionConfig)
    dip: DipConfig = field(default_factory=DipConfig)

    def validate(self) -> "RunConfig":
        """Check every field; return self so calls can chain."""
        check_finite(self)
        if self.iterations is not None:
            _check_range("iterations", self.iterations, 1, None)
        self.method = Method(self.method)
        if self.runs is None and self.method is not Method.AUTO:
            self.runs = DEFAULT_RUNS[self.method]
        if self.runs is not None:
            _check_range("runs", self.runs, 1, 1000)
        if self.keep is not None:
            _check_range("keep", self.keep, 1, self.runs if self.runs is not None else 1000)
        _check_range("keep_max_error", self.keep_max_error, 0.0, 10.0)
        _check_range("seed", self.seed, 0, 2**63 - 1)
        from ..device import _DEVICE_PATTERN  # local: keeps torch import lazy-friendly

        if not _DEVICE_PATTERN.match(self.device.strip().lower()):
            raise InvalidInputError(f"configuration: device = {self.device!r}: use auto, cpu, cuda or cuda:N")
        self.input.validate()
        self.prep.validate()
        self.detector.validate()
        self.projection.validate()
        self.dip.validate()
        return self

    def with_method(self, method: Method) -> "RunConfig":
        """A copy that runs ``method`` (not ``auto``), with that method's default runs where none were asked for."""
        if Method(method) is Method.AUTO:
            raise ValueError("with_method needs a concrete method, not auto")
        runs = self.runs if self.runs is not None else DEFAULT_RUNS[Method(method)]
        keep = self.keep if self.keep is None or self.keep <= runs else runs
        return dataclasses.replace(self, method=Method(method), runs=runs, keep=keep)

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
    known = {f.name for f in fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{section}.{key}" if section else key
        if key not in known:
            raise InvalidInputError(
                f"configuration: unknown key {name!r}; known keys here: {', '.join(sorted(known))}"
            )
        kwargs[key] = _coerce_value(name, hints[key], value)
    return cls(**kwargs)


def _coerce_value(name: str, annotation: Any, value: Any) -> Any:
    """One value checked against its field's type (``X | None``, enums, lists, scalars)."""
    options = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, types.UnionType) else ()
    if options:
        if value is None and type(None) in options:
            return None
        annotation = next(option for option in options if option is not type(None))
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise InvalidInputError(f"configuration: {name} must be a table of settings")
        return _coerce(name, annotation, value)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        try:
            return annotation(value)
        except ValueError:
            choices = ", ".join(m.value for m in annotation)
            raise InvalidInputError(f"configuration: {name} = {value!r}; choose one of {choices}") from None
    if typing.get_origin(annotation) is list:
        if not isinstance(value, (list, tuple)):
            raise InvalidInputError(f"configuration: {name} must be a list, got {value!r}")
        (item_type,) = typing.get_args(annotation)
        return [_check_scalar(f"{name}[{index}]", item_type, item) for index, item in enumerate(value)]
    return _check_scalar(name, annotation, value)


def _check_scalar(name: str, annotation: Any, value: Any) -> Any:
    """A bool, int, float or str value checked against its type."""
    if annotation is bool:
        if not isinstance(value, bool):
            raise InvalidInputError(f"configuration: {name} must be true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidInputError(f"configuration: {name} must be an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidInputError(f"configuration: {name} must be a number, got {value!r}")
        return float(value)
    if annotation is str:
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
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            f"configuration file {path} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
            f"{exc.start}): save it as UTF-8, as TOML requires"
        ) from None
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
