"""Many scans: expand the inputs, reconstruct each scan in isolation, record every outcome.

A batch runs :func:`cdi_dip.pipeline.reconstruct_scan` once per scan, with the
same configuration (and the same seed) for every scan, so each result is the
one ``cdi-dip reconstruct`` gives for that scan. Any exception of one scan is
recorded as a failure with its one-line message and the batch goes on; a
worker process that dies (segfault, out of memory) does not stop it either.

Three executors:

- ``workers == 1``: in this process, one scan after the other.
- ``workers > 1``: a local :class:`concurrent.futures.ProcessPoolExecutor`
  with the ``spawn`` start method. Each worker uses
  ``max(1, cpus // workers)`` torch threads. On a node with several CUDA GPUs,
  worker ``k`` runs on ``cuda:(k mod n_gpus)`` when the configured device is
  ``cuda`` or ``auto`` (an explicit ``cuda:N`` or ``cpu`` is kept), so
  ``--workers`` equal to the number of GPUs uses each GPU once.
- ``scheduler="tcp://host:8786"``: a Dask distributed cluster
  (``pip install 'cdi-dip[cluster]'``), one task per scan. Paths are made
  absolute, so the workers must see the same file system. The device of each
  Dask worker is what its configuration says (pin GPUs per worker with
  ``CUDA_VISIBLE_DEVICES``, as dask-cuda does).

The batch summary ``OUT/batch.json`` (also the return value)::

    {"scans": [{"input", "status", "output", "error"}, ...],
     "ok": N, "failed": M, "skipped": K, "wall_s": T, "version": V}

``status`` is ``"ok"``, ``"failed"`` or ``"skipped"`` (``resume``: a complete
result with the same configuration already exists).
"""

from __future__ import annotations

import dataclasses
import glob
import json
import logging
import multiprocessing
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import h5py

from . import __version__
from .config import RunConfig
from .errors import CdiDipError, InvalidInputError
from .io.readers import scan_name
from .io.cxi import IMAGE_DATA
from .strain_result import check_strain_choice
from .outputs import check_can_create, make_output_dir, remove_leftovers_when_free, result_folder

log = logging.getLogger(__name__)

EventCallback = Callable[[dict[str, Any]], None]

#: Files that hold one scan each when a directory is expanded.
SCAN_SUFFIXES = (".cxi", ".h5", ".hdf5", ".nxs", ".npy", ".npz")
#: Frames of one scan: a directory holding only these is one scan.
TIFF_SUFFIXES = (".tif", ".tiff")
#: Seconds to wait for a Dask scheduler before giving up.
DASK_CONNECT_TIMEOUT_S = 10
_GLOB_CHARS = frozenset("*?[")
_INTERRUPTED = "interrupted before this scan finished; rerun with --resume"
_SCAN_INTERRUPTED = "interrupted (best result so far written)"
_WORKER_DIED = "the worker process died while reconstructing this scan (crash or out of memory)"

# Index of this worker process in a local pool (None in the main process).
_WORKER_INDEX: int | None = None


# --------------------------------------------------------------------------- inputs


def expand_inputs(items: Sequence[str], stdin_text: str | None = None) -> list[str]:
    """Turn command-line inputs into the list of scans, in order, without duplicates.

    Parameters
    ----------
    items : sequence of str
        Each one of:

        - a file (``scan.cxi``, ``frames.tif``, ``data.npy``...) or an HDF5
          dataset ``file.h5:/path/to/data``: one scan;
        - a directory: its ``.cxi/.h5/.hdf5/.nxs/.npy/.npz`` files, one scan
          each (ground truths ``X_truth.npy`` written beside ``X.cxi`` by
          ``cdi-dip simulate`` are left out); a directory holding TIFF frames
          and no such files is ONE scan; a directory holding neither gives its
          subdirectories of TIFF frames, one scan each;
        - a glob (``'scans/*.cxi'``): each match, expanded as above;
        - ``-``: one input per line of ``stdin_text`` (blank lines and lines
          starting with ``#`` are ignored), each expanded as above.
    stdin_text : str, optional
        The text of the standard input, needed when ``-`` is among ``items``.

    Returns
    -------
    list of str
        Scan inputs as ``reconstruct`` accepts them. An input reached twice
        (same file) is kept once, at its first place.

        An input that does not exist, a glob that matches nothing and a
        directory without scans are kept as they are: the batch records them
        as failed and goes on with the others.

    Raises
    ------
    InvalidInputError
        ``-`` without standard input, or no input at all.
    """
    expanded: list[str] = []
    for item in items:
        if item == "-":
            if stdin_text is None:
                raise InvalidInputError("input '-' reads a list of inputs from standard input, but none was given")
            for line in _stdin_lines(stdin_text):
                if line == "-":
                    raise InvalidInputError("the list on standard input contains '-': give files, directories or globs")
                expanded += _expand_item(line)
        else:
            expanded += _expand_item(item)
    scans = _unique(expanded)
    if not scans:
        raise InvalidInputError("no inputs: give scan files, directories, globs, or - to read a list from standard input")
    return scans


def _stdin_lines(text: str) -> list[str]:
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _expand_item(item: str) -> list[str]:
    """The scans of one input; one that cannot be expanded stays as it is, to be recorded as failed."""
    path = os.path.expanduser(item)
    if os.path.isdir(path):
        return _expand_dir(item)
    if os.path.exists(path) or _dataset_file(item) is not None:
        return [item]
    if _GLOB_CHARS & set(item):
        matches = sorted(glob.glob(item, recursive=True))
        if matches:
            return [scan for match in matches for scan in _expand_item(match)]
    log.warning("input %s does not exist or matches nothing: it will be recorded as failed", item)
    return [item]


def _dataset_file(item: str) -> str | None:
    """The file part of ``file.h5:/dataset`` or ``file.npz:key`` when that file exists, else None."""
    for position, char in enumerate(item):
        if char == ":" and 0 < position < len(item) - 1 and os.path.isfile(os.path.expanduser(item[:position])):
            return item[:position]
    return None


def _expand_dir(path: str) -> list[str]:
    where = os.path.expanduser(path)
    entries = sorted(name for name in os.listdir(where) if not name.startswith("."))
    files = [name for name in entries if os.path.isfile(os.path.join(where, name))]
    scans = [name for name in files if name.lower().endswith(SCAN_SUFFIXES) and not _is_truth_file(name, files)]
    tiffs = [name for name in files if name.lower().endswith(TIFF_SUFFIXES)]
    if scans:
        if tiffs:
            log.warning("%s: %d TIFF file(s) ignored; give a folder of TIFF frames on its own", path, len(tiffs))
        return [os.path.join(path, name) for name in scans]
    if tiffs:
        return [path]
    frame_dirs = [os.path.join(path, name) for name in entries if _is_tiff_scan_dir(os.path.join(where, name))]
    if not frame_dirs:
        log.warning("directory %s holds no scans: it will be recorded as failed", path)
        return [path]
    return frame_dirs


def _is_truth_file(name: str, files: Sequence[str]) -> bool:
    """``X_truth.npy`` beside ``X.cxi``: a ground truth written by ``cdi-dip simulate``."""
    stem, suffix = os.path.splitext(name)
    return suffix.lower() == ".npy" and stem.endswith("_truth") and f"{stem[: -len('_truth')]}.cxi" in files


def _is_tiff_scan_dir(path: str) -> bool:
    """A folder of TIFF frames (and not a result folder, nor one with other scan files)."""
    if not os.path.isdir(path):
        return False
    names = [name.lower() for name in os.listdir(path) if not name.startswith(".")]
    return (
        any(name.endswith(TIFF_SUFFIXES) for name in names)
        and not any(name.endswith(SCAN_SUFFIXES) for name in names)
        and "summary.json" not in names
    )


def _with_file_part(source: str, resolve: Callable[[str], str]) -> str:
    """``source`` with its file part (of ``file.h5:/dataset`` too) passed through ``resolve``; a path that
    does not exist is returned as given."""
    file_part = _dataset_file(source)
    if file_part is not None:
        return resolve(os.path.expanduser(file_part)) + source[len(file_part):]
    path = os.path.expanduser(source)
    return resolve(path) if os.path.exists(path) else source


def _input_key(source: str) -> str:
    """A spelling-independent key of an input (absolute, symlinks resolved)."""
    return _with_file_part(source, os.path.realpath)


def _absolute(source: str) -> str:
    """``source`` with its file part made absolute (for workers on other machines)."""
    return _with_file_part(source, os.path.abspath)


def _unique(sources: Sequence[str]) -> list[str]:
    seen: set[str] = set()
    unique = []
    for source in sources:
        key = _input_key(source)
        if key not in seen:
            seen.add(key)
            unique.append(source)
    return unique


# --------------------------------------------------------------------------- resume


def _scan_names(sources: Sequence[str]) -> list[str]:
    """The output folder name of each scan; two inputs sharing one are an error."""
    names = [scan_name(source) for source in sources]
    first: dict[str, str] = {}
    for source, name in zip(sources, names):
        if name in first:
            raise InvalidInputError(
                f"inputs {first[name]} and {source} have the same scan name {name!r} and would write the "
                f"same folder OUT/{name}/: rename one, or run them in batches with different --out"
            )
        first[name] = source
    return names


def _previous_summary(folder: Path, source: str) -> dict[str, Any] | None:
    """``folder/summary.json`` when it exists and records this same input, else None."""
    try:
        summary = json.loads((folder / "summary.json").read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        log.info("ignoring unreadable %s", folder / "summary.json")
        return None
    if not isinstance(summary, dict) or not isinstance(summary.get("input"), str):
        return None
    return summary if _input_key(summary["input"]) == _input_key(source) else None


def _same_config(stored: Any, current: dict[str, Any]) -> bool:
    """Equal configurations; a stored ``cuda:k`` matches a current ``cuda``/``auto`` (pool workers pick k)."""
    if not isinstance(stored, dict):
        return False
    stored_device = str(stored.get("device", ""))
    current_device = str(current.get("device", ""))
    device_ok = stored_device == current_device or (
        current_device in ("cuda", "auto") and stored_device.startswith("cuda")
    )
    rest = {k: v for k, v in stored.items() if k != "device"}
    return device_ok and _same_settings(rest, {k: v for k, v in current.items() if k != "device"},
                                        RunConfig().to_dict())


def _same_settings(stored: dict[str, Any], current: dict[str, Any], defaults: dict[str, Any]) -> bool:
    """``stored == current``, except that a setting the stored configuration lacks (written by a version
    before the setting existed) matches when ``current`` holds its default: an upgrade alone redoes nothing."""
    for key in stored.keys() | current.keys():
        if key not in current:
            return False
        default = defaults.get(key)
        if key not in stored:
            if current[key] != default:
                return False
        elif isinstance(stored[key], dict) and isinstance(current[key], dict):
            if not _same_settings(stored[key], current[key], default if isinstance(default, dict) else {}):
                return False
        elif stored[key] != current[key]:
            return False
    return True


def _completed_result(folder: Path, source: str, cfg: RunConfig) -> Path | None:
    """The result ``.cxi`` in ``folder`` when it holds a finished, uninterrupted reconstruction
    of ``source`` with this configuration, else None."""
    summary = _previous_summary(folder, source)
    if summary is None or summary.get("status") != "ok" or summary.get("interrupted"):
        return None
    if not isinstance(summary.get("output"), str) or not _same_config(summary.get("config"), cfg.to_dict()):
        return None
    result = folder / Path(summary["output"]).name  # the folder may have moved since
    return result if _result_is_complete(folder, result, summary) else None


def _result_is_complete(folder: Path, result: Path, summary: dict[str, Any]) -> bool:
    """Every file the summary lists is in ``folder`` and the result CXI opens with its object."""
    files = summary.get("files")
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        return False
    missing = [name for name in (Path(f).name for f in files) if not (folder / name).is_file()]
    if missing:
        log.info("%s is incomplete (%s missing): reconstructing again", folder, missing[0])
        return False
    try:
        with h5py.File(result, "r") as file:
            complete = isinstance(file.get(IMAGE_DATA), h5py.Dataset)
    except OSError:
        complete = False
    if not complete:
        log.info("%s does not open as a result: reconstructing again", result)
    return complete


# --------------------------------------------------------------------------- one scan


def _record(source: str, status: str, output: str | None = None, error: str | None = None) -> dict[str, Any]:
    return {"input": source, "status": status, "output": output, "error": error}


def _one_line(error: BaseException) -> str:
    """The error as one line; unexpected exceptions keep their type name."""
    text = " ".join(str(error).split())
    if isinstance(error, CdiDipError):
        return text or type(error).__name__
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _config_for_this_worker(cfg: RunConfig) -> RunConfig:
    """In pool worker ``k`` on a node with several GPUs, ``cuda``/``auto`` becomes ``cuda:k mod n``."""
    if _WORKER_INDEX is None or cfg.device.strip().lower() not in ("cuda", "auto"):
        return cfg
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count < 2:
        return cfg
    return dataclasses.replace(cfg, device=f"cuda:{_WORKER_INDEX % count}")


def run_scan(
    source: str,
    cfg: RunConfig,
    out_dir: Path,
    mask_specs: Sequence[str] = (),
    command_line: str = "",
    strain: str = "auto",
) -> dict[str, Any]:
    """Reconstruct one scan and return its batch record; never raises for a failed scan.

    Parameters
    ----------
    source, cfg, out_dir, mask_specs, command_line, strain
        As for :func:`cdi_dip.pipeline.reconstruct_scan`.

    Returns
    -------
    dict
        ``{"input", "status", "output", "error"}``; ``status`` is ``"ok"`` or
        ``"failed"`` (with the one-line error). An interrupted scan is failed.
    """
    from .pipeline import reconstruct_scan

    cfg = _config_for_this_worker(cfg)
    try:
        summary = reconstruct_scan(source, cfg, Path(out_dir), mask_specs=mask_specs, command_line=command_line,
                                   strain=strain)
    except Exception as exc:  # any failure of one scan is recorded, the batch goes on
        if isinstance(exc, CdiDipError):
            log.info("scan %s failed: %s", source, exc)
        else:
            log.error("scan %s failed unexpectedly", source, exc_info=True)
        return _record(source, "failed", None, _one_line(exc))
    if summary.get("interrupted"):
        return _record(source, "failed", summary.get("output"), _SCAN_INTERRUPTED)
    return _record(source, summary.get("status", "ok"), summary.get("output"), summary.get("error"))


# --------------------------------------------------------------------------- executors

Job = tuple[int, str]  # (place in the batch, input)


def _run_in_process(jobs: Sequence[Job], args: tuple) -> Iterator[tuple[int, dict[str, Any]]]:
    for index, source in jobs:
        record = run_scan(source, *args)
        yield index, record
        if record["error"] == _SCAN_INTERRUPTED:  # Ctrl-C reached the solver, which kept its best
            raise KeyboardInterrupt


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _init_worker(counter: Any, threads: int, log_level: int) -> None:
    """Pool worker start: take a worker index, set torch threads and logging; Ctrl-C is the parent's."""
    global _WORKER_INDEX
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with counter.get_lock():
        _WORKER_INDEX = counter.value
        counter.value += 1
    import torch

    torch.set_num_threads(threads)
    logging.basicConfig(level=log_level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def _run_local_pool(
    jobs: Sequence[Job], workers: int, args: tuple, *, task: Callable[..., dict[str, Any]] = run_scan,
) -> Iterator[tuple[int, dict[str, Any]]]:
    """``task(source, *args)`` for each job on ``workers`` spawned processes, yielded as they finish.

    At most ``workers`` scans are in flight. When a worker dies, the pool is
    broken and every scan in flight is suspect: each is then rerun alone on a
    fresh pool, and a scan that kills its worker alone is recorded as failed.
    """
    context = multiprocessing.get_context("spawn")
    counter = context.Value("i", 0)
    initargs = (counter, max(1, _cpu_count() // workers), logging.getLogger().getEffectiveLevel())
    pending: deque[Job] = deque(jobs)
    suspects: deque[Job] = deque()
    while pending or suspects:
        alone = bool(suspects)
        queue, limit = (suspects, 1) if alone else (pending, workers)
        pool = ProcessPoolExecutor(max_workers=min(limit, len(queue)), mp_context=context,
                                   initializer=_init_worker, initargs=initargs)
        in_flight: dict[Any, Job] = {}
        broken = False
        try:
            while (queue or in_flight) and not broken:
                while queue and len(in_flight) < limit:
                    job = queue.popleft()
                    in_flight[pool.submit(task, job[1], *args)] = job
                finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in finished:
                    job = in_flight.pop(future)
                    if isinstance(future.exception(), BrokenProcessPool):
                        broken = True
                        in_flight[future] = job  # handled with the others below
                    else:
                        yield job[0], _future_record(future, job[1])
            if broken:
                crashed = []
                for future, job in in_flight.items():
                    if future.done() and not isinstance(future.exception(), BrokenProcessPool):
                        yield job[0], _future_record(future, job[1])
                    else:
                        crashed.append(job)
                if alone or len(crashed) == 1:
                    for job in crashed:
                        log.error("scan %s: %s", job[1], _WORKER_DIED)
                        yield job[0], _record(job[1], "failed", None, _WORKER_DIED)
                else:
                    log.warning("a worker process died; rerunning the %d scans it may have held one by one", len(crashed))
                    suspects.extend(crashed)
        except BaseException:
            _stop_pool(pool)
            raise
        pool.shutdown(wait=True, cancel_futures=True)


def _future_record(future: Any, source: str) -> dict[str, Any]:
    """The record a finished future holds, or a failure when it holds an exception."""
    error = future.exception()
    if error is None:
        return future.result()
    log.error("scan %s: %s", source, _one_line(error))
    return _record(source, "failed", None, _one_line(error))


def _stop_pool(pool: ProcessPoolExecutor) -> None:
    """Cancel what has not started and end the workers now (interrupt or error in the parent)."""
    # ProcessPoolExecutor.terminate_workers() exists only from Python 3.14.
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=10)


def _dask_client(address: str) -> Any:
    try:
        from dask.distributed import Client
    except ImportError:
        raise InvalidInputError(
            "--scheduler needs Dask distributed: pip install 'cdi-dip[cluster]'"
        ) from None
    try:
        return Client(address, timeout=DASK_CONNECT_TIMEOUT_S)
    except Exception as exc:  # OSError, TimeoutError, ValueError for a bad address...
        raise InvalidInputError(
            f"cannot reach the Dask scheduler at {address} within {DASK_CONNECT_TIMEOUT_S} s "
            f"({_one_line(exc)}): check the address (tcp://host:8786) and that the scheduler runs"
        ) from None


def _run_dask(jobs: Sequence[Job], address: str, args: tuple) -> Iterator[tuple[int, dict[str, Any]]]:
    """One Dask task per scan, gathered as they complete; paths made absolute for remote workers."""
    from dask.distributed import as_completed

    cfg, out_dir, mask_specs, command_line, strain = args
    remote_out = Path(out_dir).resolve()
    remote_args = (cfg, remote_out, [_absolute(m) for m in mask_specs], command_line, strain)
    client = _dask_client(address)
    futures: dict[Any, Job] = {}
    try:
        for job in jobs:
            futures[client.submit(run_scan, _absolute(job[1]), *remote_args, pure=False)] = job
        for future in as_completed(futures):
            index, source = futures[future]
            try:
                record = future.result()
            except Exception as exc:  # a worker that died too often (KilledWorker), a lost task...
                log.error("scan %s: %s", source, _one_line(exc))
                record = _record(source, "failed", None, f"Dask task failed: {_one_line(exc)}")
            if record["output"]:  # as the local executors write it: under out_dir as given
                record["output"] = str(Path(out_dir) / Path(record["output"]).relative_to(remote_out))
            yield index, {**record, "input": source}
    except BaseException:
        client.cancel(list(futures))
        raise
    finally:
        client.close()


# --------------------------------------------------------------------------- the batch


def _summary(records: Sequence[dict[str, Any]], wall_s: float) -> dict[str, Any]:
    statuses = [record["status"] for record in records]
    return {
        "scans": list(records),
        "ok": statuses.count("ok"),
        "failed": statuses.count("failed"),
        "skipped": statuses.count("skipped"),
        "wall_s": round(wall_s, 3),
        "version": __version__,
    }


def run_batch(
    sources: Sequence[str],
    cfg: RunConfig,
    out_dir: Path,
    *,
    workers: int = 1,
    scheduler: str | None = None,
    resume: bool = False,
    mask_specs: Sequence[str] = (),
    command_line: str = "",
    on_event: EventCallback | None = None,
    strain: str = "auto",
) -> dict[str, Any]:
    """Reconstruct every scan into ``OUT/<scan-name>/`` and write ``OUT/batch.json``.

    Parameters
    ----------
    sources : sequence of str
        Scan inputs (see :func:`expand_inputs`).
    cfg : RunConfig
        The configuration of every scan (same seed for each: each result is
        the one ``cdi-dip reconstruct`` gives).
    out_dir : pathlib.Path
        Output folder.
    workers : int
        1: in this process; more: a local pool of spawned processes.
    scheduler : str, optional
        Address of a Dask scheduler (``tcp://host:8786``); ``workers`` is then
        not used.
    resume : bool
        Skip scans whose ``OUT/<scan-name>/summary.json`` says ``ok`` for
        this same configuration, whose listed files all exist and whose
        result ``.cxi`` opens with its object.
    mask_specs : sequence of str
        Mask files applied to every scan.
    command_line : str
        Recorded in every result file.
    strain : str
        ``reconstruct --strain``: a frame, ``auto`` or ``off``
        (:func:`cdi_dip.strain_result.strain_frame`). An output choice, not
        configuration: ``resume`` does not compare it.
    on_event : callable, optional
        Called in this process with ``{"event": "start", "total", "skipped"}``,
        then ``{"event": "scan", "index", "input", "status", "output",
        "error", "done", "failed", "total"}`` per scan (skipped ones first),
        then ``{"event": "end", **summary}``.

    Returns
    -------
    dict
        The batch summary, as written to ``OUT/batch.json``.

    Raises
    ------
    InvalidInputError
        No sources, ``workers < 1``, two inputs with one scan name, an
        unwritable output folder, or an unreachable Dask scheduler (nothing
        is run; the output folder is not created for the first four).
    KeyboardInterrupt
        After writing ``batch.json``, unfinished scans marked failed.
    """
    from .io.writers import write_json

    if not sources:
        raise InvalidInputError("no inputs: give scan files, directories or globs")
    if workers < 1:
        raise InvalidInputError(f"--workers {workers}: give at least 1")
    check_strain_choice(strain)
    out_dir = Path(out_dir)
    names = _scan_names(sources)
    check_can_create(out_dir)
    make_output_dir(out_dir)
    emit = on_event or (lambda event: None)
    start = time.perf_counter()
    records: list[dict[str, Any] | None] = [None] * len(sources)
    jobs: list[Job] = []
    for index, source in enumerate(sources):
        done = _completed_result(result_folder(out_dir, names[index]), source, cfg) if resume else None
        if done is not None:
            records[index] = _record(source, "skipped", str(done))
        else:
            jobs.append((index, source))
    emit({"event": "start", "total": len(sources), "skipped": len(sources) - len(jobs)})
    progress = {"done": 0, "failed": 0}

    def finish(index: int, record: dict[str, Any]) -> None:
        records[index] = record
        progress["done"] += 1
        progress["failed"] += record["status"] == "failed"
        emit({"event": "scan", "index": index, **record, **progress, "total": len(sources)})

    for index, record in enumerate(records):
        if record is not None:
            finish(index, record)
    args = (cfg, out_dir, tuple(mask_specs), command_line, strain)
    pool = not scheduler and workers > 1 and len(jobs) > 1
    if scheduler:
        executor = _run_dask(jobs, scheduler, args)
    elif pool:
        executor = _run_local_pool(jobs, workers, args)
    else:
        executor = _run_in_process(jobs, args)
    try:
        for index, record in executor:
            finish(index, record)
    except KeyboardInterrupt:
        executor.close()  # stops the workers now
        if pool:
            for index in (k for k, record in enumerate(records) if record is None):
                remove_leftovers_when_free(out_dir, names[index])
        done = [r if r is not None else _record(s, "failed", None, _INTERRUPTED) for r, s in zip(records, sources)]
        write_json(out_dir / "batch.json", _summary(done, time.perf_counter() - start))
        raise
    summary = _summary(records, time.perf_counter() - start)
    write_json(out_dir / "batch.json", summary)
    emit({"event": "end", **summary})
    return summary


__all__ = ["expand_inputs", "run_batch", "run_scan"]
