"""Projection solvers and supports: each update against its equation, shrinkwrap, the supports
behind a beamstop, the automatic object constraints, and a tiny end-to-end fit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cdi_dip.ensemble import compare_objects
from cdi_dip.config import ProjectionConfig, RunConfig, config_from_dict
from cdi_dip.errors import InvalidInputError
from cdi_dip.physics import FarField, project_modulus
from cdi_dip.simulate import beamstop_mask, cell_specimen, expected_intensity, faceted_crystal
from cdi_dip.solvers.projections import (
    ProjectionRun,
    choose_constraints,
    er_update,
    friedel_asymmetry,
    hio_update,
    positive_update,
    raar_update,
    shrinkwrap_sigma_scale,
    solve_projections,
)
from cdi_dip.config.plan import parse_plan
from cdi_dip.solvers import Problem
from cdi_dip.support import (
    autocorrelation_support,
    half_autocorrelation_support,
    missing_centre_radius_px,
    shrinkwrap,
    sigma_schedule,
)


def _solve_projections(counts, valid, physics, cfg, *, generator, free=None, on_iter=None):
    """The projection solver on plain arrays: the tests' shorthand for a Problem and the run's options."""
    return solve_projections(Problem.build(counts, valid, physics, free=free), ProjectionRun.from_config(cfg),
                             rng=generator, on_iter=on_iter)

BETA = 0.9


def random_complex(shape, generator: torch.Generator) -> torch.Tensor:
    return torch.complex(torch.randn(shape, generator=generator), torch.randn(shape, generator=generator))


@pytest.fixture
def iterate():
    """A random iterate ``x``, a random ``P_M x`` and a random support, 8x8."""
    generator = torch.Generator().manual_seed(3)
    obj = random_complex((8, 8), generator)
    projected = random_complex((8, 8), generator)
    support = torch.rand((8, 8), generator=generator) > 0.5
    return obj, projected, support


def disc(shape, radius_px: float, centre=None) -> np.ndarray:
    centre = [n // 2 for n in shape] if centre is None else centre
    grids = np.indices(shape)
    return sum((g - c) ** 2 for g, c in zip(grids, centre)) <= radius_px**2


def counts_of(obj: np.ndarray, *, peak: float, seed: int, valid: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Poisson counts of a centred object (``peak`` photons at the brightest pixel) and the valid mask."""
    intensity = expected_intensity(obj)
    counts = np.random.default_rng(seed).poisson(intensity * peak / intensity.max()).astype(np.float32)
    valid = np.ones(obj.shape, dtype=bool) if valid is None else valid
    counts[~valid] = 0
    return torch.from_numpy(counts), torch.from_numpy(valid)


# -- updates against their equations ----------------------------------------------------------
def test_er_is_the_support_projection_of_the_modulus_projection(iterate):
    obj, projected, support = iterate
    updated = er_update(obj, projected, support)
    assert torch.equal(updated[support], projected[support])
    assert torch.all(updated[~support] == 0)
    # P_S is a projection: applying ER to its own output inside the support changes nothing.
    assert torch.equal(er_update(obj, updated, support), updated)


def test_hio_follows_fienup(iterate):
    obj, projected, support = iterate
    updated = hio_update(obj, projected, support, beta=BETA)
    assert torch.equal(updated[support], projected[support])
    assert torch.allclose(updated[~support], obj[~support] - BETA * projected[~support])


def test_raar_is_lukes_relaxed_reflections(iterate):
    obj, projected, support = iterate
    inside = support.to(obj.dtype)
    reflect_m = 2 * projected - obj  # R_M x
    reflect_s_of_reflect_m = 2 * inside * reflect_m - reflect_m  # R_S R_M x
    expected = BETA / 2 * (reflect_s_of_reflect_m + obj) + (1 - BETA) * projected
    assert torch.allclose(raar_update(obj, projected, support, beta=BETA), expected, atol=1e-6)


def test_er_with_positivity_projects_onto_support_and_non_negative_real_part(iterate):
    obj, projected, support = iterate
    updated = positive_update("ER", er_update, obj, projected, support)
    assert torch.all(updated.real >= 0) and torch.all(updated[~support] == 0)
    # The nearest point of the constraint set: the real part clipped, the imaginary part kept.
    assert torch.equal(updated[support].imag, projected[support].imag)
    assert torch.equal(updated[support].real, projected[support].real.clamp_min(0))
    assert torch.equal(positive_update("ER", er_update, obj, updated, support), updated)


def test_hio_with_positivity_treats_negative_real_part_as_outside(iterate):
    obj, projected, support = iterate
    update = lambda x, p, s: hio_update(x, p, s, beta=BETA)  # noqa: E731
    updated = positive_update("HIO", update, obj, projected, support)
    kept = support & (projected.real >= 0)
    assert torch.equal(updated[kept], projected[kept])
    assert torch.allclose(updated[~kept], obj[~kept] - BETA * projected[~kept])
    assert bool((support & ~kept).any()), "the fixture should hold in-support pixels with Re P_M x < 0"


def test_masked_modulus_projection_leaves_excluded_pixels_free():
    physics = FarField((16, 16))
    generator = torch.Generator().manual_seed(5)
    obj = random_complex((16, 16), generator)
    amplitude = torch.rand((16, 16), generator=generator) * 3
    valid = torch.from_numpy(~disc((16, 16), 2.5, centre=(0, 0)))  # FFT order: the beamstop at index 0
    field = physics.fft(obj)
    projected_field = physics.fft(physics.ifft(project_modulus(field, amplitude, valid)))
    assert torch.allclose(projected_field[~valid], field[~valid], atol=1e-5)
    assert torch.allclose(projected_field[valid].abs(), amplitude[valid], atol=1e-5)


# -- shrinkwrap and supports -------------------------------------------------------------------
def test_shrinkwrap_keeps_the_maximum_and_is_never_empty():
    generator = torch.Generator().manual_seed(0)
    obj = random_complex((12, 12), generator)
    obj[6, 6] = 50.0
    for threshold in (0.0, 0.5, 1.0):
        support = shrinkwrap(obj, sigma_px=1.0, threshold=threshold)
        assert bool(support[6, 6]) and bool(support.any())
    assert bool(shrinkwrap(torch.zeros((8, 8), dtype=torch.complex64), sigma_px=1.0, threshold=0.2).all())
    with_nan = obj.clone()
    with_nan[0, 0] = float("nan")
    assert bool(shrinkwrap(with_nan, sigma_px=1.0, threshold=0.2).any())


def test_shrinkwrap_of_a_uniform_disc_is_the_disc():
    truth = torch.from_numpy(disc((32, 32), 6))
    support = shrinkwrap(truth.to(torch.complex64), sigma_px=0.5, threshold=0.5)
    assert int((support ^ truth).sum()) <= 0.1 * int(truth.sum())


def test_autocorrelation_support_spans_twice_the_object():
    truth = disc((64, 64), 8)
    counts, valid = counts_of(truth.astype(np.complex64), peak=1e6, seed=1)
    support = autocorrelation_support(counts, valid, FarField(truth.shape), threshold=0.05)
    # The autocorrelation of a disc of radius 8 is a disc of radius 16 that falls to 0 at its edge.
    assert bool(support[torch.from_numpy(disc((64, 64), 12.0))].all())
    assert not bool(support[torch.from_numpy(~disc((64, 64), 16.5))].any())


def test_missing_centre_radius_is_the_beamstop_radius():
    assert missing_centre_radius_px(torch.ones((16, 16), dtype=torch.bool)) == 0.0
    for radius in (1.0, 3.0, 4.5):
        valid = torch.from_numpy(beamstop_mask((32, 32), radius))
        assert radius < missing_centre_radius_px(valid) <= radius + 1.0


@pytest.mark.parametrize("shape", [(32, 32), (16, 16, 16)])
def test_lone_valid_pixels_inside_a_masked_centre_do_not_make_it_measured(shape):
    """A saturated peak's unsaturated dark core (a dislocated crystal's) is one valid pixel in the hole."""
    valid = torch.from_numpy(beamstop_mask(shape, 4.5))
    radius = missing_centre_radius_px(valid)
    centre = tuple(n // 2 for n in shape)
    valid[centre] = True
    valid[tuple(c + 2 for c in centre)] = True
    assert missing_centre_radius_px(valid) == radius
    valid[tuple(c - 1 for c in centre)] = True  # three in a diagonal line: still isolated (2 neighbours)
    assert missing_centre_radius_px(valid) == radius
    block = tuple(slice(c - 1, c + 2) for c in centre)
    valid[block] = True  # a measured 3x3 (3x3x3) block: the centre is measured after all
    assert missing_centre_radius_px(valid) < 1.5


@pytest.mark.parametrize("beamstop_px", [2.0, 3.0])
def test_half_autocorrelation_support_covers_the_object_behind_a_beamstop(beamstop_px):
    shape = (64, 64)
    truth = cell_specimen(shape, rng=np.random.default_rng(0))
    inside = np.abs(truth) > 0
    counts, valid = counts_of(truth, peak=1e6, seed=2, valid=beamstop_mask(shape, beamstop_px))
    support = half_autocorrelation_support(counts, valid, FarField(shape), threshold=0.05,
                                           core_radius_px=4).numpy()
    assert (support & inside).sum() >= 0.95 * inside.sum()
    # About the object's own size, where the autocorrelation support is about four times it.
    assert inside.sum() <= support.sum() <= 4 * inside.sum()


def test_half_autocorrelation_support_of_a_centrosymmetric_object_is_the_object():
    """Without noise or beamstop, halving the difference set ``S - S = 2S`` of a square gives the square."""
    shape = (64, 64)
    square = np.zeros(shape, dtype=bool)
    square[26:39, 26:39] = True
    counts, valid = counts_of(square.astype(np.complex64), peak=1e8, seed=3)
    support = half_autocorrelation_support(counts, valid, FarField(shape), threshold=0.001,
                                           core_radius_px=2, envelope_sigma_px=0.5).numpy()
    assert (support & square).sum() >= 0.9 * square.sum()
    assert support.sum() <= 1.5 * square.sum()


# -- automatic constraints ---------------------------------------------------------------------
def test_friedel_asymmetry_is_zero_for_a_real_object_and_large_for_a_strained_crystal():
    rng = np.random.default_rng(4)
    cell, _ = counts_of(cell_specimen((32, 32), rng=rng).real.astype(np.complex64), peak=1e6, seed=4)
    crystal, _ = counts_of(faceted_crystal((32, 32), rng=rng, dislocation=True), peak=1e6, seed=4)
    everywhere = torch.ones((32, 32), dtype=torch.bool)
    real = friedel_asymmetry(cell, everywhere)
    strained = friedel_asymmetry(crystal, everywhere)
    assert abs(real.value) <= 3 * real.standard_error + 1e-3
    assert strained.value > 10 * (strained.standard_error + 1e-3)


@pytest.mark.parametrize("shape", [(31, 31), (32, 32)])
def test_friedel_asymmetry_mirrors_about_the_centre_pixel(shape):
    """A pattern made symmetric about index n // 2 reads as symmetric for odd and even sizes."""
    rng = np.random.default_rng(8)
    pattern = rng.uniform(100, 1000, size=shape)
    mirrored = pattern[::-1, ::-1]
    if shape[0] % 2 == 0:
        mirrored = np.roll(mirrored, (1, 1), axis=(0, 1))
    symmetric = torch.from_numpy(np.round(pattern + mirrored))
    asymmetric = torch.from_numpy(np.round(pattern))
    everywhere = torch.ones(shape, dtype=torch.bool)
    assert friedel_asymmetry(symmetric, everywhere).value <= 0
    assert friedel_asymmetry(asymmetric, everywhere).value > 0.01


def test_constraints_for_a_cell_behind_a_beamstop_and_for_a_crystal():
    opts = ProjectionConfig()
    physics = FarField((32, 32))
    rng = np.random.default_rng(6)
    cell, cell_valid = counts_of(cell_specimen((32, 32), rng=rng), peak=1e6, seed=6,
                                 valid=beamstop_mask((32, 32), 2))
    crystal, crystal_valid = counts_of(faceted_crystal((32, 32), rng=rng, dislocation=True), peak=1e5, seed=6)
    for_cell = choose_constraints(cell, cell_valid, physics, opts)
    assert for_cell.positivity and for_cell.missing_centre
    assert for_cell.shrinkwrap_threshold == opts.missing_centre_shrinkwrap_threshold
    for_crystal = choose_constraints(crystal, crystal_valid, physics, opts)
    assert not for_crystal.positivity and not for_crystal.missing_centre
    assert for_crystal.shrinkwrap_threshold == opts.shrinkwrap_threshold
    forced = choose_constraints(cell, cell_valid, physics, ProjectionConfig(positivity=False, missing_centre=False))
    assert not forced.positivity and not forced.missing_centre and forced.friedel_asymmetry is None


def test_projection_settings_are_validated_with_their_names():
    with pytest.raises(InvalidInputError, match="projection.positivity_max_asymmetry"):
        RunConfig(projection=ProjectionConfig(positivity_max_asymmetry=-0.1)).validate()
    with pytest.raises(InvalidInputError, match="projection.missing_centre_shrinkwrap_threshold"):
        RunConfig(projection=ProjectionConfig(missing_centre_shrinkwrap_threshold=1.5)).validate()
    with pytest.raises(InvalidInputError, match="projection.positivity"):
        config_from_dict({"projection": {"positivity": "yes"}})
    assert config_from_dict({"projection": {"positivity": True, "missing_centre": False}}).projection.positivity


# -- end to end ---------------------------------------------------------------------------------
def tiny_cell(beamstop_px: float):
    rng = np.random.default_rng(11)
    truth = cell_specimen((32, 32), rng=rng)
    counts, valid = counts_of(truth, peak=1e6, seed=11, valid=beamstop_mask((32, 32), beamstop_px))
    return truth, counts, valid


@pytest.mark.parametrize("method", ["hio", "raar"])
def test_a_tiny_fit_lowers_the_loss(method):
    _, counts, valid = tiny_cell(0)
    cfg = RunConfig(method=method, device="cpu", projection=ProjectionConfig(plan=f"20*ER+100*{method.upper()}+20*ER",
                                                                             metric_period=10)).validate()
    output = _solve_projections(counts, valid, FarField((32, 32)), cfg, generator=torch.Generator().manual_seed(0))
    losses = [entry["loss"] for entry in output.history]
    assert losses[-1] < 0.5 * losses[0]
    assert output.support.any() and output.extra["positivity"] and not output.extra["missing_centre"]


def test_shrinkwrap_blurs_more_on_frames_above_its_reference_size():
    assert shrinkwrap_sigma_scale((64, 64), 128) == 1.0
    assert shrinkwrap_sigma_scale((128, 128, 128), 128) == 1.0
    assert shrinkwrap_sigma_scale((160, 200), 128) == pytest.approx(1.25)
    assert shrinkwrap_sigma_scale((512, 384), 128) == 2.0  # capped at the factor measured
    assert shrinkwrap_sigma_scale((512, 512), 0) == 1.0  # 0 switches the scaling off


@pytest.mark.parametrize("frame_px, expected", [(128, [3.0, 1.0]), (0, [1.5, 0.5])])
def test_a_large_frame_is_shrinkwrapped_with_the_scaled_blur(frame_px, expected):
    rng = np.random.default_rng(3)
    truth = np.zeros((256, 256), dtype=np.complex64)
    truth[96:160, 100:150] = np.exp(1j * rng.uniform(0, 0.5, (64, 50)))
    counts, valid = counts_of(truth, peak=1e6, seed=3)
    cfg = RunConfig(method="hio", device="cpu", projection=ProjectionConfig(
        plan="20*ER+20*HIO+20*ER", shrinkwrap_sigma_frame_px=frame_px)).validate()
    physics = FarField((256, 256))
    output = _solve_projections(counts, valid, physics, cfg, generator=torch.Generator().manual_seed(0))
    assert output.extra["shrinkwrap_sigma_px"] == expected


def test_behind_a_beamstop_the_missing_centre_is_recovered_not_zeroed():
    truth, counts, valid = tiny_cell(2)
    physics = FarField((32, 32))
    cfg = RunConfig(device="cpu", projection=ProjectionConfig(plan="2*(20*ER+100*HIO)+40*ER")).validate()
    output = _solve_projections(counts, valid, physics, cfg, generator=torch.Generator().manual_seed(1))
    assert output.extra["missing_centre"] and output.extra["positivity"]
    assert np.all(output.obj.real >= 0)
    model = physics.intensity(torch.from_numpy(output.obj)).numpy()
    expected = expected_intensity(truth)
    expected = expected * counts.numpy()[valid.numpy()].sum() / expected[valid.numpy()].sum()
    hidden = ~valid.numpy()
    # The hidden zero frequency is free, so it is filled in from the support and positivity
    # (forcing it to zero in the modulus projection gives a ratio of 1e-4 and an error of 0.96).
    assert 0.7 < model[hidden].sum() / expected[hidden].sum() < 1.4
    assert compare_objects(output.obj, truth).error < 0.5


# -- the fused loop against a straightforward one (issue 7) ------------------------------------
def project_modulus_single_sqrt(field, amplitude, valid, *, eps: float = 1e-12):
    """:func:`project_modulus` with ``|field| = sqrt(re^2 + im^2)`` in float32, as the C kernel rounds it.

    The square root is rounded correctly (IEEE ``sqrtf``): through double precision, which rounds a float's
    square root exactly once more (torch's float32 ``sqrt`` on a CPU may be an ulp off).
    """
    squared = field.real.square() + field.imag.square()
    magnitude = squared.double().sqrt().float().clamp_min(eps)
    return torch.where(valid, field * (amplitude / magnitude), field)


REFERENCE_MODULUS = {"c": project_modulus_single_sqrt, "torch": project_modulus}
"""The modulus projection each fused backend reproduces bit for bit."""


def reference_solve(counts, valid, physics, cfg, generator, project=project_modulus, *,
                    at: int | None = None) -> np.ndarray:
    """The plan as a plain loop of the pure updates and ``project`` (the loop before issue 7): the constrained
    object after the last iteration, or after iteration ``at``."""
    opts = cfg.projection
    steps = parse_plan(opts.plan)
    constraints = choose_constraints(counts, valid, physics, opts)
    counts_f, valid_f = physics.to_fft_order(counts.float()), physics.to_fft_order(valid)
    amplitude = torch.where(valid_f, counts_f.clamp_min(0).sqrt(), torch.zeros(()))
    support = physics.to_fft_order(constraints.support)
    phase = torch.rand(amplitude.shape, generator=generator) * (2 * torch.pi)
    x = torch.where(support, physics.ifft(torch.polar(amplitude, phase)), torch.zeros((), dtype=torch.complex64))
    updates = {"ER": er_update, "HIO": lambda x, p, s: hio_update(x, p, s, beta=opts.beta),
               "RAAR": lambda x, p, s: raar_update(x, p, s, beta=opts.beta)}
    total = sum(step.iterations for step in steps)
    last_shrinkwrap = total - steps[-1].iterations if len(steps) > 1 and steps[-1].algorithm == "ER" else total
    iteration = 0
    for step in steps:
        for _ in range(step.iterations):
            projected = physics.ifft(project(physics.fft(x), amplitude, valid_f))
            if constraints.positivity:
                x = positive_update(step.algorithm, updates[step.algorithm], x, projected, support)
            else:
                x = updates[step.algorithm](x, projected, support)
            iteration += 1
            if iteration % opts.shrinkwrap_period == 0 and iteration <= last_shrinkwrap:
                sigma = sigma_schedule(opts.shrinkwrap_sigma_start, opts.shrinkwrap_sigma_end,
                                       iteration / last_shrinkwrap)
                sigma *= shrinkwrap_sigma_scale(physics.shape, opts.shrinkwrap_sigma_frame_px)
                support = shrinkwrap(x, sigma_px=sigma, threshold=constraints.shrinkwrap_threshold)
            if iteration == at:
                break
        if iteration == at:
            break
    obj = torch.where(support, x, torch.zeros((), dtype=x.dtype))
    if constraints.positivity:
        obj = torch.complex(obj.real.clamp_min(0), obj.imag)
    return physics.to_centred(obj).numpy()


def crystal_counts(shape, seed: int):
    return counts_of(faceted_crystal(shape, rng=np.random.default_rng(seed), dislocation=True), peak=1e5, seed=seed)


@pytest.mark.parametrize("kernels", ["c", "torch"])
@pytest.mark.parametrize("case", ["crystal-2d", "cell-beamstop-2d", "crystal-3d"])
def test_the_fused_loop_gives_the_object_of_the_plain_loop(case, kernels, monkeypatch):
    monkeypatch.setenv("CDI_DIP_KERNELS", kernels)
    if case == "crystal-2d":
        counts, valid = crystal_counts((32, 32), seed=21)
    elif case == "cell-beamstop-2d":
        _, counts, valid = tiny_cell(2)
    else:
        counts, valid = crystal_counts((16, 16, 16), seed=22)
    physics = FarField(tuple(counts.shape))
    plan = "10*ER+30*HIO+20*RAAR+10*ER"
    frame_px = 20 if case == "crystal-2d" else 128  # the 32 px crystal is shrinkwrapped with 1.6 times the blur
    cfg = RunConfig(device="cpu", projection=ProjectionConfig(plan=plan, shrinkwrap_period=10, metric_period=7,
                                                              shrinkwrap_sigma_frame_px=frame_px)).validate()
    output = _solve_projections(counts, valid, physics, cfg, generator=torch.Generator().manual_seed(4))
    expected = reference_solve(counts, valid, physics, cfg, torch.Generator().manual_seed(4),
                               REFERENCE_MODULUS[kernels], at=output.extra.get("best_iteration"))  # the one returned
    assert output.extra["positivity"] == (case == "cell-beamstop-2d")
    assert np.linalg.norm(output.obj - expected) <= 1e-5 * np.linalg.norm(expected)


@pytest.mark.parametrize("kernels", ["c", "torch"])
@pytest.mark.parametrize("algorithm,positivity", [("ER", False), ("ER", True), ("HIO", False), ("HIO", True),
                                                  ("RAAR", False), ("RAAR", True)])
def test_each_fused_step_is_its_equation(algorithm, positivity, kernels):
    from cdi_dip.solvers.fused import ModulusTarget, outside_coefficients, positivity_mode, select_backend

    generator = torch.Generator().manual_seed(9)
    shape = (384, 384)  # > 2 * MIN_CHUNK elements: the C backend splits the work over two threads
    obj, field = random_complex(shape, generator), random_complex(shape, generator)
    amplitude = torch.rand(shape, generator=generator) * 3
    valid = torch.rand(shape, generator=generator) > 0.2
    support = torch.rand(shape, generator=generator) > 0.5
    backend = select_backend(torch.device("cpu"), kernels)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        fused_field = backend.project_modulus_(field.clone(), ModulusTarget.build(amplitude, valid))
        projected = random_complex(shape, generator)
        updated = backend.update_(projected.clone(), obj, support, outside_coefficients(algorithm, BETA),
                                  positivity_mode(algorithm, positivity))
    finally:
        torch.set_num_threads(threads)
    assert backend.name == kernels
    assert torch.equal(fused_field, REFERENCE_MODULUS[kernels](field, amplitude, valid))
    # Either way within float32 rounding of the exact projection: |field| to 1.5 ulp, then a division
    # and a product (2^-24 each), so below 3 ulp of the largest value.
    exact = project_modulus(field.to(torch.complex128), amplitude.double(), valid)
    assert (fused_field - exact).abs().max() <= 3 * 2.0**-23 * exact.abs().max()
    update = {"ER": er_update, "HIO": lambda x, p, s: hio_update(x, p, s, beta=BETA),
              "RAAR": lambda x, p, s: raar_update(x, p, s, beta=BETA)}[algorithm]
    expected = positive_update(algorithm, update, obj, projected, support) if positivity else update(obj, projected,
                                                                                                      support)
    assert torch.allclose(updated, expected, rtol=1e-6, atol=1e-6)


# -- Ctrl-C keeps the best iterate (issue 8) ------------------------------------------------------
def interrupted_fit(stop_at: int, free_fraction: float = 0.0, plan: str = "20*ER+300*HIO+20*ER"):
    """A crystal fit stopped by Ctrl-C (KeyboardInterrupt from ``on_iter``) at iteration ``stop_at``."""
    counts, valid = crystal_counts((32, 32), seed=31)
    free = None
    if free_fraction:
        free = (torch.rand((32, 32), generator=torch.Generator().manual_seed(5)) < free_fraction) & valid
        valid = valid & ~free
    physics = FarField((32, 32))
    cfg = RunConfig(device="cpu", projection=ProjectionConfig(plan=plan, metric_period=10)).validate()

    def stop(entry):
        if entry["iteration"] >= stop_at:
            raise KeyboardInterrupt

    output = _solve_projections(counts, valid, physics, cfg, generator=torch.Generator().manual_seed(2), free=free,
                               on_iter=stop)
    model = physics.intensity(torch.from_numpy(output.obj))
    return output, counts, valid, free, model


@pytest.mark.parametrize("free_fraction", [0.0, 0.1])
def test_ctrl_c_returns_the_best_checkpoint_not_the_current_hio_iterate(free_fraction):
    from cdi_dip.metrics import poisson_deviance

    output, counts, valid, free, model = interrupted_fit(stop_at=320, free_fraction=free_fraction)
    assert output.interrupted and output.iterations == 320
    key = "free_loss" if free is not None else "loss"
    best = min(output.history, key=lambda entry: entry[key])
    assert output.extra["best_iteration"] == best["iteration"] < 320  # HIO at 320 is poorer than an earlier one
    # The object returned is the one whose figures were recorded at that checkpoint, with its support.
    assert poisson_deviance(model, counts, valid) == pytest.approx(best["loss"], rel=1e-4)
    assert int(output.support.sum()) == best["support_size"]
    assert best[key] < 0.5 * output.history[-1][key]


def test_a_normal_finish_returns_the_best_checkpoint_the_last_unless_an_earlier_fit_better():
    from cdi_dip.metrics import poisson_deviance

    output, counts, valid, _, model = interrupted_fit(stop_at=10**6)
    best = min(output.history, key=lambda entry: entry["loss"])
    assert not output.interrupted
    assert output.extra.get("best_iteration", output.iterations) == best["iteration"]
    assert poisson_deviance(model, counts, valid) == pytest.approx(best["loss"], rel=1e-4)
    assert int(output.support.sum()) == best["support_size"]


def test_a_run_ending_on_a_poorer_hio_iterate_returns_the_earlier_checkpoint_that_fit_better():
    """Without a final ER block the last HIO iterate fits worse than an earlier checkpoint (as after Ctrl-C
    above): the run returns that checkpoint, and says which."""
    from cdi_dip.metrics import poisson_deviance

    output, counts, valid, _, model = interrupted_fit(stop_at=10**6, plan="20*ER+300*HIO")
    best = min(output.history, key=lambda entry: entry["loss"])
    assert not output.interrupted and output.iterations == 320
    assert output.extra["best_iteration"] == best["iteration"] < 320
    assert poisson_deviance(model, counts, valid) == pytest.approx(best["loss"], rel=1e-4)
    assert best["loss"] < output.history[-1]["loss"]
