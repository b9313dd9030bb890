"""The learned initialiser's network: measured intensity in, complex object out, 2D or 3D.

A network asked to invert ``Y = |F X|**2`` directly must learn a global
transform (every detector pixel depends on every object voxel). This one
starts from what the data gives in object space without any phase: the
*autocorrelation* ``A = F^-1 Y`` (``X`` correlated with itself, twice the
object's extent). A U-Net (Ronneberger et al., MICCAI 2015) maps the
normalised autocorrelation to the object, whose support is a part of the
autocorrelation's (seed 001/002 of ``../shared/seeds``: the symmetries of the
problem are broken by the training loss, :mod:`.losses`, not by the input).

Input channels (frame shape, centred): ``Re A``, ``Im A`` and ``|A|``, each
divided by ``A(0)`` (the total counts), with excluded pixels set to zero in
``Y`` first. Output: two channels (real and imaginary part) on the frame,
zero outside the central *object box* (``box_fraction`` of the frame per
axis), in arbitrary units: :func:`scale_to_counts` gives it the data's scale.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..physics import FarField

INPUT_CHANNELS = 3
_NEGATIVE_SLOPE = 0.1


@dataclass(frozen=True)
class Architecture:
    """What builds a :class:`PhaseNet`; stored in every model file.

    Attributes
    ----------
    dim : int
        2 or 3.
    size : int
        Frame size per axis the network was trained on, pixels (frames of
        other sizes are resampled, :mod:`.resample`).
    width : int
        Channels of the first level (doubled at every level down).
    depth : int
        Levels of down-sampling; ``size`` must be divisible by ``2**depth``.
    box_fraction : float
        Object box per axis, as a fraction of the frame.
    """

    dim: int = 2
    size: int = 128
    width: int = 16
    depth: int = 4
    box_fraction: float = 0.5

    def validate(self) -> None:
        """Raise ValueError on an architecture that cannot be built."""
        if self.dim not in (2, 3):
            raise ValueError(f"dim {self.dim}: give 2 or 3")
        if self.depth < 1 or self.width < 1:
            raise ValueError(f"depth {self.depth}, width {self.width}: give at least 1")
        if self.size < 2 ** (self.depth + 1) or self.size % 2 ** self.depth:
            raise ValueError(f"size {self.size} must be a multiple of 2**depth = {2 ** self.depth} "
                             "and at least twice that")
        if not 0.1 <= self.box_fraction <= 1.0:
            raise ValueError(f"box_fraction {self.box_fraction}: give 0.1 to 1")

    @property
    def frame(self) -> tuple[int, ...]:
        return (self.size,) * self.dim

    @property
    def box(self) -> tuple[int, ...]:
        """The object box per axis, pixels (even, at least 2)."""
        side = max(2, 2 * int(round(self.size * self.box_fraction / 2)))
        return (side,) * self.dim

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> Architecture:
        """Raises ValueError (unknown keys) or TypeError (wrong types) on a bad record."""
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown architecture keys {sorted(unknown)}")
        arch = cls(**{key: type(getattr(cls, key))(value) for key, value in values.items()})
        arch.validate()
        return arch


def _conv(dim: int, cin: int, cout: int, *, stride: int = 1) -> nn.Module:
    cls = nn.Conv2d if dim == 2 else nn.Conv3d
    return cls(cin, cout, 3, stride=stride, padding=1)


def _block(dim: int, cin: int, cout: int) -> nn.Sequential:
    """Two 3-wide convolutions with group normalisation and leaky ReLU."""
    return nn.Sequential(_conv(dim, cin, cout), nn.GroupNorm(min(4, cout), cout), nn.LeakyReLU(_NEGATIVE_SLOPE),
                         _conv(dim, cout, cout), nn.GroupNorm(min(4, cout), cout), nn.LeakyReLU(_NEGATIVE_SLOPE))


class PhaseNet(nn.Module):
    """U-Net from the autocorrelation channels to the object's real and imaginary parts.

    Parameters
    ----------
    arch : Architecture
    """

    def __init__(self, arch: Architecture):
        super().__init__()
        arch.validate()
        self.arch = arch
        dim, width = arch.dim, arch.width
        channels = [width * 2 ** level for level in range(arch.depth + 1)]
        self.stem = _block(dim, INPUT_CHANNELS, channels[0])
        self.down = nn.ModuleList(_conv(dim, channels[i], channels[i], stride=2) for i in range(arch.depth))
        self.encode = nn.ModuleList(_block(dim, channels[i], channels[i + 1]) for i in range(arch.depth))
        self.decode = nn.ModuleList(_block(dim, channels[i + 1] + channels[i], channels[i])
                                    for i in reversed(range(arch.depth)))
        self.head = (nn.Conv2d if dim == 2 else nn.Conv3d)(channels[0], 2, 1)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.register_buffer("box_mask", _box_mask(arch), persistent=False)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """The object on the frame, zero outside the box.

        Parameters
        ----------
        features : torch.Tensor, float32, shape (batch, 3, *frame)
            :func:`autocorrelation_features`.

        Returns
        -------
        torch.Tensor, complex64, shape (batch, *frame), centred
        """
        skips = []
        x = self.stem(features)
        for down, encode in zip(self.down, self.encode):
            skips.append(x)
            x = encode(down(x))
        for decode in self.decode:
            x = decode(torch.cat([self.upsample(x), skips.pop()], dim=1))
        out = self.head(x)
        return torch.complex(out[:, 0], out[:, 1]) * self.box_mask


def _box_mask(arch: Architecture) -> torch.Tensor:
    """1 inside the centred object box, 0 outside (float32, frame shape)."""
    mask = torch.zeros(arch.frame)
    index = tuple(slice(n // 2 - b // 2, n // 2 - b // 2 + b) for n, b in zip(arch.frame, arch.box))
    mask[index] = 1.0
    return mask


def autocorrelation_features(counts: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """The network's input: the measured autocorrelation, normalised, in three channels.

    Parameters
    ----------
    counts : torch.Tensor, real, shape (batch, *frame), centred
        Photons.
    valid : torch.Tensor, bool, shape (batch, *frame)
        Measured pixels (the others are set to zero).

    Returns
    -------
    torch.Tensor, float32, shape (batch, 3, *frame), centred
        ``Re A / A(0)``, ``Im A / A(0)``, ``|A| / A(0)``.
    """
    physics = FarField(counts.shape[1:])
    measured = torch.where(valid, counts.float().clamp_min(0), torch.zeros((), device=counts.device))
    auto = physics.inverse(measured.to(torch.complex64))
    centre = tuple(n // 2 for n in physics.shape)
    origin = auto[(slice(None), *centre)].abs().clamp_min(1e-12)
    auto = auto / origin.reshape((-1,) + (1,) * physics.ndim)
    return torch.stack([auto.real, auto.imag, auto.abs()], dim=1).float()


def scale_to_counts(obj: torch.Tensor, counts: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``obj`` times the scalar that best fits its Fourier magnitudes to ``sqrt(counts)`` on ``valid`` pixels.

    ``s = sum sqrt(n) |F x| / sum |F x|**2`` (least squares on the
    amplitudes), per batch item.

    Parameters
    ----------
    obj : torch.Tensor, complex, shape (batch, *frame), centred
    counts : torch.Tensor, real, shape (batch, *frame)
    valid : torch.Tensor, bool, shape (batch, *frame)

    Returns
    -------
    torch.Tensor, complex, shape (batch, *frame)
    """
    physics = FarField(obj.shape[1:])
    magnitude = physics.magnitude(obj)
    weights = valid.to(magnitude.dtype)
    dims = tuple(range(1, obj.ndim))
    numerator = (counts.clamp_min(0).sqrt() * magnitude * weights).sum(dim=dims)
    denominator = (magnitude.square() * weights).sum(dim=dims).clamp_min(1e-20)
    scale = (numerator / denominator).detach()
    return obj * scale.reshape((-1,) + (1,) * (obj.ndim - 1))


def count_parameters(module: nn.Module) -> int:
    """Trainable parameters of a module."""
    return sum(p.numel() for p in module.parameters())


__all__ = ["INPUT_CHANNELS", "Architecture", "PhaseNet", "autocorrelation_features", "count_parameters",
           "scale_to_counts"]
