"""Shared fixtures: one device fixture (CPU, plus CUDA when present), seeds, paths, a small simulated scan."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    """Each test using it runs on the CPU, and on the GPU when one is present."""
    return torch.device(request.param)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="module")
def scan(tmp_path_factory) -> Path:
    """A 32x32 crystal scan written by ``cdi-dip simulate`` (defaults otherwise), once per test module."""
    from typer.testing import CliRunner

    from cdi_dip.cli.app import app

    folder = tmp_path_factory.mktemp("scan")
    result = CliRunner().invoke(app, ["simulate", str(folder / "c.cxi"), "--shape", "32,32"])
    assert result.exit_code == 0, result.output
    return folder / "c.cxi"


def pytest_collection_modifyitems(config, items):
    """Skip tests marked ``gpu`` when no CUDA device is present."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
