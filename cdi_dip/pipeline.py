"""One scan from file to aligned, written result: read -> prepare -> solve -> align -> write.

The library never prints: progress goes to the ``on_iter`` callback and to
``logging``. Every file of a scan is first written into a temporary folder
that is renamed onto ``OUT/<scan-name>/`` only when complete.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import __version__
from .config import Method, RunConfig
from .device import resolve_device
from .errors import InvalidInputError, ReconstructionError
from .free_pixels import select_free_islands
from .io.readers import read_array, read_measurement
from .io.vtk import write_vti
from .io.writers import write_json, write_result_cxi, write_tiffs
from .memory import check_memory, estimate_memory_bytes
from .physics import FarField
from .preprocess import condition_detector, prepare
from .provenance import software_versions
from .restarts import FitData, combine_runs, run_starts
from .rim import check_rim, with_rim, without_rim
from .solvers.projections import choose_positivity
from .types import Measurement, Result

log = logging.getLogger(__name__)

IterCallback = Callable[[dict[str, Any]], None]


def noise_model(cfg: RunConfig) -> str:
    """The noise model's name used for validation and selection (Poisson unless ``cfg.noise`` says)."""
    return "poisson" if cfg.noise is None else cfg.noise.value


def hold_out_free_pixels(valid: np.ndarray, cfg: RunConfig) -> np.ndarray:
    """The free (held-out) pixels of a run: islands among the valid pixels, from ``cfg.seed``."""
    return select_free_islands(valid, cfg.prep.free_fraction, rng=np.random.default_rng(cfg.seed))


def fit_data(measurement: Measurement, cfg: RunConfig, device: torch.device) -> tuple[FitData, np.ndarray]:
    """The counts and masks of a prepared measurement on the device, with its free pixels."""
    free = hold_out_free_pixels(measurement.valid, cfg)
    data = FitData(
        counts=torch.from_numpy(measurement.intensity.astype(np.float32)).to(device),
        fit_valid=torch.from_numpy(measurement.valid & ~free).to(device),
        free=torch.from_numpy(free).to(device),
        physics=FarField(measurement.shape),
        noise=noise_model(cfg),
    )
    return data, free


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


def reconstruct(
    measurement: Measurement,
    cfg: RunConfig,
    *,
    on_iter: IterCallback | None = None,
) -> Result:
    """Reconstruct a prepared measurement with ``cfg.runs`` random starts.

    Provisional pixels (the rim of a beamstop shadow the tool found) are left
    out of a first pass. When that pass ran the double DIP and predicts their
    counts (:func:`cdi_dip.rim.check_rim`), the rim is lit and a second pass
    fits it with the rest; otherwise it stays excluded (``beamstop_rim``).
    Either way ``extra["beamstop_rim"]`` says what was measured and done.

    Parameters
    ----------
    measurement : Measurement
        Centred, framed data (see :func:`cdi_dip.preprocess.prepare`).
    cfg : RunConfig
        Validated configuration.
    on_iter : callable, optional
        Called with progress dictionaries (``run``, ``runs``, ``iteration``,
        ``total``, ``loss``...).

    Returns
    -------
    Result
        Aligned: the mean of the best ``cfg.keep`` runs by free-pixel
        likelihood that agree with the best one (``extra["ensemble"]``,
        ``extra["prtf"]``), or the best run alone.

    Raises
    ------
    InvalidInputError
        At once, when the run's estimated memory exceeds what the device has
        free (:func:`cdi_dip.memory.check_memory`).
    """
    requested = cfg.to_dict()  # as asked (``auto`` included): what --resume compares
    first = _reconstruct_pass(without_rim(measurement), cfg, requested, on_iter)
    if measurement.provisional is None:
        return first
    if first.method != Method.DIP.value:
        # HIO, ER and RAAR leave a missing centre short of power (on 64^2 crystals HIO predicted 2-4x too
        # few counts on a lit rim), so their prediction cannot vouch for the rim: it stays excluded.
        first.extra["beamstop_rim"] = {"pixels": int(np.count_nonzero(measurement.provisional)), "tested": False,
                                       "readmitted": False}
        return first
    rim = check_rim(measurement, first.model_intensity)
    if first.interrupted or not rim.lit:
        first.extra["beamstop_rim"] = rim.summary(readmitted=False)
        return first
    log.info("beamstop rim lit: reconstructing again with its %d pixels", rim.pixels)
    second = _reconstruct_pass(with_rim(measurement), cfg, requested, on_iter)
    if second.interrupted:  # Ctrl-C during the second pass: the finished first one is the better result
        log.warning("interrupted while fitting the beamstop rim: keeping the first pass, without it")
        first.extra["beamstop_rim"] = rim.summary(readmitted=False)
        first.interrupted = True
        return first
    second.extra["beamstop_rim"] = rim.summary(readmitted=True)
    second.wall_s += first.wall_s
    return second


def _reconstruct_pass(measurement: Measurement, cfg: RunConfig, requested: dict[str, Any],
                      on_iter: IterCallback | None) -> Result:
    """One reconstruction of every pixel the measurement has valid; see :func:`reconstruct`."""
    device = resolve_device(cfg.device)
    cfg = cfg.with_method(choose_method(measurement, cfg, device))
    check_memory(estimate_memory_bytes(cfg, measurement.shape), device,
                 f"{cfg.method.value} on a {'x'.join(map(str, measurement.shape))} frame")
    data, free = fit_data(measurement, cfg, device)
    start = time.perf_counter()
    runs, interrupted = run_starts(data, cfg, device, on_iter=on_iter)
    if not runs:
        raise ReconstructionError("interrupted before any run finished: nothing to write" if interrupted else
                                  "every run diverged (NaN or Inf in the object): nothing written; "
                                  "try --method er or another --seed")
    solve_s = time.perf_counter() - start
    combined = combine_runs(runs, measurement, data, cfg)
    wall_s = time.perf_counter() - start
    member_indices = {run.index for run in combined.members}
    records = [{**run.record(), "kept": run.index == combined.best.index, "averaged": run.index in member_indices}
               for run in sorted(runs, key=lambda r: r.index)]
    total_iterations = sum(r["iterations"] for r in records)
    metrics = dict(combined.metrics)
    metrics["iterations"] = combined.best.output.iterations
    metrics["seconds_per_iteration"] = solve_s / max(total_iterations, 1)
    extra: dict[str, Any] = {
        "solver": combined.best.output.extra, "noise": data.noise, "versions": software_versions(device),
        "masks": {"valid": measurement.valid, "free": free,
                  **{f"excluded/{reason}": mask for reason, mask in measurement.masks.items()}},
    }
    if combined.ensemble is not None:
        extra["ensemble"], extra["prtf"] = combined.ensemble, combined.prtf
    return Result(
        obj=combined.obj,
        support=combined.support,
        measurement=measurement,
        method=cfg.method.value,
        metrics=metrics,
        history=combined.best.output.history,
        iterations=combined.best.output.iterations,
        wall_s=wall_s,
        device=str(device),
        seed=cfg.seed,
        interrupted=interrupted,
        align=combined.align,
        config=requested,
        runs=records,
        model_intensity=combined.model,
        free=free,
        extra=extra,
    )


def scan_output_dir(out_dir: Path, name: str) -> Path:
    """Folder of one scan's results: ``OUT/<scan-name>/``."""
    return Path(out_dir) / name


def _check_writable(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInputError(f"cannot create output directory {out_dir}: {exc.strerror}; choose another --out") from None
    if not os.access(out_dir, os.W_OK):
        raise InvalidInputError(f"output directory {out_dir} is not writable; choose another --out")


def write_outputs(result: Result, out_dir: Path, *, command_line: str) -> dict[str, Any]:
    """Write every file of one scan atomically and return its summary.

    The files go to a temporary folder beside the final one, which replaces
    ``OUT/<scan-name>/`` only once everything is written: the result CXI,
    amplitude and phase TIFFs (and the ensemble's standard deviations), a
    VTK image (``.vti``) for ParaView, ``report.png``, ``report.html`` and
    ``summary.json``.
    """
    from .report import write_report  # matplotlib only when writing
    from .report_html import write_report_html

    name = result.measurement.name
    final = scan_output_dir(out_dir, name)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=out_dir))
    ensemble, prtf = result.extra.get("ensemble"), result.extra.get("prtf")
    try:
        cxi_path = staging / f"{name}.cxi"
        write_result_cxi(cxi_path, result, command_line=command_line, version=__version__)
        maps = _uncertainty_maps(result)
        files = [cxi_path, *write_tiffs(staging, name, result.obj, maps)]
        files.append(write_vti(staging / f"{name}.vti", np.abs(result.obj), np.angle(result.obj), extra=maps))
        files += write_report(result, staging, ensemble=ensemble, prtf=prtf)
        html_path = staging / "report.html"
        names = [f.name for f in files] + [html_path.name, "summary.json"]
        summary = make_summary(result, final, [final / n for n in names])
        write_report_html(html_path, {**summary, "command": command_line}, png_name="report.png")
        write_json(staging / "summary.json", summary)
        _replace_dir(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return summary


def _uncertainty_maps(result: Result) -> dict[str, np.ndarray]:
    """Per-voxel standard deviations of an ensemble, to write beside amplitude and phase."""
    ensemble = result.extra.get("ensemble")
    if ensemble is None:
        return {}
    return {"amplitude_std": ensemble.amplitude_std, "phase_std": ensemble.phase_std_rad}


def _replace_dir(staging: Path, final: Path) -> None:
    """Move ``staging`` onto ``final``, replacing an older result folder."""
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
    os.replace(staging, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def make_summary(result: Result, folder: Path, files: Sequence[Path]) -> dict[str, Any]:
    """The ``summary.json`` contract of one scan (see DESIGN.md)."""
    name = result.measurement.name
    metrics = {k: v for k, v in result.metrics.items() if k not in ("iterations", "seconds_per_iteration")}
    summary = {
        "input": result.measurement.source,
        "output": str(folder / f"{name}.cxi"),
        "files": [str(f) for f in files],
        "method": result.method,
        "status": "ok",
        "interrupted": result.interrupted,
        "device": result.device,
        "shape": list(result.measurement.shape),
        "roi": [list(r) for r in result.measurement.roi],
        "excluded": dict(result.measurement.excluded),
        "preparation": dict(result.measurement.notes),
        "iterations": result.iterations,
        "runs": len(result.runs),
        "wall_s": round(result.wall_s, 3),
        "seconds_per_iteration": result.metrics.get("seconds_per_iteration"),
        "metrics": metrics,
        "seed": result.seed,
        "version": __version__,
        "versions": result.extra.get("versions", {}),
        "alignment": {"shift_px": list(result.align.shift_px), "ramp_rad_per_px": list(result.align.ramp_rad_per_px),
                      "phase_offset_rad": result.align.phase_offset_rad, "twin": result.align.twin},
        "config": result.config,
    }
    if "beamstop_rim" in result.extra:
        summary["beamstop_rim"] = result.extra["beamstop_rim"]
    ensemble, prtf = result.extra.get("ensemble"), result.extra.get("prtf")
    if ensemble is not None:
        summary["ensemble"] = ensemble.summary()
    if prtf is not None:
        summary["resolution"] = prtf.summary()
    return summary


def failure_summary(source: str, error: BaseException, method: str = "") -> dict[str, Any]:
    """Summary of a scan that failed (batch records these)."""
    return {"input": source, "output": None, "files": [], "method": method, "status": "failed",
            "error": str(error), "version": __version__}


def read_calibration(spec: str | None, role: str, *, allow_external_links: bool = False) -> np.ndarray | None:
    """A dark or flat image from a file (any supported format), or None.

    ``allow_external_links``: as for :func:`cdi_dip.io.read_array` (``input.allow_external_links``).
    """
    if spec is None:
        return None
    image = np.asarray(read_array(spec, allow_external_links=allow_external_links))
    if np.iscomplexobj(image) or image.ndim not in (2, 3):
        raise InvalidInputError(f"{role} {spec}: give a real 2D detector frame (or one frame per data frame), "
                                f"got {image.dtype} {image.shape}")
    return image.astype(np.float64)


def load_scan(source: str, cfg: RunConfig, *, mask_specs: Sequence[str] = ()) -> Measurement:
    """Read, condition (corrections, defects, binning) and frame one scan.

    Raises
    ------
    InvalidInputError
        On bad input: nothing has been written.
    """
    allow = cfg.input.allow_external_links
    measurement = read_measurement(source, mask_specs=mask_specs, allow_external_links=allow)
    detector = cfg.detector
    conditioned = condition_detector(
        measurement, detector,
        dark=read_calibration(detector.dark, "--dark", allow_external_links=allow),
        flat=read_calibration(detector.flat, "--flat", allow_external_links=allow),
    )
    return prepare(conditioned, cfg.prep)


def reconstruct_scan(
    source: str,
    cfg: RunConfig,
    out_dir: Path,
    *,
    mask_specs: Sequence[str] = (),
    command_line: str = "",
    on_iter: IterCallback | None = None,
) -> dict[str, Any]:
    """Read, reconstruct and write one scan; return its summary.

    Raises
    ------
    InvalidInputError
        Bad input or output folder (nothing is written).
    ReconstructionError
        The reconstruction failed at run time.
    """
    out_dir = Path(out_dir)
    measurement = load_scan(source, cfg, mask_specs=mask_specs)
    _check_writable(out_dir)
    try:
        result = reconstruct(measurement, cfg, on_iter=on_iter)
    except torch.cuda.OutOfMemoryError:
        raise ReconstructionError("out of GPU memory: use a smaller --max-size or --device cpu") from None
    return write_outputs(result, out_dir, command_line=command_line)
