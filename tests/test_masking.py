"""Masking never leaks: what an excluded pixel holds never changes a result, for any method."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdi_dip.config import DipConfig, Method, ProjectionConfig, RunConfig
from cdi_dip.pipeline import reconstruct
from cdi_dip.prepare.stages import condition_detector, prepare
from cdi_dip.simulate import simulate_scan
from cdi_dip.types import Measurement

SHAPE = (32, 32)


def _scan():
    rng = np.random.default_rng(11)
    scan = simulate_scan("crystal", SHAPE, rng=rng, peak_counts=1e5, offset_px=(1, -2), beamstop_radius_px=2)
    return scan.counts, scan.valid


COUNTS, BEAMSTOP_VALID = _scan()

CONFIGS = {
    Method.HIO: RunConfig(method=Method.HIO, runs=1, device="cpu",
                          projection=ProjectionConfig(plan="30*HIO+10*ER", shrinkwrap_period=10)),
    Method.DIP: RunConfig(method=Method.DIP, runs=1, iterations=30, device="cpu",
                          dip=DipConfig(channels=4, depth=2, probes=2, probe_iterations=10, polish_iterations=5)),
}


def _result(counts, valid, cfg):
    measurement = Measurement(intensity=counts, valid=valid, source="masked", name="masked")
    prepared = prepare(condition_detector(measurement, cfg.detector), cfg.prep)
    return reconstruct(prepared, cfg.validate())


@pytest.fixture(scope="module")
def reference():
    return {method: _result(np.where(BEAMSTOP_VALID, COUNTS, 0), BEAMSTOP_VALID, cfg)
            for method, cfg in CONFIGS.items()}


@pytest.mark.parametrize("method", list(CONFIGS))
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fill=st.sampled_from(["huge", "random", "negative"]), seed=st.integers(0, 2**16),
       extra_fraction=st.floats(0.0, 0.2))
def test_excluded_values_never_change_the_result(reference, method, fill, seed, extra_fraction):
    rng = np.random.default_rng(seed)
    extra = rng.random(SHAPE) < extra_fraction
    valid = BEAMSTOP_VALID & ~extra
    base = _result(np.where(valid, COUNTS, 0), valid, CONFIGS[method])
    junk = {"huge": 1e9, "random": rng.uniform(0, 1e6, SHAPE), "negative": -5.0}[fill]
    counts = np.where(valid, COUNTS, junk).astype(np.float32)
    filled = _result(counts, valid, CONFIGS[method])
    assert np.array_equal(filled.obj, base.obj)
    timing = {"seconds_per_iteration"}
    assert {k: v for k, v in filled.metrics.items() if k not in timing} == \
        {k: v for k, v in base.metrics.items() if k not in timing}
    if not extra.any():
        assert np.array_equal(filled.obj, reference[method].obj)
