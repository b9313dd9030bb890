"""Build the fused C kernels (cdi_dip/solvers/fused_kernels.c) at install time; the rest is in pyproject.toml.

The kernels are plain C with no Python API, loaded at run time with ctypes
(cdi_dip/solvers/fused.py), so they are built as a plain shared library
``cdi_dip/solvers/libcdi_dip_fused.so`` rather than as a Python extension
module. Portable flags (``-O3``, no ``-march=native``): a wheel or a shared
install may move between nodes; where a compiler works at run time, the
kernels are compiled again for the machine. The build is optional: an
install without a C compiler (or with ``CC`` naming none) still succeeds,
and a run then warns that it uses the slower torch operations.
"""

import hashlib
import os
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

KERNELS = "cdi_dip.solvers.libcdi_dip_fused"
"""The library's dotted name; cdi_dip.solvers.fused.INSTALLED_LIBRARY is its file name."""

SOURCE = Path("cdi_dip", "solvers", "fused_kernels.c")

GCC_FLAGS = ["-O3", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math"]
"""Those of the run-time build less ``-march=native`` (no fused multiply-adds: the kernels round as the torch
expressions they are tested against)."""


def source_hash(path: Path) -> str:
    """The first 16 hex digits of the SHA-256 of the C source (compared at run time with the shipped source)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


class BuildKernels(build_ext):
    """``build_ext`` that builds the kernels as a plain shared library: no ``PyInit`` needed or exported."""

    def get_ext_filename(self, fullname):
        """``libcdi_dip_fused.so`` for the kernels (no Python ABI tag: not a module), the usual name otherwise."""
        if fullname.split(".")[-1] == KERNELS.split(".")[-1]:  # distutils asks for the last part alone too
            return os.path.join(*fullname.split(".")) + ".so"
        return super().get_ext_filename(fullname)

    def get_export_symbols(self, ext):
        """The kernels' own functions (the default adds ``PyInit_<name>``, which a plain library lacks)."""
        if ext.name == KERNELS:
            return ext.export_symbols
        return super().get_export_symbols(ext)

    def build_extension(self, ext):
        """Add the optimisation flags where the compiler takes GCC's (gcc, clang; not MSVC)."""
        if ext.name == KERNELS and self.compiler.compiler_type == "unix":
            ext.extra_compile_args = [*ext.extra_compile_args, *GCC_FLAGS]
        super().build_extension(ext)


kernels = Extension(
    KERNELS,
    sources=[str(SOURCE)],
    define_macros=[("CDI_DIP_SOURCE_HASH", f'"{source_hash(SOURCE)}"')],
    export_symbols=["cdi_modulus", "cdi_update", "cdi_source_hash"],
    optional=True,  # no compiler: the install still succeeds, and the kernels fall back at run time
)

setup(ext_modules=[kernels], cmdclass={"build_ext": BuildKernels})
