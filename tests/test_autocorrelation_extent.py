"""The object's extent from the autocorrelation's support (cdi_dip.support.autocorrelation_extent_px)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cdi_dip.physics import FarField
from cdi_dip.support import autocorrelation_extent_px, object_extent_px


def _pattern(inside: np.ndarray, phase: np.ndarray | None = None) -> tuple[torch.Tensor, FarField]:
    """Poisson counts (1e6 at the peak) of an object that is 1 on ``inside`` (times ``exp(i phase)``)."""
    obj = inside.astype(np.complex64) * (np.ones(inside.shape) if phase is None else np.exp(1j * phase)).astype(np.complex64)
    physics = FarField(inside.shape)
    intensity = physics.intensity(torch.from_numpy(obj))
    return torch.poisson(intensity * (1e6 / intensity.max()), generator=torch.Generator().manual_seed(0)), physics


@pytest.mark.parametrize("extent", [16, 24, 32])
def test_a_compact_object_s_extent_within_15_percent(extent):
    n = 64
    inside = np.zeros((n, n), bool)
    start = (n - extent) // 2
    inside[start:start + extent, start:start + extent] = True
    counts, physics = _pattern(inside)
    estimate = autocorrelation_extent_px(counts, torch.ones(n, n, dtype=torch.bool), physics)
    assert all(0.85 * extent <= e <= 1.15 * extent for e in estimate), (estimate, extent)


def test_a_strong_phase_curvature_or_a_masked_centre_does_not_shorten_it():
    """A quadratic phase across the object makes the autocorrelation's profile fall fast near its origin, and the
    profile estimate falls far short; the support's extent does not. A masked centre (its pedestal missing) can
    only lengthen it: fewer pixels summed on an axis, never an object cut."""
    n, extent = 64, 24
    inside = np.zeros((n, n), bool)
    inside[20:44, 20:44] = True
    grids = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    counts, physics = _pattern(inside, phase=0.05 * (grids[0] - 32.0) ** 2)
    valid = torch.ones(n, n, dtype=torch.bool)
    support_estimate = autocorrelation_extent_px(counts, valid, physics)
    assert all(0.85 * extent <= e <= 1.15 * extent for e in support_estimate), support_estimate
    assert object_extent_px(counts, valid, physics)[0] < 0.5 * extent
    valid[30:35, 30:35] = False  # a masked beamstop
    assert all(e >= 0.95 * extent for e in autocorrelation_extent_px(counts, valid, physics))
