"""How much memory a reconstruction needs, how much a device has free, and refusing at once when it cannot fit.

The pipeline calls :func:`check_memory` with :func:`cdi_dip.solvers.estimate_memory_bytes`
once, before the first run, so that a frame too large for the device fails
in a second with a message saying what to do, not after minutes with an
out-of-memory error (or, on a CPU, with the machine swapping).

The projection estimate counts the arrays the solver holds (bytes per voxel,
below) and its largest transient phase, the metric checkpoint; measured peaks
are in docs/speed.md (``benchmarks/memory_projections.py``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import torch

from .errors import InvalidInputError

GIB = 2.0**30

PROJECTION_HELD_BYTES_PER_VOXEL = 43
"""Arrays held through a projection run, per voxel: the data on the device (counts 4, fit mask 1,
free mask 1), their FFT-order copies and the measured amplitudes (10), the modulus target (amplitude 4,
free-pixel ones 4), the supports (3), the iterate (8) and the best iterate kept for Ctrl-C (8)."""

PROJECTION_PHASE_BYTES_PER_VOXEL = {
    "iteration": 28,  # the FFT output (8) and its inverse (8); the torch kernels' scratch (4 + 8)
    "shrinkwrap": 14,  # magnitude (4), half spectrum (4), kernel (2), blurred (4)
    "initial support": 48,  # autocorrelation and Friedel asymmetry (complex64 and float64 frames)
    "metric checkpoint": 80,  # estimate (8), its FFT (8), model (8), float64 masked copies in the likelihoods
}
"""Transient memory of each phase of a projection run, per voxel; the largest adds to the held arrays."""

ALLOCATOR_SLACK = 1.1
"""Factor for allocator caching and fragmentation (freed blocks kept by the CPU heap or CUDA's cache)."""

FIXED_OVERHEAD_BYTES = 128 * 2**20
"""FFT plans, workspaces and the allocators' own pools, independent of the frame size to first order."""


def estimate_projection_memory_bytes(frame_shape: Sequence[int]) -> int:
    """Peak device memory of one ER, HIO or RAAR run, in bytes.

    Parameters
    ----------
    frame_shape : sequence of int
        Detector frame shape, 2D or 3D.

    Returns
    -------
    int
        ``(held + largest phase) * voxels * ALLOCATOR_SLACK + FIXED_OVERHEAD_BYTES``
        (:data:`PROJECTION_HELD_BYTES_PER_VOXEL`,
        :data:`PROJECTION_PHASE_BYTES_PER_VOXEL`): about 135 bytes per voxel,
        2.25 GiB for a 256^3 frame (1.68 GiB measured on a CPU, docs/speed.md).
    """
    voxels = math.prod(int(n) for n in frame_shape)
    per_voxel = PROJECTION_HELD_BYTES_PER_VOXEL + max(PROJECTION_PHASE_BYTES_PER_VOXEL.values())
    return int(per_voxel * voxels * ALLOCATOR_SLACK + FIXED_OVERHEAD_BYTES)


def _meminfo_available_bytes() -> int | None:
    """``MemAvailable`` of /proc/meminfo (Linux), bytes."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _read_int(path: str) -> int | None:
    try:
        with open(path) as handle:
            text = handle.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _cgroup_available_bytes() -> int | None:
    """Room left under this process's cgroup memory limit (v2, else v1), bytes; None without a limit."""
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        limit, usage = _read_int(limit_file), _read_int(usage_file)
        if limit is not None and usage is not None and limit < 2**60:
            return max(limit - usage, 0)
    return None


def _cpu_available_bytes() -> int | None:
    candidates = [value for value in (_meminfo_available_bytes(), _cgroup_available_bytes()) if value is not None]
    if not candidates:
        try:
            candidates.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            return None
    return min(candidates)


def available_memory_bytes(device: torch.device) -> int | None:
    """Memory a new run could use on ``device`` now, in bytes; None where it cannot be told.

    Parameters
    ----------
    device : torch.device
        ``cpu``: the smaller of the kernel's ``MemAvailable`` and the room left
        under a cgroup limit (a container's); ``cuda:N``: the free device
        memory (:func:`torch.cuda.mem_get_info`) plus what this process's
        CUDA cache holds unused.

    Returns
    -------
    int or None
    """
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int(free + max(cached, 0))
    if device.type == "cpu":
        return _cpu_available_bytes()
    return None


def check_memory(estimate: int, device: torch.device, what: str) -> None:
    """Refuse a run whose estimated memory exceeds what ``device`` has free.

    Parameters
    ----------
    estimate : int
        Bytes the run needs (:func:`cdi_dip.solvers.estimate_memory_bytes`).
    device : torch.device
    what : str
        The run in words, for the message (``"HIO on a 256x256x256 frame"``).

    Raises
    ------
    InvalidInputError
        With one line: needed and free memory and how to make the run fit.
        Nothing is raised when the free memory cannot be told.
    """
    free = available_memory_bytes(device)
    if free is None or estimate <= free:
        return
    fixes = "crop the frame with --max-size N or bin it with --bin 2"
    if device.type == "cuda":
        fixes += ", or run on the host with --device cpu"
    raise InvalidInputError(f"{what} needs about {estimate / GIB:.1f} GiB but {device} has {free / GIB:.1f} GiB "
                            f"free: {fixes}")


__all__ = [
    "available_memory_bytes",
    "check_memory",
    "estimate_projection_memory_bytes",
]
