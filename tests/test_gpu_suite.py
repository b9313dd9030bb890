"""benchmarks/gpu_suite.sh (issue 17): cheap checks only.

The suite itself, even its ``--smoke`` run on the CPU, takes minutes, too long
for the test suite; docs/speed.md ("GPU check") records a measured smoke run.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_suite.sh"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def test_the_script_exists_and_parses():
    assert SCRIPT.is_file()
    checked = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stderr


def test_help_prints_the_usage_and_writes_nothing(tmp_path):
    shown = subprocess.run(["bash", str(SCRIPT), "--help"], capture_output=True, text=True, timeout=30,
                           cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "OUT": str(tmp_path / "out")})
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("Usage: bash benchmarks/gpu_suite.sh")
    for option in ("--device", "--smoke", "--out"):
        assert option in shown.stdout
    assert list(tmp_path.iterdir()) == []


def test_a_bad_option_is_refused_before_anything_is_written(tmp_path):
    refused = subprocess.run(["bash", str(SCRIPT), "--device", "tpu", "--out", str(tmp_path / "out")],
                             capture_output=True, text=True, timeout=30)
    assert refused.returncode == 2
    assert "--device" in refused.stderr
    assert not (tmp_path / "out").exists()
