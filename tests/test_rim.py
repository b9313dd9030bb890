"""The rim of a found beamstop: reported apart, held out of a first pass, fitted again when lit (issue 4)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cdi_dip import reconstruction
from cdi_dip._ndimage import dilate
from cdi_dip.config import DetectorConfig, Method, RimHandling, RunConfig
from cdi_dip.prepare.defects import detect_defects
from cdi_dip.prepare.stages import bin_measurement, condition_detector, prepare
from cdi_dip.prepare import rim as rim_module
from cdi_dip.prepare.rim import check_rim
from cdi_dip.simulate import expected_intensity, faceted_crystal, plant_defects
from cdi_dip.solvers.init import StartFrom
from cdi_dip.types import Measurement, Result

SHAPE = (64, 64)


def planted_crystal(rim_transmission: float = 1.0, seed: int = 3):
    """Counts of a crystal behind a sharp 3 px beamstop (zeros), the rim dimmed by ``rim_transmission``.

    Returns the raw measurement, the planted shadow, its one-pixel rim and the expected (noise-free) intensity.
    """
    rng = np.random.default_rng(seed)
    expected = expected_intensity(faceted_crystal(SHAPE, rng=rng))
    expected = expected * (1e5 / expected.max())
    peak = tuple(int(i) for i in np.unravel_index(int(np.argmax(expected)), SHAPE))
    counts = rng.poisson(expected).astype(np.float32)
    planted = plant_defects(counts, rng=rng, peak=peak, beamstop_radius_px=3)
    shadow = planted.truth["beamstop"]
    rim = dilate(shadow, 1) & ~shadow
    counts = planted.counts.copy()
    counts[rim] = rng.binomial(counts[rim].astype(np.int64), rim_transmission)
    raw = Measurement(intensity=counts, valid=np.ones(SHAPE, dtype=bool), source="planted", name="planted")
    return raw, shadow, rim, expected.astype(np.float32)


def test_a_found_shadow_is_the_dark_pixels_and_its_rim_is_reported_apart():
    raw, shadow, rim, _ = planted_crystal()
    found = detect_defects(raw.intensity, raw.valid)
    assert np.array_equal(found["beamstop"], shadow)
    assert np.array_equal(found["beamstop_rim"], rim)


def test_a_given_beamstop_radius_has_no_rim():
    raw, _, _, _ = planted_crystal()
    conditioned = condition_detector(raw, DetectorConfig(beamstop_radius=4.0))
    assert conditioned.provisional is None
    assert "beamstop_rim" not in conditioned.masks


@pytest.mark.parametrize("handling", list(RimHandling))
def test_the_rim_is_provisional_excluded_or_kept_as_configured(handling):
    raw, shadow, rim, _ = planted_crystal()
    conditioned = condition_detector(raw, DetectorConfig(beamstop_rim=handling))
    assert np.array_equal(conditioned.masks["beamstop"], shadow)
    if handling is RimHandling.TEST:
        assert np.array_equal(conditioned.provisional, rim)
        assert conditioned.valid[rim].all() and np.array_equal(conditioned.intensity[rim], raw.intensity[rim])
    elif handling is RimHandling.EXCLUDE:
        assert conditioned.provisional is None
        assert np.array_equal(conditioned.masks["beamstop_rim"], rim) and not conditioned.valid[rim].any()
    else:
        assert conditioned.provisional is None and conditioned.valid[rim].all()


def test_preparation_keeps_the_rim_in_the_frame_and_binning_excludes_it():
    raw, _, rim, _ = planted_crystal()
    conditioned = condition_detector(raw, DetectorConfig())
    framed = prepare(conditioned, RunConfig().prep)
    assert framed.provisional is not None
    assert np.count_nonzero(framed.provisional) == np.count_nonzero(rim)
    assert framed.valid[framed.provisional].all()
    binned = bin_measurement(conditioned, [2, 2])
    assert binned.provisional is None and "beamstop_rim" in binned.masks


def provisional_measurement(rim_transmission: float):
    raw, _, rim, expected = planted_crystal(rim_transmission)
    return condition_detector(raw, DetectorConfig()), rim, expected


def test_a_lit_rim_agrees_with_a_true_prediction():
    measurement, _, expected = provisional_measurement(1.0)
    rim = check_rim(measurement, expected)
    assert rim.lit and abs(rim.ratio - 1) < 0.05 and rim.agreeing_fraction > 0.9


@pytest.mark.parametrize("transmission", [0.5, 0.8])
def test_a_dimmed_rim_does_not(transmission):
    measurement, _, expected = provisional_measurement(transmission)
    rim = check_rim(measurement, expected)
    assert not rim.lit
    assert rim.ratio == pytest.approx(transmission, abs=0.05)


def test_a_prediction_right_only_in_sum_does_not_vouch_for_the_rim():
    measurement, rim_mask, expected = provisional_measurement(1.0)
    wrong = expected.copy()
    values = wrong[rim_mask]
    wrong[rim_mask] = np.roll(np.sort(values), len(values) // 2)  # the same sum, on the wrong pixels
    rim = check_rim(measurement, wrong)
    assert abs(rim.ratio - 1) < 0.05
    assert not rim.lit


class FakePasses:
    """Stands in for one reconstruction pass: records what it was given; pass ``k`` predicts ``models[k]``
    (the last one from then on) and holds out every seventh pixel."""

    def __init__(self, expected, method: str):
        self.models = expected if isinstance(expected, list) else [expected]
        self.method, self.seen, self.configs, self.inits = method, [], [], []

    def __call__(self, measurement, cfg, requested, init, on_iter, screen=False):
        self.seen.append(measurement)
        self.configs.append(cfg)
        self.inits.append(init)
        model = self.models[min(len(self.seen), len(self.models)) - 1]
        free = (np.arange(measurement.valid.size).reshape(measurement.shape) % 7 == 0) & measurement.valid
        return Result(obj=np.zeros(measurement.shape, np.complex64), support=np.ones(measurement.shape, bool),
                      measurement=measurement, method=self.method, model_intensity=model, wall_s=1.0,
                      method_choice={"pass": len(self.seen)}, free=free)


def missed_centre(expected: np.ndarray, rim: np.ndarray) -> np.ndarray:
    """A prediction that missed the pattern's centre: the rim's values on the wrong pixels, the rest 60 % off."""
    wrong = expected * 1.6
    values = np.sort(expected[rim])
    wrong[rim] = np.roll(values, len(values) // 2)
    return wrong


@pytest.mark.parametrize("transmission,method,readmitted", [(1.0, "dip", True), (0.5, "dip", False),
                                                             (1.0, "hio", True), (0.5, "hio", False)])
def test_reconstruct_fits_the_rim_again_only_when_the_first_pass_finds_it_lit(monkeypatch, transmission, method,
                                                                              readmitted):
    measurement, rim, expected = provisional_measurement(transmission)
    passes = FakePasses(expected, method)
    monkeypatch.setattr(reconstruction, "_reconstruct_pass", passes)
    result = reconstruction.reconstruct(measurement, RunConfig(device="cpu", method=Method(method)))
    first = passes.seen[0]
    assert first.provisional is None and not first.valid[rim].any()  # the first pass never sees the rim
    assert len(passes.seen) == (2 if readmitted else 1)
    assert result.beamstop_rim.readmitted is readmitted
    assert result.beamstop_rim.tested
    if readmitted:
        assert result.measurement.valid[rim].all() and result.measurement.provisional is None
        assert result.wall_s == 2.0
    else:
        assert np.array_equal(result.measurement.masks["beamstop_rim"], rim)


def test_a_projection_result_is_refined_with_a_lit_rim_not_started_again(monkeypatch):
    measurement, _, expected = provisional_measurement(1.0)
    passes = FakePasses(expected, "hio")
    monkeypatch.setattr(reconstruction, "_reconstruct_pass", passes)
    result = reconstruction.reconstruct(measurement, RunConfig(device="cpu", method=Method.HIO, runs=4))
    refine = passes.configs[1]
    assert isinstance(passes.inits[1], StartFrom)
    assert refine.runs == 1 and refine.projection.plan == reconstruction.REFINE_PLAN
    assert refine.projection.shrinkwrap_period == 0 and refine.psf == "none" and refine.background == "none"
    assert result.method_choice == {"pass": 1}  # the decisions that made the start are kept
    assert result.solver["rim_refinement"]["plan"] == reconstruction.REFINE_PLAN


def test_a_refinement_keeps_the_first_pass_blur_and_background():
    first = Result(obj=np.zeros(SHAPE, np.complex64), support=np.ones(SHAPE, bool), measurement=None, method="hio",
                   solver={"psf": {"mode": "refined", "width_px": [0.8]}},
                   method_choice={"background": {"chosen": reconstruction.BACKGROUND_LABELS[1]}})
    refine = reconstruction.rim_refinement_config(first, RunConfig(device="cpu", method=Method.AUTO))
    assert refine.method is Method.HIO and refine.psf == "gaussian,0.8" and refine.background == "subtract"
    first.solver = {"psf": {"mode": "polished", "width_px": [0.8, 1.1]}}
    assert reconstruction.rim_refinement_config(first, RunConfig(device="cpu")) is None


def test_an_evenly_dimmed_rim_is_a_verdict_a_prediction_that_missed_the_centre_is_not():
    measurement, rim_mask, expected = provisional_measurement(0.5)
    dimmed = check_rim(measurement, expected)
    assert dimmed.conclusive and not dimmed.lit
    missed = check_rim(measurement, missed_centre(expected, rim_mask))
    assert not missed.conclusive and not missed.lit


@pytest.mark.parametrize("challenger_fits", [True, False])
def test_a_projection_pass_that_missed_the_centre_is_challenged_with_the_rim(monkeypatch, challenger_fits):
    measurement, rim, expected = provisional_measurement(1.0)
    first_model = missed_centre(expected, rim)
    passes = FakePasses([first_model, expected if challenger_fits else first_model], "hio")
    monkeypatch.setattr(reconstruction, "_reconstruct_pass", passes)
    result = reconstruction.reconstruct(measurement, RunConfig(device="cpu", method=Method.HIO))
    assert len(passes.seen) == 2 and passes.seen[1].valid[rim].all()  # the challenger fits the rim
    assert passes.configs[1].runs == RunConfig().runs  # a fresh reconstruction, not a refinement
    assert result.beamstop_rim.readmitted is challenger_fits
    assert result.method_choice == {"pass": 2 if challenger_fits else 1}
    assert result.wall_s == 2.0
    margin = result.beamstop_rim.challenge_margin_z
    if challenger_fits:
        assert margin > reconstruction.CHALLENGE_SIGNIFICANCE
        summary = result.beamstop_rim.summary()
        assert summary["challenge_margin_z"] == round(margin, 2) and summary["scaled_agreeing_fraction"] < 0.75
    else:
        assert margin is None  # the same model: no difference to measure
        assert np.array_equal(result.measurement.masks["beamstop_rim"], rim)


def test_a_double_dip_pass_that_missed_the_centre_is_not_challenged(monkeypatch):
    measurement, rim, expected = provisional_measurement(1.0)
    passes = FakePasses([missed_centre(expected, rim), expected], "dip")
    monkeypatch.setattr(reconstruction, "_reconstruct_pass", passes)
    result = reconstruction.reconstruct(measurement, RunConfig(device="cpu", method=Method.DIP))
    assert len(passes.seen) == 1 and not result.beamstop_rim.readmitted


@pytest.mark.parametrize("first_model", ["lit", "missed"])
def test_the_learned_networks_object_alone_keeps_the_rim_excluded(monkeypatch, first_model):
    measurement, rim, expected = provisional_measurement(1.0)
    model = expected if first_model == "lit" else missed_centre(expected, rim)
    passes = FakePasses(model, "net")
    monkeypatch.setattr(reconstruction, "_reconstruct_pass", passes)
    result = reconstruction.reconstruct(measurement, RunConfig(device="cpu", method=Method.HIO))
    assert len(passes.seen) == 1 and not result.beamstop_rim.readmitted and result.beamstop_rim.tested


def test_a_dimmed_rim_does_not_move_the_centre_of_the_frame():
    from cdi_dip.prepare.rim import without_rim

    for seed in range(3, 9):
        raw, _, _, _ = planted_crystal(rim_transmission=0.2, seed=seed)
        conditioned = condition_detector(raw, DetectorConfig())
        prep = RunConfig().prep
        centre = prepare(conditioned, prep).notes["centre_px"]
        assert centre == prepare(without_rim(conditioned), prep).notes["centre_px"]


def test_inspect_reports_and_draws_the_rim(tmp_path):
    from typer.testing import CliRunner

    from cdi_dip.cli import app

    raw, _, rim, _ = planted_crystal()
    path = tmp_path / "frame.npy"
    np.save(path, raw.intensity)
    result = CliRunner().invoke(app, ["inspect", str(path), "--json", "--png", str(tmp_path / "masks.png")])
    assert result.exit_code == 0, result.output
    import json

    described = json.loads(result.output)
    assert described["provisional"] == {"beamstop_rim": int(np.count_nonzero(rim))}
    assert "beamstop_rim" not in described["excluded"]
    assert (tmp_path / "masks.png").stat().st_size > 0


def test_the_result_table_says_what_became_of_the_rim():
    from cdi_dip.report.lines import beamstop_rim_line
    from cdi_dip.types import BeamstopRim

    lit = BeamstopRim(pixels=40, readmitted=True, measured_counts=1e5, predicted_counts=1.01e5, ratio=0.99,
                      tolerance=0.1, agreeing_fraction=1.0, lit=True).summary()
    assert beamstop_rim_line(lit).endswith("lit, fitted")
    challenged = BeamstopRim(pixels=40, readmitted=True, measured_counts=1e5, predicted_counts=3e4, ratio=3.3,
                             tolerance=0.1, agreeing_fraction=0.2, lit=False, scaled_agreeing_fraction=0.3,
                             challenge_margin_z=5.0).summary()
    assert "missed the centre" in beamstop_rim_line(challenged) and "better (z 5.00): fitted" in beamstop_rim_line(
        challenged)
    covered = BeamstopRim(pixels=40, measured_counts=5e4, predicted_counts=1e5, ratio=0.5, tolerance=0.1,
                          agreeing_fraction=0.0, lit=False, scaled_agreeing_fraction=1.0).summary()
    assert beamstop_rim_line(covered).endswith("not lit, excluded")
    assert beamstop_rim_line(None) is None


def test_a_pass_with_the_rim_holds_out_the_first_pass_free_pixels():
    measurement, rim, _ = provisional_measurement(1.0)
    cfg = RunConfig(device="cpu")
    first, _ = reconstruction.fit_data(rim_module.without_rim(measurement), cfg, torch.device("cpu"))
    second, second_free = reconstruction.fit_data(rim_module.with_rim(measurement), cfg, torch.device("cpu"))
    first_free = first.free.cpu().numpy()
    assert first_free.any() and np.array_equal(first_free, second_free)
    assert second.fit.cpu().numpy()[rim].all()  # the rim is fitted in the second pass
