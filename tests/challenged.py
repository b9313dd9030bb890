"""A poorly fitting result and its measurement, for the tests of the challenges that run on a poor fit (shared
by the frame-margin and more-starts tests)."""

import numpy as np

from cdi_dip.types import Measurement, Result


def fake_result(measurement: Measurement, model: np.ndarray, free: np.ndarray, free_llk: float,
                method: str = "hio") -> Result:
    """A result of ``method`` whose model intensity is ``model``, holding out ``free``, at ``free_llk``."""
    return Result(obj=np.zeros(measurement.shape, np.complex64), support=np.ones(measurement.shape, bool),
                  measurement=measurement, method=method, model_intensity=model, free=free, wall_s=1.0,
                  metrics={"free_llk_poisson": free_llk})


def poor_fit(seed: int, method: str = "hio"):
    """A 20x24 measurement, its expected counts, and a result whose model is 40 % off (a poor fit)."""
    rng = np.random.default_rng(seed)
    expected = rng.uniform(50, 400, (20, 24))
    measurement = Measurement(rng.poisson(expected).astype(np.float32), np.ones(expected.shape, bool))
    free = rng.random(expected.shape) < 0.2
    return measurement, expected, fake_result(measurement, 1.4 * expected, free, 9.0, method)
