"""Hot pixels the preparation leaves in, found with the first reconstruction's model (``cdi_dip.hot_screen``)."""

from __future__ import annotations

import numpy as np
import pytest

from cdi_dip import reconstruction
from cdi_dip.config import Method, RunConfig
from cdi_dip.errors import InvalidInputError
from cdi_dip.prepare.defects import find_hot_pixels, find_hot_pixels_by_model
from cdi_dip.report.lines import hot_by_model_line
from cdi_dip.simulate import expected_intensity, extended_specimen, faceted_crystal
from cdi_dip.types import Measurement

from challenged import fake_result


@pytest.fixture(scope="module")
def strained():
    """A strained 2D crystal (its pattern is not centrosymmetric): counts at 1e6 photons and their expectation."""
    rng = np.random.default_rng(4)
    expected = expected_intensity(faceted_crystal((64, 64), rng=rng))
    expected = expected * (1e6 / expected.max())
    return rng.poisson(expected).astype(np.float64), expected


def _largest_neighbour(counts, r):
    window = counts[r[0] - 1:r[0] + 2, r[1] - 1:r[1] + 2].copy()
    window[1, 1] = -np.inf
    return float(window.max())


def _partner(counts, r):
    """The brightest pixel of the mirror window about the frame's centre, as the Friedel test takes it."""
    m = 2 * (np.array(counts.shape) // 2) - np.array(r)
    return float(counts[m[0] - 1:m[0] + 2, m[1] - 1:m[1] + 2].max())


def _hot_beside_a_bright_mirror(counts):
    """``counts`` with one pixel set to 10 times its largest neighbour where its mirror is brighter still, and
    that pixel: the hot pixel the Friedel test lets through."""
    candidates = [(y, x) for y in range(4, 60) for x in range(4, 60)
                  if 50 < _largest_neighbour(counts, (y, x)) and 4.5 * _largest_neighbour(counts, (y, x))
                  < _partner(counts, (y, x))]
    assert candidates, "the pattern has no pixel whose mirror is far brighter than its neighbours"
    r = candidates[len(candidates) // 2]
    planted = counts.copy()
    planted[r] = 10 * _largest_neighbour(counts, r) + 50
    return planted, r


def test_a_hot_pixel_the_friedel_test_lets_through_stands_far_above_the_model(strained):
    counts, expected = strained
    planted, r = _hot_beside_a_bright_mirror(counts)
    centre = tuple(n // 2 for n in counts.shape)
    assert planted[r] < 2.5 * _partner(counts, r)
    assert not find_hot_pixels(planted, None, centre=centre)[r]  # the gap this closes
    found = find_hot_pixels_by_model(planted, None, expected)
    assert np.argwhere(found).tolist() == [list(r)]


def test_pixels_the_model_explains_are_never_hot(strained):
    counts, expected = strained
    assert not find_hot_pixels_by_model(counts, None, expected).any()
    r = (40, 23)  # a single-pixel peak 16 times its neighbours that the model predicts is real signal
    peaked, model = counts.copy(), expected.copy()
    peaked[r] = model[r] = 16 * _largest_neighbour(counts, r) + 50
    assert not find_hot_pixels_by_model(peaked, None, model)[r]
    assert find_hot_pixels_by_model(peaked, None, expected)[r]  # the same peak, unexplained: hot


def test_real_single_pixel_speckles_stay_where_the_neighbour_test_alone_flags_them():
    rng = np.random.default_rng(0)
    expected = expected_intensity(extended_specimen((128, 128), rng=rng, extent_fraction=0.75), offset_px=(2, -1))
    expected = expected * (1e8 / expected.max())
    counts = rng.poisson(expected).astype(np.float64)
    assert find_hot_pixels(counts, None, friedel=False).any()
    assert not find_hot_pixels_by_model(counts, None, expected).any()


def test_a_model_of_another_shape_is_refused(strained):
    counts, expected = strained
    with pytest.raises(InvalidInputError, match="model shape"):
        find_hot_pixels_by_model(counts, None, expected[:-1])


class FakeMethodPasses:
    """Stands in for the method's pass (``_background_stage``): records the measurement and returns a result
    whose model is ``models[k]`` at call ``k`` (the last one from then on), holding out the measurement's fixed
    free pixels or every ninth; raises ``KeyboardInterrupt`` at call ``interrupt_on``."""

    def __init__(self, models, interrupt_on: int | None = None):
        self.models = models if isinstance(models, list) else [models]
        self.interrupt_on, self.seen = interrupt_on, []

    def __call__(self, measurement, cfg, requested, init, on_iter, device):
        self.seen.append(measurement)
        if self.interrupt_on == len(self.seen):
            raise KeyboardInterrupt
        free = measurement.fixed_free
        if free is None:
            free = np.arange(measurement.valid.size).reshape(measurement.shape) % 9 == 0
        model = self.models[min(len(self.seen), len(self.models)) - 1]
        return fake_result(measurement, model, free & measurement.valid, 5.0), None


def _measurement_with_a_missed_hot_pixel(strained):
    counts, expected = strained
    planted, r = _hot_beside_a_bright_mirror(counts)
    return Measurement(planted.astype(np.float32), np.ones(planted.shape, bool), excluded={"hot": 2}), expected, r


def _cfg(**detector):
    cfg = RunConfig(device="cpu", method=Method.HIO, psf="none", poor_fit_starts=0, frame_margin=1)
    for key, value in detector.items():
        setattr(cfg.detector, key, value)
    return cfg.validate()


def test_hot_pixels_the_first_model_shows_are_excluded_and_the_frame_reconstructed_again(monkeypatch, strained):
    measurement, expected, r = _measurement_with_a_missed_hot_pixel(strained)
    passes = FakeMethodPasses(expected)
    monkeypatch.setattr(reconstruction, "_background_stage", passes)
    result = reconstruction.reconstruct(measurement, _cfg())
    first, second = passes.seen
    assert first.valid[r] and not second.valid[r] and second.intensity[r] == 0
    assert second.excluded["hot"] == 3 and second.masks["hot"][r]
    free = np.arange(first.valid.size).reshape(first.shape) % 9 == 0
    assert np.array_equal(second.fixed_free, free & second.valid)  # the first pass's held-out pixels, less it
    assert result.measurement is second and result.wall_s == 2.0 and not result.interrupted
    record = result.method_choice["hot_by_model"]
    assert record["pixels"] == 1 and record["where"] == [list(r)]
    assert record["counts"] == [float(measurement.intensity[r])]
    assert record["model_counts"][0] == pytest.approx(expected[r], rel=1e-6)
    assert record["first_free_llk_poisson"] == 5.0 and record["chosen"] == "again without them"
    assert hot_by_model_line(record).startswith("1 pixel far above its neighbours and the first reconstruction's "
                                                "model, left in by the preparation: excluded as hot; the "
                                                "reconstruction without them kept: free Poisson LLK")


def test_the_first_pass_is_kept_where_it_fits_the_same_held_out_pixels_better(monkeypatch, strained):
    measurement, expected, r = _measurement_with_a_missed_hot_pixel(strained)
    passes = FakeMethodPasses([expected, 1.4 * expected])  # the second pass lands elsewhere
    monkeypatch.setattr(reconstruction, "_background_stage", passes)
    result = reconstruction.reconstruct(measurement, _cfg())
    record = result.method_choice["hot_by_model"]
    assert record["chosen"] == "first pass" and record["margin_z"] > reconstruction.CHALLENGE_SIGNIFICANCE
    scores = record["free_llk_poisson"]
    assert scores["first pass"] < scores["again without them"]
    assert result.model_intensity is not None and np.allclose(result.model_intensity, expected)
    assert not result.measurement.valid[r]  # kept, but scored and written without the hot pixel
    assert result.metrics["free_llk_poisson"] == pytest.approx(scores["first pass"])
    assert "the first pass kept" in hot_by_model_line(record)


@pytest.mark.parametrize("detector", [{"find_hot_by_model": False}, {"find_hot": False}])
def test_the_screen_is_off_with_either_setting(monkeypatch, strained, detector):
    measurement, expected, r = _measurement_with_a_missed_hot_pixel(strained)
    passes = FakeMethodPasses(expected)
    monkeypatch.setattr(reconstruction, "_background_stage", passes)
    result = reconstruction.reconstruct(measurement, _cfg(**detector))
    assert len(passes.seen) == 1 and result.measurement.valid[r]
    assert "hot_by_model" not in result.method_choice


def test_a_signal_before_the_second_reconstruction_keeps_the_first(monkeypatch, strained):
    measurement, expected, r = _measurement_with_a_missed_hot_pixel(strained)
    monkeypatch.setattr(reconstruction, "_background_stage", FakeMethodPasses(expected, interrupt_on=2))
    result = reconstruction.reconstruct(measurement, _cfg())
    assert result.interrupted and not result.measurement.valid[r]
    assert result.method_choice["hot_by_model"]["chosen"] == "first pass"


def test_a_clean_frame_is_reconstructed_once(monkeypatch, strained):
    counts, expected = strained
    passes = FakeMethodPasses(expected)
    monkeypatch.setattr(reconstruction, "_background_stage", passes)
    result = reconstruction.reconstruct(Measurement(counts.astype(np.float32), np.ones(counts.shape, bool)), _cfg())
    assert len(passes.seen) == 1 and "hot_by_model" not in result.method_choice
