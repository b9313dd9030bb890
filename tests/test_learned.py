"""The learned initialiser: losses and their symmetries, model files, training, resampling, --init learned."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cdi_dip.cli.app import app
from cdi_dip.errors import InvalidInputError
from cdi_dip.learned.data import measured_batch, simulated_batch
from cdi_dip.learned.files import ModelFile, load_model, save_model
from cdi_dip.learned.losses import active_loss, canonical, passive_loss, twin
from cdi_dip.learned.network import Architecture, PhaseNet, autocorrelation_features
from cdi_dip.learned.resample import check_frame, object_to_frame, to_model_frame
from cdi_dip.learned.training import TrainConfig, train
from cdi_dip.physics import FarField

TINY = dict(dim=2, size=16, width=4, depth=2)


class ForeignObject:
    """Pickled into a file to check that loading never runs or builds arbitrary objects."""


def _object(seed: int = 0, n: int = 32) -> torch.Tensor:
    """A complex blob with a smooth phase in the central half of an n x n frame (centred)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:n, :n] - n // 2
    amplitude = (np.abs(y) < n // 5) & (np.abs(x + 1) < n // 6)
    phase = 0.8 * np.sin(x / 3.0) + 0.3 * y / 4.0 + rng.normal(0, 0.05, (n, n))
    return torch.from_numpy((amplitude * np.exp(1j * phase)).astype(np.complex64))


def _direct_passive(obj: torch.Tensor, counts: torch.Tensor, valid: torch.Tensor) -> float:
    """The passive loss written out: best scale by least squares, misfit over measured power."""
    magnitude = torch.fft.fftshift(torch.fft.fftn(torch.fft.ifftshift(obj), norm="ortho")).abs().double()
    amp = counts.double().sqrt()
    v = valid.double()
    scale = (amp * magnitude * v).sum() / (magnitude.square() * v).sum()
    return float(((amp - scale * magnitude).square() * v).sum() / (counts.double() * v).sum())


def test_passive_loss_matches_its_equation_and_ignores_the_symmetries():
    obj = _object()
    counts = FarField(obj.shape).intensity(obj * 30)  # another scale than the object's
    valid = torch.ones_like(counts, dtype=torch.bool)
    valid[14:18, 14:18] = False  # a beamstop: free in the loss
    guess = _object(seed=1) * torch.exp(1j * torch.linspace(0, 1, 32))[None, :]
    loss = float(passive_loss(guess[None], counts[None], valid[None]))
    assert loss == pytest.approx(_direct_passive(guess, counts, valid), rel=1e-4)
    assert loss > 1e-3
    copies = {
        "shift": torch.roll(guess, shifts=(3, -5), dims=(0, 1)),
        "global phase": guess * np.exp(1.3j),
        "twin": twin(guess[None])[0],
    }
    for name, copy in copies.items():
        assert float(passive_loss(copy[None], counts[None], valid[None])) == pytest.approx(loss, rel=1e-4), name
    # The truth, its twin and its shifts fit exactly.
    for copy in (obj, twin(obj[None])[0], torch.roll(obj, 4, dims=1) * np.exp(0.4j)):
        assert float(passive_loss(copy[None], counts[None], valid[None])) < 1e-9


def test_twin_is_the_conjugate_point_reflection():
    obj = _object()
    twin_obj = twin(obj[None])[0]
    field, twin_field = FarField(obj.shape).forward(obj), FarField(obj.shape).forward(twin_obj)
    assert torch.allclose(twin_field, field.conj(), atol=1e-5)
    # conj(x(-r)) about the centre index n // 2 of an even frame.
    reflected = torch.roll(torch.flip(obj, dims=(0, 1)), shifts=(1, 1), dims=(0, 1)).conj()
    assert torch.allclose(twin_obj, reflected, atol=1e-5)


def test_active_loss_is_zero_for_every_copy_of_the_canonical_truth_and_not_for_another_object():
    obj = _object() * 10
    counts = FarField(obj.shape).intensity(obj)
    valid = torch.ones_like(counts, dtype=torch.bool)
    target = canonical(obj[None])
    assert float(active_loss(target, obj[None], counts[None], valid[None])) < 1e-8
    shifted_truth = torch.roll(obj, 5, dims=0) * np.exp(2.0j)  # the same data, another copy as "truth"
    assert float(active_loss(target, shifted_truth[None], counts[None], valid[None])) < 1e-8
    twin_target = canonical(twin(obj[None]))
    assert float(active_loss(twin_target, obj[None], counts[None], valid[None])) < 1e-8
    other = canonical(_object(seed=3)[None] * torch.exp(1j * torch.linspace(0, 3, 32))[None, None, :])
    assert float(active_loss(other, obj[None], counts[None], valid[None])) > 1e-2


def test_network_output_is_zero_outside_the_box_and_has_the_frame_shape():
    arch = Architecture(**TINY)
    net = PhaseNet(arch)
    counts = torch.rand(2, 16, 16) * 100
    with torch.no_grad():
        out = net(autocorrelation_features(counts, torch.ones_like(counts, dtype=torch.bool)))
    assert out.shape == (2, 16, 16) and out.dtype == torch.complex64
    assert float(out[:, :4].abs().max()) == 0 and float(out[:, :, 12:].abs().max()) == 0


def test_model_file_round_trip_and_refusals(tmp_path):
    arch = Architecture(**TINY)
    net = PhaseNet(arch)
    path = save_model(tmp_path / "m.pt", ModelFile(path=None, architecture=arch, state_dict=net.state_dict(),
                                                   training={"config": {"steps": 1}}))
    model = load_model(path)
    assert model.architecture == arch
    assert all(torch.equal(model.state_dict[k], v) for k, v in net.state_dict().items())

    bad = {
        "foreign.pt": lambda p: torch.save({"weights": torch.zeros(3)}, p),
        "code.pt": lambda p: torch.save({"format": "cdi-dip-model", "thing": ForeignObject()}, p),
        "text.pt": lambda p: p.write_text("not a model"),
        "truncated.pt": lambda p: p.write_bytes(path.read_bytes()[:200]),
        "newer.pt": lambda p: torch.save({**torch.load(path, weights_only=True), "format_version": 99}, p),
        "mismatch.pt": lambda p: torch.save({**torch.load(path, weights_only=True),
                                             "architecture": {**arch.to_dict(), "width": 8}}, p),
    }
    for name, write in bad.items():
        target = tmp_path / name
        write(target)
        with pytest.raises(InvalidInputError):
            load_model(target)
    with pytest.raises(InvalidInputError, match="does not exist"):
        load_model(tmp_path / "absent.pt")


def test_training_a_tiny_model_lowers_its_loss_and_resumes(tmp_path):
    samples = simulated_batch([100_000, 100_001, 100_002, 100_003], (16, 16), ["rounded", "faceted"], ["clean"])
    fixed = measured_batch(samples.counts.numpy(), samples.valid.numpy())
    cfg = TrainConfig(**TINY, steps=30, batch=4, learning_rate=5e-3, checkpoint_every=30, seed=1)
    path = tmp_path / "tiny.pt"
    torch.manual_seed(0)
    before = TrainConfig(**TINY, seed=1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(before.seed)
        start_net = PhaseNet(before.architecture)
    with torch.no_grad():
        start = float(passive_loss(start_net(autocorrelation_features(fixed.counts, fixed.valid)),
                                   fixed.counts, fixed.valid))
    summary = train(path, cfg, measured=fixed)
    assert summary["step"] == 30
    end = summary["validation"]["passive_loss"]
    assert end < 0.8 * start, (start, end)
    cfg.steps = 40
    resumed = train(path, cfg, measured=fixed, resume=True)
    assert resumed["step"] == 40
    assert [h["step"] for h in load_model(path).training["history"]] == [30, 40]


def test_resample_keeps_the_far_field_on_the_shared_pixels():
    obj = _object(n=16)
    field = FarField((16, 16)).forward(obj)
    big = object_to_frame(obj, (32, 24))
    big_field = FarField((32, 24)).forward(big)
    assert torch.allclose(big_field[8:24, 4:20], field, atol=1e-4)
    assert float(big_field[:8].abs().max()) < 1e-4
    counts, valid = to_model_frame(torch.ones(24, 40), torch.ones(24, 40, dtype=torch.bool), 32)
    assert counts.shape == (32, 32) and not bool(valid[:4].any()) and bool(valid[4:28].all())
    with pytest.raises(InvalidInputError, match="trained on 32"):
        check_frame((200, 200), 32, 2)
    with pytest.raises(InvalidInputError, match="3D"):
        check_frame((32, 32, 32), 32, 2)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    cfg = TrainConfig(dim=2, size=32, width=4, depth=2, steps=4, batch=4, pool=8, validation=2,
                      checkpoint_every=4, families=["rounded"], conditions=["clean"])
    train(folder / "tiny.pt", cfg)
    return folder / "tiny.pt"


def test_init_learned_runs_hio_from_the_network_and_its_support(tiny_model, scan, tmp_path):
    result = CliRunner().invoke(app, ["reconstruct", str(scan), "--out", str(tmp_path), "--method", "hio",
                                      "-n", "20", "--runs", "2", "--init", f"learned:{tiny_model}", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["status"] == "ok"
    assert summary["config"]["init"] == f"learned:{tiny_model}"
    import h5py

    with h5py.File(summary["output"]) as f:
        solver = json.loads(f["entry_1/image_1/process_1/results/solver"][()])
    assert solver["initial_support"] == "initialiser"


def test_method_net_writes_the_networks_object(tiny_model, scan, tmp_path):
    result = CliRunner().invoke(app, ["reconstruct", str(scan), "--out", str(tmp_path), "--method", "net",
                                      "--init", f"learned:{tiny_model}", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["method"] == "net" and summary["iterations"] == 0
    assert math.isfinite(summary["metrics"]["r_factor"])


@pytest.mark.parametrize("content", ["foreign", "text"])
def test_a_foreign_model_file_exits_2_before_anything_is_written(content, scan, tmp_path):
    model = tmp_path / "model.pt"
    if content == "foreign":
        torch.save({"state_dict": {}}, model)
    else:
        model.write_text("hello")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["reconstruct", str(scan), "--out", str(out), "--init", f"learned:{model}"])
    assert result.exit_code == 2
    assert "model file" in result.stderr and "Traceback" not in result.output
    assert not out.exists() or not any(out.iterdir())


def test_train_refuses_to_replace_a_file_and_resumes_only_a_model(tmp_path):
    existing = tmp_path / "m.pt"
    existing.write_text("precious")
    result = CliRunner().invoke(app, ["train", str(existing), "--size", "16", "--depth", "2"])
    assert result.exit_code == 2 and "exists" in result.stderr
    assert existing.read_text() == "precious"
    result = CliRunner().invoke(app, ["train", str(tmp_path / "none.pt"), "--resume"])
    assert result.exit_code == 2
    result = CliRunner().invoke(app, ["train", str(tmp_path / "x.pt"), "--loss", "supervised"])
    assert result.exit_code == 2 and "passive or active" in result.stderr


def test_the_shipped_model_loads_and_gives_an_object_for_a_frame_of_another_size(scan, tmp_path):
    from cdi_dip.learned.initialiser import default_model_path

    model = load_model(default_model_path(2))
    assert model.checkpoint is None and model.training["config"]["size"] == model.architecture.size
    result = CliRunner().invoke(app, ["reconstruct", str(scan), "--out", str(tmp_path), "--method", "net", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["method"] == "net" and summary["shape"] == [32, 32]
    with pytest.raises(InvalidInputError, match="no learned model is shipped for 3D"):
        default_model_path(3)
