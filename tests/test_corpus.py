"""cdi_dip.corpus: families, detector conditions, the tuning/reporting split, and the matrix script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from itertools import islice
from pathlib import Path

import numpy as np
import pytest

from cdi_dip.corpus import (FAMILIES, HALVES, DetectorSettings, corpus_cases, detect, integrated_over_pixels,
                             object_extent_px)
from cdi_dip.corpus.detector import blur_intensity
from cdi_dip.simulate import expected_intensity, faceted_crystal

REPO = Path(__file__).resolve().parents[1]
FRAMES = {2: (40, 36), 3: (20, 24, 22)}


def _family_object(name: str, dim: int, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return FAMILIES[name].make(FRAMES[dim], rng, **FAMILIES[name].draw(rng, dim))


@pytest.mark.parametrize("name,dim", [(n, d) for n, f in FAMILIES.items() for d in f.dims])
def test_every_family_gives_a_complex64_object_of_the_frame_shape(name, dim):
    obj = _family_object(name, dim)
    assert obj.shape == FRAMES[dim] and obj.dtype == np.complex64
    assert np.isfinite(obj).all() and np.abs(obj).max() > 0
    if FAMILIES[name].kind == "specimen":
        assert np.all(obj.imag == 0) and obj.real.min() >= 0


@pytest.mark.parametrize("name", ["faceted", "elongated", "rounded", "irregular"])
@pytest.mark.parametrize("shape,oversampling", [((64, 60), (1.7, 3.0)), ((32, 40, 36), (2.0, 3.5, 1.8))])
def test_crystals_span_the_requested_extent_on_every_axis(name, shape, oversampling):
    rng = np.random.default_rng(5)
    params = {**FAMILIES[name].draw(rng, len(shape)), "oversampling": oversampling}
    obj = FAMILIES[name].make(shape, rng, **params)
    requested = [n / s for n, s in zip(shape, oversampling)]
    assert np.allclose(object_extent_px(obj), requested, atol=1.5)


def test_a_masked_beamstop_is_masked_and_an_unmasked_one_is_only_dark():
    expected = expected_intensity(faceted_crystal((48, 48), rng=np.random.default_rng(0)))
    centre = np.hypot(*np.indices((48, 48)) - 24) <= 4
    for masked in (True, False):
        seen = detect(expected, DetectorSettings(peak_counts=1e6, beamstop_px=4, beamstop_masked=masked),
                      np.random.default_rng(1))
        assert np.all(seen.counts[centre] == 0)
        assert np.all(seen.valid[centre] == (not masked))
        assert seen.valid[~centre].all()


def test_a_psf_blur_lowers_the_contrast_at_high_q():
    expected = expected_intensity(faceted_crystal((64, 64), rng=np.random.default_rng(2)))
    shell = (np.hypot(*np.indices((64, 64)) - 32) > 16) & (np.hypot(*np.indices((64, 64)) - 32) < 30)

    def contrast(image):
        return image[shell].std() / image[shell].mean()

    slight, strong = blur_intensity(expected, 0.5), blur_intensity(expected, 1.5)
    assert contrast(strong) < contrast(slight) < contrast(expected)
    assert contrast(strong) < 0.8 * contrast(expected)
    assert np.isclose(strong.sum(), expected.sum())


def test_saturation_caps_the_counts_and_hot_pixels_stand_out_unmasked():
    expected = expected_intensity(faceted_crystal((48, 48), rng=np.random.default_rng(4)))
    seen = detect(expected, DetectorSettings(peak_counts=1e6, saturated_regions=2, hot_pixels=3),
                  np.random.default_rng(5))
    assert seen.saturation_counts is not None and seen.saturation_counts < 1e6
    assert seen.counts.max() <= seen.saturation_counts
    assert seen.defects["hot"].sum() == 3 and seen.valid.all()


def test_a_masked_gap_is_masked():
    expected = expected_intensity(faceted_crystal((48, 48), rng=np.random.default_rng(6)))
    seen = detect(expected, DetectorSettings(peak_counts=1e5, gap_px=3, gap_masked=True), np.random.default_rng(7))
    assert seen.defects["gap"].sum() == 3 * 48
    assert np.array_equal(seen.valid, ~seen.defects["gap"])


def test_the_halves_share_no_family_condition_seed():
    def triples(spec):
        return {(f, c, s) for f in spec.families for c in spec.conditions for s in spec.seeds}

    assert not triples(HALVES["tuning"]) & triples(HALVES["reporting"])
    assert set(HALVES["reporting"].families) - set(HALVES["tuning"].families)  # families only reported on
    labels = {half: {(c.family, c.condition, c.seed) for c in islice(corpus_cases(half, dims=(2,), quick=True), 4)}
              for half in HALVES}
    assert not labels["tuning"] & labels["reporting"]
    assert all(s in HALVES["tuning"].seeds for _, _, s in labels["tuning"])


def test_cases_are_the_same_every_time():
    first, again = (list(islice(corpus_cases("tuning", dims=(2, 3), quick=True, families=["faceted", "cell"]), 3))
                    for _ in range(2))
    for a, b in zip(first, again):
        assert a.label == b.label and a.params == b.params
        assert np.array_equal(a.truth, b.truth) and np.array_equal(a.counts, b.counts)
        assert np.array_equal(a.valid, b.valid)
    assert len({c.label for c in first}) == 3


def test_a_case_integrated_over_its_pixels_keeps_its_truth_and_loses_contrast():
    """The pixels' average smooths the speckle: the counts' contrast between neighbouring pixels falls (by 7 %
    on this clean faceted crystal, whose photons are so many that the noise moves it by far less)."""
    case = next(corpus_cases("tuning", dims=(2,), quick=True, families=["faceted"], conditions=["clean"]))
    integrated = integrated_over_pixels(case)
    assert integrated.label == case.label + "+pixels" and np.array_equal(integrated.truth, case.truth)
    assert integrated.settings == case.settings and np.array_equal(integrated.valid, case.valid)

    def neighbour_contrast(counts):
        return float(np.abs(np.diff(counts, axis=-1)).sum() / counts.sum())
    assert neighbour_contrast(integrated.counts) < 0.97 * neighbour_contrast(case.counts)
    assert integrated_over_pixels(case).counts.sum() == integrated.counts.sum()  # seeded by the case


@pytest.mark.slow
def test_the_matrix_script_runs_end_to_end(tmp_path):
    out = tmp_path / "matrix.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "corpus_matrix.py"), "--quick", "--max-cases", "2",
                           "--iterations", "5", "--methods", "hio", "--json", str(out), "--markdown"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert "| method | family | condition | n | median error |" in done.stdout
    rows = json.loads(out.read_text())["rows"]
    assert len(rows) == 2 and all(r["status"] == "ok" and r["error"] is not None for r in rows)
