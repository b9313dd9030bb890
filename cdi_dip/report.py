"""Figures of a result: the only module that imports matplotlib.

``report.png`` shows amplitude and phase through the centre (2D: the image;
3D: the three central planes), measured against fitted diffraction on a log
scale, and the convergence history.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .types import Result


def _support_box(support: np.ndarray, margin: int = 4) -> tuple[slice, ...]:
    """Bounding box of the support plus a margin (whole array when empty)."""
    if not support.any():
        return tuple(slice(None) for _ in support.shape)
    box = []
    for axis in range(support.ndim):
        other = tuple(a for a in range(support.ndim) if a != axis)
        present = np.flatnonzero(support.any(axis=other))
        box.append(slice(max(present[0] - margin, 0), min(present[-1] + margin + 1, support.shape[axis])))
    return tuple(box)


def central_planes(volume: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """2D: the image; 3D: the planes through the centre normal to each axis."""
    if volume.ndim == 2:
        return [("", volume)]
    centre = [n // 2 for n in volume.shape]
    return [
        ("axis 0", volume[centre[0], :, :]),
        ("axis 1", volume[:, centre[1], :]),
        ("axis 2", volume[:, :, centre[2]]),
    ]


def _phase_where_strong(obj: np.ndarray, relative: float = 0.1) -> np.ndarray:
    amplitude = np.abs(obj)
    phase = np.angle(obj)
    return np.where(amplitude > relative * amplitude.max(), phase, np.nan)


def _log_image(intensity: np.ndarray) -> np.ndarray:
    return np.log10(np.clip(intensity, 0, None) + 1.0)


def write_report(result: Result, directory: Path) -> list[Path]:
    """Draw ``report.png`` for a result into ``directory``.

    Returns
    -------
    list of Path
        The files written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    box = _support_box(result.support)
    obj = result.obj[box]
    object_planes = central_planes(obj)
    measured = np.where(result.measurement.valid, result.measurement.intensity, np.nan)
    data_planes = central_planes(measured)
    fitted_planes = central_planes(result.model_intensity) if result.model_intensity is not None else None
    rows = len(object_planes)
    fig = plt.figure(figsize=(16, 3.8 * rows + 3.0))
    grid = fig.add_gridspec(rows + 1, 4, height_ratios=[3.8] * rows + [3.0])
    axes = np.array([[fig.add_subplot(grid[r, c]) for c in range(4)] for r in range(rows)])
    vmax = float(np.nanmax(_log_image(np.nan_to_num(measured))))
    for row, (label, plane) in enumerate(object_planes):
        _show(fig, axes[row, 0], np.abs(plane), f"amplitude {label}", "gray")
        _show(fig, axes[row, 1], _phase_where_strong(plane), f"phase (rad) {label}", "hsv", (-np.pi, np.pi))
        _show(fig, axes[row, 2], _log_image(data_planes[row][1]), f"measured log10(I+1) {label}", "magma", (0, vmax))
        if fitted_planes is not None:
            _show(fig, axes[row, 3], _log_image(fitted_planes[row][1]), f"fitted log10(I+1) {label}", "magma", (0, vmax))
        else:
            axes[row, 3].axis("off")
    _plot_history(result, fig.add_subplot(grid[rows, :]))
    fig.suptitle(_title(result), fontsize=11)
    fig.tight_layout()
    report_path = Path(directory) / "report.png"
    _save(fig, report_path)
    plt.close(fig)
    return [report_path]


def _title(result: Result) -> str:
    metrics = result.metrics
    parts = [f"{result.measurement.name}: {result.method}", f"{result.iterations} it",
             f"R = {metrics.get('r_factor', float('nan')):.4f}",
             f"LLK = {metrics.get('llk_poisson', float('nan')):.3f}"]
    if "free_llk_poisson" in metrics:
        parts.append(f"free LLK = {metrics['free_llk_poisson']:.3f}")
    if result.interrupted:
        parts.append("INTERRUPTED")
    return ", ".join(parts)


def _show(fig, ax, image, title, cmap, limits=None):
    shown = ax.imshow(image, cmap=cmap, origin="lower", interpolation="nearest",
                      vmin=None if limits is None else limits[0], vmax=None if limits is None else limits[1])
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)


def _plot_history(result: Result, ax) -> None:
    """Training and free-pixel loss against iteration."""
    history = result.history
    if history:
        iterations = [h["iteration"] for h in history]
        for key, label in (("loss", "training"), ("free_loss", "free pixels")):
            values = [h.get(key, np.nan) for h in history]
            if np.isfinite(values).any():
                ax.semilogy(iterations, values, label=label)
        ax.legend()
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.set_title(f"convergence ({result.method})", fontsize=9)


def _save(fig, path: Path) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    fig.savefig(temporary, format="png", dpi=80)
    os.replace(temporary, path)
