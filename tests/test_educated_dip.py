"""The educated double DIP: pretrained generators (``cdi-dip train-dip``) and ``--dip-weights``."""

from __future__ import annotations

import torch
import pytest
from typer.testing import CliRunner

from cdi_dip.cli import app
from cdi_dip.config import DipConfig, DipParam, Method, RunConfig
from cdi_dip.errors import InvalidInputError
from cdi_dip.learned.dip_generators import DipArchitecture, build, load_dip_weights
from cdi_dip.learned.dip_pretraining import (PretrainConfig, mean_start_loss, pretrain, save_generators,
                                             simulated_scans, training_seeds)
from cdi_dip.learned.files import ModelFile, save_model
from cdi_dip.learned.network import Architecture, PhaseNet
from cdi_dip.physics import FarField, pad_to_frame
from cdi_dip.solvers import Problem
from cdi_dip.solvers import dip_educated
from cdi_dip.solvers.dip import DipRun, object_shape, solve_dip
from cdi_dip.support import object_extent_px

TINY = {"size": 16, "channels": 4, "depth": 2, "families": ["faceted"], "conditions": ["clean"]}


def _write_generators(path, box, param="mag-phase", seed=3):
    arch = DipArchitecture(object_shape=tuple(box), param=param, channels=4, depth=2)
    model = build(arch, seed=seed)
    save_model(path, ModelFile(path=path, architecture=arch, state_dict=model.state_dict(), kind="dip-generators"))
    return model.state_dict()


def _crystal_data(frame=(32, 32), seed=0):
    physics = FarField(frame)
    grids = torch.meshgrid(*[torch.arange(n) - n / 4 + 0.5 for n in object_shape(frame)], indexing="ij")
    obj = ((grids[0].abs() < 5) & (grids[1].abs() < 4)) * torch.exp(0.3j * grids[1])
    intensity = physics.intensity(pad_to_frame(obj.to(torch.complex64), frame))
    counts = torch.poisson(intensity * (1e4 / intensity.max()), generator=torch.Generator().manual_seed(seed))
    return counts.float(), torch.ones(frame, dtype=torch.bool), physics


def test_pretrained_generators_round_trip_with_their_inputs(tmp_path):
    cfg = PretrainConfig(samples=2, inner_steps=2, **TINY)
    model, record = pretrain(cfg)
    save_generators(tmp_path / "g.pt", model, cfg, record)
    loaded = load_dip_weights(tmp_path / "g.pt")
    assert loaded.kind == "dip-generators" and loaded.architecture == cfg.architecture
    assert loaded.architecture.object_shape == (8, 8) and loaded.training["samples"] == 2
    assert {"g1.z", "g2.z"} <= set(loaded.state_dict)  # the fixed random inputs travel with the weights
    for name, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict[name], value), name


def test_a_run_with_dip_weights_starts_from_exactly_those_weights(tmp_path, monkeypatch):
    counts, valid, physics = _crystal_data()
    box = object_shape(physics.shape, object_extent_px(counts, valid, physics))
    stored = _write_generators(tmp_path / "g.pt", box)
    started = []
    original = dip_educated.Educated.networks

    def networks(self, device, autocast=False):
        model = original(self, device, autocast)
        started.append({k: v.clone() for k, v in model.state_dict().items()})
        return model

    monkeypatch.setattr(dip_educated.Educated, "networks", networks)
    cfg = RunConfig(method=Method.DIP, iterations=20, dip=DipConfig(
        weights=str(tmp_path / "g.pt"), warm_start_runs=0, channels=4, depth=2, polish_iterations=0,
        param=DipParam.MAG_PHASE)).validate()
    output = solve_dip(Problem.build(counts, valid, physics), DipRun.from_config(cfg),
                       rng=torch.Generator().manual_seed(0))
    assert len(started) == 1
    for name, value in stored.items():
        assert torch.equal(started[0][name], value), name
    record = output.extra["dip_weights"]
    assert record["path"] == str(tmp_path / "g.pt") and record["architecture"]["object_shape"] == list(box)
    assert record["warm_start_runs"] == 0 and record["prefit_iterations"] == 0
    assert output.extra["probe_losses"] == []  # one start, the pretrained one: no random probes


def test_an_educated_run_keeps_the_warm_start_unless_told_otherwise():
    educated = dip_educated.Educated(path="g.pt", arch=None, state={}, training={})
    assert dip_educated.warm_start_runs(educated, None) is dip_educated.EDUCATED_WARM_START_RUNS is None
    assert dip_educated.warm_start_runs(educated, 0) == 0
    assert dip_educated.warm_start_runs(None, None) is None


def test_generators_for_another_box_or_param_are_refused(tmp_path):
    _write_generators(tmp_path / "g.pt", (8, 8))
    with pytest.raises(InvalidInputError, match="8x8 mag-phase object.*needs a 16x16"):
        dip_educated.for_run(str(tmp_path / "g.pt"), (16, 16), DipParam.MAG_PHASE)
    with pytest.raises(InvalidInputError, match="real-imag"):
        dip_educated.for_run(str(tmp_path / "g.pt"), (8, 8), DipParam.REAL_IMAG)


@pytest.mark.parametrize("content", ["mismatched", "foreign", "initialiser"])
def test_reconstruct_with_unusable_dip_weights_exits_2_with_one_line(content, scan, tmp_path):
    model = tmp_path / "model.pt"
    if content == "mismatched":
        _write_generators(model, (6, 6))
    elif content == "foreign":
        torch.save({"state_dict": {}}, model)
    else:  # a learned initialiser is a model file of another kind
        arch = Architecture(size=16, width=2, depth=1)
        save_model(model, ModelFile(path=model, architecture=arch, state_dict=PhaseNet(arch).state_dict()))
    result = CliRunner().invoke(app, ["reconstruct", str(scan), "--out", str(tmp_path / "out"), "--method", "dip",
                                      "-n", "10", "--dip-weights", str(model)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output
    expected = {"mismatched": "6x6 mag-phase object", "foreign": "not a cdi-dip model file",
                "initialiser": "not pretrained double-DIP generators"}[content]
    assert expected in lines[0]


def test_pretraining_lowers_the_mean_data_loss_on_its_scans():
    cfg = PretrainConfig(samples=24, inner_steps=5, **TINY)
    scans = simulated_scans(training_seeds(cfg)[:3], cfg)
    untrained = mean_start_loss(build(cfg.architecture, seed=cfg.seed), scans)
    model, record = pretrain(cfg, scans=scans)
    assert record["samples"] == 24
    assert mean_start_loss(model, scans) < 0.9 * untrained


def test_pretrained_generators_are_refused_as_a_learned_initialiser(scan, tmp_path):
    _write_generators(tmp_path / "g.pt", (16, 16))
    result = CliRunner().invoke(app, ["reconstruct", str(scan), "--out", str(tmp_path / "out"), "--method", "hio",
                                      "--init", f"learned:{tmp_path / 'g.pt'}"])
    assert result.exit_code == 2 and "not a learned initialiser" in result.stderr


def test_train_dip_writes_generators_and_refuses_to_replace_a_file(tmp_path):
    out = tmp_path / "g.pt"
    result = CliRunner().invoke(app, ["train-dip", str(out), "--size", "16", "--channels", "4", "--depth", "2",
                                      "--samples", "2", "--inner-steps", "2", "--families", "faceted",
                                      "--conditions", "clean", "--json"])
    assert result.exit_code == 0, result.output
    assert load_dip_weights(out).architecture.object_shape == (8, 8)
    result = CliRunner().invoke(app, ["train-dip", str(out), "--size", "16"])
    assert result.exit_code == 2 and "exists" in result.stderr
