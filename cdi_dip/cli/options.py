"""Command-line options shared by ``reconstruct``, ``batch`` and ``inspect``.

Each option is declared once here as an ``Annotated`` type (its flag and its
help); the commands list the ones they take. :data:`CONFIG_PATH` maps each
option to its configuration field, and :func:`overrides` turns the options a
command was given into the nested dictionary that
:func:`cdi_dip.config.config_from_dict` validates (after merging over a TOML
file). ``None`` means "not given".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ..config.options import ProjectionConfig
from ..errors import InvalidInputError

# The panels --help groups the options of reconstruct, batch and inspect into, in this order.
INPUT = "Input"
PREP = "Preparation"
METHOD = "Method"
OUTPUT = "Output"
RUNTIME = "Runtime"

Method = Annotated[Optional[str], typer.Option("--method", "-m", help="auto, dip, hio, raar, er or net (the learned network's object alone) \\[default: auto: dip for crystals, hio for specimens]", rich_help_panel=METHOD)]
Gpu = Annotated[bool, typer.Option("--gpu", help="Run on CUDA (same as --device cuda).", rich_help_panel=RUNTIME)]
Device = Annotated[Optional[str], typer.Option(help="auto, cpu, cuda or cuda:N \\[default: auto]", rich_help_panel=RUNTIME)]
Masks = Annotated[Optional[list[str]], typer.Option("--mask", help="Mask file (nonzero = excluded); repeat to combine.", rich_help_panel=INPUT)]
Iterations = Annotated[Optional[int], typer.Option("--iterations", "-n", help="Iterations: HIO/RAAR/ER: the length of the default plan; double DIP: its data-fit iterations, with the warm start and pre-fit shortened in proportion below the default (1000 in 2D, 1500 in 3D), so a small number is a short run.", rich_help_panel=METHOD)]
Runs = Annotated[Optional[int], typer.Option(help="Random starts; the best by free likelihood is kept.", rich_help_panel=METHOD)]
Keep = Annotated[Optional[int], typer.Option(help="Best runs averaged into the result, with uncertainty maps and the PRTF \\[default: half the runs].", rich_help_panel=METHOD)]
Seed = Annotated[Optional[int], typer.Option(help="Base random seed.", rich_help_panel=METHOD)]
Plan = Annotated[Optional[str], typer.Option(help="Projection plan, e.g. '3*(20*ER+180*HIO)+20*ER'.", rich_help_panel=METHOD)]
Param = Annotated[Optional[str], typer.Option(help="Double DIP object: mag-phase (crystals) or real-imag (specimens with Re >= 0).", rich_help_panel=METHOD)]
Noise = Annotated[Optional[str], typer.Option(help="Noise model for validation, run selection and the DIP loss: poisson, gaussian or amplitude.", rich_help_panel=METHOD)]
Beta = Annotated[Optional[float], typer.Option(
    "--beta", help=f"Feedback of HIO and RAAR, 0-1 \\[default: {ProjectionConfig.beta}].", rich_help_panel=METHOD)]
SupportThreshold = Annotated[Optional[float], typer.Option(
    "--support-threshold", help="Initial support: threshold of the autocorrelation relative to its maximum, 0-1, "
    f"when the centre is measured \\[default: {ProjectionConfig.support_threshold}].", rich_help_panel=METHOD)]
ShrinkwrapThreshold = Annotated[Optional[float], typer.Option(
    "--shrinkwrap-threshold", help="Shrinkwrap: threshold of the blurred amplitude relative to its maximum, 0-1, "
    f"when the centre is measured \\[default: {ProjectionConfig.shrinkwrap_threshold}].", rich_help_panel=METHOD)]
MaxSize = Annotated[Optional[int], typer.Option("--max-size", help="Cap the frame at this many pixels per axis (turns off the automatic frame).", rich_help_panel=PREP)]
Init = Annotated[Optional[str], typer.Option("--init", help="What starts every run: random, learned (the model shipped for the data's dimensionality), learned:MODEL.pt (from cdi-dip train), or RESULT.cxi (a previous result of cdi-dip reconstruct, or its folder: to refine it, or to start from a neighbouring scan's): the object and its support start HIO/RAAR/ER and seed the double DIP's warm start \\[default: random].", rich_help_panel=METHOD)]
DipWeights = Annotated[Optional[str], typer.Option("--dip-weights", help="Pretrained double-DIP generators (MODEL.pt from cdi-dip train-dip): the networks start from its weights and fixed inputs, fitted to this scan (the educated DIP); its object box and --param must be this run's \\[default: none: random weights].", rich_help_panel=METHOD)]
Psf = Annotated[Optional[str], typer.Option("--psf", help="Partial coherence: compare (a coherent reconstruction; where a blurred copy of its model fits the held-out pixels better, projection ones with a fitted blurring kernel or of deconvolved counts on half the runs challenge it, where its model integrated over the pixels fits them better one whose model integrates over the pixels does, and the lowest free deviance is kept; no challenger with --method dip or net, or --plan), none (coherent only), auto (fit a kernel), auto,SIGMA, select (random starts alternate coherent and fitted), gaussian,SIGMA (fixed; SIGMA in pixels) or pixel (the detector pixels integrate the intensity: a fixed one-pixel box along every axis) \\[default: compare].", rich_help_panel=METHOD)]
TimeBudget = Annotated[Optional[float], typer.Option("--time-budget", metavar="SECONDS", help="Start no challenger of the result (partial-coherence models, background, more starts, frame margin) once the reconstruction has taken this many seconds; the first pass always runs in full, and the summary says what was not tried \\[default: no budget].", rich_help_panel=METHOD)]
ChallengeTimeFactor = Annotated[Optional[float], typer.Option("--challenge-time-factor", metavar="K", help="Start no challenger of the result once the reconstruction has done K times the work of its first pass (the first pass and the first challenge always run, and a challenge that started finishes). Work is counted in Fourier transforms and network steps, not seconds, so the same seed gives the same result on a busy machine; 0: no such limit \\[default: 3 in 2D, none in 3D].", rich_help_panel=METHOD)]
Background = Annotated[Optional[str], typer.Option("--background", help="An incoherent background under the pattern (air scattering, fluorescence): none (the counts are the object's alone), subtract (a radial background estimated from the counts alone is taken off them first, where it averages 0.5 photons per pixel or more) or compare (the counts are reconstructed as measured and less that background; the second is kept where its free deviance, with the background added back, is significantly lower) \\[default: compare].", rich_help_panel=METHOD)]
MaxVoxels = Annotated[Optional[int], typer.Option("--max-voxels", help="Voxel budget of the automatic frame: a larger frame is cut to the signal, then shrunk to fit \\[default: 2^20 on a CPU, 2^24 on a GPU].", rich_help_panel=PREP)]
Centre = Annotated[Optional[str], typer.Option(help="Zero frequency: auto (the centre of Friedel symmetry in 2D; in 3D the maximum, or Friedel symmetry "
                                "behind a beamstop), max, com, friedel or none.", rich_help_panel=PREP)]
Threshold = Annotated[Optional[float], typer.Option(help="Photon threshold: counts below it become 0.", rich_help_panel=PREP)]
Dark = Annotated[Optional[str], typer.Option(help="Dark (no-beam) image to subtract; pixels with dark > 1 count are excluded; 'none': no dark \\[default: for a folder or glob of frames, a dark.tif in its folder or the parent].", rich_help_panel=INPUT)]
Flat = Annotated[Optional[str], typer.Option(help="Flat-field (white-field) image; pixels below mean - 3 std are excluded; 'none': no flat \\[default: for a folder or glob of frames, a whitefield.tif or flat.tif in its folder or the parent].", rich_help_panel=INPUT)]
Roi = Annotated[Optional[str], typer.Option(help="Detector region of the frames, y0,y1,x0,x1 (cuts a full-detector dark/flat) \\[default: the region a metadata.json beside the frames names, else the whole detector].", rich_help_panel=INPUT)]
Bin = Annotated[Optional[str], typer.Option("--bin", help="Binning factors, e.g. 2 or 1,2,2 (sums counts).", rich_help_panel=PREP)]
Saturation = Annotated[Optional[float], typer.Option(help="Detector saturation, counts: pixels at or above are excluded.", rich_help_panel=PREP)]
BeamstopRadius = Annotated[Optional[float], typer.Option("--beamstop-radius", help="Beamstop radius in pixels around the peak (default: found from the data).", rich_help_panel=PREP)]
Aliens = Annotated[Optional[str], typer.Option(help="Stray 'alien' scattering: mask (exclude), report (find only) or off \\[default: mask].", rich_help_panel=PREP)]
EnergyKev = Annotated[Optional[float], typer.Option("--energy-kev", help="Photon energy, keV (overrides the input's geometry).", rich_help_panel=INPUT)]
DistanceM = Annotated[Optional[float], typer.Option("--distance-m", help="Sample-detector distance, m (overrides the input's).", rich_help_panel=INPUT)]
PixelSizeM = Annotated[Optional[float], typer.Option("--pixel-size-m", help="Detector pixel size before binning, m (overrides the input's).", rich_help_panel=INPUT)]
RockingStepDeg = Annotated[Optional[float], typer.Option("--rocking-step-deg", help="Rocking step between frames of a 3D Bragg stack, degrees (overrides the input's).", rich_help_panel=INPUT)]
DetectorAngles = Annotated[Optional[str], typer.Option("--detector-angles", help="Detector arm angles delta,gamma at the Bragg peak, degrees (overrides the input's).", rich_help_panel=INPUT)]
DSpacingNm = Annotated[Optional[float], typer.Option("--d-spacing-nm", help="Lattice spacing of the reflection, nm: |Q| = 2 pi / d for the strain.", rich_help_panel=INPUT)]
BraggAngleDeg = Annotated[Optional[float], typer.Option("--bragg-angle-deg", help="Bragg angle theta_B, degrees, for the strain when the detector angles are unknown (in-plane scattering).", rich_help_panel=INPUT)]
AllowExternalLinks = Annotated[bool, typer.Option(
    "--allow-external-links",
    help="Follow HDF5 external links and virtual-dataset sources outside the input file's folder, and external "
         "raw storage (only for files you trust).", rich_help_panel=INPUT)]
Config = Annotated[Optional[Path], typer.Option("--config", help="TOML configuration file (options override it).", rich_help_panel=INPUT)]
Json = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout, nothing else.", rich_help_panel=OUTPUT)]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress, no summary table.", rich_help_panel=OUTPUT)]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Log what the library does.", rich_help_panel=OUTPUT)]
# An output choice, not configuration: not in CONFIG_PATH, so batch --resume does not compare it.
Strain = Annotated[Optional[str], typer.Option(
    "--strain", help="Strain of a 3D Bragg result, written beside it and shown in the report: auto (lab frame when "
                     "the geometry is known, detector frame without the rocking step, none without the geometry), "
                     "lab, crystal, detector or off \\[default: auto].", rich_help_panel=OUTPUT)]
# A runtime choice, not configuration: not in CONFIG_PATH, so not in the RunConfig --resume compares.
Threads = Annotated[Optional[int], typer.Option(
    "--threads", help="CPU threads of torch and the C kernels in this process (torch.set_num_threads) "
                      "\\[default: torch's default].", rich_help_panel=RUNTIME)]


def _parse_numbers(text: str, name: str, convert: Callable[[str], Any], what: str, example: str) -> list[Any]:
    """Comma-separated numbers; an InvalidInputError naming the option when they do not parse or there are none."""
    try:
        values = [convert(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise InvalidInputError(f"{name} {text!r}: give {what} separated by commas, e.g. {example}") from None
    if not values:
        raise InvalidInputError(f"{name} is empty: give {what} separated by commas, e.g. {example}")
    return values


def parse_ints(text: str, name: str) -> list[int]:
    """``"128,128"`` (or ``"128x128"``) -> ``[128, 128]``; an InvalidInputError naming the option otherwise."""
    return _parse_numbers(text.replace("x", ","), name, int, "integers", "128,128")


def parse_names(text: str) -> list[str]:
    """``"faceted, cell"`` -> ``["faceted", "cell"]`` (empty parts dropped)."""
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_floats(text: str, name: str) -> list[float]:
    """``"32.1,12.6"`` -> ``[32.1, 12.6]``; an InvalidInputError naming the option otherwise."""
    return _parse_numbers(text, name, float, "numbers", "32.17,12.63")


# The only place a command-line option meets its configuration field: option name (the command's
# parameter) -> "section.field" of the nested data config_from_dict validates. The order is the order
# the fields are checked in. A new option: one Annotated alias above, one row here, and the parameter on
# the commands that take it.
CONFIG_PATH: dict[str, str] = {
    "method": "method",
    "iterations": "iterations",
    "runs": "runs",
    "keep": "keep",
    "seed": "seed",
    "device": "device",
    "noise": "noise",
    "psf": "psf",
    "background": "background",
    "time_budget": "time_budget_s",
    "challenge_time_factor": "challenge_time_factor",
    "init": "init",
    "allow_external_links": "input.allow_external_links",
    "max_size": "prep.max_size",
    "max_voxels": "prep.max_voxels",
    "centre": "prep.centre",
    "threshold": "prep.threshold",
    "plan": "projection.plan",
    "beta": "projection.beta",
    "support_threshold": "projection.support_threshold",
    "shrinkwrap_threshold": "projection.shrinkwrap_threshold",
    "param": "dip.param",
    "dip_weights": "dip.weights",
    "dark": "detector.dark",
    "flat": "detector.flat",
    "roi": "detector.roi",
    "bin": "detector.bin",
    "saturation": "detector.saturation",
    "beamstop_radius": "detector.beamstop_radius",
    "aliens": "detector.aliens",
    "energy_kev": "geometry.energy_kev",
    "distance_m": "geometry.distance_m",
    "pixel_size_m": "geometry.pixel_size_m",
    "rocking_step_deg": "geometry.rocking_step_deg",
    "detector_angles": "geometry.detector_angles_deg",
    "d_spacing_nm": "geometry.d_spacing_nm",
    "bragg_angle_deg": "geometry.bragg_angle_deg",
}

# Options whose text becomes another value before validation (files are read, and checked, later).
PARSERS: dict[str, Callable[[Any], Any]] = {
    "roi": lambda text: parse_ints(text, "--roi"),
    "bin": lambda text: parse_ints(text, "--bin"),
    "detector_angles": lambda text: parse_floats(text, "--detector-angles"),
}


def overrides(given: Mapping[str, Any]) -> dict[str, Any]:
    """The options the user gave, nested by :data:`CONFIG_PATH`, with :data:`PARSERS` applied.

    Parameters
    ----------
    given : Mapping
        A command's parameters by name, e.g. its ``locals()``; names not in
        :data:`CONFIG_PATH` (``input``, ``out``, ``quiet``...) are ignored.
        ``None`` means not given, and so does ``False`` for a flag: a flag
        such as ``--allow-external-links`` can only switch a setting on, and
        not giving it leaves a TOML file's value standing. ``--gpu`` is folded
        into ``device`` (:func:`device_choice`).

    Returns
    -------
    dict
        Top-level keys and ``input``, ``prep``, ``projection``, ``dip``, ``detector``, ``geometry`` tables holding
        only the options given (so a TOML file's values stand for the others), ready for
        :func:`cdi_dip.config.merge` over the file.

    Raises
    ------
    InvalidInputError
        ``--gpu`` with a CPU ``--device``, or an option whose text does not parse (``--roi``, ``--bin``).
    """
    values = {**given, "device": device_choice(bool(given.get("gpu")), given.get("device"))}
    data: dict[str, Any] = {}
    for name, path in CONFIG_PATH.items():
        value = values.get(name)
        if value is None or value is False:
            continue
        *sections, field = path.split(".")
        table = data
        for section in sections:
            table = table.setdefault(section, {})
        table[field] = PARSERS[name](value) if name in PARSERS else value
    return data


def device_choice(gpu: bool, device: str | None) -> str | None:
    """``--gpu`` and ``--device`` as one device name (None: not given)."""
    if gpu and device is not None and not device.strip().lower().startswith("cuda"):
        raise InvalidInputError(f"--gpu and --device {device} contradict each other: give one of them")
    return "cuda" if gpu and device is None else device
