"""Plain data containers passed between the stages of the pipeline.

Arrays are NumPy on the host; solvers move them to the device themselves.
Detector arrays have shape ``(ny, nx)`` (2D forward CDI) or ``(nz, ny, nx)``
(3D Bragg CDI, first axis the rocking angle).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np


@dataclass
class ScanMeta:
    """Experimental geometry, each field ``None`` when the file does not say.

    Attributes
    ----------
    wavelength_m : float or None
        X-ray wavelength in metres.
    distance_m : float or None
        Sample-detector distance in metres.
    pixel_size_m : tuple of float or None
        Detector pixel size ``(y, x)`` in metres.
    extra : dict
        Any other metadata that was read (strings and numbers only).
    """

    wavelength_m: float | None = None
    distance_m: float | None = None
    pixel_size_m: tuple[float, float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Measurement:
    """A diffraction measurement as read, or after preprocessing.

    Attributes
    ----------
    intensity : numpy.ndarray, float32, shape (ny, nx) or (nz, ny, nx)
        Measured intensities in photon counts. Excluded pixels hold 0 and are
        never used.
    valid : numpy.ndarray, bool, same shape
        True where the pixel was measured and may be used.
    meta : ScanMeta
        Geometry.
    source : str
        The input as the user gave it (path, ``file.h5:/dataset``, glob).
    name : str
        Short scan name used for output folder and file names.
    excluded : dict of str to int
        Number of excluded pixels by reason (``"nan"``, ``"negative"``,
        ``"file_mask"``, ``"hot"``, ``"beamstop"``...), each pixel counted once.
    roi : list of (int, int)
        For each axis, the ``[start, stop)`` range of detector pixels that this
        array covers (``start`` may be negative, or ``stop`` beyond the
        detector, where the frame was padded). With binning, array pixel ``i``
        covers detector pixels ``[start + i*b, start + (i+1)*b)``.
    masks : dict of str to numpy.ndarray
        Excluded pixels by reason, bool arrays of the data's shape (True =
        excluded for that reason), disjoint; the keys are those of
        ``excluded``.
    binning : tuple of int
        Detector pixels summed into one array pixel, per axis (empty: none).
    notes : dict
        Facts the preparation found (``centre_px``, ``aliens_kept_px``...),
        plain data for the summary.
    provisional : numpy.ndarray of bool, same shape, or None
        Valid pixels (counts kept) that the reconstruction holds out of its
        fit until a first pass confirms them: the rim of a beamstop shadow the
        tool found, which a real beamstop may half cover
        (:func:`cdi_dip.prepare.rim.check_rim`). None: none.
    """

    intensity: np.ndarray
    valid: np.ndarray
    meta: ScanMeta = field(default_factory=ScanMeta)
    source: str = ""
    name: str = "scan"
    excluded: dict[str, int] = field(default_factory=dict)
    roi: list[tuple[int, int]] = field(default_factory=list)
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    binning: tuple[int, ...] = ()
    notes: dict[str, Any] = field(default_factory=dict)
    provisional: np.ndarray | None = None

    @property
    def ndim(self) -> int:
        """Number of dimensions (2 or 3)."""
        return self.intensity.ndim

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the detector array."""
        return tuple(self.intensity.shape)

    def exclude(self, reason: str, mask: np.ndarray) -> "Measurement":
        """A copy with the pixels of ``mask`` excluded under ``reason``.

        Only pixels still valid are attributed to ``reason`` (each excluded
        pixel keeps its first reason); their intensity becomes 0.

        Parameters
        ----------
        reason : str
            Name of the reason (``"hot"``, ``"dark"``...).
        mask : numpy.ndarray, bool, the data's shape
            True on the pixels to exclude.
        """
        new = np.asarray(mask, dtype=bool) & self.valid
        count = int(np.count_nonzero(new))
        if count == 0:
            return self
        masks = dict(self.masks)
        masks[reason] = masks[reason] | new if reason in masks else new
        excluded = dict(self.excluded)
        excluded[reason] = excluded.get(reason, 0) + count
        intensity = np.where(new, 0, self.intensity).astype(self.intensity.dtype)
        provisional = None
        if self.provisional is not None and (self.provisional & ~new).any():
            provisional = self.provisional & ~new
        return replace(self, intensity=intensity, valid=self.valid & ~new, masks=masks, excluded=excluded,
                       provisional=provisional)


@dataclass
class SolverOutput:
    """What one solver run returns (tensors already on the host as NumPy).

    Attributes
    ----------
    obj : numpy.ndarray, complex64, frame shape
        The reconstructed object, not yet aligned.
    support : numpy.ndarray, bool, frame shape
        The support used at the end (for DIP: where the amplitude is
        significant).
    history : list of dict
        Convergence history: one entry every few iterations with at least
        ``"iteration"`` and ``"loss"``.
    iterations : int
        Iterations actually run.
    interrupted : bool
        True when the run was stopped early by the user (Ctrl-C, SIGTERM).
    extra : dict
        Method-specific facts (chosen stop iteration, network sizes, ...).
    """

    obj: np.ndarray
    support: np.ndarray
    history: list[dict[str, float]] = field(default_factory=list)
    iterations: int = 0
    interrupted: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class AlignInfo:
    """What the alignment of an object did.

    Attributes
    ----------
    shift_px : tuple of float
        Shift applied to bring the support's centre of mass to the centre.
    ramp_rad_per_px : tuple of float
        Linear phase ramp removed, per axis, in radians per pixel.
    phase_offset_rad : float
        Constant phase removed.
    twin : bool
        True when the twin ``conj(x(-r))`` of the centred, ramp-free object
        was taken (after the shift and ramp, before the phase offset).
    """

    shift_px: tuple[float, ...] = ()
    ramp_rad_per_px: tuple[float, ...] = ()
    phase_offset_rad: float = 0.0
    twin: bool = False


@dataclass
class Result:
    """A finished reconstruction of one scan, aligned and ready to write.

    Attributes
    ----------
    obj : numpy.ndarray, complex64, frame shape
        Aligned object.
    support : numpy.ndarray, bool, frame shape
        Support of the aligned object.
    measurement : Measurement
        The preprocessed measurement it was fitted to.
    method : str
        Solver name.
    metrics : dict
        Data-fit figures (``r_factor``, ``llk_poisson``, ``free_llk_poisson``...).
    history : list of dict
        Convergence history of the kept run.
    iterations : int
        Iterations of the kept run.
    wall_s : float
        Wall time of the whole reconstruction (all runs), seconds.
    device : str
        Device the solver ran on.
    seed : int
        Base random seed.
    interrupted : bool
        True when stopped early by the user.
    align : AlignInfo
        What the alignment did.
    config : dict
        The full configuration, as plain data.
    runs : list of dict
        One entry per random start: seed, metrics, whether kept.
    model_intensity : numpy.ndarray or None, float32, frame shape
        Fitted intensities ``|F(obj)|**2`` of the kept run (before alignment).
    free : numpy.ndarray or None, bool, frame shape
        Free (held-out) pixels.
    extra : dict
        Anything else worth writing (e.g. ``"masks"``: named bool masks).
    """

    obj: np.ndarray
    support: np.ndarray
    measurement: Measurement
    method: str
    metrics: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    iterations: int = 0
    wall_s: float = 0.0
    device: str = "cpu"
    seed: int = 0
    interrupted: bool = False
    align: AlignInfo = field(default_factory=AlignInfo)
    config: dict[str, Any] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)
    model_intensity: np.ndarray | None = None
    free: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)
