"""Files at the repository root that packaging and new users rely on (issue 19)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_license_is_the_bsd_3_clause_text_pyproject_names():
    assert _pyproject()["project"]["license"] == "BSD-3-Clause"
    assert _pyproject()["project"]["license-files"] == ["LICENSE"]
    text = " ".join((ROOT / "LICENSE").read_text().split())
    assert text.startswith("BSD 3-Clause License Copyright (c) 2026, the cdi-dip developers ")
    for clause in (
        "1. Redistributions of source code must retain the above copyright notice,",
        "2. Redistributions in binary form must reproduce the above copyright notice,",
        "3. Neither the name of the copyright holder nor the names of its contributors may be used to endorse",
        'THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS"',
        "EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.",
    ):
        assert clause in text, clause


README_COMMANDS = (
    "python3 -m venv .venv && . .venv/bin/activate && pip install torch==2.13.0 && pip install -e . && "
    "cdi-dip reconstruct sample_data/crystal_2d.cxi --out results && "
    "cdi-dip compare results/crystal_2d/crystal_2d.cxi sample_data/crystal_2d_truth.npy",
    "python3 -m venv .venv && . .venv/bin/activate && pip install torch==2.13.0 && "
    "pip install -e '.[test,cluster]' && python -m pytest -q -p no:cacheprovider",
)


def _quick_start() -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("## Quick start")
    return readme[start:readme.index("\n## ", start + 1)]


def test_readme_quick_start_says_which_python_and_how_to_install_torch():
    section = _quick_start()
    minimum = _pyproject()["project"]["requires-python"].removeprefix(">=")
    text = " ".join(section.split())
    assert f"Python {minimum} or newer" in text
    assert "pip install torch --index-url https://download.pytorch.org/whl/cpu" in text
    assert "`pip install torch==2.13.0` must come first" in text
    assert "https://pytorch.org/get-started/locally/" in text
    for command in README_COMMANDS:  # the two commands themselves are unchanged
        assert f"```bash\n{command}\n```" in section, command
