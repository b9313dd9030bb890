"""The settings of a run: :class:`RunConfig` and its sections, each field with its range and meaning.

Every field is declared with :func:`~cdi_dip.config.schema.option`, which
carries its allowed range; each section's ``validate`` is the generic
:func:`~cdi_dip.config.schema.validate` plus the few checks a range cannot
express. Built from plain data by :func:`cdi_dip.config.config_from_dict`.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidInputError
from . import schema
from .plan import parse_plan
from .init_choice import parse_init
from .psf import parse_challengers, parse_psf
from .schema import check_range, option

BACKGROUND_MODES = ("none", "subtract", "compare")
"""Values of ``background``: none, one estimated from the counts taken off them, or both compared
(:mod:`cdi_dip.background`)."""


class Method(str, enum.Enum):
    """Reconstruction method."""

    AUTO = "auto"  # dip for crystals, hio for specimens (a centrosymmetric pattern): the best measured
    DIP = "dip"
    HIO = "hio"
    RAAR = "raar"
    ER = "er"
    NET = "net"  # the learned network's object alone (cdi_dip.learned), for a quick look


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


class EarlyStop(str, enum.Enum):
    """What stops the double DIP's fit and picks the iterate it returns."""

    FREE = "free"  # the free-pixel loss: keep its best iterate, stop when it is dip.patience iterations old
    VARIANCE = "variance"  # ES-WMV: the windowed moving variance of the iterates, no held-out data needed
    BOTH = "both"  # stop at the first; keep the best free-loss iterate (without free pixels: the variance one)


class DipLoss(str, enum.Enum):
    """Data loss of the double DIP (``--noise`` picks the one of the same name)."""

    AMPLITUDE = "amplitude"  # (sqrt(n) - sqrt(m))**2: robust default
    POISSON = "poisson"  # m - n log m: the likelihood of photon counting
    GAUSSIAN = "gaussian"  # (m - n)**2 / max(n, 1): intensity least squares


@dataclass
class InputConfig:
    """How input files (data, masks, darks and flats) are read."""

    allow_external_links: bool = option(False)
    """Follow HDF5 external links and virtual-dataset sources that lead outside
    the input file's folder, and read external raw storage (values kept in
    another file). Off by default: a crafted file could otherwise make the
    tool read any file of the machine into its result."""

    def validate(self) -> None:
        schema.validate(self, "input")


@dataclass
class PrepConfig:
    """Preparation of the detector data before any solver sees it."""

    max_size: int | None = option(None, range=(8, None))
    """Cap on the frame size along every axis (pixels); None: no cap. The frame
    is cropped around the centred peak to at most this size (FFT-friendly)."""
    max_voxels: int | None = option(None, range=(512, None))
    """Voxel budget of the automatic frame (used when ``max_size`` is not set);
    None: 2^20 on a CPU, 2^24 on a GPU. A frame above the budget is cut to
    the region with signal, then shrunk evenly until it fits."""
    bin_min_oversampling: float | None = option(None, range=(1.5, None))
    """Where the region with signal exceeds the voxel budget (no ``max_size``,
    no ``--bin``), pixels are first summed along the axes oversampled enough
    to keep at least this oversampling (estimated from the autocorrelation's
    support, :func:`cdi_dip.support.autocorrelation_extent_px`), so that the
    frame gives up field of view before resolution; the rest is cut as
    before. None: never binned automatically (cut only). Not a default yet:
    the estimate, up to 1.65 times the true oversampling on tuning patterns,
    was measured on small frames only (docs/benchmarks.md, "Binning an
    oversampled frame")."""
    centre: CentreMethod = option(CentreMethod.AUTO)
    """How the zero frequency is found: auto (the centre of Friedel symmetry in 2D; in 3D the
    brightest pixel, or Friedel symmetry behind a beamstop), max, com, friedel or none."""
    threshold: float = option(0.0, range=(0.0, None))
    """Photon threshold: counts below it are set to zero (still valid)."""
    free_fraction: float = option(0.05, range=(0.0, 0.2))
    """Fraction of valid pixels held out as free pixels for validation (0-0.2)."""

    def validate(self) -> None:
        schema.validate(self, "prep")


@dataclass
class DetectorConfig:
    """Detector corrections and defect finding, applied to the frames as read.

    Order: dark subtraction, flat field, defect finding (gaps, saturation, hot
    pixels, beamstop, dead pixels, aliens), binning. Every excluded pixel is
    recorded under its reason and written into the result file.
    """

    dark: str | None = option(None)
    """Dark (no-beam) image file, any supported format; one frame or one per frame.
    None: for a folder or glob of frames, a ``dark.tif`` (or ``.tiff``/``.npy``) in
    the frames' folder or its parent (:mod:`cdi_dip.io.calibration`); ``"none"``: no dark."""
    flat: str | None = option(None)
    """Flat-field (white-field) image file. None: for a folder or glob of frames, a
    ``whitefield``/``flat`` image in the frames' folder or its parent; ``"none"``: no flat."""
    roi: list[int] | None = option(None)
    """Detector region the frames were read from, ``[y0, y1, x0, x1]`` (stop
    exclusive), used to cut a full-detector dark and flat; None: the region
    a ``metadata.json`` beside the frames names, else the whole detector."""
    dark_hot_counts: float = option(1.0, range=(0.0, None))
    """Pixels whose dark exceeds this many counts are excluded (beamline rule: dark > 1)."""
    flat_min_relative: float | None = option(None, range=(0.0, 0.99))
    """Pixels whose flat is below this fraction of its mean are excluded; None:
    the beamline rule ``flat < mean - 3 std``."""
    saturation: float | None = option(None, range=(1e-9, None))
    """Detector saturation, counts per frame: pixels at or above are excluded;
    None: only a visible clipping plateau is."""
    beamstop_radius: float | None = option(None, range=(0.0, None))
    """Beamstop as a disc (ball in 3D) of this radius in pixels around the peak;
    None: found from the data (a dark region at the peak)."""
    find_beamstop: bool | None = option(None)
    """Look for a beamstop shadow; None: yes, in 2D and 3D frames (false: never)."""
    beamstop_rim: RimHandling = option(RimHandling.TEST)
    """The one-pixel rim around a found shadow, which a real beamstop's edge may half cover:
    ``test`` holds it out of a first reconstruction and fits it again when that
    reconstruction predicts its counts to within ``RIM_TOLERANCE`` (a sharp
    shadow; :mod:`cdi_dip.prepare.rim`), and where a HIO, ER or RAAR first pass
    missed the centre lets a reconstruction with it challenge that pass;
    ``exclude`` always excludes it, ``keep`` always fits it."""
    find_gaps: bool = option(True)
    """Look for detector gaps (lines of zeros or of a fill value)."""
    gap_fill_value: float | None = option(None)
    """Value the detector writes into gaps; None: 0."""
    find_hot: bool = option(True)
    """Look for hot pixels (isolated counts far above their neighbours)."""
    find_hot_by_model: bool = option(True)
    """After the first reconstruction, look for hot pixels its model shows (far above their neighbours and
    the model's expected count: a strained crystal's hot pixel with a bright mirror, which the counts alone
    leave in), exclude them and reconstruct again; only with ``find_hot``."""
    find_dead: bool | None = option(None)
    """Look for dead pixels (zero where the neighbours must have signal); None: 3D stacks only."""
    aliens: AlienHandling = option(AlienHandling.MASK)
    """Aliens: mask (exclude), report (find only) or off."""
    bin: list[int] | None = option(None, range=(1, 16))
    """Binning factors per axis (two: the detector axes of a stack); None: none."""

    def validate(self) -> None:
        """The generic checks, after the shapes of ``roi`` and ``bin``, which a range cannot express."""
        if self.roi is not None and (len(self.roi) != 4 or any(not isinstance(v, int) for v in self.roi)
                                     or not (0 <= self.roi[0] < self.roi[1] and 0 <= self.roi[2] < self.roi[3])):
            raise InvalidInputError(
                f"configuration: detector.roi (--roi) = {self.roi}: give y0,y1,x0,x1 with 0 <= start < stop"
            )
        if self.bin is not None and (
            len(self.bin) not in (1, 2, 3) or any(isinstance(v, bool) or not isinstance(v, int) for v in self.bin)
        ):
            raise InvalidInputError(f"configuration: detector.bin (--bin) = {self.bin}: give 1 to 3 integers")
        schema.validate(self, "detector")


@dataclass
class ProjectionConfig:
    """Projection solvers (ER, HIO, RAAR) with shrinkwrap."""

    plan: str | None = option(None)
    """Algorithm plan such as ``"3*(20*ER+180*HIO)+20*ER"``; None: the default
    plan for the method, scaled to ``RunConfig.iterations``."""
    beta: float = option(0.9, range=(0.0, 1.0))
    """Feedback parameter of HIO and RAAR (0-1)."""
    support_threshold: float = option(0.1, range=(0.0, 1.0))
    """Relative threshold of the autocorrelation for the initial support (0-1),
    when the centre is measured (see ``missing_centre``)."""
    shrinkwrap_threshold: float = option(0.25, range=(0.0, 1.0))
    """Relative threshold of the blurred amplitude in shrinkwrap (0-1), when
    the centre is measured (see ``missing_centre_shrinkwrap_threshold``)."""
    shrinkwrap_sigma_start: float = option(1.5, range=(0.0, 20.0))
    """Gaussian sigma of shrinkwrap at the start, pixels."""
    shrinkwrap_sigma_end: float = option(0.5, range=(0.0, 20.0))
    """Gaussian sigma of shrinkwrap at the end, pixels."""
    shrinkwrap_sigma_frame_px: int = option(128, range=(0, None))
    """Frames larger than this along their smallest axis blur more in
    shrinkwrap: both sigmas are multiplied by ``min(n / this, 2)``, ``n`` the
    frame's smallest axis (256 px and more: twice). 0: never. The object
    spans a quarter to half of the frame, so its pixels grow with the frame,
    and a blur of 1.5 px on an object 100-250 px across lets shrinkwrap cut
    the support down to the iterate's brightest part (full-size 2D frames of
    the tuning half, HIO: median error 0.53 -> 0.28; docs/projections.md)."""
    hidden_mode_floor: float = option(0.05, range=(0.0, 1.0))
    """Behind a masked centre and without positivity, the modulus step is
    divided by ``max(1 - g, hidden_mode_floor)`` along every support mode whose
    masked fraction of Fourier power ``g`` is above 0.5: the full least-squares
    step along the modes the beamstop hides, at most ``1 / floor`` times the
    plain one (:mod:`cdi_dip.solvers.hidden_modes`), in the projection solvers
    and in the double DIP's warm start. 0 switches it off."""
    shrinkwrap_period: int = option(20, range=(0, None))
    """Iterations between shrinkwrap updates; 0 switches shrinkwrap off."""
    metric_period: int = option(20, range=(1, None))
    """Iterations between convergence metrics (each costs a host sync)."""
    positivity: bool | None = option(None)
    """Constrain the object's real part to be non-negative inside the support
    (Fienup 1982): real, non-negative specimens in forward CDI. None:
    automatic, on when the measured pattern is centrosymmetric (Friedel
    asymmetry plus two standard errors at most ``positivity_max_asymmetry``):
    the diffraction of a real object is, while a crystal's displacement field
    (its phase) breaks the symmetry, so strained crystals keep it off. true or
    false forces it (never force it on for a crystal with a strain phase)."""
    positivity_max_asymmetry: float = option(0.004, range=(0.0, 1.0))
    """Largest Friedel asymmetry (0-1, see
    :func:`cdi_dip.solvers.friedel.friedel_asymmetry`, measured about the best
    sub-pixel centre) for which automatic positivity is on, and ``auto`` calls
    the pattern a specimen. Simulated cells with 10% absorption measure 1e-3
    to 3e-3, simulated strained crystals 6e-3 and more."""
    missing_centre: bool | None = option(None)
    """Treat the zero frequency as unmeasured (a beamstop): initial support of
    the object's size from half the autocorrelation, and shrinkwrap with
    ``missing_centre_shrinkwrap_threshold``. None: when at least the 3x3
    pixels around the zero frequency are excluded."""
    half_support_threshold: float = option(0.05, range=(0.0, 1.0))
    """Relative threshold (0-1) of the autocorrelation's envelope, outside its
    core, for the half-autocorrelation support (missing centre only)."""
    missing_centre_shrinkwrap_threshold: float = option(0.15, range=(0.0, 1.0))
    """Relative threshold (0-1) of shrinkwrap when the centre is missing:
    the unmeasured low frequencies leave a slow amplitude error across the
    object, which ``shrinkwrap_threshold`` (0.25) cuts into."""
    max_outside_fraction: float | None = option(None, range=(0.0, 1.0))
    """Leave out of the ranking and the average every run whose last modulus
    projection has more than this fraction (0-1) of its power ``|x|^2``
    outside the final support (PyNX uses about 0.1 as a guide); the best run
    by free likelihood is kept when every run would be left out. None: off
    (the fraction is still recorded: ``outside_fraction`` in the solver facts)."""
    support_fraction_bounds: list[float] | None = option(None, range=(0.0, 1.0))
    """``[low, high]``: when shrinkwrap makes the support smaller than ``low``
    or larger than ``high`` (fractions 0-1 of the frame's voxels), the run
    starts again from a new random start with the shrinkwrap threshold lowered
    (collapse) or raised (explosion), at most twice; the thresholds tried are
    recorded (``support_restarts`` in the solver facts). None: off."""
    support_bounds_missing_centre_only: bool = option(False)
    """Apply ``support_fraction_bounds`` only when the zero frequency is missing
    (a beamstop), where a collapsing support is the usual failure; elsewhere the
    runs go as without bounds."""
    shrinkwrap_threshold_relative_to: str = option("max", choices=("max", "rms"))
    """What shrinkwrap's threshold multiplies: ``"max"``, the blurred amplitude's
    maximum; ``"rms"``, its root-mean-square over the current support (PyNX's
    'rms' method: the level follows the object's typical amplitude, not its
    brightest voxel, and rises as the support shrinks; capped at the maximum).
    The threshold is ``shrinkwrap_rms_threshold`` under "rms"."""
    shrinkwrap_rms_threshold: float | None = option(None, range=(0.0, 10.0))
    """Shrinkwrap threshold under ``shrinkwrap_threshold_relative_to = "rms"``,
    as a multiple of the RMS over the support (PyNX uses 0.2-0.3). None: the
    same number as under "max" (``shrinkwrap_threshold``, or
    ``missing_centre_shrinkwrap_threshold`` behind a beamstop). Unused under "max"."""
    detwin_iterations: int = option(0, range=(0, None))
    """Detwinning (PyNX): for this many iterations from the first HIO/RAAR
    iteration of the plan (after the first ER block and its shrinkwrap in the
    default plans; from iteration 1 if the plan has no HIO/RAAR), the support
    is cut to its part below its centre of mass along every axis, with no
    shrinkwrap; then the support held before the cut returns and shrinkwrap
    goes on. Recorded as ``detwin`` in the solver facts. 0: off."""
    final_support_margin_px: int = option(0, range=(0, 16))
    """Grow the support by this many pixels along every axis (a box, by
    :func:`~cdi_dip.support.dilate_mask`) at the last shrinkwrap update, so the
    plan's final ER block settles on a support with a margin around the
    shrinkwrapped object: the amplitude of a real crystal falls off over a few
    pixels at a coarse frame's resolution, and a support cut at the threshold
    leaves that fall-off out of the fit. The object keeps its values in the
    margin; the support written with it is the shrinkwrap outline (the
    crystal's shape for the phase offset, the strain and the report).
    Recorded as ``final_support_margin`` in the solver facts. 0: off; ignored
    when shrinkwrap is off or the plan has no final ER block after other
    algorithms."""

    def validate(self) -> None:
        """The generic checks, the plan's grammar (:func:`~cdi_dip.config.plan.parse_plan`) and the bounds' order."""
        schema.validate(self, "projection")
        if self.plan is not None:
            parse_plan(self.plan)
        bounds = self.support_fraction_bounds
        if bounds is not None and (len(bounds) != 2 or not bounds[0] < bounds[1]):
            raise InvalidInputError("configuration: projection.support_fraction_bounds must be [low, high] "
                                    f"with low < high, got {bounds!r}")


@dataclass
class DipConfig:
    """Double deep image prior (docs/dip.md: what each setting does and how its default was measured)."""

    param: DipParam | None = option(None)
    """Object parameterisation: mag-phase (crystals) or real-imag (specimens);
    None: real-imag when the pattern is centrosymmetric (the projection
    solvers' automatic positivity test, ``projection.positivity``), else mag-phase."""
    loss: DipLoss = option(DipLoss.AMPLITUDE)
    """Data loss: amplitude (L2 on sqrt counts) or poisson (likelihood)."""
    learning_rate: float = option(0.01, range=(1e-6, 1.0))
    """Adam learning rate."""
    channels: int = option(32, range=(1, 1024))
    """Channels of the generator's hidden layers."""
    depth: int = option(4, range=(1, 8))
    """Number of upsampling blocks of each generator."""
    warm_start_runs: int | None = option(None, range=(0, 1000))
    """HIO runs inside the object box that start the networks (the best by free
    likelihood is kept); 0: random starts with probes, on the whole box.
    None: 16 in 2D (a run costs about a second there; behind a beamstop grown
    by the found mask's one-pixel margin, 8 runs missed the basin in 3 of 6
    planted cases and 16 found it in 2 of those 3), 8 in 3D, for the default
    budget; fewer in proportion (at least 1) when ``iterations`` is smaller."""
    warm_start_threshold: float = option(0.08, range=(0.0, 1.0))
    """Shrinkwrap threshold of the warm start, relative to the blurred amplitude's maximum (0-1)."""
    prefit_iterations: int | None = option(None, range=(0, None))
    """Adam iterations fitting the networks to the warm-start object before the
    data fit. None: 300 for the default budget, fewer in proportion when
    ``iterations`` is smaller than the default (a short run stays short)."""
    support_margin_px: int | None = option(1, range=(0, 64))
    """The data fit masks the object with the warm-start support dilated by this
    many pixels; None: no mask (the whole box). Ignored without a warm start."""
    warmup_iterations: int = option(100, range=(0, None))
    """The learning rate ramps up linearly over this many data-fit iterations
    after the pre-fit (0: none)."""
    probes: int = option(4, range=(1, 64))
    """Without a warm start: short probe starts per run; the best by training loss is continued."""
    probe_iterations: int = option(250, range=(1, None))
    """Iterations of each probe."""
    polish_iterations: int = option(20, range=(0, None))
    """ER iterations at the end with the support from the DIP amplitude; 0: none."""
    patience: int = option(400, range=(1, None))
    """Early stop when the free-pixel loss has not improved for this many iterations."""
    early_stop: EarlyStop = option(EarlyStop.FREE)
    """What stops the fit: free (the free-pixel loss, dip.patience), variance
    (the windowed moving variance of the iterates, ES-WMV: stop when it has not
    reached a new minimum for dip.variance_patience iterations and keep the
    iterate at the minimum) or both (stop at the first; keep the best free-loss
    iterate). Without free pixels, free keeps the best training-loss iterate."""
    variance_window: int = option(20, range=(2, 1000))
    """Iterates in the window of the variance criterion, one every 10
    iterations (memory: this many copies of the object box)."""
    variance_patience: int = option(200, range=(10, None))
    """The variance criterion stops when its minimum is this many iterations old."""
    mixed_precision: bool = option(False)
    """On CUDA, run the generators' convolutions in bfloat16 autocast (not yet
    measured on a GPU: off by default)."""
    weights: str | None = option(None)
    """Pretrained generators (a model file of ``cdi-dip train-dip``): the networks
    start from its weights and fixed inputs instead of random ones (the "educated"
    double DIP, :mod:`cdi_dip.learned.dip_generators`); its object box and
    ``param`` must be the run's. None: random weights."""

    def validate(self) -> None:
        schema.validate(self, "dip")


@dataclass
class GeometryConfig:
    """Experimental geometry (``[geometry]``): each field, when set, overrides the input's own.

    Precedence, field by field: this section (or its command-line option) >
    the input file's CXI/NeXus geometry > a ``metadata.json`` beside a folder
    of TIFF frames (:mod:`cdi_dip.io.metadata`) > unknown. With it the
    results carry voxel sizes in metres (:func:`cdi_dip.geometry.voxel_size_m`)
    and ``cdi-dip strain`` can turn a Bragg phase into strain.
    """

    energy_kev: float | None = option(None, range=(0.1, 1000.0))
    """Photon energy, keV (the wavelength is ``1.23984 nm keV / E``)."""
    distance_m: float | None = option(None, range=(1e-3, 1e3))
    """Sample-detector distance, metres."""
    pixel_size_m: float | None = option(None, range=(1e-7, 1e-2))
    """Detector pixel size (square pixels, before any binning), metres."""
    rocking_step_deg: float | None = option(None, range=(1e-7, 10.0))
    """Rocking-angle step between the frames of a 3D Bragg stack (before any binning), degrees."""
    detector_angles_deg: list[float] | None = option(None, range=(-180.0, 180.0))
    """Detector arm angles ``[delta, gamma]`` at the Bragg peak, degrees (conventions: :mod:`cdi_dip.geometry`)."""
    d_spacing_nm: float | None = option(None, range=(1e-3, 1e3))
    """Lattice spacing of the reflection, nm: ``|Q| = 2 pi / d`` for the strain (exact where the detector
    angles only approximate it; with the wavelength it also gives the Bragg angle when the angles are unknown)."""
    bragg_angle_deg: float | None = option(None, range=(0.01, 89.99))
    """Bragg angle ``theta_B`` of the reflection, degrees, for the strain when the detector angles are unknown
    (in-plane scattering, ``delta = 2 theta_B``)."""
    pixel_orientation: str | None = option(None)
    """Lab directions of the detector rows and columns at ``delta = gamma = 0``, e.g. ``"y-,x+"`` (the default
    when neither this nor the input says; 34-ID-C: ``"x+,y-"``)."""

    def validate(self) -> None:
        """The generic checks, then two angles and two axis directions."""
        if self.detector_angles_deg is not None and len(self.detector_angles_deg) != 2:
            raise InvalidInputError(f"configuration: geometry.detector_angles_deg (--detector-angles) = "
                                    f"{self.detector_angles_deg}: give two angles, delta,gamma in degrees")
        if self.pixel_orientation is not None:
            parts = [part.strip().lower() for part in self.pixel_orientation.split(",")]
            if len(parts) != 2 or any(len(p) != 2 or p[0] not in "xyz" or p[1] not in "+-" for p in parts):
                raise InvalidInputError(f"configuration: geometry.pixel_orientation = {self.pixel_orientation!r}: "
                                        "give two axis directions such as y-,x+")
        schema.validate(self, "geometry")


DEFAULT_RUNS = {Method.HIO: 4, Method.RAAR: 4, Method.ER: 4, Method.DIP: 1, Method.NET: 1}
"""Random starts when none are asked for. Projection runs are cheap and about
one start in four stagnates on simulated crystals (docs/benchmarks.md); the
double DIP already probes several starts inside one run."""


DEFAULT_CHALLENGE_TIME_FACTOR = {2: 3.0}
"""The relative time budget (``challenge_time_factor``) when none is asked for, by the frame's dimensions: no
challenger starts once the reconstruction has done this many times its first pass's work. 2D: chosen on the corpus's
tuning half (docs/benchmarks.md, "A budget relative to the first pass": counted in work, every challenger that won
started within 1.75 times its first pass's, so 3 lost none of 120 patterns' winners and saved 10 % of their
time). 3D: none until measured."""

DEFAULT_POOR_FIT_DIP_STARTS = {2: 2, 3: 0}
"""More double DIP runs on a poor fit (``poor_fit_dip_starts``) when none are asked for, by the frame's
dimensions. 2D: chosen on the corpus's tuning half (docs/benchmarks.md, twenty-fifth session: results better
where a run had landed in a striped local minimum, none worse). 3D: none until measured (a 3D run costs
minutes on a CPU)."""


@dataclass
class RunConfig:
    """Everything one reconstruction needs besides the data."""

    method: Method = option(Method.AUTO)
    """Reconstruction method: auto, dip, hio, raar, er or net. ``auto`` (resolved by
    :func:`cdi_dip.solvers.choose_method` once the data are known): the double
    DIP for crystals (then HIO too, the lower free deviance kept: ``auto_compare``),
    HIO for specimens whose pattern is centrosymmetric, the best of each on the
    benchmarks (docs/dip.md). ``net``: the learned
    network's object alone (``init`` names the model), for a quick look."""
    auto_compare: bool = option(True)
    """When ``auto`` runs the double DIP (a crystal), also run HIO on the same
    free pixels and keep whichever result has the lower free Poisson deviance
    (held-out pixels). On the corpus's tuning half (16 quick 2D crystal cases)
    this gave a median error of 0.058 against 0.099 for the DIP alone and 0.113
    for HIO alone, with no more failures, for about 10 % more time
    (docs/benchmarks.md). false: the DIP's result, as chosen."""
    iterations: int | None = option(None, range=(1, None))
    """Total iterations; None: the method's default."""
    runs: int | None = option(None, range=(1, 1000))
    """Random starts; the best by free (else training) likelihood is kept.
    None: the method's default, set by :meth:`validate` (see ``DEFAULT_RUNS``;
    for ``auto``, once the method is chosen: :meth:`with_method`)."""
    generations: int = option(1, range=(1, 100))
    """Generations of a projection method's runs (HIO, RAAR, ER): after the
    first, every run is bred with the best one (guided HIO, cohere's genetic
    algorithm: amplitude ``sqrt(|best| |run|)``, the mean phase) and the next
    generation starts from the children. 1: independent random starts."""
    keep: int | None = option(None, range=(1, 1000))
    """How many of the best runs are matched and averaged into the result (with a
    per-voxel uncertainty map and the PRTF); None: half of the runs, at least 1."""
    keep_max_error: float = option(0.2, range=(0.0, 10.0))
    """A kept run whose symmetry-adjusted error against the best run exceeds this
    is left out of the average. Two good runs of a simulated crystal at 1e5
    photons differ by 0.07-0.13 (each about 0.08 from the truth); stagnated
    starts by 0.5 or more; on the real 34-ID-C scan the second-best run differed
    by 0.23 and averaging it in worsened the free likelihood from 1.18 to 1.58."""
    seed: int = option(0, range=(0, 2**63 - 1))
    """Base random seed; run k uses seed + k."""
    noise: NoiseModel | None = option(None)
    """Noise model: the likelihood used for validation (free pixels), run
    selection and the double DIP's loss. None: Poisson for validation and
    selection, and each solver's own loss (``dip.loss``)."""
    device: str = option("auto")
    """auto, cpu, cuda or cuda:N."""
    init: str = option("random")
    """What starts every run: ``random`` (random phases on the measured amplitudes),
    ``learned`` (the network shipped for the data's dimensionality),
    ``learned:MODEL.pt`` (a model of ``cdi-dip train``) or the path of a
    previous result of ``cdi-dip reconstruct``; the network's or the result's
    object starts HIO/RAAR/ER with its support, and seeds the double DIP's warm
    start. See :mod:`cdi_dip.learned` and :mod:`cdi_dip.previous_result`."""
    psf: str = option("compare")
    """Partial coherence: ``compare`` (the default: a coherent reconstruction,
    challenged by the projection reconstructions of ``psf_challengers`` on
    half the runs each where a blurred copy of its model fits the held-out
    pixels better or its free deviance per pixel is above 2, and by one whose
    model integrates over the detector's pixels where its model so integrated
    fits them better; the challenger
    with the lowest free Poisson deviance is kept where that is significantly
    lower than the coherent result's over the held-out pixels (a paired test at
    z 2: the mean difference, or where the total is lower Wilcoxon's signed
    ranks, :func:`cdi_dip.metrics.challenge_margin`); no challenger under ``--method dip`` or ``net``,
    an explicit ``projection.plan`` or without held-out pixels),
    ``none`` (a coherent model), ``auto`` (a blurring
    kernel fitted during the reconstruction, starting from a Gaussian of 1 px),
    ``auto,SIGMA`` (fitted, from a Gaussian of SIGMA px), ``select`` (the random
    starts alternate coherent and fitted), ``gaussian,SIGMA`` (a fixed
    Gaussian) or ``pixel`` (the pixels' integration of the intensity, a fixed
    one-pixel box along every axis). See :mod:`cdi_dip.coherence`."""
    psf_challengers: str = option("kernel,pixel,deconvolved,refined")
    """What challenges the coherent result under ``psf = "compare"``, comma-separated:
    ``kernel`` (a projection reconstruction fitting a blurring kernel),
    ``pixel`` (a projection reconstruction whose model integrates the
    intensity over the detector's pixels, ``psf = "pixel"``; it runs where
    integrating the coherent model over the pixels lowers its free deviance
    by 5 % or on a poor fit, the others only on their own signs),
    ``deconvolved`` (coherent projection reconstructions of the counts
    deconvolved by Gaussians of 0.35-2.2 px, each scored blurred again against
    the measured counts; :mod:`cdi_dip.deconvolution`) and ``refined`` (the
    best deconvolved one refined by 200 ER iterations against the measured
    counts under its width's blur, on its support; needs ``deconvolved``) and
    ``polished`` (the candidate with the lowest free deviance so far, fitted
    again with a Gaussian width per axis by maximum likelihood, stopping when
    the held-out pixels stop improving; :mod:`cdi_dip.polish`).
    The lowest free Poisson deviance of all is kept where it is significantly
    lower than the coherent result's (see ``psf``)."""
    background: str = option("compare")
    """An incoherent background under the pattern (air scattering, fluorescence):
    ``none`` (the counts are the object's alone), ``subtract`` (a radial
    background estimated from the counts alone is taken off them before the
    reconstruction, where it averages 0.5 photons per pixel or more) or
    ``compare`` (the counts are reconstructed both as measured and less that
    background, and the second, scored with the background added back, is
    kept where its free Poisson deviance is significantly lower, by the same
    paired test at z 2). The
    partial-coherence challengers then fit the counts the result kept fitted.
    See :mod:`cdi_dip.background`."""
    background_blur_guard: bool = option(False)
    """Under ``background = "compare"``, no background challenger where the
    first result shows blur (:func:`cdi_dip.coherence.blur_test`) and its
    model blurred fits the held-out pixels better than its model plus the
    background. Partial coherence lifts the speckle's minima, which the
    estimate reads as a background (on 15 blurred 3D tuning patterns the
    challenger won 4 times, 3 of them with a worse object), but a background
    makes a coherent model look blurred to the blur test too, and on the
    reporting half the guard stopped the challenger on a pattern with a
    background and no blur (0.046 -> 0.384). Off by default: helping blurred
    3D patterns and hurting a background is not a default (docs/benchmarks.md,
    fourteenth session)."""
    frame_margin: float = option(1.5, range=(1.0, 4.0))
    """Where the result fits its held-out pixels far worse than the counts allow
    (free Poisson deviance above 2 per pixel), the measured frame is embedded
    in a frame this many times larger per axis whose margin is unmeasured,
    and reconstructed there again: on pixels this many times finer, an object
    that a frame cut inside its pattern sees band-limited, ringing past its
    outline, is compact again. The challenger is kept where its free Poisson
    deviance on the same held-out pixels is significantly lower (the paired
    test at z 2), and
    written on the measured frame like any result (its far field there:
    :mod:`cdi_dip.prepare.margin`, :mod:`cdi_dip.margin_result`). 1: never."""
    poor_fit_starts: int = option(12, range=(0, 1000))
    """Where a projection method's result (HIO, RAAR, ER; ``auto``'s too) fits
    its held-out pixels far worse than the counts allow (free Poisson deviance
    above 2 per pixel), this many more random starts, from the seeds after the
    first runs', reconstruct the same frame again on the same held-out pixels;
    their result is kept where its free deviance is significantly lower (the
    paired test at z 2). A poor fit says the first starts all missed the truth's basin. On
    the corpus's tuning half (2D, HIO, 120 patterns under six conditions) 13
    results were better and none worse (docs/benchmarks.md, seventeenth
    session); it costs a reconstruction with this many starts wherever the fit
    is poor. Only where the first runs were the method's default number (4):
    any other number of starts asked for (``runs``, ``--runs``) is what runs;
    ``--runs 4`` is the default and is challenged like it. 0: never."""
    polish_poor_fits: bool | None = option(None)
    """Where a projection method's coherent result (HIO, RAAR, ER; ``auto``'s
    too, challengers' included) fits its held-out pixels far worse than the
    counts allow (free Poisson deviance above 2 per pixel), refine it by Poisson
    maximum likelihood (L-BFGS on its support grown by a pixel, stopped by the
    held-out pixels) and keep the refinement where it brings the free deviance
    to 2 or below and fits them significantly better (the paired test at z 2),
    before any challenger of a poor fit judges it (:mod:`cdi_dip.poor_fit_polish`).
    None: in 3D frames (tuning half, HIO: 3D errors better or equal and the
    poor-fit challengers spared; in 2D quick frames one lithographic pattern
    0.026 -> 0.153 and none better by 0.05; docs/benchmarks.md, twenty-eighth
    session)."""
    poor_fit_generations: int = option(3, range=(1, 100))
    """The more-starts challenger of a projection method runs its
    ``poor_fit_starts`` as this many generations bred with the best run
    (``generations``; ``poor_fit_starts / poor_fit_generations`` runs each:
    4 runs in 3 generations by default). 1: independent random starts. Tuning
    half, 2D: of 38 patterns challenged, 6 better and 2 worse than with
    independent starts (failures 14 -> 12), in less time; reporting half: of
    29 challenged, 6 better and 3 worse, 1003 -> 784 s (docs/benchmarks.md,
    "Generations bred with the best run")."""
    poor_fit_dip_starts: int | None = option(None, range=(0, 100))
    """The same challenge for the double DIP (``auto``'s too): where its result
    fits its held-out pixels far worse than the counts allow (free Poisson
    deviance above 2 per pixel, or above twice what a model as good as the
    counts allow would score there: faint patterns), this many more runs of the double DIP, from the
    seeds after the first run's, reconstruct the same frame on the same
    held-out pixels, kept by the same rule. A double DIP run's warm start and
    networks depend on its seed, and one seed can land in a striped local
    minimum that another seed's run avoids. Only where the first runs were the
    method's default number (one: ``--runs 1`` is challenged like it). None: by
    the frame's dimensions, 2 in 2D (chosen on the corpus's tuning half) and 0
    in 3D (not measured: a 3D run costs minutes on a CPU;
    ``DEFAULT_POOR_FIT_DIP_STARTS``); 0: never."""
    time_budget_s: float | None = option(None, range=(0.0, 1e7))
    """Seconds of reconstruction after which no challenger of the result
    starts (the partial-coherence models of ``psf = "compare"``, the
    background, more starts, the frame margin): the first pass (``auto``'s
    comparison of the double DIP with HIO included, and the passes that bring
    back pixels: hot pixels found by the model, the beamstop's rim) always
    runs in full, and a challenger already running finishes,
    so a scan takes about this long plus one challenger at most. What was not
    tried is recorded in ``method_choice`` (:mod:`cdi_dip.time_budget`).
    None: no budget."""
    challenge_time_factor: float | None = option(None, range=(0.0, 1e6))
    """A time budget relative to the first pass: no challenger of the result
    starts once the reconstruction has done this many times the work of its
    first pass (the work before the first challenge asked to start, which
    always starts); a challenge that started finishes whole. Work, not
    seconds: the Fourier transforms of the frame and the double DIP's network
    steps (:func:`cdi_dip.time_budget.count_work`), which the seed fixes, so
    the result does not depend on how busy the machine is. It holds beside
    ``time_budget_s``, which does count seconds. None: by the frame's
    dimensions (``DEFAULT_CHALLENGE_TIME_FACTOR``: 3 in 2D, none in 3D);
    0: none."""
    input: InputConfig = option(default_factory=InputConfig)
    """How input files are read (TOML table ``[input]``)."""
    prep: PrepConfig = option(default_factory=PrepConfig)
    """Preparation of the frames: centring, size, threshold, free pixels (``[prep]``)."""
    detector: DetectorConfig = option(default_factory=DetectorConfig)
    """Detector corrections and defect finding (``[detector]``)."""
    projection: ProjectionConfig = option(default_factory=ProjectionConfig)
    """The projection solvers ER, HIO and RAAR (``[projection]``)."""
    dip: DipConfig = option(default_factory=DipConfig)
    """The double deep image prior (``[dip]``)."""
    geometry: GeometryConfig = option(default_factory=GeometryConfig)
    """Experimental geometry overriding the input's (``[geometry]``)."""

    def validate(self) -> "RunConfig":
        """Check every field; fill in the method's default runs; return self so calls can chain."""
        schema.check_finite(self)  # first, in every section: a NaN named as such wherever it is
        schema.validate(self)
        parse_psf(self.psf)
        parse_challengers(self.psf_challengers)
        if self.background not in BACKGROUND_MODES:
            raise InvalidInputError(f"configuration: background (--background) = {self.background!r}: use one of {', '.join(BACKGROUND_MODES)}")
        parse_init(self.init)
        self.method = Method(self.method)
        if self.runs is None and self.method is not Method.AUTO:
            self.runs = DEFAULT_RUNS[self.method]
        if self.keep is not None and self.runs is not None:
            check_range("keep", self.keep, 1, self.runs)  # no more runs kept than made
        from ..device import _DEVICE_PATTERN  # local: keeps torch import lazy-friendly

        if not _DEVICE_PATTERN.match(self.device.strip().lower()):
            raise InvalidInputError(f"configuration: device = {self.device!r}: use auto, cpu, cuda or cuda:N")
        self.input.validate()
        self.prep.validate()
        self.detector.validate()
        self.projection.validate()
        self.dip.validate()
        self.geometry.validate()
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
        return schema.plain(dataclasses.asdict(self))
