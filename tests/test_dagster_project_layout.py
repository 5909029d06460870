"""The Dagster project as its users meet it: `dg` finds and loads it from pyproject.toml,
and what the UI shows (asset, check and job descriptions) is Markdown, not reStructuredText."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RST = re.compile(r"``|:(?:func|class|meth|mod|attr):`")


def test_descriptions_the_ui_renders_hold_no_restructuredtext() -> None:
    from dagster_project.definitions import defs

    described = {f"asset {s.key.to_user_string()}": s.description for s in defs.resolve_all_asset_specs()}
    described |= {f"job {j.name}": j.description for j in defs.resolve_all_job_defs()
                  if not j.name.startswith("__")}  # Dagster's implicit asset job
    for check in defs.asset_checks or []:
        for spec in check.check_specs:
            described[f"check {spec.name}"] = spec.description
    assert described and all(described.values()), [k for k, v in described.items() if not v]
    assert {k: v for k, v in described.items() if RST.search(v or "")} == {}


def test_dg_finds_and_loads_the_project() -> None:
    dg = Path(sys.executable).parent / "dg"
    if not dg.exists():
        pytest.skip("dagster-dg-cli is not installed")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVRAG_")} | {
        "VIRTUAL_ENV": str(Path(sys.executable).parent.parent)}
    done = subprocess.run([str(dg), "check", "defs"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "All definitions loaded successfully" in done.stdout + done.stderr
