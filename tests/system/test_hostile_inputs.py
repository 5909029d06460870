"""The worst hostile input through the real CLI, in its own process under a memory limit
(every hostile input in-process: tests/integration/test_hostile_inputs.py)."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from testsupport.hostile_inputs import POLICY_YAML, TEST, write_case
from testsupport.paths import REPO


@pytest.mark.slow
def test_worst_case_through_the_cli_under_rlimit(tmp_path: Path) -> None:
    """The real CLI, in its own process under RLIMIT_AS = 2 GiB, on the 100 MB channel JSON
    (the input that took 3.4 GB and never finished before the size limit): it must end
    cleanly, exit 0 without --strict, with the day file quarantined. The export's good day
    is left out: loading torch alone maps more than 2 GiB of address space (not of memory),
    so under this limit nothing may need the embedding model."""
    case = write_case("slack_huge_day_json", tmp_path / "corpus", TEST)
    (case.path / "general" / "2026-09-20.json").unlink()
    (tmp_path / "policy.yaml").write_text(POLICY_YAML)
    home = tmp_path / "cli-home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVRAG_")}
    env.update(
        GOVRAG_HOME=str(home),
        GOVRAG_MILVUS_URI=str(home / "milvus.db"),
        GOVRAG_POLICY=str(tmp_path / "policy.yaml"),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
    )
    limit = 2 * 1024**3

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    proc = subprocess.run(
        [sys.executable, "-m", "govrag.cli.main", "ingest", str(case.path), "--json"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=cap,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["quarantined"] == 1 and summary["new"] == 0, summary
    q = [q for q in summary["quarantine"] if q["reason"] == "too_large"]
    assert q and "2026-09-21.json" in q[0]["message"] and "MAX_DAY_JSON_BYTES" in q[0]["message"], summary
