"""Untrained convolutional generators for the double deep image prior, 2D and 3D.

A :class:`Generator` is a deep-decoder-like network (Heckel & Hand, ICLR 2019;
Ulyanov et al., *Deep image prior*, IJCV 2020): a fixed random input on a
coarse grid, ``depth`` blocks of ``[conv, norm, LeakyReLU, upsample about x2]`` and a
full-resolution ``[conv, norm, LeakyReLU, 1x1 conv]`` head. The same code
builds ``Conv2d`` or ``Conv3d`` layers from the length of the output shape.

:class:`DoubleDip` combines two generators into one complex object
(Zhuang et al., *Practical phase retrieval using double deep image priors*,
Electronic Imaging 2023):

- ``mag-phase`` (crystals): ``X = s * sigmoid(G1) * exp(i * phi)`` where the
  phase ``phi`` comes from ``G2`` through a *unit phasor* head (two channels
  ``(c, s)`` normalised to ``(c + i s) / |c + i s|``), which can represent a
  dislocation's phase vortex, or through ``pi * tanh(G2)``;
- ``real-imag`` (specimens): ``X = s * (softplus(G1) + i * G2)``, so that
  ``Re X >= 0``.

``s`` is one learned scale (stored as its logarithm) that the solver sets so
that the initial total power matches the measured one.

All weights and inputs are drawn from a passed :class:`torch.Generator`, never
from the global random state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ..config import DipParam
from .conv3d import CpuConv3d

PHASE_HEADS = ("unit", "tanh")
"""Phase heads of the ``mag-phase`` parameterisation."""

_KERNEL_SIZE = 3
_NEGATIVE_SLOPE = 0.2
_INPUT_SCALE = 1.0
"""Fixed random inputs are uniform on ``[0, _INPUT_SCALE)``."""


def _conv(ndim: int, in_channels: int, out_channels: int, kernel_size: int) -> nn.Module:
    # 3-wide 3D kernels take oneDNN on a CPU at every size (cdi_dip.solvers.conv3d); 2D ones gain nothing from it.
    cls = nn.Conv2d if ndim == 2 else (CpuConv3d if kernel_size > 1 else nn.Conv3d)
    return cls(in_channels, out_channels, kernel_size, padding=kernel_size // 2,
               padding_mode="reflect" if kernel_size > 1 else "zeros", device="meta")


def _norm(ndim: int, channels: int) -> nn.Module:
    # Batch statistics of a batch of one = per-channel normalisation over space.
    cls = nn.BatchNorm2d if ndim == 2 else nn.BatchNorm3d
    return cls(channels, track_running_stats=False, device="meta")


def _upsample(size: tuple[int, ...]) -> nn.Module:
    return nn.Upsample(size=size, mode="bilinear" if len(size) == 2 else "trilinear", align_corners=False)


def level_shapes(out_shape: Sequence[int], depth: int) -> list[tuple[int, ...]]:
    """Spatial shape of every level of a generator, from its input to its output.

    Level ``k`` (0 the input, ``depth`` the output) has ``ceil(n / 2**(depth - k))``
    pixels per axis, at least 2 (reflection padding needs 2), and the output
    exactly ``out_shape``: each upsampling about doubles the grid, and no
    layer works on pixels that are cropped away. Where ``n`` is a multiple of
    ``2**depth`` (at least ``2**(depth + 1)``) every step is an exact doubling.

    Parameters
    ----------
    out_shape : sequence of int
        Output shape, pixels per axis.
    depth : int
        Upsampling steps.

    Returns
    -------
    list of tuple of int
        ``depth + 1`` shapes.
    """
    out = tuple(int(n) for n in out_shape)
    levels = [tuple(max(2, math.ceil(n / 2 ** (depth - k))) for n in out) for k in range(depth)]
    return levels + [out]


class Generator(nn.Module):
    """Deep-decoder-like generator ``G(z)`` of a fixed random input ``z``.

    Parameters
    ----------
    out_shape : sequence of int
        Spatial output shape, ``(ny, nx)`` or ``(nz, ny, nx)`` (pixels).
    out_channels : int
        Channels of the output.
    channels : int
        Channels of every hidden layer.
    depth : int
        Number of upsampling blocks; the input grid is about ``out_shape / 2**depth``
        (:func:`level_shapes`).
    generator : torch.Generator
        CPU generator for the input and the initial weights.
    device : torch.device or str
        Where the parameters live.

    Notes
    -----
    ``forward()`` takes no argument and returns ``(1, out_channels, *out_shape)``.
    Each upsampling goes to the next of :func:`level_shapes`, so the last
    layers work on ``out_shape`` itself. (Until 2026-12-05 every step doubled
    the grid and the output was cropped: a 12^3 object was drawn on 32^3,
    19 times the voxels, which made small 3D fits as slow as 64^3 ones.)
    """

    def __init__(self, out_shape: Sequence[int], out_channels: int, *, channels: int, depth: int,
                 generator: torch.Generator, device: torch.device | str = "cpu"):
        super().__init__()
        self.out_shape = tuple(int(n) for n in out_shape)
        ndim = len(self.out_shape)
        if ndim not in (2, 3):
            raise ValueError(f"Generator needs a 2D or 3D output shape, got {self.out_shape}")
        levels = level_shapes(self.out_shape, depth)
        layers: list[nn.Module] = []
        for level in levels[1:]:
            layers += [_conv(ndim, channels, channels, _KERNEL_SIZE), _norm(ndim, channels),
                       nn.LeakyReLU(_NEGATIVE_SLOPE), _upsample(level)]
        layers += [_conv(ndim, channels, channels, _KERNEL_SIZE), _norm(ndim, channels),
                   nn.LeakyReLU(_NEGATIVE_SLOPE), _conv(ndim, channels, out_channels, 1)]
        self.body = nn.Sequential(*layers)
        self.to_empty(device=device)
        self._initialise(generator)
        z = torch.rand((1, channels, *levels[0]), generator=generator) * _INPUT_SCALE
        self.register_buffer("z", z.to(device))

    @torch.no_grad()
    def _initialise(self, generator: torch.Generator) -> None:
        """PyTorch's default initialisation (uniform, bound ``1/sqrt(fan_in)``), from ``generator``."""
        for module in self.body:
            if isinstance(module, (nn.Conv2d, nn.Conv3d)):
                fan_in = module.weight[0].numel()
                bound = 1.0 / math.sqrt(fan_in)
                for tensor in (module.weight, module.bias):
                    values = torch.rand(tensor.shape, generator=generator) * (2 * bound) - bound
                    tensor.copy_(values)
            elif isinstance(module, (nn.BatchNorm2d, nn.BatchNorm3d)):
                module.weight.fill_(1.0)
                module.bias.zero_()

    def forward(self) -> torch.Tensor:
        return self.body(self.z)


class DoubleDip(nn.Module):
    """Two generators combined into one complex object of shape ``object_shape``.

    Parameters
    ----------
    object_shape : sequence of int
        Spatial shape of the object (half the detector frame per axis).
    param : DipParam
        ``mag-phase`` or ``real-imag``.
    channels, depth : int
        Size of each generator (see :class:`Generator`).
    generator : torch.Generator
        CPU generator for both networks' inputs and weights.
    device : torch.device or str
    phase_head : {"unit", "tanh"}
        Phase head of ``mag-phase``: a normalised two-channel phasor, or
        ``pi * tanh``. Ignored for ``real-imag``.
    autocast : bool
        Run the convolutions in bfloat16 autocast (CUDA only); the object is
        always returned in complex64.
    """

    def __init__(self, object_shape: Sequence[int], param: DipParam, *, channels: int, depth: int,
                 generator: torch.Generator, device: torch.device | str = "cpu",
                 phase_head: str = "unit", autocast: bool = False):
        super().__init__()
        if phase_head not in PHASE_HEADS:
            raise ValueError(f"phase_head must be one of {PHASE_HEADS}, got {phase_head!r}")
        self.param = DipParam(param)
        self.phase_head = phase_head
        self.autocast = bool(autocast)
        second_channels = 2 if (self.param is DipParam.MAG_PHASE and phase_head == "unit") else 1
        self.g1 = Generator(object_shape, 1, channels=channels, depth=depth, generator=generator, device=device)
        self.g2 = Generator(object_shape, second_channels, channels=channels, depth=depth,
                            generator=generator, device=device)
        self.log_scale = nn.Parameter(torch.zeros((), device=device))

    def parameter_counts(self) -> dict[str, int]:
        """Number of trainable parameters of each generator."""
        return {"g1": sum(p.numel() for p in self.g1.parameters()),
                "g2": sum(p.numel() for p in self.g2.parameters())}

    def raw(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Network outputs in float32, ``(1, c, *object_shape)`` each."""
        device_type = self.log_scale.device.type
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=self.autocast and device_type == "cuda"):
            out1, out2 = self.g1(), self.g2()
        return out1.float(), out2.float()

    def forward(self) -> torch.Tensor:
        """The complex object, complex64, shape ``object_shape``."""
        out1, out2 = self.raw()
        scale = self.log_scale.exp()
        if self.param is DipParam.MAG_PHASE:
            magnitude = scale * torch.sigmoid(out1[0, 0])
            if self.phase_head == "unit":
                c, s = out2[0, 0], out2[0, 1]
                norm = (c.square() + s.square() + 1e-12).rsqrt()
                phasor = torch.complex(c * norm, s * norm)
            else:
                phasor = torch.polar(torch.ones_like(magnitude), math.pi * torch.tanh(out2[0, 0]))
            return magnitude * phasor
        return torch.complex(scale * nn.functional.softplus(out1[0, 0]), scale * out2[0, 0])
