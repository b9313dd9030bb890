"""What produced a result: software versions and the compute device, recorded in every result."""

from __future__ import annotations

import platform
import sys

import h5py
import numpy as np
import torch

from . import __version__


def software_versions(device: torch.device, kernels: str | None = None) -> dict[str, str]:
    """Versions of cdi-dip and of the libraries that decide its numbers, and the device it ran on.

    Parameters
    ----------
    device : torch.device
    kernels : str, optional
        The elementwise kernels the solver used (``Backend.description`` of
        :mod:`cdi_dip.solvers.fused`, e.g. ``"c (built at install)"``).

    Returns
    -------
    dict of str to str
        ``cdi_dip``, ``python``, ``torch``, ``numpy``, ``h5py``, ``platform``,
        ``device_name`` (the GPU's name, or the CPU's architecture) and, when
        given, ``kernels``.
    """
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        cuda = torch.version.cuda or "unknown"
    else:
        name, cuda = f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)", "none"
    versions = {
        "cdi_dip": __version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cuda": cuda,
        "numpy": np.__version__,
        "h5py": h5py.__version__,
        "platform": platform.platform(),
        "device_name": name,
    }
    if kernels is not None:
        versions["kernels"] = kernels
    return versions
