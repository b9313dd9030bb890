"""The fused C kernels built at install time: used where no compiler works, and never silently slower without them."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import h5py
import pytest
import torch
from typer.testing import CliRunner

from cdi_dip.cli import app
from cdi_dip.solvers import fused
from cdi_dip.solvers.fused import ModulusTarget, outside_coefficients, positivity_mode, select_backend

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed_library(tmp_path_factory) -> Path:
    """The library as ``pip install`` builds it: setup.py's ``build_ext`` into a temporary folder."""
    if fused._compiler() is None:
        pytest.skip("no C compiler (cc, gcc or $CC) to build the library with")
    pytest.importorskip("setuptools")
    folder = tmp_path_factory.mktemp("install")
    result = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--build-lib", str(folder / "lib"),
                             "--build-temp", str(folder / "temp")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    library = folder / "lib" / "cdi_dip" / "solvers" / fused.INSTALLED_LIBRARY
    assert library.is_file(), result.stderr
    return library


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """:mod:`cdi_dip.solvers.fused` with its kernels forgotten before and after, and a private cache folder."""
    fused._load_c_library.cache_clear()
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    monkeypatch.setenv("CDI_DIP_CACHE", str(cache))
    monkeypatch.delenv("CDI_DIP_KERNELS", raising=False)
    yield monkeypatch
    fused._load_c_library.cache_clear()


def _without_compiler(monkeypatch, tmp_path, how: str) -> None:
    """No working C compiler: ``CC`` names one that does not exist, or is unset with no cc/gcc on the PATH."""
    empty = tmp_path / "empty-bin"
    empty.mkdir(exist_ok=True)
    monkeypatch.setenv("PATH", str(empty))
    if how == "CC=missing":
        monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    else:
        monkeypatch.delenv("CC", raising=False)


@pytest.mark.parametrize("how", ["CC=missing", "no cc on PATH"])
def test_without_a_compiler_the_library_built_at_install_is_used(fresh, tmp_path, installed_library, how, caplog):
    _without_compiler(fresh, tmp_path, how)
    fresh.setattr(fused, "_installed_path", lambda: installed_library)
    with caplog.at_level(logging.DEBUG, logger=fused.__name__):
        backend = select_backend(torch.device("cpu"))
    assert (backend.name, backend.description) == ("c", "c (built at install)")
    assert backend._library._name == str(installed_library)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not list((tmp_path / "cache").iterdir())  # nothing compiled


@pytest.mark.parametrize("choice", [None, "c"])
def test_without_either_build_the_torch_kernels_warn_that_the_run_is_slower(fresh, tmp_path, choice, caplog):
    _without_compiler(fresh, tmp_path, "CC=missing")
    fresh.setattr(fused, "_installed_path", lambda: tmp_path / fused.INSTALLED_LIBRARY)  # not built at install
    with caplog.at_level(logging.WARNING, logger=fused.__name__):
        backend = select_backend(torch.device("cpu"), choice)
        select_backend(torch.device("cpu"), choice)  # once per process, not once per run
    assert backend.name == "torch"
    assert backend.description.startswith("torch (no C kernels: ") and "no-such-cc" in backend.description
    assert "no library built at install time" in backend.description
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "slower" in warning.message and "install a C compiler" in warning.message and "set CC" in warning.message


def test_a_library_built_from_another_source_is_not_used(fresh, tmp_path, caplog):
    compiler = fused._compiler()
    if compiler is None:
        pytest.skip("no C compiler to build the library with")
    stale = tmp_path / fused.INSTALLED_LIBRARY
    subprocess.run([compiler, "-O3", "-shared", "-fPIC", '-DCDI_DIP_SOURCE_HASH="0123456789abcdef"',
                    str(fused._C_SOURCE_FILE), "-o", str(stale)], check=True)
    _without_compiler(fresh, tmp_path, "no cc on PATH")
    fresh.setattr(fused, "_installed_path", lambda: stale)
    with caplog.at_level(logging.WARNING, logger=fused.__name__):
        backend = select_backend(torch.device("cpu"))
    assert backend.name == "torch" and "from another source: reinstall cdi-dip" in backend.description
    assert "slower" in caplog.text


def test_choosing_torch_or_a_gpu_needs_no_c_kernels(fresh, tmp_path, caplog):
    _without_compiler(fresh, tmp_path, "CC=missing")
    with caplog.at_level(logging.WARNING, logger=fused.__name__):
        assert select_backend(torch.device("cpu"), "torch").description == "torch (chosen)"
        assert select_backend(torch.device("meta"), "c").description == "torch (meta)"
    assert not caplog.records


def _steps(backend, generator: torch.Generator, algorithm: str, positivity: bool):
    """Both fused steps of ``backend`` on random frames (the same frames for the same generator seed)."""
    shape = (96, 80)

    def complex_frame():
        return torch.complex(torch.randn(shape, generator=generator), torch.randn(shape, generator=generator))

    obj, field, projected = complex_frame(), complex_frame(), complex_frame()
    amplitude = torch.rand(shape, generator=generator) * 3
    valid, support = torch.rand(shape, generator=generator) > 0.2, torch.rand(shape, generator=generator) > 0.5
    modulus = backend.project_modulus_(field, ModulusTarget.build(amplitude, valid))
    update = backend.update_(projected, obj, support, outside_coefficients(algorithm, 0.9),
                             positivity_mode(algorithm, positivity))
    return modulus, update


@pytest.mark.parametrize("algorithm,positivity", [("ER", True), ("HIO", False), ("RAAR", True)])
def test_the_library_built_at_install_agrees_with_the_other_kernels(fresh, installed_library, algorithm, positivity):
    here = select_backend(torch.device("cpu"), "c")
    assert here.description == "c (compiled here)"
    installed = fused.CBackend(_load(installed_library), "c (built at install)")
    results = {name: _steps(backend, torch.Generator().manual_seed(5), algorithm, positivity)
               for name, backend in (("here", here), ("installed", installed), ("torch", fused.TorchBackend()))}
    for a, b in zip(results["installed"], results["here"]):
        assert torch.equal(a, b)  # no contraction into FMAs either way: the same rounding
    for a, b in zip(results["installed"], results["torch"]):
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-6)  # |x| in single against double precision


def _load(path: Path):
    """The library at ``path``, checked and declared as :func:`fused._built_at_install` does."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fused, "_installed_path", lambda: path)
        return fused._declare(fused._built_at_install())


def test_a_run_records_its_kernels_in_the_summary_and_the_result_file(fresh, tmp_path):
    scan = tmp_path / "tiny.cxi"
    runner = CliRunner()
    assert runner.invoke(app, ["simulate", str(scan), "--shape", "32,32", "--seed", "3"]).exit_code == 0
    fresh.setenv("CDI_DIP_KERNELS", "torch")
    result = runner.invoke(app, ["reconstruct", str(scan), "--method", "hio", "--iterations", "4", "--runs", "1",
                                 "--out", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 0, result.output
    (summary_file,) = (tmp_path / "out").rglob("summary.json")
    assert json.loads(summary_file.read_text())["versions"]["kernels"] == "torch (chosen)"
    (cxi,) = [p for p in (tmp_path / "out").rglob("*.cxi")]
    with h5py.File(cxi) as handle:
        assert handle["entry_1/image_1/process_1/versions/kernels"][()].decode() == "torch (chosen)"
