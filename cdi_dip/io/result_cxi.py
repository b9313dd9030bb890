"""Read back a result CXI written by :func:`cdi_dip.io.writers.write_result_cxi`.

Everything a report needs is in the file: the aligned object and support,
the measured intensity and mask it was fitted to (``instrument_1``), the
fitted intensities, the convergence history, metrics, alignment, runs and
configuration (``image_1/process_1``), the free-pixel mask, and the double
DIP's iterate spread (``image_1/iterate_std``, when written). An ensemble
of runs and its PRTF, when the writer stored them, live in
``process_1/results/ensemble/`` and ``process_1/results/prtf/`` under the
dataset names of :func:`ensemble_datasets` and :func:`prtf_datasets`, which
convert them to and from stored arrays (the writer uses them too).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import InvalidInputError
from ..types import PRTF_THRESHOLD, AlignInfo, Comparison, EnsembleResult, Measurement, PrtfResult, Result
from .cxi import DETECTOR, IMAGE_DATA, ITERATE_STD, read_cxi_meta

__all__ = ["ENSEMBLE_DATASETS", "ENSEMBLE_GROUP", "PRTF_DATASETS", "PRTF_GROUP", "StoredResult", "ensemble_datasets",
           "ensemble_from_datasets", "prtf_datasets", "prtf_from_datasets", "read_result_cxi"]

PROCESS = "/entry_1/image_1/process_1"
RESULTS = f"{PROCESS}/results"
ENSEMBLE_GROUP = f"{RESULTS}/ensemble"
"""Where an ensemble's maps are stored (dataset names: :data:`ENSEMBLE_DATASETS`)."""
PRTF_GROUP = f"{RESULTS}/prtf"
"""Where a PRTF is stored (dataset names: :data:`PRTF_DATASETS`)."""

_NOT_METRICS = {"method", "wall_s", "device", "seed", "interrupted", "shift_px", "ramp_rad_per_px",
                "phase_offset_rad", "twin", "runs", "selection", "method_choice", "solver", "history", "model_intensity", "ensemble",
                "prtf"}


ENSEMBLE_DATASETS = ("mean", "amplitude_std", "phase_std_rad", "support_union", "support_majority",
                     "errors_to_reference", "twin", "pairwise_errors")
"""Names under which :func:`ensemble_datasets` stores an ensemble in a result CXI."""

PRTF_DATASETS = ("frequency_per_px", "values", "threshold", "resolution_px", "resolution_m", "members")
"""Names under which :func:`prtf_datasets` stores a PRTF (``resolution_*`` NaN when unknown)."""


@dataclass
class StoredResult:
    """A result CXI as read back.

    Attributes
    ----------
    result : Result
        The reconstruction, its measurement and everything the writer stored:
        its ``ensemble`` maps (without the members themselves) and its
        ``prtf`` curve and resolution, when stored.
    command : str
        Command line that produced the file.
    version : str
        cdi-dip version that wrote it.
    date : str
        When it was written (ISO 8601).
    """

    result: Result
    command: str = ""
    version: str = ""
    date: str = ""

    @property
    def ensemble(self) -> EnsembleResult | None:
        """The stored ensemble maps (``result.ensemble``)."""
        return self.result.ensemble

    @property
    def prtf(self) -> PrtfResult | None:
        """The stored PRTF (``result.prtf``)."""
        return self.result.prtf


# --------------------------------------------------------------------------- ensemble and PRTF datasets


def mark_interrupted(path: Path) -> None:
    """Record in a written result file that its run was interrupted (``results/interrupted``)."""
    with h5py.File(path, "r+") as file:
        file[f"{RESULTS}/interrupted"][()] = True


def ensemble_datasets(ensemble: EnsembleResult) -> dict[str, np.ndarray]:
    """The arrays of an ensemble worth storing, by the names of :data:`ENSEMBLE_DATASETS`.

    Parameters
    ----------
    ensemble : EnsembleResult

    Returns
    -------
    dict of str to numpy.ndarray
        ``mean`` (complex64, S), ``amplitude_std`` and ``phase_std_rad``
        (float32, S; radians), ``support_union`` and ``support_majority``
        (uint8, S; 1 = inside), ``errors_to_reference`` (float64, (K,)),
        ``twin`` (uint8, (K,)) and, when computed, ``pairwise_errors``
        (float64, (K, K)).
    """
    data = {
        "mean": ensemble.mean.astype(np.complex64),
        "amplitude_std": ensemble.amplitude_std.astype(np.float32),
        "phase_std_rad": ensemble.phase_std_rad.astype(np.float32),
        "support_union": ensemble.support_union.astype(np.uint8),
        "support_majority": ensemble.support_majority.astype(np.uint8),
        "errors_to_reference": ensemble.errors_to_reference.astype(np.float64),
        "twin": np.array([bool(t.twin) for t in ensemble.transforms], dtype=np.uint8),
    }
    if ensemble.pairwise_errors is not None:
        data["pairwise_errors"] = ensemble.pairwise_errors.astype(np.float64)
    return data


def _stored_comparison(error: float, is_twin: bool, ndim: int) -> Comparison:
    """What the stored datasets keep of a comparison: the error and the twin flag (the rest NaN)."""
    unknown = float("nan")
    return Comparison(error=error, twin=is_twin, shift_px=(unknown,) * ndim, ramp_rad_per_px=(unknown,) * ndim,
                      phase_rad=unknown, scale=unknown, phase_error_rad=unknown)


def ensemble_from_datasets(data: dict[str, Any]) -> EnsembleResult:
    """Inverse of :func:`ensemble_datasets`, without the members themselves.

    ``objects`` and ``supports`` come back empty (shape ``(0, *S)``): only the
    maps, supports, errors and twin flags are stored.
    """
    mean = np.asarray(data["mean"]).astype(np.complex64)
    errors = np.asarray(data["errors_to_reference"], dtype=np.float64).reshape(-1)
    twins = np.asarray(data.get("twin", np.zeros(errors.shape)), dtype=bool).reshape(-1)
    pairwise = data.get("pairwise_errors")
    return EnsembleResult(
        objects=np.zeros((0, *mean.shape), dtype=np.complex64),
        supports=np.zeros((0, *mean.shape), dtype=bool),
        mean=mean,
        amplitude_std=np.asarray(data["amplitude_std"], dtype=np.float32),
        phase_std_rad=np.asarray(data["phase_std_rad"], dtype=np.float32),
        support_union=np.asarray(data["support_union"]).astype(bool),
        support_majority=np.asarray(data["support_majority"]).astype(bool),
        errors_to_reference=errors,
        pairwise_errors=None if pairwise is None else np.asarray(pairwise, dtype=np.float64),
        members=tuple(range(errors.size)),
        transforms=[_stored_comparison(float(e), bool(t), mean.ndim) for t, e in zip(twins, errors)],
    )


def prtf_datasets(result: PrtfResult) -> dict[str, np.ndarray]:
    """The arrays of a PRTF by the names of :data:`PRTF_DATASETS` (unknown resolutions as NaN)."""
    def number(value: float | None) -> np.ndarray:
        return np.float64(np.nan if value is None else value)

    return {"frequency_per_px": np.asarray(result.frequency_per_px, dtype=np.float64),
            "values": np.asarray(result.values, dtype=np.float64),
            "threshold": np.float64(result.threshold),
            "resolution_px": number(result.resolution_px),
            "resolution_m": number(result.resolution_m),
            "members": np.int64(result.members)}


def prtf_from_datasets(data: dict[str, Any]) -> PrtfResult:
    """Inverse of :func:`prtf_datasets` (NaN resolutions become None)."""
    def number(value: Any) -> float | None:
        value = float(np.asarray(value))
        return value if np.isfinite(value) else None

    return PrtfResult(np.asarray(data["frequency_per_px"], dtype=np.float64),
                      np.asarray(data["values"], dtype=np.float64),
                      float(np.asarray(data.get("threshold", PRTF_THRESHOLD))),
                      number(data.get("resolution_px", np.nan)), number(data.get("resolution_m", np.nan)),
                      int(np.asarray(data.get("members", 0))))


# --------------------------------------------------------------------------- reading


def _text(node: Any, default: str = "") -> str:
    if not isinstance(node, h5py.Dataset):
        return default
    value = node[()]
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _value(node: h5py.Dataset) -> Any:
    """A stored scalar or array as plain Python/NumPy (empty datasets become NaN)."""
    if node.shape is None:
        return math.nan
    value = node[()]
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray):
        return value
    return value.item() if isinstance(value, np.generic) else value


def _history(group: Any) -> list[dict[str, float]]:
    """History columns back to one dict per entry (NaN cells dropped)."""
    if not isinstance(group, h5py.Group) or not len(group):
        return []
    columns = {key: np.asarray(node[()], dtype=np.float64) for key, node in group.items()
               if isinstance(node, h5py.Dataset)}
    length = max(column.size for column in columns.values())
    return [{key: float(column[i]) for key, column in columns.items() if i < column.size and np.isfinite(column[i])}
            for i in range(length)]


def _datasets(group: Any) -> dict[str, Any] | None:
    if not isinstance(group, h5py.Group):
        return None
    return {key: node[()] for key, node in group.items() if isinstance(node, h5py.Dataset)}


def _results(file: h5py.File) -> tuple[dict[str, Any], dict[str, Any]]:
    """Metrics, and the other stored results by name."""
    group = file.get(RESULTS)
    if not isinstance(group, h5py.Group):
        return {}, {}
    metrics: dict[str, Any] = {}
    other: dict[str, Any] = {}
    for key, node in group.items():
        if not isinstance(node, h5py.Dataset) or key == "model_intensity":
            continue
        value = _value(node)
        if key not in _NOT_METRICS and isinstance(value, (int, float)) and not isinstance(value, bool):
            metrics[key] = float(value)
        else:
            other[key] = value
    return metrics, other


def _measurement(file: h5py.File, path: Path, shape: tuple[int, ...]) -> Measurement:
    intensity = file.get(f"{DETECTOR}/data")
    if not isinstance(intensity, h5py.Dataset) or tuple(intensity.shape) != shape:
        raise InvalidInputError(f"{path} holds no measured intensity of the object's shape {shape} at "
                                f"{DETECTOR}/data: give a result file written by cdi-dip reconstruct")
    mask = file.get(f"{DETECTOR}/mask")
    valid = (np.asarray(mask[()]) == 0) if isinstance(mask, h5py.Dataset) else np.ones(shape, dtype=bool)
    roi_node = file.get("/entry_1/image_1/detector_roi")
    roi = [tuple(int(v) for v in row) for row in roi_node[()]] if isinstance(roi_node, h5py.Dataset) else []
    return Measurement(
        intensity=np.asarray(intensity[()], dtype=np.float32),
        valid=valid,
        meta=read_cxi_meta(file),
        source=_text(file.get(f"{DETECTOR}/source")),
        name=_text(file.get("/entry_1/title"), path.stem),
        roi=roi,
    )


def _json(text: Any, default: Any) -> Any:
    if not isinstance(text, str) or not text:
        return default
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return default


def read_result_cxi(path: Path) -> StoredResult:
    """Read a result CXI back into a :class:`~cdi_dip.types.Result`.

    Parameters
    ----------
    path : pathlib.Path
        A ``<scan-name>.cxi`` written by ``cdi-dip reconstruct``.

    Returns
    -------
    StoredResult

    Raises
    ------
    InvalidInputError
        The file is missing, not HDF5, or not a cdi-dip result (no object at
        ``/entry_1/image_1/data`` or no measured data beside it).
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"{path} does not exist: give the .cxi file of a reconstruction")
    try:
        file = h5py.File(path, "r")
    except OSError:
        raise InvalidInputError(f"{path} is not an HDF5/CXI file: give the .cxi file of a reconstruction") from None
    with file:
        node = file.get(IMAGE_DATA)
        if not isinstance(node, h5py.Dataset) or node.ndim not in (2, 3):
            raise InvalidInputError(f"{path} has no 2D/3D object at {IMAGE_DATA}: give a result written by "
                                    "cdi-dip reconstruct")
        obj = np.asarray(node[()]).astype(np.complex64)
        support_node = file.get("/entry_1/image_1/mask")
        support = (np.asarray(support_node[()]) != 0) if isinstance(support_node, h5py.Dataset) else np.abs(obj) > 0
        measurement = _measurement(file, path, obj.shape)
        metrics, stored = _results(file)
        model = file.get(f"{RESULTS}/model_intensity")
        free = file.get(f"{PROCESS}/masks/free")
        ensemble_data = _datasets(file.get(ENSEMBLE_GROUP))
        prtf_data = _datasets(file.get(PRTF_GROUP))
        spread = file.get(ITERATE_STD)
        result = Result(
            obj=obj,
            support=support,
            measurement=measurement,
            method=str(stored.get("method") or _text(file.get(f"{PROCESS}/method"), "unknown")),
            metrics=metrics,
            history=_history(file.get(f"{RESULTS}/history")),
            iterations=int(metrics.get("iterations", 0)),
            wall_s=float(stored.get("wall_s", math.nan)),
            device=str(stored.get("device", "")),
            seed=int(stored.get("seed", 0)) if np.isfinite(stored.get("seed", 0)) else 0,
            interrupted=bool(stored.get("interrupted", False)),
            align=AlignInfo(
                shift_px=tuple(float(v) for v in np.atleast_1d(stored.get("shift_px", ()))),
                ramp_rad_per_px=tuple(float(v) for v in np.atleast_1d(stored.get("ramp_rad_per_px", ()))),
                phase_offset_rad=float(stored.get("phase_offset_rad", 0.0)),
                twin=bool(stored.get("twin", False)),
            ),
            config=_json(_text(file.get(f"{PROCESS}/configuration")), {}),
            runs=_json(stored.get("runs"), []),
            model_intensity=np.asarray(model[()], dtype=np.float32) if isinstance(model, h5py.Dataset) else None,
            free=(np.asarray(free[()]) != 0) if isinstance(free, h5py.Dataset) else None,
            solver=_json(stored.get("solver"), {}),
            selection=_json(stored.get("selection"), {}),
            method_choice=_json(stored.get("method_choice"), {}),
            ensemble=ensemble_from_datasets(ensemble_data) if ensemble_data else None,
            prtf=prtf_from_datasets(prtf_data) if prtf_data else None,
            obj_std=np.asarray(spread[()], dtype=np.float32) if isinstance(spread, h5py.Dataset) else None,
        )
        return StoredResult(
            result=result,
            command=_text(file.get(f"{PROCESS}/command")),
            version=_text(file.get(f"{PROCESS}/version")),
            date=_text(file.get(f"{PROCESS}/date")),
        )
