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
from .align import align_object
from .config import RunConfig
from .device import make_generator, resolve_device
from .errors import InvalidInputError, ReconstructionError
from .free_pixels import select_free_islands
from .io.readers import read_array, read_measurement
from .io.writers import write_json, write_result_cxi, write_tiffs
from .metrics import data_metrics
from .physics import FarField
from .preprocess import condition_detector, prepare
from .solvers import get_solver
from .types import Measurement, Result, SolverOutput

log = logging.getLogger(__name__)

IterCallback = Callable[[dict[str, Any]], None]


def noise_model(cfg: RunConfig) -> str:
    """The noise model's name used for validation and selection (Poisson unless ``cfg.noise`` says)."""
    return "poisson" if cfg.noise is None else cfg.noise.value


def _run_metrics(output: SolverOutput, counts: torch.Tensor, valid: torch.Tensor,
                 free: torch.Tensor | None, physics: FarField, noise: str) -> tuple[dict[str, float], np.ndarray]:
    obj = torch.from_numpy(output.obj).to(counts.device)
    model = physics.intensity(obj)
    metrics = data_metrics(model, counts, valid, free, noise=noise)
    metrics["support_size"] = int(output.support.sum())
    return metrics, model.float().cpu().numpy()


def _selection_score(metrics: dict[str, float], noise: str) -> float:
    """Lower is better: the free likelihood under the noise model when there are free pixels, else training."""
    score = metrics.get(f"free_llk_{noise}", metrics.get(f"llk_{noise}", metrics["llk_poisson"]))
    return score if np.isfinite(score) else float("inf")


def hold_out_free_pixels(valid: np.ndarray, cfg: RunConfig) -> np.ndarray:
    """The free (held-out) pixels of a run: islands among the valid pixels, from ``cfg.seed``."""
    return select_free_islands(valid, cfg.prep.free_fraction, rng=np.random.default_rng(cfg.seed))


def reconstruct(
    measurement: Measurement,
    cfg: RunConfig,
    *,
    on_iter: IterCallback | None = None,
) -> Result:
    """Reconstruct a prepared measurement with ``cfg.runs`` random starts.

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
        The best run by free-pixel Poisson likelihood, aligned.
    """
    device = resolve_device(cfg.device)
    physics = FarField(measurement.shape)
    noise = noise_model(cfg)
    free_np = hold_out_free_pixels(measurement.valid, cfg)
    counts = torch.from_numpy(measurement.intensity.astype(np.float32)).to(device)
    free = torch.from_numpy(free_np).to(device)
    fit_valid = torch.from_numpy(measurement.valid & ~free_np).to(device)
    solve = get_solver(cfg.method)
    start = time.perf_counter()
    best: tuple[float, SolverOutput, dict[str, float], np.ndarray, int] | None = None
    runs: list[dict[str, Any]] = []
    interrupted = False
    for run in range(cfg.runs):
        seed = cfg.seed + run
        callback = None
        if on_iter is not None:
            callback = lambda info, run=run: on_iter({**info, "run": run, "runs": cfg.runs})  # noqa: E731
        try:
            output = solve(counts, fit_valid, physics, cfg,
                           generator=make_generator(seed, device), free=free, on_iter=callback)
        except KeyboardInterrupt:
            interrupted = True
            log.warning("interrupted before run %d produced a result", run)
            break
        metrics, model = _run_metrics(output, counts, fit_valid, free, physics, noise)
        score = _selection_score(metrics, noise)
        runs.append({"run": run, "seed": seed, "iterations": output.iterations, **metrics})
        log.info("run %d (seed %d): %s", run, seed, metrics)
        if best is None or score < best[0]:
            best = (score, output, metrics, model, run)
        if output.interrupted:
            interrupted = True
            break
    if best is None:
        raise ReconstructionError("interrupted before any run finished: nothing to write")
    wall_s = time.perf_counter() - start
    _, output, metrics, model, kept_run = best
    if not np.all(np.isfinite(output.obj)):
        raise ReconstructionError("the reconstruction diverged (NaN or Inf in the object); nothing written")
    for entry in runs:
        entry["kept"] = entry["run"] == kept_run
    obj, support, align_info = align_object(output.obj, output.support)
    total_iterations = sum(r["iterations"] for r in runs)
    metrics["iterations"] = output.iterations
    metrics["seconds_per_iteration"] = wall_s / max(total_iterations, 1)
    return Result(
        obj=obj.astype(np.complex64),
        support=support,
        measurement=measurement,
        method=cfg.method.value,
        metrics=metrics,
        history=output.history,
        iterations=output.iterations,
        wall_s=wall_s,
        device=str(device),
        seed=cfg.seed,
        interrupted=interrupted,
        align=align_info,
        config=cfg.to_dict(),
        runs=runs,
        model_intensity=model,
        free=free_np,
        extra={"solver": output.extra, "noise": noise,
               "masks": {"valid": measurement.valid, "free": free_np,
                         **{f"excluded/{reason}": mask for reason, mask in measurement.masks.items()}}},
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
    ``OUT/<scan-name>/`` only once everything is written.
    """
    from .report import write_report  # matplotlib only when writing

    name = result.measurement.name
    final = scan_output_dir(out_dir, name)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=out_dir))
    try:
        cxi_path = staging / f"{name}.cxi"
        write_result_cxi(cxi_path, result, command_line=command_line, version=__version__)
        files = [cxi_path, *write_tiffs(staging, name, result.obj)]
        files += write_report(result, staging)
        summary = make_summary(result, final, [final / f.name for f in files] + [final / "summary.json"])
        write_json(staging / "summary.json", summary)
        _replace_dir(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return summary


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
    return {
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
        "config": result.config,
    }


def failure_summary(source: str, error: BaseException, method: str = "") -> dict[str, Any]:
    """Summary of a scan that failed (batch records these)."""
    return {"input": source, "output": None, "files": [], "method": method, "status": "failed",
            "error": str(error), "version": __version__}


def read_calibration(spec: str | None, role: str) -> np.ndarray | None:
    """A dark or flat image from a file (any supported format), or None."""
    if spec is None:
        return None
    image = np.asarray(read_array(spec))
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
    measurement = read_measurement(source, mask_specs=mask_specs)
    detector = cfg.detector
    conditioned = condition_detector(measurement, detector, dark=read_calibration(detector.dark, "--dark"),
                                     flat=read_calibration(detector.flat, "--flat"))
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
