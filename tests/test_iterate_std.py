"""The double DIP's iterate spread (``SolverOutput.obj_std``) reaches the user, aligned with the object."""

from __future__ import annotations

import numpy as np
import pytest

from cdi_dip.ensemble import align_map, align_object


def _smooth_object(skew: float) -> np.ndarray:
    """A smooth, off-centre 32x32 blob with a phase ramp; ``skew`` decides which twin the alignment keeps."""
    yy, xx = np.mgrid[:32, :32].astype(float)
    amplitude = np.exp(-((yy - 8.3) ** 2 / 8 + (xx - 20.6) ** 2 / 18)) * (1 + skew * 0.6 * np.tanh((xx - 20.6) / 3))
    return (amplitude * np.exp(1j * (0.3 * xx + 0.1 * yy))).astype(np.complex64)


@pytest.mark.parametrize("skew", [1.0, -1.0])
def test_align_map_moves_a_magnitude_map_as_the_object_moved(skew):
    obj = _smooth_object(skew)
    aligned, _, info = align_object(obj, np.abs(obj) > 0.05 * np.abs(obj).max())
    moved = align_map(np.abs(obj), info)
    assert moved.dtype == np.float32 and moved.shape == obj.shape and (moved >= 0).all()
    np.testing.assert_allclose(moved, np.abs(aligned), atol=1e-3)
    assert info.twin == (skew > 0)  # both branches (flip and no flip) are exercised


def test_align_map_without_a_move_is_the_identity():
    from cdi_dip.types import AlignInfo

    values = np.random.default_rng(0).random((6, 7)).astype(np.float32)
    np.testing.assert_array_equal(align_map(values, AlignInfo(shift_px=(0.0, 0.0))), values)
