"""``cdi-dip strain`` as a library call: a written 3D Bragg result in, strain files out.

Reads the result (:func:`cdi_dip.io.result_cxi.read_result_cxi`), completes
its geometry from the options and the reflection stored with it
(:func:`cdi_dip.geometry.bragg_geometry`),
computes the maps in the chosen frame (:func:`cdi_dip.strain.strain_maps` on
the detector-frame array, or :func:`cdi_dip.strain.orthogonal_strain_maps`
on an orthogonal lab or crystal grid) and writes them
(:func:`cdi_dip.io.strain_files.write_strain_files`). Every problem with the
input is an :class:`~cdi_dip.errors.InvalidInputError` naming what to give.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .config import GeometryConfig
from .errors import InvalidInputError
from .geometry import (apply_geometry, bragg_geometry, q_direction, real_space_basis, strain_weights_per_m,
                       voxel_size_m)
from .orthogonal import FRAMES, OrthogonalGrid, orthogonal_grid
from .strain import StrainMaps, StrainView, crystal_extent_nm, orthogonal_strain_maps, strain_maps
from .types import ScanMeta

__all__ = ["DEFAULT_FRAME", "STRAIN_CHOICES", "check_strain_choice", "strain_frame", "StrainComputation", "compute_strain", "missing_geometry", "strain_of_result",
           "stored_reflection", "write_strain"]

DEFAULT_FRAME = "lab"
"""Frame of the strain files when none is asked for: the lab's axes are those of the experiment and the viewers."""

STRAIN_CHOICES = ("auto", "lab", "crystal", "detector", "off")
"""``reconstruct --strain``: a frame, ``auto`` (lab when the geometry allows, else detector) or ``off``."""

log = logging.getLogger(__name__)


def _complete(meta: ScanMeta, d_spacing_nm: float | None, bragg_angle_deg: float | None,
              where: str) -> tuple[ScanMeta, float]:
    """The geometry and ``|Q|``, or an InvalidInputError naming what is missing."""
    missing = missing_geometry(meta)
    if missing:
        raise InvalidInputError(f"{where} does not give the geometry: give {', '.join(missing)} (strain needs the "
                                "wavelength, distance and pixel size)")
    try:
        meta, q_norm = bragg_geometry(meta, d_spacing_m=None if d_spacing_nm is None else d_spacing_nm * 1e-9,
                                      bragg_angle_deg=bragg_angle_deg)
    except ValueError as exc:
        raise InvalidInputError(f"{where}: {exc}") from None
    return meta, q_norm


def missing_geometry(meta: ScanMeta) -> list[str]:
    """The options that would give what the strain lacks of the wavelength, distance and pixel size."""
    return [option for option, value in (("--energy-kev", meta.wavelength_m), ("--distance-m", meta.distance_m),
                                         ("--pixel-size-m", meta.pixel_size_m)) if value is None]


REFLECTION_KEYS = ("d_spacing_nm", "bragg_angle_deg")
"""The reflection's fields of ``[geometry]``."""


def stored_reflection(config: dict[str, Any], keys: tuple[str, ...] = REFLECTION_KEYS) -> dict[str, float | None]:
    """``d_spacing_nm`` and ``bragg_angle_deg`` of a run's ``[geometry]`` (None where not given).

    Parameters
    ----------
    config : dict
        The run's whole configuration as plain data (``Result.config``, as stored in a result ``.cxi``).
    keys : tuple of str
        The fields read (and checked); the others come back None.

    Returns
    -------
    dict
        ``d_spacing_nm`` and ``bragg_angle_deg``.

    Raises
    ------
    InvalidInputError
        A stored value that is not a number in its range (a hand-edited file).
    """
    geometry = config.get("geometry")
    geometry = geometry if isinstance(geometry, dict) else {}
    stored = {key: geometry.get(key) if key in keys else None for key in REFLECTION_KEYS}
    for key, value in stored.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise InvalidInputError(f"the result's stored geometry.{key} = {value!r} is not a number: "
                                    f"pass --{key.replace('_', '-')} on the command line")
    GeometryConfig(**stored).validate()
    return stored


def _reflection(geometry: GeometryConfig, config: dict[str, Any], where: str) -> dict[str, float | None]:
    """The reflection of ``cdi-dip strain``: each value from the options, else from the result's configuration.

    Parameters
    ----------
    geometry : GeometryConfig
        The options (``--d-spacing-nm``, ``--bragg-angle-deg``); a value given here wins.
    config : dict
        The configuration stored with the result (:func:`stored_reflection`).
    where : str
        The result, for the log.

    Returns
    -------
    dict
        ``d_spacing_nm`` and ``bragg_angle_deg`` (None where neither gives it).
    """
    given = {key: getattr(geometry, key) for key in REFLECTION_KEYS}
    wanted = tuple(key for key, value in given.items() if value is None)
    stored = stored_reflection(config, wanted)  # None wherever the option was given
    for key in wanted:
        if stored[key] is not None:
            log.info("%s: %s = %g from the result's configuration", where, key, stored[key])
    return {key: given[key] if given[key] is not None else stored[key] for key in REFLECTION_KEYS}


def check_strain_choice(choice: str) -> str:
    """``choice`` when it is one of :data:`STRAIN_CHOICES`, else an InvalidInputError naming them."""
    if choice not in STRAIN_CHOICES:
        raise InvalidInputError(f"--strain {choice!r}: give one of {', '.join(STRAIN_CHOICES)}")
    return choice


def strain_frame(meta: ScanMeta, ndim: int, choice: str = "auto", *,
                 reflection_known: bool = False) -> tuple[str | None, str | None]:
    """The frame ``reconstruct`` computes the strain in, or why it computes none.

    Parameters
    ----------
    meta : ScanMeta
        The result's geometry.
    ndim : int
        Dimensions of the object (strain needs 3).
    choice : str
        One of :data:`STRAIN_CHOICES`. ``auto``: ``lab`` when the geometry is
        complete, ``detector`` when only the rocking step is missing, none
        when more is missing.
    reflection_known : bool
        A d-spacing or a Bragg angle was given (``--d-spacing-nm``,
        ``--bragg-angle-deg``): the detector angles are not needed.

    Returns
    -------
    (str or None, str or None)
        The frame and None, or None and the reason (a sentence naming what to give).
    """
    check_strain_choice(choice)
    if choice == "off":
        return None, "--strain off"
    if ndim != 3:
        return None, "a 2D result: strain needs a 3D Bragg scan"
    angles_missing = meta.detector_angles_deg is None and not reflection_known
    missing = missing_geometry(meta) + (["--detector-angles (or --bragg-angle-deg)"] if angles_missing else [])
    if missing:
        known = "incomplete" if len(missing) < 4 else "not known"
        return None, f"the geometry is {known}: give {', '.join(missing)} (or a metadata.json beside the frames)"
    if meta.rocking_step_deg is None:
        if choice == "auto":
            return "detector", None
        if choice != "detector":
            return None, f"the rocking step is unknown: give --rocking-step-deg (the {choice} frame needs it)"
    return (DEFAULT_FRAME if choice == "auto" else choice), None


@dataclass
class StrainComputation:
    """The strain of one object in one frame, and what its files record.

    Attributes
    ----------
    frame : {"detector", "lab", "crystal"}
    maps : StrainMaps
        On the detector-frame array, or on ``grid``.
    obj : numpy.ndarray, complex
        The object in the maps' frame (resampled onto ``grid`` for lab and crystal).
    voxel_nm : tuple of 3 float
        Voxel size of the maps, array order, nm (1 nm along the rocking axis
        of the detector frame when the rocking step is unknown).
    meta : ScanMeta
        The geometry used (detector angles filled in).
    grid : OrthogonalGrid or None
        The orthogonal grid; None in the detector frame.
    basis_m : numpy.ndarray or None
        Detector-frame steps (columns, metres), when the rocking step is known.
    detector_shape : tuple of int
        Shape of the detector-frame object.
    """

    frame: str
    maps: StrainMaps
    obj: np.ndarray
    voxel_nm: tuple[float, ...]
    meta: ScanMeta
    grid: OrthogonalGrid | None
    basis_m: np.ndarray | None
    detector_shape: tuple[int, ...]

    def view(self) -> StrainView:
        """What a figure of these maps needs (:class:`cdi_dip.strain.StrainView`)."""
        from .io.strain_files import AXIS_NAMES

        origin = (0.0, 0.0, 0.0) if self.grid is None else tuple(float(v) for v in self.grid.origin_m * 1e9)
        return StrainView(self.maps, tuple(self.voxel_nm), self.frame, AXIS_NAMES[self.frame], origin,
                          tuple(self.detector_shape))

    def record(self, files: list[Path]) -> dict[str, Any]:
        """The ``strain`` record of a summary: frame, voxel, grid shape, figures and ``files``."""
        record = {"frame": self.frame, "voxel_size_nm": [float(v) for v in self.voxel_nm],
                  "shape": list(self.maps.strain.shape), **self.maps.summary()}
        crystal = crystal_extent_nm(self.maps.support, self.voxel_nm, self.maps.amplitude)
        if crystal is not None:
            record["crystal_size_nm"], record["detached_voxels"] = list(crystal[0]), crystal[1]
        record["files"] = [str(f) for f in files]
        if self.meta.rocking_step_deg is None:
            record["note"] = "rocking step unknown: the rocking axis is drawn at 1 nm per frame (--rocking-step-deg)"
        return record


def _detector_frame(obj: np.ndarray, support: np.ndarray, meta: ScanMeta, q_norm: float
                    ) -> tuple[StrainMaps, np.ndarray, tuple[float, ...]]:
    """The maps on the detector-frame array, the object, and its voxel in nm (1 nm per frame without a step)."""
    maps = strain_maps(obj, support, q_norm, strain_weights_per_m(meta, obj.shape))
    voxel = voxel_size_m(meta, obj.shape)
    if voxel is None:  # no rocking step: the rocking axis keeps a unit of 1 nm in the files, said in the summary
        voxel = (1e-9, *voxel_size_m(meta, obj.shape[1:]))
    return maps, obj, tuple(v * 1e9 for v in voxel)


def _orthogonal_frame(obj: np.ndarray, support: np.ndarray, meta: ScanMeta, q_norm: float, frame: str,
                      where: str) -> tuple[StrainMaps, np.ndarray, OrthogonalGrid]:
    """The maps on an orthogonal lab or crystal grid, the resampled object and the grid."""
    if meta.rocking_step_deg is None:
        raise InvalidInputError(f"{where}: the rocking step is unknown: give --rocking-step-deg (the {frame} frame "
                                "needs it) or --frame detector")
    q_hat = q_direction(meta)
    try:
        grid = orthogonal_grid(real_space_basis(meta, obj.shape), support, frame, q_hat)
    except ValueError as exc:
        raise InvalidInputError(f"{where}: {exc}") from None
    log.info("%s frame: %s grid of %.3g nm voxels (detector frame %s)", frame, grid.shape, grid.voxel_m * 1e9,
             obj.shape)
    maps, resampled = orthogonal_strain_maps(obj, support, grid, q_norm, q_hat)
    return maps, resampled, grid


def compute_strain(obj: np.ndarray, support: np.ndarray, meta: ScanMeta, frame: str = DEFAULT_FRAME, *,
                   d_spacing_nm: float | None = None, bragg_angle_deg: float | None = None,
                   where: str = "the result") -> StrainComputation:
    """Displacement and strain along Q of a detector-frame 3D Bragg object, in one frame.

    Parameters
    ----------
    obj : numpy.ndarray, complex, 3D
        The reconstructed object (detector frame).
    support : numpy.ndarray, bool, same shape
    meta : ScanMeta
        Its geometry: wavelength, distance, pixel size, and detector angles
        (or ``d_spacing_nm``/``bragg_angle_deg``); the rocking step for lab and crystal.
    frame : {"detector", "lab", "crystal"}
    d_spacing_nm, bragg_angle_deg : float, optional
        The reflection, when the detector angles are not known.
    where : str
        What the object is, for the error messages.

    Returns
    -------
    StrainComputation

    Raises
    ------
    InvalidInputError
        A 2D object, an unknown frame, incomplete geometry, an orthogonal frame without the rocking step.
    """
    if frame not in FRAMES:
        raise InvalidInputError(f"--frame {frame!r}: give one of {', '.join(FRAMES)}")
    if np.ndim(obj) != 3:
        raise InvalidInputError(f"{where} holds a 2D object: strain needs a 3D Bragg CDI result")
    meta, q_norm = _complete(meta, d_spacing_nm, bragg_angle_deg, where)
    grid = None
    if frame == "detector":
        maps, resampled, voxel_nm = _detector_frame(obj, support, meta, q_norm)
    else:
        maps, resampled, grid = _orthogonal_frame(obj, support, meta, q_norm, frame, where)
        voxel_nm = (grid.voxel_m * 1e9,) * 3
    basis = real_space_basis(meta, obj.shape) if meta.rocking_step_deg is not None else None
    return StrainComputation(frame, maps, resampled, voxel_nm, meta, grid, basis, tuple(np.shape(obj)))


def write_strain(directory: Path, name: str, strain: StrainComputation, provenance: dict[str, str]) -> list[Path]:
    """Write the files of a :class:`StrainComputation` into ``directory`` (existing), each atomically.

    Returns
    -------
    list of pathlib.Path
        ``strain.cxi``, ``<name>_strain.tif``, ``<name>_displacement_nm.tif``, ``<name>_strain.vti``, ``strain.png``.
    """
    from .io.strain_files import write_strain_files

    return write_strain_files(directory, name, strain.maps, strain.obj, strain.meta, strain.voxel_nm, provenance,
                              grid=strain.grid, basis_m=strain.basis_m, detector_shape=strain.detector_shape)


def strain_of_result(path: Path, out_dir: Path | None = None, *, geometry: GeometryConfig | None = None,
                     frame: str = DEFAULT_FRAME, command_line: str = "") -> dict[str, Any]:
    """Displacement and strain along Q of a written 3D Bragg result, written beside it or into ``out_dir``.

    Parameters
    ----------
    path : pathlib.Path
        A result ``.cxi`` of ``cdi-dip reconstruct`` (never modified).
    out_dir : pathlib.Path, optional
        Folder for the files (created); default: the result's folder.
    geometry : GeometryConfig, optional
        Overrides of the stored geometry (energy, distance, detector angles), and the reflection
        (``d_spacing_nm``, ``bragg_angle_deg``) when the detector angles are not known (or to set
        ``|Q|`` exactly). Each reflection value not given here is the one stored in the result's
        configuration (``reconstruct --d-spacing-nm``, ``--bragg-angle-deg``), if any.
    frame : {"detector", "lab", "crystal"}
        Frame of the files: the detector-frame array as reconstructed, or an
        orthogonal isotropic grid (:mod:`cdi_dip.orthogonal`; needs the rocking step).
    command_line : str
        For the record in ``strain.cxi``.

    Returns
    -------
    dict
        ``result``, ``files``, ``frame``, ``voxel_size_nm`` (array order), ``shape`` and the strain summary
        (:meth:`StrainMaps.summary`).

    Raises
    ------
    InvalidInputError
        A missing or unreadable file, a 2D result, incomplete geometry, an unknown frame, an orthogonal
        frame without the rocking step.
    """
    from .io.result_cxi import read_result_cxi

    if frame not in FRAMES:
        raise InvalidInputError(f"--frame {frame!r}: give one of {', '.join(FRAMES)}")
    path = Path(path)
    stored = read_result_cxi(path).result
    geometry = geometry or GeometryConfig()
    meta = apply_geometry(stored.measurement.meta, geometry)
    strain = compute_strain(stored.obj, stored.support, meta, frame, where=str(path),
                            **_reflection(geometry, stored.config, str(path)))
    out = Path(out_dir) if out_dir is not None else path.parent
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInputError(f"cannot create the output folder {out}: {exc.strerror}") from None
    files = write_strain(out, stored.measurement.name, strain,
                         {"source": str(path), "command": command_line, "version": __version__})
    record = strain.record(files)
    return {"result": str(path), **record}
