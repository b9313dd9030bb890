"""Figures of a result: the only module that imports matplotlib.

``report.png`` shows amplitude and phase through the centre (2D: the image;
3D: the three central planes), measured against fitted diffraction on a log
scale, and the convergence history. For an ensemble of runs it adds the
per-voxel standard deviation of amplitude and phase on the same planes, and
the PRTF curve with its ``1/e`` line and the resolution it gives.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..geometry import voxel_size_m
from ..io._atomic import atomic_write
from ..types import Result
from .lines import free_deviance_text

if TYPE_CHECKING:
    from ..ensemble import EnsembleResult, PrtfResult
    from ..strain import StrainMaps, StrainView


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


def write_report(result: Result, directory: Path, *, strain: StrainView | None = None) -> list[Path]:
    """Draw ``report.png`` for a result into ``directory``.

    Parameters
    ----------
    result : Result
        The aligned reconstruction, with its measurement, fitted intensities
        and convergence history. Its ``ensemble`` (runs matched to
        ``result.obj``, same frame) adds columns with the amplitude and phase
        standard deviation on the same planes; its ``prtf`` adds the PRTF
        curve, the ``1/e`` line and the resolution.
    directory : pathlib.Path
        Existing folder; ``report.png`` is written there atomically.

    Returns
    -------
    list of Path
        The files written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ensemble, prtf = result.ensemble, result.prtf
    if ensemble is not None and ensemble.amplitude_std.shape != result.obj.shape:
        raise ValueError(f"ensemble maps of shape {ensemble.amplitude_std.shape} do not match the object "
                         f"{result.obj.shape}: match the ensemble to the written object")
    box = _support_box(result.support)
    object_planes = central_planes(result.obj[box])
    measured = np.where(result.measurement.valid, result.measurement.intensity, np.nan)
    data_planes = central_planes(measured)
    fitted_planes = central_planes(result.model_intensity) if result.model_intensity is not None else None
    residual_planes = (central_planes(pearson_residual(measured, result.model_intensity))
                       if result.model_intensity is not None else None)
    rows = len(object_planes)
    residual_column = 4 if residual_planes is not None else None
    strain_column = 4 + (residual_planes is not None) + (2 if ensemble is not None else 0)
    columns = strain_column + (2 if strain is not None and rows == 3 else 0)
    fig = plt.figure(figsize=(4 * columns, 3.8 * rows + 3.2))
    grid = fig.add_gridspec(rows + 1, columns, height_ratios=[3.8] * rows + [3.2])
    axes = np.array([[fig.add_subplot(grid[r, c]) for c in range(columns)] for r in range(rows)])
    vmax = float(np.nanmax(_log_image(np.nan_to_num(measured))))
    voxel = voxel_size_m(result.measurement.meta, np.shape(result.obj))
    for row, (label, plane) in enumerate(object_planes):
        _show(fig, axes[row, 0], np.abs(plane), f"amplitude {label}", "gray")
        if voxel is not None:
            _scale_bar(axes[row, 0], plane.shape[1], voxel[_horizontal_axis(result.obj.ndim, row)] * 1e9)
        _show(fig, axes[row, 1], _phase_where_strong(plane), f"phase (rad) {label}", "hsv", (-np.pi, np.pi))
        _show(fig, axes[row, 2], _log_image(data_planes[row][1]), f"measured log10(I+1) {label}", "magma", (0, vmax))
        if fitted_planes is not None:
            _show(fig, axes[row, 3], _log_image(fitted_planes[row][1]), f"fitted log10(I+1) {label}", "magma", (0, vmax))
        else:
            axes[row, 3].axis("off")
        if residual_column is not None:
            _show(fig, axes[row, residual_column], residual_planes[row][1],
                  f"(measured - fitted) / sqrt(fitted) {label}", "RdBu_r", (-RESIDUAL_LIMIT, RESIDUAL_LIMIT))
    if ensemble is not None:
        _show_ensemble(fig, axes[:, strain_column - 2:strain_column], ensemble, box)
    if columns > strain_column:
        _show_strain(fig, axes[:, strain_column:], strain)
    if prtf is not None:
        half = columns // 2
        _plot_history(result, fig.add_subplot(grid[rows, :half]))
        _plot_prtf(prtf, fig.add_subplot(grid[rows, half:]))
    else:
        _plot_history(result, fig.add_subplot(grid[rows, :]))
    fig.suptitle(_title(result, ensemble, prtf, strain), fontsize=11)
    fig.tight_layout()
    report_path = Path(directory) / "report.png"
    _save(fig, report_path)
    plt.close(fig)
    return [report_path]


def _show_ensemble(fig, axes: np.ndarray, ensemble: EnsembleResult, box: tuple[slice, ...]) -> None:
    """Amplitude and phase standard deviation of the matched runs, on the object planes."""
    amplitude_planes = central_planes(ensemble.amplitude_std[box])
    phase_planes = central_planes(ensemble.phase_std_rad[box])
    phase_max = float(np.nanmax(ensemble.phase_std_rad)) if np.isfinite(ensemble.phase_std_rad).any() else 1.0
    for row, ((label, amplitude), (_, phase)) in enumerate(zip(amplitude_planes, phase_planes)):
        _show(fig, axes[row, 0], amplitude, f"amplitude std ({ensemble.size} runs) {label}", "viridis")
        _show(fig, axes[row, 1], phase, f"phase std (rad) {label}", "viridis", (0, max(phase_max, 1e-6)))


STRAIN_PERCENTILE = 99.0
"""The strain and displacement colour scales reach this percentile of their absolute value (robust to edge voxels)."""


def symmetric_limit(values: np.ndarray, percentile: float = STRAIN_PERCENTILE) -> float:
    """``percentile`` of ``|values|`` over the finite ones (a positive floor when there are none or all are 0)."""
    finite = np.abs(values[np.isfinite(values)])
    limit = float(np.percentile(finite, percentile)) if finite.size else 0.0
    return limit if limit > 0 else 1e-12


def _strain_title(strain: StrainView) -> str:
    """The strain's frame and range and the crystal's size (its largest connected part), for the report's title."""
    from ..strain import crystal_extent_nm

    values = strain.maps.strain[np.isfinite(strain.maps.strain)]
    text = f"strain ({strain.frame} frame)"
    if values.size:
        text += f" rms {np.sqrt(np.mean(values ** 2)):.2g}, [{values.min():.2g}, {values.max():.2g}]"
    crystal = crystal_extent_nm(strain.maps.support, strain.voxel_nm, strain.maps.amplitude)
    if crystal is not None:
        names = ", ".join(name.split(" ")[0] for name in strain.axis_names)
        text += f", crystal {' x '.join(f'{v:.0f}' for v in crystal[0])} nm ({names})"
        if crystal[1]:
            text += f" + {crystal[1]} detached voxels"
    return text


def _show_strain(fig, axes: np.ndarray, strain: StrainView) -> None:
    """Strain and displacement along Q through the centre of the support, one plane per row, axes in nm."""
    maps = strain.maps
    box = _support_box(maps.support, margin=2)
    origin = [strain.origin_nm[k] + (box[k].start or 0) * strain.voxel_nm[k] for k in range(3)]
    cropped_strain, cropped_u = maps.strain[box], maps.displacement_m[box] * 1e9
    strain_limit, u_limit = symmetric_limit(cropped_strain), symmetric_limit(cropped_u)
    for axis in range(3):
        kept = [a for a in range(3) if a != axis]
        extent = tuple(origin[k] + (side * cropped_strain.shape[k] - 0.5) * strain.voxel_nm[k]
                       for k in (kept[1], kept[0]) for side in (0, 1))
        plane = f"central {strain.axis_names[axis]} plane"
        for ax, image, label, cmap, limit in (
                (axes[axis, 0], cropped_strain, "strain along Q", "RdBu_r", strain_limit),
                (axes[axis, 1], cropped_u, "displacement along Q (nm)", "PuOr_r", u_limit)):
            shown = ax.imshow(_central(image, axis), origin="lower", extent=extent, cmap=cmap,
                              interpolation="nearest", vmin=-limit, vmax=limit)
            ax.set_title(f"{label}, {strain.frame} frame\n{plane}", fontsize=9)
            ax.set_xlabel(f"{strain.axis_names[kept[1]]} (nm)", fontsize=8)
            ax.set_ylabel(f"{strain.axis_names[kept[0]]} (nm)", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.set_facecolor("#dddddd")
            bar = fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
            bar.set_label(label, fontsize=8)
            bar.ax.tick_params(labelsize=7)


def _plot_prtf(prtf: PrtfResult, ax) -> None:
    """PRTF against spatial frequency, the criterion line and the resolution it gives."""
    finite = np.isfinite(prtf.values)
    ax.plot(prtf.frequency_per_px[finite], prtf.values[finite], "o-", markersize=3, label="PRTF")
    ax.axhline(prtf.threshold, color="tab:red", linestyle="--", label=f"1/e = {prtf.threshold:.3f}")
    if prtf.members:
        ax.axhline(prtf.random_phase_floor, color="tab:gray", linestyle="-.", linewidth=0.8,
                   label=f"random phases, {prtf.members} runs")
    title = "PRTF: never below 1/e (limited by the detector edge)"
    if not prtf.criterion_reachable:
        title = f"PRTF of {prtf.members} runs: too few for the 1/e criterion (keep 8 or more)"
    if prtf.resolution_px is not None:
        ax.axvline(1.0 / (2.0 * prtf.resolution_px), color="tab:gray", linestyle=":")
        title = f"PRTF: resolution {prtf.resolution_px:.2f} px"
        if prtf.resolution_m is not None:
            title += f" = {prtf.resolution_m * 1e9:.1f} nm"
        title += " (half period)"
    ax.set_xlim(0, max(0.5, float(prtf.frequency_per_px.max(initial=0.0))))
    ax.set_ylim(0, max(1.1, float(np.nanmax(prtf.values, initial=0.0)) * 1.05) if finite.any() else 1.1)
    ax.set_xlabel("spatial frequency (cycles / pixel)")
    ax.set_ylabel("PRTF")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)


def _title(result: Result, ensemble: EnsembleResult | None = None, prtf: PrtfResult | None = None,
           strain: StrainView | None = None) -> str:
    metrics = result.metrics
    parts = [f"{result.measurement.name}: {result.method}", f"{result.iterations} it",
             f"R = {metrics.get('r_factor', float('nan')):.4f}",
             f"LLK = {metrics.get('llk_poisson', float('nan')):.3f}"]
    if "free_llk_poisson" in metrics:
        parts.append(f"free LLK = {free_deviance_text(metrics, digits=3)}")
    if ensemble is not None:
        parts.append(f"{ensemble.size} runs")
    voxel = voxel_size_m(result.measurement.meta, np.shape(result.obj))
    if voxel is not None:
        parts.append("voxel " + " x ".join(f"{v * 1e9:.3g}" for v in voxel) + " nm")
    if prtf is not None and prtf.resolution_px is not None:
        parts.append(f"resolution {prtf.resolution_px:.2f} px")
    if strain is not None:
        parts.append(_strain_title(strain))
    if result.interrupted:
        parts.append("INTERRUPTED")
    return ", ".join(parts)


def _horizontal_axis(ndim: int, plane: int) -> int:
    """The array axis shown horizontally in plane ``plane`` of :func:`central_planes`."""
    return 1 if ndim == 2 or plane == 2 else 2


def nice_length(limit: float) -> float:
    """The largest of 1, 2 or 5 times a power of ten not above ``limit`` (> 0)."""
    power = 10.0 ** np.floor(np.log10(limit))
    return max(step * power for step in (1.0, 2.0, 5.0) if step * power <= limit)


def _scale_bar(ax, width_px: int, nm_per_px: float) -> None:
    """A white bar of a round length in nm, about a quarter of the image wide, at its lower left."""
    length_nm = nice_length(0.25 * width_px * nm_per_px)
    length_px = length_nm / nm_per_px
    x0, y0 = ax.get_xlim()[0] + 0.05 * width_px, ax.get_ylim()[0] - 0.06 * abs(np.diff(ax.get_ylim())[0])
    ax.plot([x0, x0 + length_px], [y0, y0], color="white", linewidth=3)
    ax.text(x0 + length_px / 2, y0, f"{length_nm:g} nm", color="white", fontsize=8, ha="center", va="bottom")


RESIDUAL_LIMIT = 5.0
"""The residual panels' colour range, in standard deviations of Poisson noise."""


def pearson_residual(measured: np.ndarray, model: np.ndarray) -> np.ndarray:
    """``(n - m) / sqrt(max(m, 1))`` where ``measured`` is finite, NaN elsewhere (same shape).

    About unit variance where the model is right; a structured pattern of
    large values shows what the model misses (partial coherence, aliens,
    a wrong support).
    """
    model = np.asarray(model, dtype=np.float64)
    residual = (np.asarray(measured, dtype=np.float64) - model) / np.sqrt(np.maximum(model, 1.0))
    return np.where(np.isfinite(measured), residual, np.nan)


def _show(fig, ax, image, title, cmap, limits=None):
    shown = ax.imshow(image, cmap=cmap, origin="upper", interpolation="nearest",
                      vmin=None if limits is None else limits[0], vmax=None if limits is None else limits[1])
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)


def _plot_history(result: Result, ax) -> None:
    """Training and free-pixel loss against iteration: on a log scale, or a linear one where a loss is not
    positive (the double DIP's Poisson loss ``m - n log m`` is negative where counts are high)."""
    history = result.history
    if history:
        iterations = np.array([h.get("iteration", np.nan) for h in history], dtype=np.float64)
        series = {label: np.array([h.get(key, np.nan) for h in history], dtype=np.float64)
                  for key, label in (("loss", "training"), ("free_loss", "free pixels"))}
        finite = np.concatenate([values[np.isfinite(values)] for values in series.values()])
        plot = ax.semilogy if finite.size and (finite > 0).all() else ax.plot  # the Poisson loss can be negative
        for label, values in series.items():
            shown = np.isfinite(values) & np.isfinite(iterations)
            if shown.any():
                plot(iterations[shown], values[shown], label=label)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    else:
        ax.text(0.5, 0.5, "no convergence history", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.set_title(f"convergence ({result.method})", fontsize=9)


def _save(fig, path: Path) -> None:
    with atomic_write(path) as temporary:
        fig.savefig(temporary, format="png", dpi=80)


# -- the strain of a Bragg result (cdi-dip strain) ---------------------------------------


def _central(volume: np.ndarray, axis: int) -> np.ndarray:
    return np.take(volume, volume.shape[axis] // 2, axis=axis)


def write_strain_figure(path: Path, maps: StrainMaps, voxel_nm: tuple[float, ...], title: str, *,
                        axis_names: tuple[str, str, str] = ("rocking", "row", "column"),
                        origin_nm: tuple[float, float, float] = (0.0, 0.0, 0.0),
                        frame: str = "detector frame, not orthogonalised") -> Path:
    """``strain.png``: central planes of the displacement (nm) and strain along Q, axes in nm.

    Parameters
    ----------
    path : pathlib.Path
        Output PNG, written atomically.
    maps : StrainMaps
        3D maps, NaN outside the support.
    voxel_nm : tuple of 3 float
        Voxel size, array order, nm.
    title : str
    axis_names : tuple of 3 str
        Names of the array axes on the panels (default: the detector frame's).
    origin_nm : tuple of 3 float
        Coordinate of the centre of voxel ``[0, 0, 0]`` along each array axis, nm.
    frame : str
        Said after the title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    strain = maps.strain
    limit = symmetric_limit(strain) if np.isfinite(strain).any() else 1.0
    fig, axes = plt.subplots(2, 3, figsize=(13, 8), squeeze=False)
    names = axis_names
    for axis in range(3):
        kept = [a for a in range(3) if a != axis]
        extent = tuple(origin_nm[k] + (side * strain.shape[k] - 0.5) * voxel_nm[k]  # pixel edges
                       for k in (kept[1], kept[0]) for side in (0, 1))
        for row, (image, label, cmap, limits) in enumerate((
                (maps.displacement_m * 1e9, "displacement along Q (nm)", "coolwarm", None),
                (strain, "strain along Q", "RdBu_r", (-limit, limit)))):
            ax = axes[row, axis]
            shown = ax.imshow(_central(image, axis), origin="lower", extent=extent, cmap=cmap, interpolation="nearest",
                              vmin=None if limits is None else limits[0], vmax=None if limits is None else limits[1])
            ax.set_title(f"{label}, central {names[axis]} plane", fontsize=9)
            ax.set_xlabel(f"{names[kept[1]]} (nm)")
            ax.set_ylabel(f"{names[kept[0]]} (nm)")
            fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
    fig.suptitle(f"{title} ({frame})", fontsize=11)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return path



# -- the masks of a measurement (cdi-dip inspect --png) ---------------------------------
MASK_COLOURS = {
    "nan": "#ffffff", "inf": "#ffffff", "negative": "#bbbbbb", "file_mask": "#00bfff", "mask_file": "#1e90ff",
    "simulated_mask": "#00bfff", "dark": "#ff00ff", "flat": "#9400d3", "gap": "#00ff7f", "beamstop": "#00ffff",
    "beamstop_rim": "#008b8b", "beamstop_rim (tested in the fit)": "#5f9ea0",
    "saturated": "#ff4500", "hot": "#ff0000", "dead": "#ffd700", "alien": "#7fff00", "padding": "#444444",
    "binning": "#808080",
}
"""Colour of each exclusion reason in the mask figure (others: light grey)."""

PROVISIONAL_LABEL = "beamstop_rim (tested in the fit)"
"""Legend of the provisional pixels (:attr:`cdi_dip.types.Measurement.provisional`) in the mask figure."""


def _detector_views(measurement) -> list[tuple[str, np.ndarray, dict[str, np.ndarray]]]:
    """The images to draw: 2D the frame; 3D the sum over frames and the frame through the peak."""
    intensity, masks = measurement.intensity, dict(measurement.masks)
    if measurement.provisional is not None:  # valid, but held out of a first pass: drawn too
        masks[PROVISIONAL_LABEL] = measurement.provisional
    if measurement.ndim == 2:
        return [("frame", intensity, masks)]
    peak = int(np.unravel_index(int(np.argmax(np.where(measurement.valid, intensity, -1))), intensity.shape)[0])
    summed = {reason: mask.any(axis=0) for reason, mask in masks.items()}
    at_peak = {reason: mask[peak] for reason, mask in masks.items()}
    return [("sum over frames (masked in any frame)", intensity.sum(axis=0), summed),
            (f"frame {peak} (brightest)", intensity[peak], at_peak)]


def write_mask_figure(measurement, path: Path) -> Path:
    """Draw a measurement's counts on a log scale with its excluded pixels coloured by reason.

    Parameters
    ----------
    measurement : Measurement
        Usually after :func:`cdi_dip.prepare.stages.condition_detector`, whose
        ``masks`` say why each pixel is excluded.
    path : pathlib.Path
        PNG to write (atomically).

    Returns
    -------
    pathlib.Path
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgba
    from matplotlib.patches import Patch

    views = _detector_views(measurement)
    fig, axes = plt.subplots(1, len(views), figsize=(6.5 * len(views), 6), squeeze=False)
    legend: dict[str, str] = {}
    for ax, (title, image, masks) in zip(axes[0], views):
        shown = ax.imshow(_log_image(image), cmap="gray", origin="upper", interpolation="nearest")
        fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04, label="log10(counts + 1)")
        overlay = np.zeros((*image.shape, 4))
        for reason, mask in masks.items():
            if mask.any():
                colour = MASK_COLOURS.get(reason, "#dddddd")
                overlay[mask] = to_rgba(colour, alpha=0.85)
                legend[reason] = colour
        ax.imshow(overlay, origin="upper", interpolation="nearest")
        ax.set_title(title, fontsize=10)
    if legend:
        counts = dict(measurement.excluded)
        if measurement.provisional is not None:
            counts[PROVISIONAL_LABEL] = int(np.count_nonzero(measurement.provisional))
        handles = [Patch(color=colour, label=f"{reason} ({counts.get(reason, 0)} px)")
                   for reason, colour in legend.items()]
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 5), fontsize=9)
    fig.suptitle(f"{measurement.source}: {measurement.shape}, excluded pixels by reason", fontsize=11)
    fig.tight_layout(rect=(0, 0.08 if legend else 0, 1, 1))
    _save(fig, Path(path))
    plt.close(fig)
    return Path(path)
