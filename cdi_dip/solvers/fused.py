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

- ``"c"`` (CPU only): two loops of C, compiled once per machine with the
  system C compiler (``$CC``, else ``cc``/``gcc``; ``-O3 -march=native``),
  cached under ``$CDI_DIP_CACHE`` (default ``~/.cache/cdi-dip``, mode 0o700;
  a folder or file that someone else owns or can write is never loaded
  from, see :func:`_load_c_library`) and called through :mod:`ctypes` on
  the tensors' memory. ctypes releases the GIL, so
  large arrays are split over ``torch.get_num_threads()`` Python threads.
- ``"torch"`` (any device): a few in-place torch operations on kept
  scratch frames.

``CDI_DIP_KERNELS=auto|c|torch`` overrides the choice (``auto``: C on CPU when
it compiles, torch otherwise). docs/speed.md has the measurements.
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

_C_SOURCE = r"""
#include <stdint.h>
#include <math.h>

/* field <- amp / max(|field|, eps) * field where valid; unchanged elsewhere. |field| is sqrtf(re^2 + im^2)
   in single precision (vectorised): within an ulp of torch.abs, which rounds hypot from double precision,
   at less than half the cost (a double sqrt made this pass cost twice a copy of the frame). */
void cdi_modulus(float *restrict f, const float *restrict amp, const uint8_t *restrict valid,
                 int64_t n, float eps) {
    for (int64_t i = 0; i < n; i++) {
        float re = f[2 * i], im = f[2 * i + 1];
        float magnitude = sqrtf(re * re + im * im);
        magnitude = magnitude < eps ? eps : magnitude;  /* clamp_min: NaN stays NaN */
        float s = valid[i] ? amp[i] / magnitude : 1.0f;
        f[2 * i] = re * s;
        f[2 * i + 1] = im * s;
    }
}

/* p <- p inside the support, a x + b p outside (0 when a = b = 0): the new iterate, in place.
   Every load comes first and every choice is a select, so that the loops vectorise. */
void cdi_update(float *restrict p, const float *restrict x, const uint8_t *restrict support,
                int64_t n, float a, float b, int positivity) {
    if (positivity == 1) {          /* ER with Re x >= 0: clip inside (NaN stays NaN, as clamp_min), zero outside */
        for (int64_t i = 0; i < n; i++) {
            float pr = p[2 * i], pi = p[2 * i + 1];
            int s = support[i];
            float clipped = pr < 0.0f ? 0.0f : pr;
            p[2 * i] = s ? clipped : 0.0f;
            p[2 * i + 1] = s ? pi : 0.0f;
        }
    } else if (a == 0.0f && b == 0.0f) {  /* ER */
        for (int64_t i = 0; i < n; i++) {
            float pr = p[2 * i], pi = p[2 * i + 1];
            int s = support[i] & (positivity != 2 | pr >= 0.0f);
            p[2 * i] = s ? pr : 0.0f;
            p[2 * i + 1] = s ? pi : 0.0f;
        }
    } else {                        /* HIO, RAAR; with Re x >= 0, Re p < 0 counts as outside */
        const int negative_outside = positivity == 2;
        for (int64_t i = 0; i < n; i++) {
            float pr = p[2 * i], pi = p[2 * i + 1];
            float xr = x[2 * i], xi = x[2 * i + 1];
            int s = support[i] & (!negative_outside | pr >= 0.0f);
            float outside_r = a * xr + b * pr, outside_i = a * xi + b * pi;
            p[2 * i] = s ? pr : outside_r;
            p[2 * i + 1] = s ? pi : outside_i;
        }
    }
}
"""


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
    """The two fused steps on one device; see :class:`TorchBackend` and :class:`CBackend`."""

    name: str

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

    def __init__(self) -> None:
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


@functools.lru_cache(maxsize=1)
def _load_c_library() -> ctypes.CDLL | None:
    """The compiled kernels, built on first use; None where no compiler works (logged).

    Code is loaded only from where no one else can have put it. The cache
    folder (:func:`_cache_dir`, made with mode 0o700) and the library file in
    it must be owned by the current user and writable by neither group nor
    others (:func:`_unsafe`). An untrusted library file is compiled again over
    (never loaded); in an untrusted folder nothing is read or written, and the
    kernels are compiled into a private temporary folder for this process
    instead (a warning says how to fix the folder). The file name hashes the
    source, the flags, the CPU features and the compiler (path and version).
    """
    compiler = _compiler()
    if compiler is None:
        log.info("fused C kernels unavailable (no C compiler found; set CC): using torch operations")
        return None
    try:
        name = _kernel_name(compiler)
        folder = _trusted_cache_folder()
        library = _load_from_cache(folder, name, compiler) if folder is not None else _load_private(name, compiler)
    except OSError as exc:
        log.info("fused C kernels unavailable (%s): using torch operations", exc)
        return None
    pointer, size = ctypes.c_void_p, ctypes.c_int64
    library.cdi_modulus.argtypes = [pointer, pointer, pointer, size, ctypes.c_float]
    library.cdi_modulus.restype = None
    library.cdi_update.argtypes = [pointer, pointer, pointer, size, ctypes.c_float, ctypes.c_float, ctypes.c_int]
    library.cdi_update.restype = None
    return library


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

    def __init__(self, library: ctypes.CDLL):
        self._library = library

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
        (the C kernels on CPU when they compile, torch operations otherwise).
        ``"c"`` on a GPU falls back to torch.

    Returns
    -------
    Backend

    Raises
    ------
    InvalidInputError
        For any other choice, naming the environment variable when it came from there.
    """
    choice = _kernel_choice(choice)
    if choice != "torch" and device.type == "cpu":
        library = _load_c_library()
        if library is not None:
            return CBackend(library)
    return TorchBackend()


__all__ = [
    "Backend",
    "CBackend",
    "ModulusTarget",
    "TorchBackend",
    "outside_coefficients",
    "positivity_mode",
    "select_backend",
]
