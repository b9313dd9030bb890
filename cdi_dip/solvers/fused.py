"""Fused elementwise steps of a projection iteration: what is left once the FFTs are done.

An iteration of ER, HIO or RAAR is ``fft -> modulus projection -> ifft ->
update``. Written as torch expressions, the two elementwise steps cost more
than the two FFTs on a CPU (``torch.abs`` of a complex tensor alone costs
about as much as the FFT pair, and every ``where`` or product is one more
pass over memory). This module does each step in place, in one pass with
its C kernels:

- :meth:`Backend.project_modulus_` replaces ``field`` by the masked modulus
  projection :func:`cdi_dip.physics.project_modulus` in place;
- :meth:`Backend.update_` turns the modulus projection ``p = P_M x`` into
  the new iterate of ER, HIO or RAAR in place: ``p`` inside the (effective)
  support and ``a x + b p`` outside (:func:`outside_coefficients`), which is exactly
  :func:`~cdi_dip.solvers.projections.er_update`,
  :func:`~cdi_dip.solvers.projections.hio_update`,
  :func:`~cdi_dip.solvers.projections.raar_update` and
  :func:`~cdi_dip.solvers.projections.positive_update`.

Two implementations of the same equations, chosen by :func:`select_backend`:

- ``"c"`` (CPU only): two loops of C (``fused_kernels.c``) called through
  :mod:`ctypes` on the tensors' memory. ctypes releases the GIL, so large
  arrays are split over ``torch.get_num_threads()`` Python threads. The
  library is, in this order (:func:`_load_c_library`): compiled once per
  machine with the system C compiler (``$CC``, else ``cc``/``gcc``;
  ``-O3 -march=native``), cached under ``$CDI_DIP_CACHE`` (default
  ``~/.cache/cdi-dip``, mode 0o700; a folder or file that someone else owns
  or can write is never loaded from); else the portable build that
  ``pip install`` made (setup.py, ``-O3``), where a compiler worked at
  install time.
- ``"torch"`` (any device): a few in-place torch operations on kept
  scratch frames. On a CPU without either C build they are slower, and a
  warning says so (:data:`SLOWER_WARNING`).

``CDI_DIP_KERNELS=auto|c|torch`` overrides the choice (``auto``: C on CPU when
either build works, torch otherwise). :attr:`Backend.description` says which
kernels a run used and where they come from; runs record it
(``versions/kernels`` in the result file and ``summary.json``).
docs/speed.md has the measurements.
"""

from __future__ import annotations

import abc
import ctypes
import functools
import hashlib
import logging
import os
import platform
import shutil
import stat
import subprocess
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import InvalidInputError

log = logging.getLogger(__name__)

EPS = 1e-12
"""Floor on ``|field|`` in the modulus projection (that of :func:`cdi_dip.physics.project_modulus`)."""

NO_POSITIVITY, CLIP_REAL, NEGATIVE_OUTSIDE = 0, 1, 2
"""Positivity modes of :meth:`Backend.update_`: none; ER's projection (``Re p`` clipped at 0 inside the
support); HIO/RAAR (pixels where ``Re p < 0`` count as outside the support)."""

MIN_CHUNK = 1 << 16
"""Fewest elements given to one thread by the C backend (below this, threads cost more than they save)."""

_C_SOURCE_FILE = Path(__file__).with_name("fused_kernels.c")
"""The C source of the kernels (package data; setup.py builds it at install time too)."""

_C_SOURCE = _C_SOURCE_FILE.read_bytes().decode()

INSTALLED_LIBRARY = "libcdi_dip_fused.so"
"""File name of the kernels built at install time (setup.py), beside this module."""


def outside_coefficients(algorithm: str, beta: float) -> tuple[float, float]:
    """``(a, b)`` of the update outside the support, ``x' = a x + b P_M x``.

    Inside the support every algorithm takes ``P_M x``. Outside: ER (Fienup
    1982) ``0``; HIO (Fienup 1982) ``x - beta P_M x``; RAAR (Luke 2005)
    ``beta x + (1 - 2 beta) P_M x``.

    Parameters
    ----------
    algorithm : {"ER", "HIO", "RAAR"}
    beta : float
        Feedback (HIO) or relaxation (RAAR) parameter.

    Returns
    -------
    tuple of float
    """
    coefficients = {"ER": (0.0, 0.0), "HIO": (1.0, -float(beta)), "RAAR": (float(beta), 1.0 - 2.0 * float(beta))}
    return coefficients[algorithm]


def positivity_mode(algorithm: str, positivity: bool) -> int:
    """The :meth:`Backend.update_` positivity mode of an algorithm (see :data:`NO_POSITIVITY`)."""
    if not positivity:
        return NO_POSITIVITY
    return CLIP_REAL if algorithm == "ER" else NEGATIVE_OUTSIDE


@dataclass(frozen=True)
class ModulusTarget:
    """The measured magnitudes of one run, laid out for :meth:`Backend.project_modulus_`.

    Attributes
    ----------
    amplitude : torch.Tensor, float32, frame shape (FFT order)
        ``sqrt(counts)`` on valid pixels, 0 elsewhere.
    valid : torch.Tensor, bool, frame shape
        Pixels whose magnitude is replaced; the others are free.
    free_one : torch.Tensor, float32, frame shape
        1 where not valid, 0 where valid (the torch backend's way to leave free pixels unchanged).
    """

    amplitude: torch.Tensor
    valid: torch.Tensor
    free_one: torch.Tensor

    def __post_init__(self) -> None:
        for name, dtype in (("amplitude", torch.float32), ("valid", torch.bool), ("free_one", torch.float32)):
            tensor = getattr(self, name)
            if tensor.dtype != dtype or not tensor.is_contiguous() or tensor.shape != self.amplitude.shape:
                raise ValueError(f"ModulusTarget.{name} must be a contiguous {dtype} tensor of the amplitude's "
                                 f"shape (use ModulusTarget.build)")

    @classmethod
    def build(cls, amplitude: torch.Tensor, valid: torch.Tensor) -> ModulusTarget:
        """From measured magnitudes (any values where invalid) and the valid mask, both in FFT order."""
        zero = torch.zeros((), dtype=torch.float32, device=amplitude.device)
        return cls(amplitude=torch.where(valid, amplitude.float(), zero).contiguous(), valid=valid.contiguous(),
                   free_one=(~valid).float().contiguous())


class Backend(abc.ABC):
    """The two fused steps on one device; see :class:`TorchBackend` and :class:`CBackend`.

    Attributes
    ----------
    name : {"c", "torch"}
    description : str
        Which kernels and why, as a run records them: ``"c (compiled here)"``,
        ``"c (built at install)"``, ``"torch (cuda)"``, ``"torch (no C kernels: ...)"``.
    """

    name: str
    description: str

    @abc.abstractmethod
    def project_modulus_(self, field: torch.Tensor, target: ModulusTarget) -> torch.Tensor:
        """Masked modulus projection in place (:func:`cdi_dip.physics.project_modulus`).

        Parameters
        ----------
        field : torch.Tensor, complex64, frame shape (FFT order), contiguous
            The far field ``F x``; overwritten by ``P_M`` of it.
        target : ModulusTarget

        Returns
        -------
        torch.Tensor
            ``field``.
        """

    @abc.abstractmethod
    def update_(self, projected: torch.Tensor, obj: torch.Tensor, support: torch.Tensor,
                coefficients: tuple[float, float], positivity: int) -> torch.Tensor:
        """The new iterate, written over ``projected``.

        ``P_M x`` inside the support, ``a x + b P_M x`` outside, with the
        positivity ``mode`` of :func:`positivity_mode`: the equations of
        :func:`~cdi_dip.solvers.projections.er_update`,
        :func:`~cdi_dip.solvers.projections.hio_update`,
        :func:`~cdi_dip.solvers.projections.raar_update` and
        :func:`~cdi_dip.solvers.projections.positive_update`.

        Parameters
        ----------
        projected : torch.Tensor, complex64, frame shape, contiguous
            ``P_M x``; overwritten.
        obj : torch.Tensor, complex64, frame shape, contiguous
            The current iterate ``x`` (not modified).
        support : torch.Tensor, bool, frame shape, contiguous
        coefficients : tuple of float
            ``(a, b)`` from :func:`outside_coefficients`.
        positivity : int
            :data:`NO_POSITIVITY`, :data:`CLIP_REAL` or :data:`NEGATIVE_OUTSIDE`.

        Returns
        -------
        torch.Tensor
            ``projected``, now the new iterate.
        """


class TorchBackend(Backend):
    """The fused steps as in-place torch operations (any device, a few passes over memory).

    Keeps one real and one complex scratch frame between calls. Rounds as
    the pure functions do (on a GPU, up to the fused multiply-adds its
    compiler may contract).
    """

    name = "torch"

    def __init__(self, description: str = "torch") -> None:
        self.description = description
        self._scratch: dict[torch.dtype, torch.Tensor] = {}

    def _scratch_like(self, tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        scratch = self._scratch.get(dtype)
        if scratch is None or scratch.shape != tensor.shape or scratch.device != tensor.device:
            scratch = self._scratch[dtype] = torch.empty(tensor.shape, dtype=dtype, device=tensor.device)
        return scratch

    def project_modulus_(self, field: torch.Tensor, target: ModulusTarget) -> torch.Tensor:
        scale = torch.abs(field, out=self._scratch_like(field, torch.float32)).clamp_min_(EPS)
        torch.div(target.amplitude, scale, out=scale).add_(target.free_one)  # amp / |field| where valid, 1 where free
        return field.mul_(scale)

    def update_(self, projected, obj, support, coefficients, positivity):
        a, b = coefficients
        if positivity == CLIP_REAL:
            projected.real.clamp_min_(0)
        elif positivity == NEGATIVE_OUTSIDE:
            support = support & (projected.real >= 0)
        if a == 0.0 and b == 0.0:
            outside = torch.zeros((), dtype=projected.dtype, device=projected.device)
        else:
            outside = torch.mul(projected, b, out=self._scratch_like(projected, projected.dtype)).add_(obj, alpha=a)
        return torch.where(support, projected, outside, out=projected)


_FLAGS = ("-O3", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math", "-shared", "-fPIC")
"""Compiler flags (and ``-march=native`` first where the compiler takes it). No contraction into fused
multiply-adds, so that every product and sum rounds as in the torch expressions of the pure updates."""


def _cache_dir() -> Path:
    """Per-user folder for the compiled kernels."""
    root = os.environ.get("CDI_DIP_CACHE")
    if root:
        return Path(root)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "cdi-dip"


def _machine_key() -> str:
    """What ``-march=native`` depends on: the CPU's feature flags (or its name where /proc is absent)."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith(("flags", "Features")):
                    return line
    except OSError:
        pass
    return platform.machine() + platform.processor()


def _compiler() -> str | None:
    """The C compiler: ``$CC``, else ``cc``, else ``gcc`` on the PATH; None where there is none."""
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


@functools.lru_cache(maxsize=8)
def _compiler_identity(compiler: str) -> str:
    """The compiler's resolved path and the first line of its ``--version`` (what it would build)."""
    path = shutil.which(compiler) or compiler
    try:
        result = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
        version = (result.stdout or result.stderr).strip().splitlines()[:1]
    except (OSError, subprocess.SubprocessError):
        version = []
    return f"{os.path.realpath(path)} {' '.join(version)}"


def _kernel_name(compiler: str) -> str:
    """File name of the compiled kernels: a hash of the source, the flags, the CPU and the compiler."""
    key = "\n".join((_C_SOURCE, " ".join(_FLAGS), _machine_key(), _compiler_identity(compiler)))
    return f"fused-{hashlib.sha256(key.encode()).hexdigest()[:16]}.so"


def _unsafe(path: Path, *, folder: bool) -> str | None:
    """Why ``path`` must not be trusted with code to load, or None when it may be.

    Trusted: a folder (``folder=True``, symbolic links followed) or a regular
    file (not a symbolic link) owned by the current user and writable by
    neither its group nor others, so that no one else can have put code there.
    """
    try:
        info = os.stat(path) if folder else os.lstat(path)
    except OSError as exc:
        return f"cannot be inspected ({exc.strerror})"
    if folder and not stat.S_ISDIR(info.st_mode):
        return "is not a folder"
    if not folder and not stat.S_ISREG(info.st_mode):
        return "is not a regular file"
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        return f"is owned by user id {info.st_uid}, not by you ({os.getuid()})"
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"is writable by its group or by others (mode {stat.S_IMODE(info.st_mode):#o})"
    return None


def _compile(source: str, target: Path, compiler: str) -> None:
    """Compile ``source`` into the shared library ``target``, mode 0o700.

    The compiler writes into a fresh private folder beside ``target``, and the
    finished library is renamed onto ``target`` (:func:`os.replace`, atomic):
    two processes compiling at once each load a complete file, never a
    half-written one.
    """
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".fused-build-") as folder:
        c_file = Path(folder) / "fused.c"
        c_file.write_text(source)
        built = Path(folder) / target.name
        base = [compiler, *_FLAGS, str(c_file), "-o", str(built)]
        result = subprocess.run(base[:1] + ["-march=native"] + base[1:], capture_output=True, text=True)
        if result.returncode != 0:  # a compiler without -march=native: plain -O3
            result = subprocess.run(base, capture_output=True, text=True)
        if result.returncode != 0:
            raise OSError(f"{compiler} failed: {result.stderr.strip()[:300]}")
        os.chmod(built, 0o700)
        os.replace(built, target)


def _load_from_cache(folder: Path, name: str, compiler: str) -> ctypes.CDLL:
    """The kernels from the (trusted) cache ``folder``, compiled there first when missing or not trusted."""
    target = folder / name
    if os.path.lexists(target):
        problem = _unsafe(target, folder=False)
        if problem is None:
            try:
                return ctypes.CDLL(str(target))
            except OSError as exc:  # e.g. a file left incomplete by an old version
                log.warning("compiled kernels %s cannot be loaded (%s): compiling them again", target, exc)
        else:
            log.warning("compiled kernels %s %s: not loading it, compiling them again", target, problem)
    _compile(_C_SOURCE, target, compiler)
    return ctypes.CDLL(str(target))


def _load_private(name: str, compiler: str) -> ctypes.CDLL:
    """The kernels compiled into a new private temporary folder, which is removed once they are loaded."""
    with tempfile.TemporaryDirectory(prefix="cdi-dip-kernels-") as folder:  # mode 0o700
        target = Path(folder) / name
        _compile(_C_SOURCE, target, compiler)
        return ctypes.CDLL(str(target))  # the mapping outlives the file


def _trusted_cache_folder() -> Path | None:
    """The cache folder, created with mode 0o700 where missing; None (with a warning) where it is not trusted."""
    folder = _cache_dir()
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        log.warning("kernel cache %s cannot be created (%s): compiling the kernels into a private temporary "
                    "folder for this process", folder, exc.strerror)
        return None
    problem = _unsafe(folder, folder=True)
    if problem is not None:
        log.warning("kernel cache %s %s: not loading code from it; compiling the kernels into a private "
                    "temporary folder for this process (chmod 700 it, or set CDI_DIP_CACHE to a folder of "
                    "your own)", folder, problem)
        return None
    return folder


def _compiled_here() -> ctypes.CDLL:
    """The kernels compiled for this machine (``-march=native``), built on first use and cached.

    Code is loaded only from where no one else can have put it. The cache
    folder (:func:`_cache_dir`, made with mode 0o700) and the library file in
    it must be owned by the current user and writable by neither group nor
    others (:func:`_unsafe`). An untrusted library file is compiled again over
    (never loaded); in an untrusted folder nothing is read or written, and the
    kernels are compiled into a private temporary folder for this process
    instead (a warning says how to fix the folder). The file name hashes the
    source, the flags, the CPU features and the compiler (path and version).

    Raises
    ------
    OSError
        Where there is no C compiler or it fails; the message says which.
    """
    compiler = _compiler()
    if compiler is None:
        raise OSError("no C compiler found (cc, gcc or $CC)")
    name = _kernel_name(compiler)
    folder = _trusted_cache_folder()
    try:
        return _load_from_cache(folder, name, compiler) if folder is not None else _load_private(name, compiler)
    except FileNotFoundError as exc:
        if exc.filename != compiler:
            raise
        raise OSError(f"C compiler {compiler} not found") from exc


def _installed_path() -> Path:
    """Where ``pip install`` puts the library built at install time (setup.py): beside this module."""
    return Path(__file__).with_name(INSTALLED_LIBRARY)


def _source_hash() -> str:
    """The first 16 hex digits of the SHA-256 of the C source (what setup.py builds into the library)."""
    return hashlib.sha256(_C_SOURCE.encode()).hexdigest()[:16]


def _built_at_install() -> ctypes.CDLL:
    """The library built when cdi-dip was installed (portable ``-O3``), when it was built from this source.

    It lies beside the package's Python code, which is trusted as much (no
    ownership check: a shared install belongs to someone else).

    Raises
    ------
    OSError
        Where it is missing (no compiler at install time), cannot be loaded,
        or was built from another version of the source.
    """
    path = _installed_path()
    if not path.is_file():
        raise OSError(f"no library built at install time ({path.name} is not beside {Path(__file__).name})")
    library = ctypes.CDLL(str(path))
    try:
        built_from = (ctypes.c_char * 17).in_dll(library, "cdi_source_hash").value.decode()
    except ValueError:  # symbol missing
        built_from = "unknown"
    if built_from != _source_hash():
        raise OSError(f"the library built at install time ({path}) is from another source: reinstall cdi-dip")
    return library


def _declare(library: ctypes.CDLL) -> ctypes.CDLL:
    """``library`` with the argument types of its two kernels declared."""
    pointer, size = ctypes.c_void_p, ctypes.c_int64
    library.cdi_modulus.argtypes = [pointer, pointer, pointer, size, ctypes.c_float]
    library.cdi_modulus.restype = None
    library.cdi_update.argtypes = [pointer, pointer, pointer, size, ctypes.c_float, ctypes.c_float, ctypes.c_int]
    library.cdi_update.restype = None
    return library


@dataclass(frozen=True)
class Kernels:
    """The C kernels this process uses, or None, and where they come from.

    Attributes
    ----------
    library : ctypes.CDLL or None
        None where neither build works: torch operations then.
    description : str
        ``"c (compiled here)"``, ``"c (built at install)"`` or
        ``"torch (no C kernels: <why>)"``, as runs record it.
    """

    library: ctypes.CDLL | None
    description: str


SLOWER_WARNING = ("the fused C kernels are unavailable ({why}): the CPU projection solvers use torch operations "
                  "instead, so each iteration is slower (docs/speed.md). To fix it, "
                  "install a C compiler (e.g. gcc) and reinstall cdi-dip, or set CC to a working C compiler")
"""The warning of a run without C kernels (``{why}``: what failed)."""


@functools.lru_cache(maxsize=1)
def _load_c_library() -> Kernels:
    """The C kernels of this process, found once: compiled here, else built at install time, else none.

    The library compiled for this machine (:func:`_compiled_here`) is the
    fastest; the one built at install time (:func:`_built_at_install`) is
    portable; without either the torch operations are used, with a warning
    (:data:`SLOWER_WARNING`) since each iteration is then slower.
    """
    try:
        return Kernels(_declare(_compiled_here()), "c (compiled here)")
    except OSError as exc:
        here = str(exc)[:200]
    log.debug("fused C kernels not compiled here (%s): trying the library built at install time", here)
    try:
        return Kernels(_declare(_built_at_install()), "c (built at install)")
    except OSError as exc:
        installed = str(exc)[:200]
    why = f"{here}; {installed}"
    log.warning(SLOWER_WARNING.format(why=why))
    return Kernels(None, f"torch (no C kernels: {why})")


@functools.lru_cache(maxsize=4)
def _pool_of_process(pid: int, threads: int) -> ThreadPoolExecutor:
    del pid  # a key only: a forked child must not use its parent's pool, whose threads it does not have
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="cdi-dip-fused")


def _pool(threads: int) -> ThreadPoolExecutor:
    """Worker threads of this process for the C kernels (ctypes releases the GIL while they run)."""
    return _pool_of_process(os.getpid(), threads)


def _check_c_operand(tensor: torch.Tensor, dtype: torch.dtype) -> None:
    if not (tensor.is_cpu and tensor.dtype == dtype and tensor.is_contiguous()):
        raise ValueError(f"the C kernels need contiguous {dtype} CPU tensors, got {tensor.dtype} on "
                         f"{tensor.device} (contiguous: {tensor.is_contiguous()})")


class CBackend(Backend):
    """The fused steps as two C loops (CPU), split over ``torch.get_num_threads()`` threads."""

    name = "c"

    def __init__(self, library: ctypes.CDLL, description: str = "c"):
        self._library = library
        self.description = description

    @staticmethod
    def _run(function, n: int, pointers: tuple[int, ...], item_bytes: tuple[int, ...], scalars: tuple) -> None:
        """``function(*pointers, n, *scalars)`` over ``[0, n)``, in one chunk per thread for large ``n``.

        Waits for every chunk even when interrupted (Ctrl-C), so that no thread
        writes into memory the caller has let go of.
        """
        threads = min(torch.get_num_threads(), n // MIN_CHUNK)
        if threads <= 1:
            function(*pointers, n, *scalars)
            return

        def chunk(start: int, stop: int) -> tuple:
            return (*(pointer + start * size for pointer, size in zip(pointers, item_bytes)), stop - start, *scalars)

        bounds = [n * k // threads // 64 * 64 for k in range(threads)] + [n]
        futures: list[Future] = [_pool(threads).submit(function, *chunk(bounds[k], bounds[k + 1]))
                                 for k in range(1, threads)]
        interrupted = None
        try:
            function(*chunk(bounds[0], bounds[1]))
        finally:
            for future in futures:
                while True:
                    try:
                        future.result()
                        break
                    except KeyboardInterrupt as exc:  # finish the chunk, then stop
                        interrupted = exc
            if interrupted is not None:
                raise interrupted

    def project_modulus_(self, field: torch.Tensor, target: ModulusTarget) -> torch.Tensor:
        _check_c_operand(field, torch.complex64)
        self._run(self._library.cdi_modulus, field.numel(),
                  (field.data_ptr(), target.amplitude.data_ptr(), target.valid.data_ptr()), (8, 4, 1), (EPS,))
        return field

    def update_(self, projected, obj, support, coefficients, positivity):
        _check_c_operand(projected, torch.complex64)
        _check_c_operand(obj, torch.complex64)
        _check_c_operand(support, torch.bool)
        self._run(self._library.cdi_update, projected.numel(), (projected.data_ptr(), obj.data_ptr(), support.data_ptr()),
                  (8, 8, 1), (*coefficients, positivity))
        return projected


KERNEL_CHOICES = ("auto", "c", "torch")
"""Values of ``CDI_DIP_KERNELS`` (and of ``select_backend``'s ``choice``)."""


def _kernel_choice(choice: str | None) -> str:
    """``choice``, else ``$CDI_DIP_KERNELS``, else ``"auto"``, checked against :data:`KERNEL_CHOICES`."""
    from_environment = not choice
    text = choice or os.environ.get("CDI_DIP_KERNELS") or "auto"
    value = text.strip().lower()
    if value not in KERNEL_CHOICES:
        allowed = ", ".join(KERNEL_CHOICES)
        if from_environment:
            raise InvalidInputError(f"environment variable CDI_DIP_KERNELS={text!r}: set it to one of {allowed}, "
                                    "or unset it")
        raise InvalidInputError(f"fused kernels {text!r}: choose one of {allowed}")
    return value


def select_backend(device: torch.device, choice: str | None = None) -> Backend:
    """The fused-step implementation for ``device``.

    Parameters
    ----------
    device : torch.device
    choice : {"auto", "c", "torch"}, optional
        Default: the environment variable ``CDI_DIP_KERNELS``, else ``"auto"``
        (the C kernels on CPU: compiled here, else built at install time;
        torch operations otherwise, with a warning on CPU). ``"c"`` on a GPU
        falls back to torch.

    Returns
    -------
    Backend

    Raises
    ------
    InvalidInputError
        For any other choice, naming the environment variable when it came from there.
    """
    choice = _kernel_choice(choice)
    if device.type != "cpu":
        return TorchBackend(f"torch ({device.type})")
    if choice == "torch":
        return TorchBackend("torch (chosen)")
    kernels = _load_c_library()
    if kernels.library is None:
        return TorchBackend(kernels.description)
    return CBackend(kernels.library, kernels.description)


__all__ = [
    "Backend",
    "CBackend",
    "Kernels",
    "ModulusTarget",
    "TorchBackend",
    "outside_coefficients",
    "positivity_mode",
    "select_backend",
]
