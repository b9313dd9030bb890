import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from cdi_dip._ndimage import box_mean, box_sum, dilate, label, neighbour_median, neighbour_top2


def _brute_box_sum(array, radius):
    out = np.zeros(array.shape)
    for index in np.ndindex(array.shape):
        box = tuple(slice(max(i - radius, 0), i + radius + 1) for i in index)
        out[index] = array[box].sum()
    return out


def _flood_components(mask):
    """Face-connected components by breadth-first search: a set of frozensets of indices."""
    seen, parts = set(), set()
    for start in map(tuple, np.argwhere(mask)):
        if start in seen:
            continue
        part, frontier = {start}, [start]
        while frontier:
            here = frontier.pop()
            for axis, step in itertools.product(range(mask.ndim), (-1, 1)):
                there = list(here)
                there[axis] += step
                there = tuple(there)
                if all(0 <= t < n for t, n in zip(there, mask.shape)) and mask[there] and there not in part:
                    part.add(there)
                    frontier.append(there)
        seen |= part
        parts.add(frozenset(part))
    return parts


@pytest.mark.parametrize("shape, radius", [((9, 7), 1), ((9, 7), 2), ((5, 6, 4), 1)])
def test_box_sum_matches_brute_force(shape, radius):
    array = np.random.default_rng(0).random(shape)
    assert np.allclose(box_sum(array, radius), _brute_box_sum(array, radius))


def test_box_mean_ignores_invalid_pixels():
    array = np.ones((6, 6))
    valid = np.ones((6, 6), dtype=bool)
    array[2, 2], valid[2, 2] = 1e9, False
    assert np.allclose(box_mean(array, valid, 1), 1.0)


@settings(max_examples=40, deadline=None)
@given(arrays(bool, st.tuples(st.integers(1, 7), st.integers(1, 7), st.integers(1, 4))))
def test_label_finds_the_components_of_a_flood_fill(mask):
    labels, count = label(mask)
    ours = {frozenset(map(tuple, np.argwhere(labels == k))) for k in range(1, count + 1)}
    assert ours == _flood_components(mask)
    assert ((labels > 0) == mask).all()


def test_dilate_grows_a_point_into_a_box():
    mask = np.zeros((7, 7), dtype=bool)
    mask[3, 3] = True
    assert dilate(mask, 1).sum() == 9 and dilate(mask, 0).sum() == 1


def test_neighbour_order_statistics_match_brute_force():
    rng = np.random.default_rng(1)
    values = rng.random((6, 5, 4))
    valid = rng.random(values.shape) > 0.2
    first, second, count = neighbour_top2(values, valid)
    median, median_count = neighbour_median(values, valid)
    for index in np.ndindex(values.shape):
        around = [values[tuple(i + o for i, o in zip(index, offset))]
                  for offset in itertools.product((-1, 0, 1), repeat=3) if any(offset)
                  and all(0 <= i + o < n for i, o, n in zip(index, offset, values.shape))
                  and valid[tuple(i + o for i, o in zip(index, offset))]]
        ranked = sorted(around, reverse=True)
        assert count[index] == median_count[index] == len(ranked)
        assert first[index] == pytest.approx(ranked[0] if ranked else -np.inf)
        assert second[index] == pytest.approx(ranked[1] if len(ranked) > 1 else -np.inf)
        if ranked:
            assert median[index] == pytest.approx(np.median(ranked))
