"""The layers are a check, not a sentence: `lint-imports` (import-linter, contracts in
pyproject.toml) passes on the code, and fails when an import runs upwards."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from testsupport.paths import REPO

PACKAGES = ["governance", "embedding", "ingest", "retrieval", "dagster_project", "govrag", "testsupport"]
LINT = Path(sys.executable).parent / "lint-imports"


def lint(cwd: Path) -> subprocess.CompletedProcess[str]:
    if not LINT.exists():
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVRAG_")} | {"PYTHONPATH": str(cwd)}
    return subprocess.run([str(LINT), "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_code_keeps_its_layers() -> None:
    done = lint(REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(
    "module, planted",
    [
        ("governance/policy.py", "import retrieval.search"),  # the bottom layer reaching up
        ("embedding/base.py", "import ingest.pipeline.run"),  # embedding above ingest
        ("retrieval/search.py", "from ingest.sources import open_source"),  # retrieval and ingest are siblings
        ("ingest/pipeline/run.py", "import govrag.cli.main"),  # the CLI is on top
        ("dagster_project/definitions.py", "import testsupport.milvus_server"),  # test support in production
    ],
)
def test_a_planted_import_against_the_layers_fails_the_check(tmp_path: Path, module: str, planted: str) -> None:
    for package in PACKAGES:
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    with open(tmp_path / module, "a") as f:
        f.write(f"\n{planted}  # planted by the test\n")
    done = lint(tmp_path)
    assert done.returncode != 0 and "BROKEN" in done.stdout, done.stdout + done.stderr
