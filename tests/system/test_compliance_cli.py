"""A compliance officer at the ``govrag`` command: purges that confirm on a terminal and
refuse unknown targets, dry runs that say what would go and what a hold keeps, an audit log
that names who did it, and a status that lists quarantined files. Each test runs the
installed command in a subprocess against a copy of one ingested home."""

from __future__ import annotations

import getpass
import json
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from testsupport.paths import SAMPLE_POLICY

GOVRAG = Path(sys.executable).parent / "govrag"
BUDGET = "pdf:finance/budget-2027.pdf"


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory, embedder) -> Path:
    """A home with the sample corpus ingested (made once; each test works on a copy)."""
    from governance.settings import Settings
    from governance.stores import Stores
    from govrag.sample_corpus import write_sample_corpus
    from ingest.pipeline.run import Ingestor

    root = tmp_path_factory.mktemp("compliance")
    write_sample_corpus(root / "corpus")
    settings = Settings(home=root / "home", milvus_uri=str(root / "home" / "milvus.db"), policy=SAMPLE_POLICY)
    stores = Stores.open(settings)
    try:
        Ingestor(stores, lambda: embedder).ingest_paths([root / "corpus"])
    finally:
        stores.close()
    return root / "home"


@pytest.fixture
def home(ingested: Path, tmp_path: Path) -> Path:
    shutil.copytree(ingested, tmp_path / "home")
    return tmp_path / "home"


def env_for(home: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("GOVRAG_")}
    return base | {
        "GOVRAG_HOME": str(home),
        "GOVRAG_MILVUS_URI": str(home / "milvus.db"),
        "GOVRAG_POLICY": str(SAMPLE_POLICY),
        "HF_HUB_OFFLINE": "1",
    }


def govrag(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(GOVRAG), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env_for(home),
        stdin=subprocess.DEVNULL,
        cwd=home.parent,
    )


def on_terminal(home: Path, args: list[str], answer: str) -> tuple[int, str]:
    """Run with stdin and stdout on a pseudo-terminal; answer the first question."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [str(GOVRAG), *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env_for(home),
        cwd=home.parent,
        close_fds=True,
    )
    os.close(slave)
    out, answered, deadline = b"", False, time.monotonic() + 240
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the child closed the terminal
                break
            out += chunk
            if not answered and b"Go on?" in out:
                os.write(master, answer.encode() + b"\n")
                answered = True
        elif proc.poll() is not None:
            break
    rc = proc.wait(timeout=60)
    os.close(master)
    return rc, re.sub(r"\x1b\[[0-9;]*m", "", out.decode(errors="replace"))


def status(home: Path) -> dict:
    done = govrag(home, "status", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def audit(home: Path, kind: str) -> list[dict]:
    done = govrag(home, "audit", "export", "--kind", kind)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


# -- purge refuses what it does not know --------------------------------------------------------
@pytest.mark.parametrize(
    "args, what",
    [
        (["--document", "pdf:finance/budget-2072.pdf"], "no document 'pdf:finance/budget-2072.pdf'"),
        (["--source", "sharepoint"], "no document has the source or origin 'sharepoint'"),
        (["--subject", "user:nobody@example.com"], "knows no 'user:nobody@example.com'"),
    ],
)
def test_purging_an_unknown_target_is_an_error_not_a_purge_of_nothing(home: Path, args: list[str], what: str) -> None:
    done = govrag(home, "purge", *args, "--yes")
    assert done.returncode == 2, done.stdout + done.stderr
    assert what in done.stderr and "hint:" in done.stderr and "purged" not in done.stdout


def test_an_unknown_subject_can_still_be_recorded_as_forgotten_when_asked(home: Path) -> None:
    done = govrag(home, "purge", "--subject", "user:nobody@example.com", "--allow-unknown-subject", "--yes")
    assert done.returncode == 0, done.stderr
    assert audit(home, "forget_subject")[-1]["payload"]["subject"] == "user:nobody@example.com"


# -- dry run, confirmation, actor -----------------------------------------------------------------
def test_a_dry_run_names_the_documents_vectors_and_holds_and_changes_nothing(home: Path) -> None:
    assert govrag(home, "hold", "add", "document", BUDGET, "--reason", "litigation").returncode == 0
    before = status(home)
    done = govrag(home, "purge", "--source", "pdf", "--dry-run", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["dry_run"] and BUDGET in report["held"] and BUDGET not in report["documents"]
    assert report["documents"] and report["vectors_deleted"] > 0
    text = govrag(home, "purge", "--source", "pdf", "--dry-run").stdout
    assert "would purge" in text and "would be deleted" in text and f"held {BUDGET}" in text
    assert status(home)["documents"] == before["documents"] and status(home)["vectors"] == before["vectors"]


def test_purge_on_a_terminal_asks_and_a_no_purges_nothing(home: Path) -> None:
    rc, out = on_terminal(home, ["purge", "--document", BUDGET], "n")
    assert "purge 1 documents" in out and "Go on?" in out and "nothing purged" in out and rc == 1
    assert status(home)["documents"]["active"] >= 1 and not audit(home, "purge")


def test_purge_on_a_terminal_asks_and_a_yes_purges(home: Path) -> None:
    rc, out = on_terminal(home, ["purge", "--document", BUDGET], "y")
    assert rc == 0 and "purged 1 documents" in out
    assert [e["payload"]["documents"] for e in audit(home, "purge")] == [[BUDGET]]


def test_purges_and_holds_record_who_did_them(home: Path) -> None:
    assert govrag(home, "hold", "add", "source", "slack", "--actor", "dpo@corp.example").returncode == 0
    assert govrag(home, "hold", "remove", "source", "slack").returncode == 0
    assert govrag(home, "purge", "--document", BUDGET, "--yes", "--actor", "dpo@corp.example").returncode == 0
    assert audit(home, "hold_add")[-1]["actor"] == "dpo@corp.example"
    assert audit(home, "hold_remove")[-1]["actor"] == getpass.getuser()
    assert {e["actor"] for e in audit(home, "purge") + audit(home, "purge_verified")} == {"dpo@corp.example"}


# -- audit kinds, quarantined files -----------------------------------------------------------------
def test_audit_export_takes_the_kinds_it_writes_and_refuses_others(home: Path) -> None:
    assert audit(home, "ingest")
    assert "hold_add" in govrag(home, "audit", "export", "--help").stdout
    done = govrag(home, "audit", "export", "--kind", "hold")
    assert done.returncode == 2 and "did you mean 'hold_add'?" in done.stderr


def test_status_lists_each_quarantined_file_once_with_its_latest_reason(home: Path, ingested: Path) -> None:
    data = status(home)
    files = data["quarantined_files_latest"]
    names = [Path(f["path"]).name for f in files]
    assert len(names) == len(set(names)) == data["quarantined_files"]
    assert {"encrypted-forecast.pdf", "corrupt-ledger.pdf", "board-minutes-draft.pdf"} <= set(names)
    reasons = {Path(f["path"]).name: f["reason"] for f in files}
    assert reasons["encrypted-forecast.pdf"] == "encrypted" and reasons["board-minutes-draft.pdf"] == "no_access_rule"
    table = govrag(home, "status").stdout
    assert "quarantined files" in table and "encrypted" in table
