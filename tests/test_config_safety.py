"""Issue 16, "never lose a scientist's data": configuration, command line and kernel cache refuse bad input cleanly."""

from __future__ import annotations

import dataclasses
import math
import re
import typing

import pytest
from typer.testing import CliRunner

from cdi_dip.cli import app
from cdi_dip.config import RunConfig, config_from_dict, load_toml
from cdi_dip.errors import InvalidInputError

runner = CliRunner()


def _float_fields(cls: type = RunConfig, section: str = "") -> list[tuple[str, ...]]:
    """Paths (section, field) of every float or optional-float field of the configuration."""
    paths = []
    for name, annotation in typing.get_type_hints(cls).items():
        options = typing.get_args(annotation) or (annotation,)
        if dataclasses.is_dataclass(annotation):
            paths += [(name, *path) for path in _float_fields(annotation, name)]
        elif float in options:
            paths.append((name,))
    return paths


FLOAT_FIELDS = _float_fields()


def _nested(path: tuple[str, ...], value) -> dict:
    data = value
    for key in reversed(path):
        data = {key: data}
    return data


def test_every_float_field_is_found():
    names = {".".join(path) for path in FLOAT_FIELDS}
    assert {"keep_max_error", "prep.threshold", "projection.beta", "projection.shrinkwrap_sigma_start",
            "detector.saturation", "detector.gap_fill_value", "dip.learning_rate"} <= names


# -- item 7: NaN and infinity in every float field ------------------------------------------------
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("path", FLOAT_FIELDS, ids=[".".join(path) for path in FLOAT_FIELDS])
def test_non_finite_floats_are_refused_naming_the_field(path, value):
    name = re.escape(".".join(path))
    with pytest.raises(InvalidInputError, match=rf"{name} = -?(nan|inf) is not a finite number"):
        config_from_dict(_nested(path, value))


def test_non_finite_floats_are_refused_in_a_directly_built_config():
    cfg = RunConfig()
    cfg.detector.gap_fill_value = math.nan  # a float field without any range check
    with pytest.raises(InvalidInputError, match=r"detector\.gap_fill_value = nan"):
        cfg.validate()


@pytest.mark.parametrize("line, name", [
    ("[projection]\nshrinkwrap_sigma_start = nan\n", "projection.shrinkwrap_sigma_start"),
    ("[projection]\nbeta = nan\n", "projection.beta"),
    ("[detector]\nbeamstop_radius = inf\n", "detector.beamstop_radius"),
    ("[detector]\ngap_fill_value = -inf\n", "detector.gap_fill_value"),
])
def test_non_finite_floats_in_toml_are_refused(tmp_path, line, name):
    path = tmp_path / "run.toml"
    path.write_text(line)
    with pytest.raises(InvalidInputError, match=re.escape(name) + " = -?(nan|inf) is not a finite number"):
        config_from_dict(load_toml(path))


@pytest.mark.parametrize("option, name", [("--threshold", "prep.threshold"), ("--saturation", "detector.saturation"),
                                          ("--beamstop-radius", "detector.beamstop_radius")])
@pytest.mark.parametrize("value", ["nan", "inf"])
def test_non_finite_options_are_one_line_exit_2(tmp_path, option, name, value):
    result = runner.invoke(app, ["inspect", str(tmp_path / "scan.npy"), option, value])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cdi-dip: error: ") and name in lines[0]


# -- item 6: one line and exit 2, never a traceback -----------------------------------------------
def test_a_toml_file_that_is_not_utf8_is_refused_in_one_line(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes('method = "hio"\n# r\u00e9glages\n'.encode("latin-1"))
    with pytest.raises(InvalidInputError, match=r"not UTF-8 text \(byte 0xe9 at offset 18\): save it as UTF-8"):
        load_toml(path)
    result = runner.invoke(app, ["inspect", str(tmp_path / "scan.npy"), "--config", str(path)])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [
        f"cdi-dip: error: configuration file {path} is not UTF-8 text (byte 0xe9 at offset 18): "
        "save it as UTF-8, as TOML requires"
    ]


@pytest.mark.parametrize("text, message", [
    ("(" * 5000 + "ER" + ")" * 5000, "parentheses nested more than 32 deep at position 32"),
    ("9000000*ER+9000000*HIO", r"more than 10000000 iterations \(at position 11\)"),
    ("9" * 5000 + "*ER", r"more than 10000000 iterations \(at position 0\)"),
    ("5000000*(ER+HIO)", "more than 100000 blocks"),
    ("+".join(["ER"] * 60000), "longer than 100000 characters"),
])
def test_absurd_plans_are_refused_in_one_short_line(text, message):
    with pytest.raises(InvalidInputError, match=message) as caught:
        config_from_dict({"projection": {"plan": text}})
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 300


def test_deepest_allowed_nesting_parses():
    from cdi_dip.config.plan import MAX_NESTING, Step, parse_plan

    assert parse_plan("(" * MAX_NESTING + "2*ER" + ")" * MAX_NESTING) == [Step("ER", 2)]


def test_a_plan_of_many_terms_parses_in_linear_time():
    import time

    from cdi_dip.config.plan import parse_plan

    start = time.perf_counter()
    steps = parse_plan("+".join(["ER", "HIO"] * 8000))  # 16000 terms: a minute when each '+' copied the plan
    assert len(steps) == 16000 and time.perf_counter() - start < 5


def test_a_deeply_nested_plan_on_the_command_line_is_one_line_exit_2(tmp_path):
    plan = "(" * 3000 + "ER" + ")" * 3000
    result = runner.invoke(app, ["reconstruct", str(tmp_path / "scan.npy"), "--plan", plan])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "parentheses nested more than" in lines[0]


@pytest.fixture(scope="module")
def tiny_scan(tmp_path_factory):
    path = tmp_path_factory.mktemp("scan") / "tiny.cxi"
    result = runner.invoke(app, ["simulate", str(path), "--shape", "32,32", "--seed", "3"])
    assert result.exit_code == 0, result.output
    return path


def test_a_bogus_kernels_variable_is_one_line_exit_2(tiny_scan, tmp_path):
    result = runner.invoke(app, ["reconstruct", str(tiny_scan), "--method", "hio", "--iterations", "4", "--runs", "1",
                                 "--out", str(tmp_path), "--quiet"], env={"CDI_DIP_KERNELS": "bogus"})
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [
        "cdi-dip: error: environment variable CDI_DIP_KERNELS='bogus': set it to one of auto, c, torch, or unset it"
    ]


def test_a_bogus_kernel_choice_names_the_variable():
    import torch

    from cdi_dip.solvers.fused import select_backend

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CDI_DIP_KERNELS", " Torch ")
        assert select_backend(torch.device("cpu")).name == "torch"
        patch.setenv("CDI_DIP_KERNELS", "cuda")
        with pytest.raises(InvalidInputError, match="CDI_DIP_KERNELS='cuda': set it to one of auto, c, torch"):
            select_backend(torch.device("cpu"))
        with pytest.raises(InvalidInputError, match="fused kernels 'fast': choose one of auto, c, torch"):
            select_backend(torch.device("cpu"), "fast")


@pytest.mark.parametrize("shape", ["100000,100000", "4000,4000,4000"])
def test_simulating_a_frame_larger_than_memory_is_one_line_exit_2(tmp_path, shape):
    result = runner.invoke(app, ["simulate", str(tmp_path / "big.cxi"), "--shape", shape])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cdi-dip: error: ") and "give a smaller shape" in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_simulate_scan_refuses_what_the_free_memory_cannot_hold(monkeypatch):
    import numpy as np

    from cdi_dip import memory
    from cdi_dip.simulate import simulate_scan

    monkeypatch.setattr(memory, "available_memory_bytes", lambda device: 2**20)
    with pytest.raises(InvalidInputError, match=r"shape 128x128: simulating it needs about 0\.00244 GiB of memory "
                                                 r"but the host has 0\.000977 GiB free"):
        simulate_scan("cell", (128, 128), rng=np.random.default_rng(0))
    monkeypatch.setattr(memory, "available_memory_bytes", lambda device: None)  # unknown: not refused
    assert simulate_scan("cell", (16, 16), rng=np.random.default_rng(0)).counts.shape == (16, 16)


def test_a_memory_error_while_simulating_is_one_line_exit_2(tmp_path, monkeypatch):
    import cdi_dip.simulate

    def out_of_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(cdi_dip.simulate, "simulate_scan", out_of_memory)
    result = runner.invoke(app, ["simulate", str(tmp_path / "x.cxi"), "--shape", "64,64"])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines() == [
        "cdi-dip: error: --shape 64,64: not enough memory to simulate this frame; give a smaller shape, e.g. 128,128"
    ]


# -- usage errors through the console-script entry point ------------------------------------------
def _main(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """Run ``cdi-dip ARGS`` through :func:`cdi_dip.cli.main` in this process: exit code, stdout, stderr."""
    from cdi_dip.cli import main

    monkeypatch.setattr("sys.argv", ["cdi-dip", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    out, err = capsys.readouterr()
    return exited.value.code or 0, out, err


@pytest.mark.parametrize("args, message", [
    (["reconstruct", "x", "--bogus"], "No such option: --bogus"),
    (["reconstruct", "x", "--iterations", "abc"], "Invalid value for '--iterations'"),
    (["reconstruct"], "Missing argument 'input'"),
    (["inspect", "x", "--threshold", "many"], "Invalid value for '--threshold'"),
    (["reconstrut", "x"], "No such command 'reconstrut'"),
])
def test_usage_errors_are_one_line_exit_2(monkeypatch, capsys, args, message):
    code, out, err = _main(monkeypatch, capsys, *args)
    assert code == 2 and out == ""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"cdi-dip: error: {message}") and "--help')" in lines[0]


def test_a_usage_error_from_the_installed_entry_point_is_one_line_exit_2():
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", "from cdi_dip.cli import main; main()", "reconstruct", "x",
                             "--bogus"], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "cdi-dip: error: No such option: --bogus (Possible options: --gpu, --out, --verbose) "
        "(see 'cdi-dip reconstruct --help')"
    ]


def test_help_version_and_exit_codes_still_work_through_main(monkeypatch, capsys, tmp_path):
    code, out, err = _main(monkeypatch, capsys, "--help")
    assert code == 0 and "reconstruct" in out and err == ""
    code, out, err = _main(monkeypatch, capsys, "reconstruct", "--help")
    assert code == 0 and "--iterations" in out and err == ""
    code, out, err = _main(monkeypatch, capsys, "version")
    assert code == 0 and out.strip() and err == ""
    code, out, err = _main(monkeypatch, capsys)  # no command: the help, exit 2 as before
    assert code == 2 and "reconstruct" in out
    code, out, err = _main(monkeypatch, capsys, "simulate", str(tmp_path / "x.cxi"), "--shape", "4,4")
    assert code == 2 and err.splitlines() == [
        "cdi-dip: error: --shape 4,4: give 2 or 3 sizes of at least 8 pixels, e.g. 128,128"]


def test_exits_and_errors_raised_inside_commands_keep_their_codes(monkeypatch, capsys):
    import typer

    from cdi_dip.cli import app
    from cdi_dip.errors import ReconstructionError

    def fail(kind: str) -> None:
        if kind == "exit":
            raise typer.Exit(7)
        if kind == "invalid":
            raise InvalidInputError("bad input, do this instead")
        if kind == "failed":
            raise ReconstructionError("it diverged")
        raise KeyboardInterrupt

    monkeypatch.setattr(app, "registered_commands", list(app.registered_commands))
    app.command("fail-for-test")(fail)
    assert _main(monkeypatch, capsys, "fail-for-test", "exit")[0] == 7
    assert _main(monkeypatch, capsys, "fail-for-test", "invalid")[::2] == (
        2, "cdi-dip: error: bad input, do this instead\n")
    assert _main(monkeypatch, capsys, "fail-for-test", "failed")[::2] == (1, "cdi-dip: error: it diverged\n")
    assert _main(monkeypatch, capsys, "fail-for-test", "interrupt")[0] == 130


# -- item 14: the compiled-kernel cache loads only the user's own, private files ------------------
@pytest.fixture
def kernels(monkeypatch):
    """:mod:`cdi_dip.solvers.fused` with its loaded library forgotten before and after the test."""
    from cdi_dip.solvers import fused

    if fused._compiler() is None:
        pytest.skip("no C compiler (cc, gcc or $CC)")
    fused._load_c_library.cache_clear()
    yield fused
    fused._load_c_library.cache_clear()


def _private_folder(path):
    path.mkdir(parents=True)
    path.chmod(0o700)
    return path


def _is_elf(path) -> bool:
    return path.read_bytes()[:4] == b"\x7fELF"


@pytest.mark.parametrize("mode", [0o666, 0o600], ids=["world-writable", "private-but-corrupt"])
def test_a_planted_library_file_is_compiled_over_not_loaded(kernels, tmp_path, monkeypatch, caplog, mode):
    folder = _private_folder(tmp_path / "cache")
    monkeypatch.setenv("CDI_DIP_CACHE", str(folder))
    planted = folder / kernels._kernel_name(kernels._compiler())
    planted.write_bytes(b"not a shared library")  # loading it would raise OSError
    planted.chmod(mode)
    library = kernels._load_c_library().library
    assert library is not None and library._name == str(planted)
    assert _is_elf(planted) and planted.stat().st_mode & 0o077 == 0
    assert ("writable by its group or by others" if mode == 0o666 else "cannot be loaded") in caplog.text
    assert sorted(p.name for p in folder.iterdir()) == [planted.name]


def _foreign(folder):
    import os

    if os.getuid() != 0:
        pytest.skip("handing a folder to another user needs root")
    os.chown(folder, 65534, -1)


@pytest.mark.parametrize("spoil, reason", [(lambda folder: folder.chmod(0o770), "writable by its group"),
                                           (lambda folder: folder.chmod(0o757), "writable by its group or by others"),
                                           (_foreign, "is owned by user id 65534")],
                         ids=["group-writable", "world-writable", "another-users"])
def test_nothing_is_loaded_from_an_untrusted_cache_folder(kernels, tmp_path, monkeypatch, caplog, spoil, reason):
    folder = _private_folder(tmp_path / "shared")
    monkeypatch.setenv("CDI_DIP_CACHE", str(folder))
    planted = folder / kernels._kernel_name(kernels._compiler())
    planted.write_bytes(b"\x7fELF planted")
    planted.chmod(0o700)
    spoil(folder)
    library = kernels._load_c_library().library
    assert library is not None and not library._name.startswith(str(folder))  # compiled privately
    assert library.cdi_modulus is not None
    assert planted.read_bytes() == b"\x7fELF planted" and list(folder.iterdir()) == [planted]
    assert reason in caplog.text and "private temporary folder" in caplog.text


def test_the_cache_folder_is_made_private(kernels, tmp_path, monkeypatch):
    folder = tmp_path / "new" / "cache"
    monkeypatch.setenv("CDI_DIP_CACHE", str(folder))
    library = kernels._load_c_library().library
    assert library is not None and library._name.startswith(str(folder))
    assert folder.stat().st_mode & 0o777 == 0o700
    (built,) = folder.iterdir()  # no temporary leftovers
    assert _is_elf(built) and built.stat().st_mode & 0o777 == 0o700


def test_the_library_name_keys_the_compiler(kernels, tmp_path):
    import shutil

    wrapper = tmp_path / "my-cc"
    wrapper.write_text(f'#!/bin/sh\nexec {shutil.which(kernels._compiler()) or kernels._compiler()} "$@"\n')
    wrapper.chmod(0o755)
    assert kernels._kernel_name(str(wrapper)) != kernels._kernel_name(kernels._compiler())
    assert kernels._kernel_name(kernels._compiler()) == kernels._kernel_name(kernels._compiler())


def test_two_processes_compiling_at_once_leave_one_complete_library(kernels, tmp_path):
    import ctypes
    from concurrent.futures import ThreadPoolExecutor

    folder = _private_folder(tmp_path / "cache")
    target = folder / kernels._kernel_name(kernels._compiler())
    with ThreadPoolExecutor(2) as pool:
        for future in [pool.submit(kernels._compile, kernels._C_SOURCE, target, kernels._compiler()) for _ in "ab"]:
            future.result()
    assert list(folder.iterdir()) == [target]
    assert ctypes.CDLL(str(target)).cdi_update is not None
