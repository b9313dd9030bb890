import numpy as np
import pytest
import torch

from cdi_dip.physics import FarField, crop_centre, pad_to_frame, project_modulus


def _random_object(shape, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.complex(torch.randn(shape, generator=gen), torch.randn(shape, generator=gen))


@pytest.mark.parametrize("shape", [(16, 16), (8, 10, 12)])
def test_forward_is_unitary_and_inverted(shape, device):
    physics = FarField(shape)
    obj = _random_object(shape).to(device)
    field = physics.forward(obj)
    # Parseval with the unitary transform: total power is conserved.
    assert torch.allclose(field.abs().square().sum(), obj.abs().square().sum(), rtol=1e-4)
    assert torch.allclose(physics.inverse(field), obj, atol=1e-5)


def test_centred_delta_gives_flat_field_and_centre_is_zero_frequency():
    physics = FarField((16, 16))
    delta = torch.zeros(16, 16, dtype=torch.complex64)
    delta[8, 8] = 1.0
    field = physics.forward(delta)
    # A point at the origin (array centre) has a flat, zero-phase far field.
    assert torch.allclose(field, torch.full_like(field, 1 / 16), atol=1e-6)
    constant = torch.ones(16, 16, dtype=torch.complex64)
    assert physics.intensity(constant).argmax().item() == 8 * 16 + 8


def test_fft_order_round_trip():
    physics = FarField((6, 8))
    x = torch.arange(48.0).reshape(6, 8)
    assert torch.equal(physics.to_centred(physics.to_fft_order(x)), x)
    obj = _random_object((6, 8))
    via_order = physics.to_centred(physics.fft(physics.to_fft_order(obj)))
    assert torch.allclose(via_order, physics.forward(obj))


def test_twin_has_same_magnitudes():
    physics = FarField((16, 16))
    obj = _random_object((16, 16))
    # Twin about the centre index n//2: conj(x(-r)) with r measured from n//2.
    twin = torch.roll(torch.flip(obj.conj(), dims=(0, 1)), shifts=(1, 1), dims=(0, 1))
    assert torch.allclose(physics.magnitude(obj), physics.magnitude(twin), atol=1e-4)


def test_modulus_projection_sets_valid_magnitudes_and_leaves_excluded_free():
    field = _random_object((8, 8), seed=1)
    amplitude = torch.rand(8, 8, generator=torch.Generator().manual_seed(2))
    valid = torch.ones(8, 8, dtype=torch.bool)
    valid[2, 3] = False
    projected = project_modulus(field, amplitude, valid)
    assert torch.allclose(projected.abs()[valid], amplitude[valid], atol=1e-5)
    assert torch.allclose(torch.angle(projected)[valid], torch.angle(field)[valid], atol=1e-5)
    assert projected[2, 3] == field[2, 3]
    # The measured value at the excluded pixel plays no part.
    amplitude_changed = amplitude.clone()
    amplitude_changed[2, 3] = 1e6
    assert torch.equal(project_modulus(field, amplitude_changed, valid), projected)


def test_pad_and_crop_keep_the_centre():
    small = torch.zeros(5, 6)
    small[2, 3] = 1.0
    big = pad_to_frame(small, (12, 12))
    assert big.shape == (12, 12)
    assert big[6, 6] == 1.0
    assert torch.equal(crop_centre(big, (5, 6)), small)
    with pytest.raises(ValueError):
        pad_to_frame(torch.zeros(14, 4), (12, 12))


def test_fft_matches_numpy_definition():
    physics = FarField((8, 8))
    x = np.random.default_rng(0).normal(size=(8, 8)) + 0j
    expected = np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(x), norm="ortho"))
    got = physics.forward(torch.from_numpy(x)).numpy()
    assert np.allclose(got, expected)
