"""Far-field (Fraunhofer) forward model: the only place FFTs and shifts live.

Convention: in memory, detector frames have the zero frequency at the array
centre, and so do objects. :meth:`FarField.forward` therefore wraps the FFT in
``ifftshift``/``fftshift``. Iterative solvers that want to avoid the shifts in
their inner loop move their arrays once into *FFT order* with
:meth:`FarField.to_fft_order` and use :meth:`FarField.fft` /
:meth:`FarField.ifft` directly; objects in FFT order are simply shifted
copies, which the shift symmetry of phase retrieval makes harmless.

The transform is unitary (``norm="ortho"``), so ``sum |F x|^2 = sum |x|^2`` and
the object's scale is that of the square-rooted photon counts.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .time_budget import count_work


class FarField:
    """Oversampled far-field diffraction of a 2D or 3D complex object.

    Parameters
    ----------
    shape : sequence of int
        Detector frame shape, ``(ny, nx)`` or ``(nz, ny, nx)``. The object
        lives in an array of the same shape.

    Notes
    -----
    Intensities are ``|F(X)|**2`` with ``F`` the unitary DFT of the whole frame.
    Arrays passed in may carry leading batch dimensions.
    """

    def __init__(self, shape: Sequence[int]):
        self.shape = tuple(int(n) for n in shape)
        if len(self.shape) not in (2, 3):
            raise ValueError(f"FarField needs a 2D or 3D shape, got {self.shape}")
        self.ndim = len(self.shape)
        self.dims = tuple(range(-self.ndim, 0))

    # -- raw transforms (FFT order) ---------------------------------------
    def fft(self, obj: torch.Tensor) -> torch.Tensor:
        """Unitary FFT over the last ``ndim`` axes, no shifts (FFT order); counted as the reconstruction's work
        (:func:`cdi_dip.time_budget.count_work`)."""
        count_work(obj.numel())
        return torch.fft.fftn(obj, dim=self.dims, norm="ortho")

    def ifft(self, field: torch.Tensor) -> torch.Tensor:
        """Unitary inverse FFT over the last ``ndim`` axes, no shifts; counted as work like :meth:`fft`."""
        count_work(field.numel())
        return torch.fft.ifftn(field, dim=self.dims, norm="ortho")

    def to_fft_order(self, array: torch.Tensor) -> torch.Tensor:
        """Move a centred array (zero frequency / origin at the centre) to FFT order."""
        return torch.fft.ifftshift(array, dim=self.dims)

    def to_centred(self, array: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`to_fft_order`."""
        return torch.fft.fftshift(array, dim=self.dims)

    # -- centred transforms --------------------------------------------------
    def forward(self, obj: torch.Tensor) -> torch.Tensor:
        """Complex far field of a centred object, zero frequency at the centre.

        Parameters
        ----------
        obj : torch.Tensor, complex, shape (..., *shape)

        Returns
        -------
        torch.Tensor, complex, shape (..., *shape)
        """
        return self.to_centred(self.fft(self.to_fft_order(obj)))

    def inverse(self, field: torch.Tensor) -> torch.Tensor:
        """Centred object from a centred far field (inverse of :meth:`forward`)."""
        return self.to_centred(self.ifft(self.to_fft_order(field)))

    def magnitude(self, obj: torch.Tensor) -> torch.Tensor:
        """Fourier magnitudes ``|F(obj)|`` (sqrt of photon counts), centred."""
        return self.forward(obj).abs()

    def intensity(self, obj: torch.Tensor) -> torch.Tensor:
        """Model intensities ``|F(obj)|**2`` in photons, centred."""
        field = self.forward(obj)
        return field.real.square() + field.imag.square()


def project_modulus(
    field: torch.Tensor,
    amplitude: torch.Tensor,
    valid: torch.Tensor,
    *,
    eps: float = 1e-12,
) -> torch.Tensor:
    """Masked Fourier modulus projection.

    Replaces the magnitude of ``field`` by the measured ``amplitude`` on valid
    pixels and leaves excluded pixels free (their value passes through
    untouched, never forced to zero).

    Parameters
    ----------
    field : torch.Tensor, complex, shape S
        Current far field.
    amplitude : torch.Tensor, real, shape S
        Measured magnitudes, ``sqrt(counts)``.
    valid : torch.Tensor, bool, shape S
        True where the measurement is used.
    eps : float
        Floor on ``|field|`` to avoid dividing by zero (a zero field gets a
        zero-phase value of the measured magnitude direction undefined; it
        stays zero).

    Returns
    -------
    torch.Tensor, complex, shape S
    """
    scale = amplitude / field.abs().clamp_min(eps)
    return torch.where(valid, field * scale, field)


def pad_to_frame(small: torch.Tensor, frame_shape: Sequence[int]) -> torch.Tensor:
    """Zero-pad a centred object into the centre of a larger frame.

    Parameters
    ----------
    small : torch.Tensor, shape (..., *small_shape)
    frame_shape : sequence of int
        Target shape of the last ``len(frame_shape)`` axes.

    Returns
    -------
    torch.Tensor, shape (..., *frame_shape)
        The centre of ``small`` (index ``n // 2``) lands on the centre of the
        frame (index ``N // 2``).
    """
    ndim = len(frame_shape)
    pads: list[int] = []
    for n_small, n_big in zip(reversed(small.shape[-ndim:]), reversed(tuple(frame_shape))):
        if n_small > n_big:
            raise ValueError(f"cannot pad {tuple(small.shape)} into {tuple(frame_shape)}")
        before = n_big // 2 - n_small // 2
        pads += [before, n_big - n_small - before]
    return torch.nn.functional.pad(small, pads)


def crop_centre(array: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Central crop of the last ``len(shape)`` axes; inverse of :func:`pad_to_frame`."""
    ndim = len(shape)
    index = [slice(None)] * (array.ndim - ndim)
    for n_big, n_small in zip(array.shape[-ndim:], shape):
        start = n_big // 2 - n_small // 2
        index.append(slice(start, start + n_small))
    return array[tuple(index)]


def fft_order_offsets(shape: Sequence[int], device: torch.device,
                      dtype: torch.dtype = torch.float32) -> list[torch.Tensor]:
    """Per axis, the signed offset (pixels) of every FFT-order index from index 0, shaped to broadcast.

    ``fftfreq(n) * n``: 0, 1, ..., then the negative offsets; a lag in the
    Patterson function, a kernel's offset, or a frequency in pixels.

    Returns
    -------
    list of torch.Tensor
        One per axis, of shape ``(1, ..., n, ..., 1)`` and ``dtype``.
    """
    grids = []
    for axis, n in enumerate(shape):
        view = [1] * len(shape)
        view[axis] = int(n)
        grids.append(torch.fft.fftfreq(int(n), d=1.0 / int(n), device=device, dtype=dtype).reshape(view))
    return grids

