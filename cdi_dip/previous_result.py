"""``--init RESULT.cxi``: every run starts from a previous result of ``cdi-dip reconstruct``.

To refine a result (more iterations, another method: ``--init out/scan/scan.cxi
--method er``), or to start each scan of a series from its neighbour's result.
The written object is aligned (phase ramp removed, centred to a fraction of a
pixel); :func:`~cdi_dip.ensemble.restart_object` moves it back so that it fits
its pattern on its support again. The twin, the global phase and whole-pixel
shifts are symmetries of the intensity and stay as written.

A result made on a frame of another size with the same array pixels (another
``--max-size`` or ``--roi``) is seen on this frame through its far field
(:func:`~cdi_dip.prepare.margin.seen_on_frame`): its far field cut to the
frame, or padded. A result whose array pixels differ (another ``--bin``, or
another energy, distance or rocking step) has voxels of another size: it is
resampled onto this frame's voxels in real space (:func:`resampled`), its
voxel sizes compared through the geometry both record, else through the
detector regions both cover (:func:`voxel_scale`). Where neither says, the
same array pixels are assumed and a warning names both frames.

:class:`ResultStart` is an :class:`~cdi_dip.solvers.base.Initialiser`: the
first run on a problem takes the object scaled to the counts, every later run
(``--runs``, the more-starts challenge) the object with complex noise of
:data:`PERTURBATION` of its RMS inside the support, so that several starts
still explore. The projection solvers take its support
(:meth:`ResultStart.initial_support`) in place of the autocorrelation's and
hold it (:attr:`ResultStart.holds_support`: no shrinkwrap). From the real
34-ID-C scan's result, 200 ER iterations with shrinkwrap cut its support from
6495 to 3693 voxels and its free Poisson deviance rose from 1.39 to 1.68; on
the held support it stayed at 1.40 (docs/benchmarks.md).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .ensemble import restart_object
from .errors import InvalidInputError
from .geometry import voxel_size_m
from .io.result_cxi import read_result_cxi
from .io.strain_files import STRAIN_CXI
from .learned.initialiser import PERTURBATION, perturbed
from .learned.network import scale_to_counts
from .orthogonal import trilinear
from .prepare.margin import seen_on_frame
from .solvers.init import StartFrom
from .types import Measurement

log = logging.getLogger(__name__)


SAME_PIXELS_TOLERANCE = 0.01
"""Relative difference of the voxel scale from a pure change of frame below which the array pixels are the same."""


def _frame_text(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def _array_pixels(roi: list[tuple[int, int]], shape: tuple[int, ...]) -> tuple[float, ...] | None:
    """Detector pixels (frames, along the rocking axis) per array pixel along each axis, from the detector region
    ``roi`` an array of ``shape`` covers; None without a region for every axis."""
    if not roi or len(roi) != len(shape):
        return None
    return tuple((stop - start) / n for (start, stop), n in zip(roi, shape))


def voxel_scale(theirs: Measurement, their_shape: tuple[int, ...],
                ours: Measurement) -> tuple[tuple[float, ...], str]:
    """How many of this frame's voxels one voxel of a previous result spans, per axis, and what says so.

    A voxel is ``lambda D / (N p)`` along a detector axis (``p`` one array
    pixel) and ``lambda / (2 N dtheta sin theta_B)`` along the rocking axis
    (:func:`~cdi_dip.geometry.voxel_size_m`); the same array pixels give a
    scale of ``N_ours / N_theirs``.

    Parameters
    ----------
    theirs : Measurement
        The measurement the result was fitted to, as its file records it
        (geometry in ``meta``, detector region in ``roi``).
    their_shape : tuple of int
        The result's frame.
    ours : Measurement
        This scan, prepared.

    Returns
    -------
    scale : tuple of float
        Their voxel size over ours, per axis.
    evidence : str
        ``"geometry"`` (both record wavelength, distance, pixel size and, in
        3D, the rocking step and angles), ``"detector regions"`` (both record
        the detector pixels they cover: another binning is seen, another
        energy or distance is not), or ``"assumed"`` (the same array pixels).
    """
    their_voxels, our_voxels = voxel_size_m(theirs.meta, their_shape), voxel_size_m(ours.meta, ours.shape)
    if their_voxels is not None and our_voxels is not None:
        return tuple(a / b for a, b in zip(their_voxels, our_voxels)), "geometry"
    their_pixels, our_pixels = _array_pixels(theirs.roi, their_shape), _array_pixels(ours.roi, ours.shape)
    if their_pixels is not None and our_pixels is not None:
        return tuple(n * a / (m * b) for n, a, m, b in zip(ours.shape, our_pixels, their_shape, their_pixels)), \
            "detector regions"
    return tuple(n / m for n, m in zip(ours.shape, their_shape)), "assumed"


def same_array_pixels(scale: tuple[float, ...], their_shape: tuple[int, ...], shape: tuple[int, ...]) -> bool:
    """Whether a voxel ``scale`` is that of a change of frame alone (same array pixels), within
    :data:`SAME_PIXELS_TOLERANCE`."""
    return all(abs(s * m / n - 1.0) <= SAME_PIXELS_TOLERANCE for s, m, n in zip(scale, their_shape, shape))


def resampled(array: np.ndarray, scale: tuple[float, ...], shape: tuple[int, ...]) -> np.ndarray:
    """A centred ``array`` seen on a centred frame of ``shape`` whose voxels are ``1 / scale`` of its own.

    Multilinear interpolation in real space, zero outside the array
    (:func:`~cdi_dip.orthogonal.trilinear`); voxel ``j`` of the new frame
    sits at ``(j - n // 2) / scale + m // 2`` of the old one along each axis
    (the centre pixel of both frames at the same place). Shrinking (``scale
    < 1``) samples without averaging: a start, not a measurement.

    Parameters
    ----------
    array : numpy.ndarray, shape (m_0, m_1[, m_2]), centred
    scale : tuple of float
        Its voxel size over the new one, per axis.
    shape : tuple of int

    Returns
    -------
    numpy.ndarray, ``shape``, float64 or complex128
    """
    array = np.asarray(array)
    positions = [(np.arange(n) - n // 2) / s + m // 2 for s, n, m in zip(scale, shape, array.shape)]
    indices = np.stack([grid.ravel() for grid in np.meshgrid(*positions, indexing="ij")])
    return trilinear(array, indices).reshape(shape)


class ResultStart(StartFrom):
    """Starting objects from a previous result (module docstring): a :class:`~cdi_dip.solvers.init.StartFrom`
    scaled to the counts, perturbed after the first run, whose support the projection solvers hold.

    Parameters
    ----------
    obj : numpy.ndarray, complex, frame shape, centred
        The object as it fits its pattern (:func:`~cdi_dip.ensemble.restart_object` applied).
    support : numpy.ndarray, bool, frame shape, centred
    source : pathlib.Path
        The result file it came from (for messages and the record).
    """

    holds_support = True
    """The projection solvers keep :meth:`initial_support` as it is (no shrinkwrap): a refinement."""

    support_origin = "previous result, held"
    """How the solver record names the support."""

    def __init__(self, obj: np.ndarray, support: np.ndarray, source: Path):
        super().__init__(obj, support)
        self.source = Path(source)
        self._problem: int | None = None  # id of the counts of the problem the state below belongs to
        self._scaled: torch.Tensor | None = None
        self._calls = 0

    @property
    def frame(self) -> tuple[int, ...]:
        """The frame of the object (pixels per axis)."""
        return tuple(self._obj.shape)

    def on_frame(self, shape: tuple[int, ...]) -> ResultStart:
        """The same start on a frame of ``shape`` with the same detector pixels (its far field cut or padded)."""
        shape = tuple(int(n) for n in shape)
        if shape == self.frame:
            return self
        obj = seen_on_frame(self._obj, shape)
        support = seen_on_frame(self._support.astype(np.complex128), shape).real > 0.5
        if not support.any():
            support = np.abs(obj) > 0.1 * np.abs(obj).max()
        return ResultStart(obj, support, self.source)

    def __call__(self, problem: Any, support: torch.Tensor, *, rng: torch.Generator) -> torch.Tensor:
        """The object scaled by least squares to the problem's fitted counts, inside ``support`` (complex64,
        frame shape, centred); perturbed for every call after the first on a problem."""
        if self._problem != id(problem.counts):
            obj = torch.from_numpy(self._obj).to(problem.device)
            self._problem, self._calls = id(problem.counts), 0
            self._scaled = scale_to_counts(obj[None], problem.counts[None], problem.fit[None])[0]
        self._calls += 1
        return perturbed(self._scaled, support, PERTURBATION if self._calls > 1 else 0.0, rng=rng)


def result_file(path: Path) -> Path:
    """The result's ``.cxi`` file: ``path`` itself, or the one ``.cxi`` file in a result folder (its
    ``strain.cxi`` aside).

    Raises
    ------
    InvalidInputError
        No such file, or a folder with no or several ``.cxi`` files.
    """
    path = Path(path).expanduser()
    if path.is_dir():  # a 3D Bragg result's folder also holds its strain (STRAIN_CXI), which is not a result
        files = sorted(file for file in path.glob("*.cxi") if file.name != STRAIN_CXI)
        if len(files) != 1:
            found = "no .cxi file" if not files else f"{len(files)} .cxi files"
            raise InvalidInputError(f"--init {path}: the folder holds {found}; give the result's .cxi file")
        return files[0]
    if not path.is_file():
        raise InvalidInputError(f"--init {path}: no such file; give random, learned, learned:MODEL.pt or the .cxi "
                                "file of a previous result of cdi-dip reconstruct")
    return path


def result_start(path: Path, measurement: Measurement) -> ResultStart:
    """The start a previous result gives this scan's prepared frame, read and checked now.

    Parameters
    ----------
    path : pathlib.Path
        A result ``.cxi`` file written by ``cdi-dip reconstruct``, or its folder.
    measurement : Measurement
        This scan, prepared: its frame, geometry and detector region.

    Returns
    -------
    ResultStart
        On the measurement's frame: moved there through its far field when
        only the frame differs (a warning where nothing confirms the same
        array pixels), resampled in real space when the voxels differ (a
        warning naming the scale).

    Raises
    ------
    InvalidInputError
        A missing or unreadable file, a file cdi-dip did not write as a
        result, or a result of another dimensionality than the data's.
    """
    file = result_file(path)
    try:
        stored = read_result_cxi(file)
    except InvalidInputError as exc:
        raise InvalidInputError(f"--init {exc}") from None
    if not stored.version:
        raise InvalidInputError(f"--init {file}: not a result of cdi-dip reconstruct (no process record); give "
                                "the .cxi file it wrote")
    result = stored.result
    shape = tuple(int(n) for n in measurement.shape)
    if result.obj.ndim != len(shape):
        raise InvalidInputError(f"--init {file}: a {result.obj.ndim}D result but the data is {len(shape)}D: give "
                                f"a {len(shape)}D result")
    if not result.support.any():
        raise InvalidInputError(f"--init {file}: the result's support is empty: nothing to start from")
    their_shape = tuple(result.obj.shape)
    scale, evidence = voxel_scale(result.measurement, their_shape, measurement)
    if not same_array_pixels(scale, their_shape, shape):
        return _resampled_start(result.obj, result.support, scale, evidence, shape, file)
    start = ResultStart(restart_object(result.obj, result.support, result.align), result.support, file)
    if start.frame != shape:
        report = log.warning if evidence == "assumed" else log.info
        report("--init %s: the result's %s frame differs from this scan's %s: seen on this frame through its far "
               "field (%s)", file, _frame_text(start.frame), _frame_text(shape),
               "the same array pixels assumed: not if the binning, energy or distance differ" if evidence == "assumed"
               else f"the same array pixels, by their {evidence}")
        start = start.on_frame(shape)
    return start


def _resampled_start(obj: np.ndarray, support: np.ndarray, scale: tuple[float, ...], evidence: str,
                     shape: tuple[int, ...], file: Path) -> ResultStart:
    """A result whose voxels differ from this frame's, resampled onto it (:func:`resampled`): the aligned object
    (its phase ramp left out: this frame's pattern is centred by its own preparation) and its support grown to
    every voxel it touches.

    Raises
    ------
    InvalidInputError
        Nothing of the support lands on this frame.
    """
    moved = resampled(obj.astype(np.complex128), scale, shape)
    held = resampled(support, scale, shape) > 0.0
    if not held.any():
        raise InvalidInputError(f"--init {file}: resampled onto this scan's voxels, the result's support leaves "
                                "the frame: start from random phases")
    log.warning("--init %s: one voxel of the result spans %s of this scan's (by their %s): the %s result resampled "
                "onto this %s frame", file, " x ".join(f"{s:.3g}" for s in scale), evidence,
                _frame_text(tuple(obj.shape)), _frame_text(shape))
    return ResultStart(moved, held, file)


__all__ = ["SAME_PIXELS_TOLERANCE", "ResultStart", "resampled", "result_file", "result_start", "same_array_pixels", "voxel_scale"]
