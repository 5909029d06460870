"""The Dagster project as its users meet it: `dg` finds and loads it from pyproject.toml
(the descriptions the UI shows: tests/unit/test_dagster_project_layout.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from testsupport.paths import REPO


def test_dg_finds_and_loads_the_project() -> None:
    dg = Path(sys.executable).parent / "dg"
    if not dg.exists():
        pytest.skip("dagster-dg-cli is not installed")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVRAG_")} | {
        "VIRTUAL_ENV": str(Path(sys.executable).parent.parent)
    }
    done = subprocess.run([str(dg), "check", "defs"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "All definitions loaded successfully" in done.stdout + done.stderr
