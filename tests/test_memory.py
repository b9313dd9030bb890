"""Memory estimates, the free-memory query, and refusing at once a run that cannot fit (issue 7)."""

from __future__ import annotations

import math

import pytest
import torch
from typer.testing import CliRunner

from cdi_dip import memory
from cdi_dip.cli import app
from cdi_dip.config import Method, RunConfig
from cdi_dip.errors import InvalidInputError
from cdi_dip.memory import (
    PROJECTION_HELD_BYTES_PER_VOXEL,
    available_memory_bytes,
    check_memory,
    estimate_projection_memory_bytes,
)
from cdi_dip.solvers import estimate_memory_bytes
from cdi_dip.solvers.dip import estimate_dip_memory_bytes

runner = CliRunner()
GIB = 2**30


def test_projection_estimate_covers_the_held_arrays_and_grows_with_the_frame():
    small, large = estimate_projection_memory_bytes((128, 128, 128)), estimate_projection_memory_bytes((256,) * 3)
    assert 5 * small < large < 8 * small  # eight times the voxels, less the fixed part
    assert estimate_projection_memory_bytes((256,) * 3) >= PROJECTION_HELD_BYTES_PER_VOXEL * 256**3
    assert estimate_projection_memory_bytes((64, 64, 64)) > estimate_projection_memory_bytes((64, 64))
    # The measured CPU peak at 256^3 (1.68 GiB, docs/speed.md) is covered, without a wild margin.
    assert 1.68 * GIB <= large <= 3 * 1.68 * GIB


def test_estimate_of_each_method():
    shape = (64, 64, 64)
    for method in (Method.ER, Method.HIO, Method.RAAR):
        assert estimate_memory_bytes(RunConfig(method=method).validate(), shape) == \
            estimate_projection_memory_bytes(shape)
    dip = RunConfig(method=Method.DIP).validate()
    assert estimate_memory_bytes(dip, shape) == estimate_dip_memory_bytes(shape, dip)


def test_a_run_that_does_not_fit_is_refused_with_one_line_saying_how_to_fix_it(monkeypatch):
    monkeypatch.setattr(memory, "available_memory_bytes", lambda device: 1 * GIB)
    with pytest.raises(InvalidInputError) as caught:
        check_memory(3 * GIB, torch.device("cpu"), "hio on a 256x256x256 frame")
    message = str(caught.value)
    assert "\n" not in message
    assert "hio on a 256x256x256 frame needs about 3.0 GiB" in message and "1.0 GiB free" in message
    assert "--max-size" in message and "--bin" in message and "--device cpu" not in message
    with pytest.raises(InvalidInputError, match="--device cpu"):
        check_memory(3 * GIB, torch.device("cuda", 0), "dip on a 256x256x256 frame")
    check_memory(GIB // 2, torch.device("cpu"), "fits")  # no error


def test_unknown_free_memory_does_not_refuse(monkeypatch):
    monkeypatch.setattr(memory, "available_memory_bytes", lambda device: None)
    check_memory(10**15, torch.device("cpu"), "anything")


def test_cpu_free_memory_is_the_smaller_of_the_kernel_and_cgroup_figures(monkeypatch):
    assert available_memory_bytes(torch.device("cpu")) is None or available_memory_bytes(torch.device("cpu")) > 0
    monkeypatch.setattr(memory, "_meminfo_available_bytes", lambda: 8 * GIB)
    monkeypatch.setattr(memory, "_cgroup_available_bytes", lambda: 2 * GIB)
    assert available_memory_bytes(torch.device("cpu")) == 2 * GIB
    monkeypatch.setattr(memory, "_cgroup_available_bytes", lambda: None)
    assert available_memory_bytes(torch.device("cpu")) == 8 * GIB


def test_cuda_free_memory_counts_this_process_cache(monkeypatch):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (3 * GIB, 80 * GIB))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device: 2 * GIB)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device: GIB // 2)
    assert available_memory_bytes(torch.device("cuda", 0)) == 3 * GIB + GIB + GIB // 2


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    path = tmp_path_factory.mktemp("sim") / "small.cxi"
    result = runner.invoke(app, ["simulate", str(path), "--shape", "32,32,32", "--seed", "1"])
    assert result.exit_code == 0, result.output
    return path


@pytest.mark.parametrize("method", ["hio", "dip"])
def test_the_cli_refuses_at_once_before_any_iteration(scan, tmp_path, monkeypatch, method):
    needed = estimate_memory_bytes(RunConfig(method=Method(method)).validate(), (32, 32, 32))
    monkeypatch.setattr(memory, "available_memory_bytes", lambda device: needed // 2)

    def no_solver(*args, **kwargs):
        raise AssertionError("the solver must not start")

    monkeypatch.setattr("cdi_dip.restarts.solver_entry", lambda method: no_solver)
    out = tmp_path / "out"
    result = runner.invoke(app, ["reconstruct", str(scan), "--out", str(out), "--device", "cpu",
                                 "--method", method])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "needs about" in lines[0] and "--max-size" in lines[0], result.stderr
    assert not out.exists() or not any(out.iterdir())
    assert math.isfinite(needed)
