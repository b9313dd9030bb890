"""Choice of the torch device, passed explicitly everywhere (never global)."""

from __future__ import annotations

import re

import torch

from .errors import InvalidInputError

_DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def resolve_device(spec: str = "auto") -> torch.device:
    """Turn a user's device choice into a :class:`torch.device`.

    Parameters
    ----------
    spec : str
        ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` or
        ``"cuda:N"``.

    Returns
    -------
    torch.device

    Raises
    ------
    InvalidInputError
        For an unknown spelling, or CUDA asked for where there is none.
    """
    spec = spec.strip().lower()
    if not _DEVICE_PATTERN.match(spec):
        raise InvalidInputError(
            f"unknown device {spec!r}: use auto, cpu, cuda or cuda:N"
        )
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InvalidInputError(
                f"device {spec} asked for, but no CUDA GPU is available: "
                "use --device cpu (or auto)"
            )
        index = int(spec.split(":")[1]) if ":" in spec else 0
        if index >= torch.cuda.device_count():
            raise InvalidInputError(
                f"device {spec} asked for, but only {torch.cuda.device_count()} "
                "CUDA device(s) exist: use cuda:0 ..."
            )
        return torch.device("cuda", index)
    return torch.device("cpu")


def make_generator(seed: int, device: torch.device) -> torch.Generator:
    """A seeded random generator living on ``device``."""
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed))
    return gen
