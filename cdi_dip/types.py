"""Plain data containers passed between the stages of the pipeline.

Arrays are NumPy on the host; solvers move them to the device themselves.
Detector arrays have shape ``(ny, nx)`` (2D forward CDI) or ``(nz, ny, nx)``
(3D Bragg CDI, first axis the rocking angle).
"""

from __future__ import annotations

import math
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
    rocking_step_deg : float or None
        Rocking-angle step between the frames of a 3D Bragg stack, degrees
        (times the binning along the rocking axis).
    detector_angles_deg : tuple of float or None
        Detector arm angles ``(delta, gamma)`` at the Bragg peak, degrees
        (conventions: :mod:`cdi_dip.geometry`).
    detector_roi : tuple of int or None
        Detector region the frames were read from, ``(y0, y1, x0, x1)`` in
        detector pixels (stop exclusive), as a ``metadata.json`` gives it;
        cuts a full-detector dark and flat when ``--roi`` is not given.
    """

    wavelength_m: float | None = None
    distance_m: float | None = None
    pixel_size_m: tuple[float, float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    rocking_step_deg: float | None = None
    detector_angles_deg: tuple[float, float] | None = None
    detector_roi: tuple[int, int, int, int] | None = None


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
    never_free : numpy.ndarray of bool, same shape, or None
        Valid pixels never drawn as free (held-out) pixels: a beamstop rim
        fitted again after a first pass that left it out, so that the second
        pass holds out exactly the first pass's free pixels and the two are
        compared on all of them. None: none.
    fixed_free : numpy.ndarray of bool, same shape, or None
        The free (held-out) pixels, fixed in advance rather than drawn: a
        frame with an unmeasured margin holds out exactly the pixels its
        measured frame's reconstruction held out
        (:func:`cdi_dip.prepare.margin.with_unmeasured_margin`), so the two
        are compared on the same pixels. Only valid pixels are held out.
        None: drawn (:func:`cdi_dip.reconstruction.fit_data`).
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
    never_free: np.ndarray | None = None
    fixed_free: np.ndarray | None = None

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
    psf : numpy.ndarray, float32, odd size per axis, centred, or None
        The partial-coherence kernel the run's model intensity is blurred
        with (:meth:`cdi_dip.coherence.PartialCoherence.compact`); None for a
        coherent model.
    obj_std : numpy.ndarray, float32, frame shape, or None
        A per-voxel uncertainty of ``obj`` in its units (photon amplitude),
        where the solver has one: for the double DIP with
        ``dip.early_stop = "variance"`` or ``"both"``, the standard deviation
        of the iterates in the window at the windowed-variance minimum
        (:mod:`cdi_dip.solvers.early_stop`; zero outside the object box),
        unaligned like ``obj``. None otherwise.
    """

    obj: np.ndarray
    support: np.ndarray
    history: list[dict[str, float]] = field(default_factory=list)
    iterations: int = 0
    interrupted: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    psf: np.ndarray | None = None
    obj_std: np.ndarray | None = None


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


# ----------------------------------------------------------- after the solver: registration, ensemble, PRTF


@dataclass(frozen=True)
class Comparison:
    """The registration of an object onto a reference, and what is left.

    The object ``x`` is moved as ``a T(x)``, ``T(x) = exp(i g . (r - c)) x'(r - s)``
    with ``x'`` either ``x`` or its twin ``conj(x(-r))`` and
    ``a = scale * exp(i phase_rad)`` (see :func:`cdi_dip.ensemble.compare_objects`;
    :func:`cdi_dip.ensemble.apply_transform` applies it). The field
    order is that of the ``cdi-dip compare --json`` output.

    Attributes
    ----------
    error : float
        ``||a T(x) - ref|| / ||ref||``, dimensionless: 0 identical up to the
        symmetries, 1 nothing in common.
    twin : bool
        True when the twin ``conj(x(-r))`` was registered.
    shift_px : tuple of float, one per axis
        Shift ``s`` applied to the object, pixels.
    ramp_rad_per_px : tuple of float, one per axis
        Phase ramp ``g`` applied to the object, radians per pixel.
    phase_rad : float
        Global phase of ``a``, radians.
    scale : float
        ``|a|``, dimensionless (0 for a zero object).
    phase_error_rad : float
        Amplitude-weighted RMS phase difference, radians, where the reference
        amplitude exceeds :data:`cdi_dip.ensemble.register.PHASE_ERROR_LEVEL` of its maximum (NaN when
        not known).
    """

    error: float
    twin: bool
    shift_px: tuple[float, ...]
    ramp_rad_per_px: tuple[float, ...]
    phase_rad: float
    scale: float
    phase_error_rad: float

    @classmethod
    def identity(cls, ndim: int) -> Comparison:
        """The comparison of an object with itself: no move, error 0, scale 1.

        Parameters
        ----------
        ndim : int
            Number of axes of the object (2 or 3).
        """
        return cls(error=0.0, twin=False, shift_px=(0.0,) * ndim, ramp_rad_per_px=(0.0,) * ndim, phase_rad=0.0,
                   scale=1.0, phase_error_rad=0.0)


@dataclass
class EnsembleResult:
    """An ensemble of reconstructions matched to its first (best) member.

    Attributes
    ----------
    objects : numpy.ndarray, complex64, shape (K, *S)
        The members, each moved onto member 0 (twin, shift, ramp, phase).
    supports : numpy.ndarray, bool, shape (K, *S)
        Their supports, moved with them (twin flip, rounded shift).
    mean : numpy.ndarray, complex64, shape S
        Mean of the matched members.
    amplitude_std : numpy.ndarray, float32, shape S
        Per-voxel standard deviation of ``|x_k|`` (``ddof=1``; zeros for K = 1).
    phase_std_rad : numpy.ndarray, float32, shape S
        Per-voxel standard deviation of ``angle(x_k * conj(mean))`` (the phase
        relative to the mean phase, wrapped to ``(-pi, pi]``), radians; NaN
        where ``|mean|`` is below :data:`cdi_dip.ensemble.SIGNIFICANT_AMPLITUDE` of its maximum.
    support_union, support_majority : numpy.ndarray, bool, shape S
        Voxels inside any member's support, and inside more than half of them.
    errors_to_reference : numpy.ndarray, float64, shape (K,)
        Symmetry-adjusted error of each member against member 0 (0 for itself).
    pairwise_errors : numpy.ndarray or None, float64, shape (K, K)
        ``[i, j]``: error of member ``i`` against member ``j`` as reference
        (see :func:`cdi_dip.ensemble.pairwise_errors`); None when not computed.
    members : tuple of int
        Indices (into the input sequence) of the members used.
    transforms : list of Comparison
        The ``compare_objects`` result that matched each member
        (:meth:`Comparison.identity` for member 0). From stored datasets
        (:func:`cdi_dip.io.result_cxi.ensemble_from_datasets`) only ``error`` and ``twin`` are known;
        the other fields are NaN.
    """

    objects: np.ndarray
    supports: np.ndarray
    mean: np.ndarray
    amplitude_std: np.ndarray
    phase_std_rad: np.ndarray
    support_union: np.ndarray
    support_majority: np.ndarray
    errors_to_reference: np.ndarray
    pairwise_errors: np.ndarray | None = None
    members: tuple[int, ...] = ()
    transforms: list[Comparison] = field(default_factory=list)

    @property
    def size(self) -> int:
        """Number of members K."""
        return int(self.errors_to_reference.shape[0])

    def summary(self) -> dict[str, Any]:
        """Scalars worth a line in ``summary.json`` and the HTML report.

        Returns
        -------
        dict
            ``members`` (K), ``twins`` (members matched through the twin),
            ``mean_error_to_best`` and ``max_error_to_best`` (over members
            1..K-1; NaN for K = 1), ``mean_pairwise_error`` (off-diagonal, when
            computed), ``median_amplitude_std_rel`` (median of
            ``amplitude_std / max |mean|`` on the majority support) and
            ``median_phase_std_rad`` (median on the majority support).
        """
        others = self.errors_to_reference[1:]
        inside = self.support_majority
        peak = float(np.abs(self.mean).max()) if self.mean.size else 0.0
        phase = self.phase_std_rad[inside] if inside.any() else np.array([])
        phase = phase[np.isfinite(phase)]
        out: dict[str, Any] = {
            "members": self.size,
            "twins": int(sum(bool(t.twin) for t in self.transforms)),
            "mean_error_to_best": float(others.mean()) if others.size else float("nan"),
            "max_error_to_best": float(others.max()) if others.size else float("nan"),
            "median_amplitude_std_rel": (float(np.median(self.amplitude_std[inside]) / peak)
                                         if inside.any() and peak > 0 else float("nan")),
            "median_phase_std_rad": float(np.median(phase)) if phase.size else float("nan"),
        }
        if self.pairwise_errors is not None and self.size > 1:
            off = ~np.eye(self.size, dtype=bool)
            out["mean_pairwise_error"] = float(self.pairwise_errors[off].mean())
        return out


PRTF_THRESHOLD = float(np.exp(-1.0))
"""The usual PRTF resolution criterion, ``1/e``."""

@dataclass
class PrtfResult:
    """A PRTF curve and the resolution it gives.

    Attributes
    ----------
    frequency_per_px : numpy.ndarray, float64, shape (M,)
        Shell centres, cycles per object pixel.
    values : numpy.ndarray, float64, shape (M,)
        PRTF per shell (NaN where a shell has no usable pixel).
    threshold : float
        The criterion used (``1/e``).
    resolution_px : float or None
        Half-period resolution in object pixels (None: never below threshold).
    resolution_m : float or None
        The same in metres, when the geometry is known (2D), computed with
        shells in physical frequency (exact for non-square pixels).
    members : int
        Runs in the ensemble (0: unknown). Members with random phases give a
        PRTF of about ``1/sqrt(members)``, so the ``1/e`` criterion needs at
        least 8 of them (:attr:`criterion_reachable`).
    """

    frequency_per_px: np.ndarray
    values: np.ndarray
    threshold: float = PRTF_THRESHOLD
    resolution_px: float | None = None
    resolution_m: float | None = None
    members: int = 0

    @property
    def random_phase_floor(self) -> float:
        """The PRTF of members whose phases are random, ``1/sqrt(members)`` (NaN when unknown)."""
        return 1.0 / np.sqrt(self.members) if self.members > 0 else float("nan")

    @property
    def criterion_reachable(self) -> bool:
        """Whether members disagreeing at random could bring the PRTF below the threshold."""
        return not self.members or self.random_phase_floor < self.threshold

    def summary(self) -> dict[str, Any]:
        """``resolution_px``, ``resolution_nm`` (None when unknown), the criterion, and the members."""
        out = {"resolution_px": self.resolution_px,
               "resolution_nm": None if self.resolution_m is None else self.resolution_m * 1e9,
               "criterion": f"PRTF < {self.threshold:.3f}", "members": self.members}
        if not self.criterion_reachable:
            out["note"] = (f"{self.members} runs: a PRTF of random phases is {self.random_phase_floor:.2f}, above the "
                           "criterion; keep at least 8 runs (--runs 16 --keep 8) for a resolution")
        return out


# --------------------------------------------------------------------------- the result


@dataclass(frozen=True)
class BeamstopRim:
    """What became of the rim of a beamstop shadow the tool found (:mod:`cdi_dip.prepare.rim`).

    The rim is held out of a first pass; its measured counts are then
    compared with the first pass's prediction (:func:`cdi_dip.prepare.rim.check_rim`)
    and, when lit, fitted in a second pass; where the first pass of a
    projection method missed the centre of the pattern (no verdict), a
    reconstruction with the rim challenges it on the held-out pixels. The
    ``measured_counts`` ... ``scaled_agreeing_fraction`` fields are those of
    the test, ``None`` when it was not made (results of versions before the
    test ran after HIO, ER or RAAR).

    Attributes
    ----------
    pixels : int
        Rim pixels.
    readmitted : bool
        True when the rim was fitted with the rest (second pass kept).
    measured_counts, predicted_counts : float or None
        The rim's summed counts, measured and predicted by the first pass (photons).
    ratio : float or None
        Measured over predicted counts (NaN when nothing was predicted).
    tolerance : float or None
        Relative difference the test allowed.
    agreeing_fraction : float or None
        Fraction of the rim pixels whose counts agreed with the prediction.
    lit : bool or None
        The test's verdict.
    scaled_agreeing_fraction : float or None
        The fraction agreeing with the prediction scaled to the measured sum
        (below 0.75: the first pass missed the centre, the test has no verdict).
    challenge_margin_z : float or None
        Where a reconstruction with the rim challenged a first pass without a
        verdict: how much lower its free Poisson deviance was, a normal score
        (:func:`cdi_dip.metrics.challenge_margin`; kept above 2); None: no challenge.
    """

    pixels: int
    readmitted: bool = False
    measured_counts: float | None = None
    predicted_counts: float | None = None
    ratio: float | None = None
    tolerance: float | None = None
    agreeing_fraction: float | None = None
    lit: bool | None = None
    scaled_agreeing_fraction: float | None = None
    challenge_margin_z: float | None = None

    @property
    def tested(self) -> bool:
        """True when the rim's counts were tested against a first pass's prediction."""
        return self.lit is not None

    def summary(self) -> dict[str, Any]:
        """Plain data for ``summary.json`` (``beamstop_rim``), rounded for reading."""
        if not self.tested:
            return {"pixels": self.pixels, "tested": False, "readmitted": self.readmitted}
        return {"pixels": self.pixels, "tested": True, "measured_counts": round(self.measured_counts, 1),
                "predicted_counts": round(self.predicted_counts, 1), "ratio": round(self.ratio, 4),
                "tolerance": round(self.tolerance, 4), "agreeing_fraction": round(self.agreeing_fraction, 3),
                "lit": self.lit, "readmitted": self.readmitted, **self._extra_summary()}

    def _extra_summary(self) -> dict[str, Any]:
        """The scaled agreement and the challenge's margin, where they were measured."""
        extra: dict[str, Any] = {}
        if self.scaled_agreeing_fraction is not None and math.isfinite(self.scaled_agreeing_fraction):
            extra["scaled_agreeing_fraction"] = round(self.scaled_agreeing_fraction, 3)
        if self.challenge_margin_z is not None:
            extra["challenge_margin_z"] = round(self.challenge_margin_z, 2)
        return extra


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
    masks : dict of str to numpy.ndarray
        Named bool masks of the frame to store with the result (True = the
        pixel is in it): ``valid``, ``free`` and ``excluded/<reason>`` for
        every exclusion reason. Empty: none (``free`` is stored all the same).
    solver : dict
        What the kept run's solver reports it did (:attr:`SolverOutput.extra`).
    noise : str or None
        Noise model of the fit (``"poisson"``...); None when not known.
    versions : dict of str to str
        Software versions and device name (:func:`cdi_dip.provenance.software_versions`).
    ensemble : EnsembleResult or None
        The averaged runs, when more than one was kept.
    prtf : PrtfResult or None
        The ensemble's PRTF and resolution.
    beamstop_rim : BeamstopRim or None
        What became of the rim of a found beamstop shadow; None: there was none.
    selection : dict
        What became of every random start
        (:func:`cdi_dip.restarts.selection_record`): runs asked, finished,
        kept and averaged, and why each one left out was dropped. Empty: not
        known (a result read from an older file).
    obj_std : numpy.ndarray, float32, frame shape, or None
        The kept (best) run's iterate spread (:attr:`SolverOutput.obj_std`:
        for the double DIP with the variance early stop, the per-voxel
        standard deviation of its iterates in the window at the
        windowed-variance minimum), in photon amplitude like ``|obj|``,
        non-negative, moved by the best run's alignment so that it lies
        voxel by voxel on ``obj`` (:func:`cdi_dip.ensemble.align_map`). When
        runs are averaged it is still the best run's map. None when the
        solver gave none.
    method_choice : dict
        When ``auto`` compared the double DIP with HIO (``auto_compare``):
        ``compared``, ``chosen``, both free Poisson deviances and the reason.
        Empty: no comparison.
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
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    solver: dict[str, Any] = field(default_factory=dict)
    noise: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    ensemble: EnsembleResult | None = None
    prtf: PrtfResult | None = None
    beamstop_rim: BeamstopRim | None = None
    selection: dict[str, Any] = field(default_factory=dict)
    obj_std: np.ndarray | None = None
    method_choice: dict[str, Any] = field(default_factory=dict)
