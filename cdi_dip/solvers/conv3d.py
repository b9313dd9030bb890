"""3D convolutions that run oneDNN's kernels on a CPU whatever the size of their input.

PyTorch sends a CPU ``float32`` convolution, forward and backward, to oneDNN
(MKL-DNN) only where its heuristic expects that to pay: for a batch of one and
a 3-wide kernel, only where ``channels * depth * height`` of the (padded)
input exceeds :data:`NATIVE_UP_TO` (``use_mkldnn`` in ATen's
``Convolution.cpp``). Below that a 3D convolution takes ATen's native
``slow_conv3d`` (unfold and matrix product), which barely gains from a second
thread. The double DIP's generators draw on small boxes: at 32 channels every
level under about 25 voxels per axis falls below the heuristic, which is every
level of the box of a frame up to about 48 voxels per axis. A batch of two
always takes oneDNN, and there one convolution of two samples, forward and
backward, took less than half the time of the native one of one sample (32
channels, 10-22 voxels per axis, 2 threads, 2026-12-06, docs/speed.md).

:class:`CpuConv3d` is an ``nn.Conv3d`` that, for a ``float32`` batch of one on
a CPU below the heuristic's size (with oneDNN built in and enabled,
``torch.backends.mkldnn``), convolves the sample beside a sample of zeros and
keeps the first output: oneDNN's kernels forward and backward, the second
sample contributing nothing to any gradient. Everything else (CUDA, other
dtypes, batches, large inputs, a build without oneDNN) takes PyTorch's own
dispatch. The two agree to float32 rounding.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

NATIVE_UP_TO = 20480
"""PyTorch's CPU convolution of a batch of one with a 3-wide kernel takes the native kernel while
``channels * depth * height`` of its (padded) input is at most this (ATen ``use_mkldnn``, PyTorch 2.x)."""


def onednn_usable(tensor: torch.Tensor) -> bool:
    """Whether oneDNN's convolution can take ``tensor``: float32 on a CPU, oneDNN built in and enabled."""
    return (tensor.device.type == "cpu" and tensor.dtype == torch.float32
            and torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled)


def takes_native_kernel(padded_shape: tuple[int, ...]) -> bool:
    """Whether PyTorch would convolve a float32 input of this (padded) shape ``(N, C, D, H, W)`` with a 3-wide
    kernel by its native CPU kernel."""
    return padded_shape[0] == 1 and math.prod(padded_shape[1:4]) <= NATIVE_UP_TO


class CpuConv3d(nn.Conv3d):
    """``nn.Conv3d`` with oneDNN's kernels on a CPU at every input size (see the module text).

    Same parameters, state dict and results (to float32 rounding) as ``nn.Conv3d``.
    """

    @property
    def _pairable(self) -> bool:
        """The heuristic's case: no groups and a kernel at most 3 wide in its last two axes (wider ones and
        grouped convolutions take oneDNN anyway)."""
        return self.groups == 1 and max(self.kernel_size[1:]) <= 3

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor,
                      bias: torch.Tensor | None) -> torch.Tensor:
        if not onednn_usable(input) or isinstance(self.padding, str):
            return super()._conv_forward(input, weight, bias)
        if self.padding_mode != "zeros":
            input = F.pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            padding: tuple[int, ...] = (0, 0, 0)
        else:
            padding = tuple(self.padding)
        padded_shape = tuple(input.shape[:2]) + tuple(n + 2 * p for n, p in zip(input.shape[2:], padding))
        if not self._pairable or not takes_native_kernel(padded_shape):
            return F.conv3d(input, weight, bias, self.stride, padding, self.dilation, self.groups)
        pair = torch.cat((input, torch.zeros_like(input)))
        return F.conv3d(pair, weight, bias, self.stride, padding, self.dilation, self.groups)[:1]


@contextlib.contextmanager
def pytorch_dispatch() -> Iterator[None]:
    """Within it every :class:`CpuConv3d` convolves as ``nn.Conv3d`` does (PyTorch's own choice of kernel): the
    baseline of ``benchmarks/speed_dip.py``. Not thread-safe: it swaps a class method."""
    own = CpuConv3d._conv_forward
    CpuConv3d._conv_forward = nn.Conv3d._conv_forward  # type: ignore[method-assign]
    try:
        yield
    finally:
        CpuConv3d._conv_forward = own  # type: ignore[method-assign]


__all__ = ["NATIVE_UP_TO", "CpuConv3d", "onednn_usable", "pytorch_dispatch", "takes_native_kernel"]
