"""One scan's result folder ``OUT/<scan-name>/``: claimed, staged, swapped in whole.

What the tool promises about its output (docs/reliability.md):

- It never writes into, over or around an input: a result folder that would
  be an input, contain one or lie inside one is refused before anything is
  read or written (:func:`check_output_target`).
- It only ever replaces a folder it wrote itself: an existing ``OUT/<name>/``
  must carry the tool's marker (a ``summary.json`` naming an input and a
  version), or be empty.
- One run at a time per result folder: :func:`claim_result_folder` takes an
  exclusive lock (``OUT/.<name>~lock``) for the whole reconstruction, so a
  second run into the same folder is refused at once instead of racing.
  Staging folders left by a killed run are removed by the next run that
  holds the lock.
- Results are atomic: every file is written into a staging folder
  (``OUT/.<name>~staging-...``) that replaces ``OUT/<name>/`` only when
  complete. A signal while writing is deferred (the result is finished and
  marked interrupted); a second one aborts and leaves nothing under the final
  name.
- Folders and files follow the user's umask, like any other file they write.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import json
import logging
import os
import secrets
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .errors import InvalidInputError
from .interrupts import interrupts_deferred
from .io.names import safe_scan_name
from .io.readers import input_paths
from .io.result_cxi import mark_interrupted
from .io.summary import make_summary
from .geometry import voxel_size_m
from .io.vtk import write_vti
from .io.writers import write_json, write_result_cxi, write_tiffs
from .types import Result

log = logging.getLogger(__name__)

MARKER = "summary.json"
"""The file that makes a folder the tool's own result (and the last one written)."""

SEPARATOR = "~"
"""Between a scan name and the role of a hidden file beside its folder; never in a scan name."""


def result_folder(out_dir: Path, name: str) -> Path:
    """Folder of one scan's results: ``OUT/<scan-name>/``."""
    return Path(out_dir) / name


def hidden_path(out_dir: Path, name: str, role: str) -> Path:
    """``OUT/.<name>~<role>``: the lock, staging and old folders of one scan."""
    return Path(out_dir) / f".{name}{SEPARATOR}{role}"


# --------------------------------------------------------------------------- checks before anything is written


def _inside(path: str, folder: str) -> bool:
    """``path`` lies strictly inside ``folder`` (both absolute, resolved)."""
    return path != folder and os.path.commonpath([path, folder]) == folder


def check_output_target(final: Path, inputs: Sequence[str]) -> None:
    """Refuse a result folder that is, contains or lies inside an input, or holds what the tool did not write.

    Parameters
    ----------
    final : pathlib.Path
        ``OUT/<scan-name>/``.
    inputs : sequence of str
        Every input spec of the scan: data, masks, dark and flat.

    Raises
    ------
    InvalidInputError
        With what would have been lost and what to use instead.
    """
    target = os.path.realpath(final)
    for spec in inputs:
        for path in input_paths(spec):
            problem = _overlap(os.path.realpath(path), target)
            if problem:
                raise InvalidInputError(f"the result folder {final} {problem.format(spec=spec)}; choose an --out "
                                        f"outside the input's folder (e.g. --out results)")
    if os.path.lexists(final) and not (final.is_dir() and (is_result_folder(final) or _is_empty_dir(final))):
        raise InvalidInputError(
            f"{final} exists and is not a cdi-dip result (no {MARKER} of this tool): move it away or choose "
            f"another --out; the tool only replaces folders it wrote")


def _overlap(path: str, target: str) -> str | None:
    """How a result folder ``target`` would touch the input ``path`` (both resolved), as a phrase
    with ``{spec}`` for the input; None when it does not."""
    if path == target:
        return "is the input {spec}"
    if _inside(path, target):
        return "holds the input {spec}: replacing the folder would delete it"
    if _inside(target, path):
        return "would lie inside the input {spec}"
    return None


def is_result_folder(folder: Path) -> bool:
    """``folder`` holds the tool's marker: a ``summary.json`` with an ``input`` and a ``version``."""
    try:
        summary = json.loads((Path(folder) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(summary, dict) and "input" in summary and "version" in summary


def _is_empty_dir(folder: Path) -> bool:
    try:
        return not any(Path(folder).iterdir())
    except OSError:
        return False


def check_can_create(out_dir: Path) -> None:
    """``out_dir`` exists as a writable folder, or can be created (nothing is created here).

    Raises
    ------
    InvalidInputError
        When a part of the path is a file, or the nearest existing folder is
        not writable.
    """
    existing = Path(os.path.abspath(out_dir))
    while not os.path.lexists(existing):
        existing = existing.parent
    if not existing.is_dir():
        raise InvalidInputError(f"cannot create output directory {out_dir}: {existing} is a file; choose another --out")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "output directory" if existing == Path(os.path.abspath(out_dir)) else "folder"
        raise InvalidInputError(f"{what} {existing} is not writable; choose another --out")


def make_output_dir(out_dir: Path) -> list[Path]:
    """Create ``out_dir`` (and its parents) with the user's umask; return the folders created, outermost first."""
    out_dir = Path(os.path.abspath(out_dir))
    missing = [folder for folder in (out_dir, *out_dir.parents) if not os.path.lexists(folder)][::-1]
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInputError(f"cannot create output directory {out_dir}: {exc.strerror}; choose another --out") from None
    if not os.access(out_dir, os.W_OK):
        raise InvalidInputError(f"output directory {out_dir} is not writable; choose another --out")
    return missing


def remove_if_empty(folders: Sequence[Path]) -> None:
    """Remove the folders a failed run created (innermost first) where they are still empty."""
    for folder in reversed(folders):
        with contextlib.suppress(OSError):
            folder.rmdir()


# --------------------------------------------------------------------------- the lock


@contextlib.contextmanager
def _exclusive_lock(path: Path, final: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created, removed on release); refuse when it is held.

    The file is removed while still locked; a process that opened the removed
    file finds that its inode is no longer the path's and tries again.
    """
    for _ in range(100):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise InvalidInputError(
                    f"another cdi-dip run is writing {final} (lock {path}): wait for it to finish, or choose "
                    f"another --out") from None
            raise
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the holder removed it between our open and our lock: take the new one
    else:  # pragma: no cover - a hundred lost races
        raise InvalidInputError(f"cannot lock {path}: it keeps being replaced; try again")
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)


def _remove_leftovers(out_dir: Path, name: str) -> None:
    """Staging and old folders of ``name`` that a killed run left (only called under the lock)."""
    for role in ("staging-", "old-"):
        for path in Path(out_dir).glob(f".{glob.escape(name)}{SEPARATOR}{role}*"):
            log.info("removing %s, left by a run that was stopped", path)
            shutil.rmtree(path, ignore_errors=True)


def remove_leftovers_when_free(out_dir: Path, name: str) -> None:
    """Remove what a stopped run left beside ``OUT/<name>/``, unless a live run holds that folder."""
    try:
        with _exclusive_lock(hidden_path(out_dir, name, "lock"), result_folder(out_dir, name)):
            _remove_leftovers(out_dir, name)
    except InvalidInputError:
        log.info("not cleaning up %s: another run holds it", result_folder(out_dir, name))


@dataclass
class ResultFolder:
    """A claimed ``OUT/<scan-name>/``: :meth:`write` stages a result and swaps it in."""

    out_dir: Path
    name: str
    inputs: tuple[str, ...]

    @property
    def final(self) -> Path:
        return result_folder(self.out_dir, self.name)

    def write(self, result: Result, *, command_line: str, strain: str = "auto") -> dict[str, Any]:
        """Write every file of one scan atomically and return its summary.

        The files go to a staging folder beside the final one: the result
        CXI, amplitude and phase TIFFs (and the ensemble's standard
        deviations), a VTK image (``.vti``), for a 3D Bragg result with its
        geometry the strain files (``strain``: a frame, ``auto`` or ``off``,
        :func:`cdi_dip.strain_result.strain_frame`), ``report.png``,
        ``report.html`` and, last, ``summary.json``; the staging folder then replaces
        ``OUT/<scan-name>/``. A first SIGINT/SIGTERM meanwhile is deferred:
        the result is completed, marked interrupted, and swapped in; a second
        one aborts, and nothing is left under the final name.
        """
        check_output_target(self.final, self.inputs)  # again: the folder may have changed while we computed
        staging = hidden_path(self.out_dir, self.name, f"staging-{os.getpid()}-{secrets.token_hex(4)}")
        staging.mkdir()
        try:
            with interrupts_deferred() as deferral:
                summary = _write_files(result, staging, self.final, command_line, deferral, strain)
                _replace_dir(staging, self.final, self.out_dir, self.name)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        if deferral.requested:
            summary["interrupted"] = True
        return summary


@contextlib.contextmanager
def claim_result_folder(out_dir: Path, name: str, inputs: Sequence[str] = ()) -> Iterator[ResultFolder]:
    """Create ``OUT`` and hold ``OUT/<name>/`` for this run until the block ends.

    Parameters
    ----------
    out_dir : pathlib.Path
    name : str
        A safe scan name (:func:`cdi_dip.io.names.safe_scan_name`).
    inputs : sequence of str
        The scan's input specs: the folder must not be, hold or lie in one.

    Raises
    ------
    InvalidInputError
        The folder is an input's, not the tool's, or another run holds it.
        When the block raises, the folders this call created are removed
        again where empty.
    """
    if name != safe_scan_name(name):
        raise InvalidInputError(f"scan name {name!r} cannot be a result folder; name the input differently")
    folder = ResultFolder(Path(out_dir), name, tuple(inputs))
    check_output_target(folder.final, folder.inputs)
    created = make_output_dir(folder.out_dir)
    try:
        with _exclusive_lock(hidden_path(folder.out_dir, name, "lock"), folder.final):
            _remove_leftovers(folder.out_dir, name)
            yield folder
    except BaseException:
        remove_if_empty(created)  # a run that wrote nothing leaves no empty OUT behind
        raise


# --------------------------------------------------------------------------- writing


def _uncertainty_maps(result: Result) -> dict[str, np.ndarray]:
    """Per-voxel uncertainty maps to write beside amplitude and phase, each of the object's shape.

    ``amplitude_std`` and ``phase_std`` (radians) of an ensemble of runs,
    and ``iterate_std`` (photon amplitude, like the amplitude): the double
    DIP's iterate spread of the best run (``Result.obj_std``). Only the maps
    the result has.
    """
    maps: dict[str, np.ndarray] = {}
    ensemble = result.ensemble
    if ensemble is not None:
        maps.update(amplitude_std=ensemble.amplitude_std, phase_std=ensemble.phase_std_rad)
    if result.obj_std is not None:
        maps["iterate_std"] = result.obj_std
    return maps


Writer = Callable[[Result, Path, str], list[Path]]
"""Writes some files of a result into the staging folder: ``writer(result, staging, command_line)``,
returning the files written, in the order ``summary.json`` lists them."""


def _result_cxi_path(staging: Path, result: Result) -> Path:
    return staging / f"{result.measurement.name}.cxi"


def _write_result_cxi(result: Result, staging: Path, command_line: str) -> list[Path]:
    """``<name>.cxi``: the object, its measurement and everything the run found."""
    path = _result_cxi_path(staging, result)
    write_result_cxi(path, result, command_line=command_line, version=__version__)
    return [path]


def _voxel_nm(result: Result) -> tuple[float, ...] | None:
    """The object's voxel size in nm, array order; None when the geometry is unknown."""
    voxel = voxel_size_m(result.measurement.meta, np.shape(result.obj))
    return tuple(v * 1e9 for v in voxel) if voxel is not None else None


def _write_tiffs(result: Result, staging: Path, command_line: str) -> list[Path]:
    """``<name>_amplitude.tif``, ``<name>_phase.tif`` (NaN outside the support) and the uncertainty maps
    (:func:`_uncertainty_maps`), ``<name>_<key>.tif``."""
    return write_tiffs(staging, result.measurement.name, result.obj, _uncertainty_maps(result), support=result.support,
                       voxel_nm=_voxel_nm(result))


def _write_vti(result: Result, staging: Path, command_line: str) -> list[Path]:
    """``<name>.vti``: amplitude, phase, support and the uncertainty maps (:func:`_uncertainty_maps`) for ParaView."""
    voxel = _voxel_nm(result)
    spacing = tuple(reversed(voxel)) + (1.0,) * (3 - len(voxel)) if voxel is not None else (1.0, 1.0, 1.0)
    return [write_vti(staging / f"{result.measurement.name}.vti", np.abs(result.obj), np.angle(result.obj),
                      spacing=spacing, extra=_uncertainty_maps(result), support=result.support)]


WRITERS: tuple[Writer, ...] = (_write_result_cxi, _write_tiffs, _write_vti)
"""The files of a result, in order; the strain files, ``report.png``, ``report.html`` and ``summary.json``
follow (:func:`_write_files`)."""


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _strain_step(result: Result, staging: Path, final: Path, command_line: str, choice: str,
                 deferral: Any) -> tuple[list[Path], dict[str, Any], Any]:
    """The strain files of a 3D Bragg result into ``staging``, its ``strain`` record and its figure's view.

    Never raises for a failed strain (an ``Exception``): the partial strain files are removed, a warning
    is logged and the record says ``failed``; the reconstruction's files stand.

    Returns
    -------
    (list of pathlib.Path, dict, StrainView or None)
        The files written (staging paths), the record (``status``: ``ok``,
        ``skipped`` or ``failed``; files as they will be in ``final``) and what
        the report draws (None without strain).
    """
    from .strain_result import compute_strain, strain_frame, stored_reflection, write_strain

    name = result.measurement.name
    reflection = stored_reflection(result.config)
    frame, reason = strain_frame(result.measurement.meta, np.ndim(result.obj), choice,
                                 reflection_known=any(v is not None for v in reflection.values()))
    if frame is not None and (result.interrupted or deferral.requested):
        frame, reason = None, f"interrupted: run cdi-dip strain {final / (name + '.cxi')} for it"
    if frame is None:
        log.info("no strain: %s", reason)
        return [], {"status": "skipped", "reason": reason}, None
    try:
        strain = compute_strain(result.obj, result.support, result.measurement.meta, frame, where=name, **reflection)
        files = write_strain(staging, name, strain, {"source": str(final / f"{name}.cxi"), "command": command_line,
                                                     "version": __version__})
    except Exception as exc:  # the strain is extra: the reconstruction is kept whatever happens here
        log.warning("the strain of %s failed (%s); the reconstruction is written without it", name, _one_line(exc),
                    exc_info=log.isEnabledFor(logging.DEBUG))
        _remove_strain_files(staging, name)
        return [], {"status": "failed", "frame": frame, "reason": _one_line(exc)}, None
    record = {"status": "ok", **strain.record([final / f.name for f in files])}
    log.info("strain in the %s frame: rms %.3g over %d voxels", frame, record.get("strain_rms", np.nan),
             record.get("voxels", 0))
    return files, record, strain.view()


def _remove_strain_files(staging: Path, name: str) -> None:
    """The strain files a failed strain step left in ``staging``."""
    from .io.strain_files import strain_file_names

    for file_name in strain_file_names(name):
        with contextlib.suppress(FileNotFoundError):
            (staging / file_name).unlink()


def _write_files(result: Result, staging: Path, final: Path, command_line: str, deferral: Any,
                 strain: str = "auto") -> dict[str, Any]:
    """Every file of the result into ``staging``: :data:`WRITERS`, the strain (:func:`_strain_step`),
    ``report.png``, ``report.html``, ``summary.json`` last.

    Returns the summary.
    """
    from .report.html import write_report_html
    from .report.png import write_report  # matplotlib only when writing

    files: list[Path] = []
    for writer in WRITERS:
        files += writer(result, staging, command_line)
    strain_files, strain_record, strain_view = _strain_step(result, staging, final, command_line, strain, deferral)
    files += strain_files
    files += write_report(result, staging, strain=strain_view)
    html_path = staging / "report.html"
    names = [f.name for f in files] + [html_path.name, MARKER]
    summary = make_summary(result, final, [final / n for n in names])
    summary["strain"] = strain_record
    write_report_html(html_path, {**summary, "command": command_line}, png_name="report.png")
    if deferral.requested and not result.interrupted:  # a signal while writing: the result says so
        mark_interrupted(_result_cxi_path(staging, result))
        summary["interrupted"] = True
    write_json(staging / MARKER, summary)
    return summary


def _replace_dir(staging: Path, final: Path, out_dir: Path, name: str) -> None:
    """Move ``staging`` onto ``final``, replacing an older result folder of the tool's."""
    old = None
    if os.path.lexists(final):
        old = hidden_path(out_dir, name, f"old-{os.getpid()}-{secrets.token_hex(4)}")
        os.replace(final, old)
    os.replace(staging, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
