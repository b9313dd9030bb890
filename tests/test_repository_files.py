"""Files at the repository root that packaging and new users rely on (issue 19)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_license_is_the_bsd_3_clause_text_pyproject_names():
    assert _pyproject()["project"]["license"] == {"text": "BSD-3-Clause"}
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
