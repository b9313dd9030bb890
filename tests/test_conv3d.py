"""CpuConv3d: oneDNN's 3D convolution at every size on a CPU, the same results as nn.Conv3d."""

import pytest
import torch
from torch import nn

from cdi_dip.config import DipParam
from cdi_dip.solvers.conv3d import CpuConv3d, onednn_usable, takes_native_kernel
from cdi_dip.solvers.nets import DoubleDip


def _pair(padding_mode: str, **kwargs) -> tuple[nn.Conv3d, CpuConv3d]:
    torch.manual_seed(0)
    reference = nn.Conv3d(4, 5, 3, padding=1, padding_mode=padding_mode, **kwargs)
    fast = CpuConv3d(4, 5, 3, padding=1, padding_mode=padding_mode, **kwargs)
    fast.load_state_dict(reference.state_dict())
    return reference, fast


@pytest.mark.parametrize("padding_mode", ["reflect", "zeros"])
@pytest.mark.parametrize("shape", [(1, 4, 6, 7, 5), (2, 4, 9, 9, 9)])
def test_values_and_gradients_match_conv3d(padding_mode, shape):
    # (1, 4, 6, 7, 5) is far below PyTorch's oneDNN threshold: the reference takes ATen's native kernel and
    # CpuConv3d oneDNN's, beside a zero sample. (2, ...) takes oneDNN in both. They agree to float32 rounding.
    reference, fast = _pair(padding_mode)
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    x_ref, x_fast = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    out_ref, out_fast = reference(x_ref), fast(x_fast)
    assert out_fast.shape == out_ref.shape
    torch.testing.assert_close(out_fast, out_ref, rtol=1e-5, atol=1e-5)
    weights = torch.randn(out_ref.shape, generator=torch.Generator().manual_seed(2))
    (out_ref * weights).sum().backward()
    (out_fast * weights).sum().backward()
    torch.testing.assert_close(x_fast.grad, x_ref.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fast.weight.grad, reference.weight.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(fast.bias.grad, reference.bias.grad, rtol=1e-4, atol=1e-4)


def test_only_a_batch_of_one_below_the_threshold_is_paired():
    assert takes_native_kernel((1, 32, 18, 18, 18))
    assert not takes_native_kernel((1, 32, 26, 26, 26))  # 32 * 26 * 26 = 21632 > 20480
    assert not takes_native_kernel((2, 4, 6, 6, 6))


def test_other_dtypes_take_pytorchs_dispatch():
    reference, fast = _pair("reflect")
    reference, fast = reference.double(), fast.double()
    x = torch.randn(1, 4, 5, 5, 5, dtype=torch.float64)
    assert not onednn_usable(x)
    torch.testing.assert_close(fast(x), reference(x))


def test_onednn_disabled_is_respected(monkeypatch):
    reference, fast = _pair("zeros")
    x = torch.randn(1, 4, 5, 5, 5)
    monkeypatch.setattr(torch.backends.mkldnn, "enabled", False)
    assert not onednn_usable(x)
    torch.testing.assert_close(fast(x), reference(x))


def test_the_double_dips_3d_generators_use_it_and_repeat_bit_for_bit():
    def draw() -> torch.Tensor:
        net = DoubleDip((6, 8, 7), DipParam.MAG_PHASE, channels=4, depth=2, generator=torch.Generator().manual_seed(3))
        assert any(isinstance(module, CpuConv3d) for module in net.modules())
        return net().detach()

    first, second = draw(), draw()
    assert torch.equal(first, second)
    assert first.shape == (6, 8, 7) and bool(torch.isfinite(torch.view_as_real(first)).all())
