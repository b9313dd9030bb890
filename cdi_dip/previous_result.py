"""``--init RESULT.cxi``: every run starts from a previous result of ``cdi-dip reconstruct``.

To refine a result (more iterations, another method: ``--init out/scan/scan.cxi
--method er``), or to start each scan of a series from its neighbour's result.
The written object is aligned (phase ramp removed, centred to a fraction of a
pixel); :func:`~cdi_dip.ensemble.restart_object` moves it back so that it fits
its pattern on its support again. The twin, the global phase and whole-pixel
shifts are symmetries of the intensity and stay as written.

A result made on a frame of another size with the same detector pixels
(another ``--max-size`` or ``--roi``) is seen on this frame through its far
field (:func:`~cdi_dip.prepare.margin.seen_on_frame`): its far field cut to the
frame, or padded. Binned differently, its voxels would have another size;
nothing in the object says so, so a warning names both frames.

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
from .io.result_cxi import read_result_cxi
from .learned.initialiser import PERTURBATION, perturbed
from .learned.network import scale_to_counts
from .prepare.margin import seen_on_frame
from .solvers.init import StartFrom

log = logging.getLogger(__name__)


def _frame_text(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


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
    """The result's ``.cxi`` file: ``path`` itself, or the one ``.cxi`` file in a result folder.

    Raises
    ------
    InvalidInputError
        No such file, or a folder with no or several ``.cxi`` files.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        files = sorted(path.glob("*.cxi"))
        if len(files) != 1:
            found = "no .cxi file" if not files else f"{len(files)} .cxi files"
            raise InvalidInputError(f"--init {path}: the folder holds {found}; give the result's .cxi file")
        return files[0]
    if not path.is_file():
        raise InvalidInputError(f"--init {path}: no such file; give random, learned, learned:MODEL.pt or the .cxi "
                                "file of a previous result of cdi-dip reconstruct")
    return path


def result_start(path: Path, shape: tuple[int, ...]) -> ResultStart:
    """The start a previous result gives a frame of ``shape``, read and checked now.

    Parameters
    ----------
    path : pathlib.Path
        A result ``.cxi`` file written by ``cdi-dip reconstruct``, or its folder.
    shape : tuple of int
        The prepared frame of this run (pixels per axis).

    Returns
    -------
    ResultStart
        On ``shape``: moved there through its far field, with a warning, when
        the result's frame differs.

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
    if result.obj.ndim != len(shape):
        raise InvalidInputError(f"--init {file}: a {result.obj.ndim}D result but the data is {len(shape)}D: give "
                                f"a {len(shape)}D result")
    if not result.support.any():
        raise InvalidInputError(f"--init {file}: the result's support is empty: nothing to start from")
    obj = restart_object(result.obj, result.support, result.align)
    start = ResultStart(obj, result.support, file)
    if start.frame != tuple(shape):
        log.warning("--init %s: the result's %s frame differs from this scan's %s: seen on this frame through its "
                    "far field (the same detector pixels assumed; not if the binning differs)", file,
                    _frame_text(start.frame), _frame_text(tuple(shape)))
        start = start.on_frame(tuple(shape))
    return start


__all__ = ["ResultStart", "result_file", "result_start"]
