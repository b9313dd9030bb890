"""Phase vortices (dislocations): found, placed to sub-pixel, and kept out of the phase ramp."""

from __future__ import annotations

import numpy as np
import pytest

from cdi_dip.ensemble import remove_phase_ramp
from cdi_dip.ensemble.vortices import find_vortices, plaquette_windings, vortex_phase
from cdi_dip.simulate import faceted_crystal


def _blob(shape) -> np.ndarray:
    offsets = np.indices(shape) - np.array([n // 2 for n in shape]).reshape((-1,) + (1,) * len(shape))
    return np.exp(-sum((o / (n / 5)) ** 2 for o, n in zip(offsets, shape)) ** 2).astype(np.complex128)


def test_a_point_vortex_is_found_to_subpixel_with_its_charge():
    core = np.array([30.3, 34.6])
    rows, cols = np.indices((64, 64))
    obj = _blob((64, 64)) * np.exp(-1j * np.arctan2(cols - core[1], rows - core[0]) + 0.2j * rows)
    found = find_vortices(obj, np.abs(obj) > 0.1)
    assert len(found) == 1 and found[0].charge == -1 and found[0].direction is None
    assert np.abs(found[0].point - core).max() < 0.1


def test_a_ramp_alone_has_no_winding():
    rows, cols = np.indices((32, 32))
    obj = np.exp(1j * (2.5 * rows - 1.9 * cols))
    assert not plaquette_windings(obj, (0, 1)).any()
    assert find_vortices(obj, np.ones((32, 32), bool)) == []


def test_a_vortex_line_is_found_in_3d():
    shape = (32, 32, 32)
    direction = np.array([0.3, -0.5, 0.81])
    direction /= np.linalg.norm(direction)
    point = np.array([15.6, 16.3, 16.1])
    offsets = np.indices(shape).astype(float) - point.reshape(3, 1, 1, 1)
    helper = np.array([1.0, 0.0, 0.0])
    e1 = np.cross(direction, helper)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(direction, e1)
    phase = np.arctan2(np.tensordot(e2, offsets, 1), np.tensordot(e1, offsets, 1))
    obj = _blob(shape) * np.exp(1j * phase)
    found = find_vortices(obj, np.abs(obj) > 0.1)
    assert len(found) == 1 and found[0].charge == 1
    assert abs(found[0].direction @ direction) > np.cos(np.radians(2))
    across = found[0].point - point
    assert np.linalg.norm(across - (across @ direction) * direction) < 0.1
    modelled, _ = vortex_phase(shape, found)
    inside = np.abs(obj) > 0.5
    difference = np.angle(np.exp(1j * (modelled - phase)))[inside]
    assert np.ptp(difference) < 0.2  # the same field up to a constant


@pytest.mark.parametrize("seed", [0, 3])
def test_a_dislocated_crystal_has_no_phase_ramp(seed):
    # faceted_crystal's strain phase has no linear part and its vortex carries none.
    truth = faceted_crystal((64, 64), rng=np.random.default_rng(seed), dislocation=True)
    _, ramp = remove_phase_ramp(truth, np.abs(truth) > 0.1 * np.abs(truth).max())
    assert np.abs(ramp).max() < 2e-3
