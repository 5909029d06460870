"""The CLI end to end on the embedded default: a local milvus-lite server shared by several
processes, an ingest and a searcher running at the same time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from testsupport.paths import SAMPLE_POLICY

pytestmark = pytest.mark.slow

SEARCHER = textwrap.dedent("""
    import json, sys
    from retrieval import search, User
    bob = User(id="bob@example.com", email="bob@example.com", groups=["eng"])
    seen = set()
    for i in range(int(sys.argv[1])):
        for hit in search(bob, "revenue budget deployment leave", k=20):
            assert not hit.document_id.startswith("pdf:finance/"), hit.document_id
            seen.add(hit.document_id)
    print(json.dumps(sorted(seen)))
""")


@pytest.fixture
def env(tmp_path):
    e = {k: v for k, v in os.environ.items() if not k.startswith("GOVRAG_")}
    e.update(GOVRAG_HOME=str(tmp_path / "home"), GOVRAG_POLICY=str(SAMPLE_POLICY), HF_HUB_OFFLINE="1")
    yield e
    subprocess.run([sys.executable, "-m", "govrag.cli.main", "server", "stop"], env=e, timeout=60)


def _govrag(env, *args, check=True):
    proc = subprocess.run(
        [sys.executable, "-m", "govrag.cli.main", *args], env=env, capture_output=True, text=True, timeout=300
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_ingest_and_search_run_in_separate_processes_at_the_same_time(env, sample_corpus, tmp_path):
    import shutil

    shutil.copytree(sample_corpus / "handbook", tmp_path / "first" / "handbook")
    first = json.loads(_govrag(env, "ingest", str(tmp_path / "first"), "--json").stdout)
    assert first["new"] == 1
    ingest = subprocess.Popen(
        [sys.executable, "-m", "govrag.cli.main", "ingest", str(sample_corpus), "--json", "--workers", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    searcher = subprocess.run(
        [sys.executable, "-c", SEARCHER, "15"], env=env, capture_output=True, text=True, timeout=300
    )
    out, err = ingest.communicate(timeout=300)
    assert searcher.returncode == 0, searcher.stderr
    assert ingest.returncode == 0, err
    summary = json.loads(out)
    assert (summary["new"], summary["unchanged"], summary["quarantined"]) == (4, 1, 4)
    assert summary["parse_workers"] == 2 and set(summary["stage_chunks_per_second"]) == {"parse", "embed", "write"}
    assert "pdf:handbook/holidays-and-leave.pdf" in json.loads(searcher.stdout)

    hits = json.loads(
        _govrag(
            env, "search", "granite-otter rollback script", "--user", "bob@example.com", "--group", "eng", "--json"
        ).stdout
    )
    assert hits[0]["document_id"] == "pdf:engineering/deploy-runbook.pdf"
    assert set(hits[0]) >= {
        "chunk_id",
        "document_id",
        "source",
        "title",
        "uri",
        "text",
        "score",
        "source_version",
        "expires_at",
    }
    assert json.loads(_govrag(env, "search", "revenue", "--user", "eve@example.com", "--json").stdout) == []

    status = json.loads(_govrag(env, "status", "--json").stdout)
    assert status["documents"] == {"active": 5} and status["vectors"] == status["chunks"] > 0
    assert status["quarantined"] == 4

    strict = _govrag(env, "ingest", str(sample_corpus), "--strict", "--json", check=False)
    assert strict.returncode == 4


def test_missing_path_is_a_one_line_error_with_a_hint(env, tmp_path):
    proc = _govrag(env, "ingest", str(tmp_path / "nope"), check=False)
    assert proc.returncode == 1
    assert "no such file or directory" in proc.stderr and "hint:" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_policy_file_is_reported_with_its_name(env, tmp_path, sample_corpus):
    bad = tmp_path / "bad.yaml"
    bad.write_text("access: [{match: {source: pdf}, allow: [['nogroup']]}]\n")
    proc = _govrag({**env, "GOVRAG_POLICY": str(bad)}, "ingest", str(sample_corpus), check=False)
    assert proc.returncode == 2 and str(bad) in proc.stderr


def test_audit_verify_and_export(env, tmp_path):
    from governance import audit
    from governance.catalog import Catalog

    catalog = Catalog(f"sqlite:///{tmp_path / 'home' / 'catalog.sqlite3'}")
    for i in range(3):
        audit.record(catalog, "search", "a@x.io", {"i": i})
    assert _govrag(env, "audit", "verify").returncode == 0
    exported = json.loads(_govrag(env, "audit", "export", "--since", "2000-01-01").stdout)
    assert [e["seq"] for e in exported] == [1, 2, 3] and all(len(e["hash"]) == 64 for e in exported)
    from sqlalchemy import text

    with catalog.engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET kind = 'nothing' WHERE seq = 2"))
    catalog.dispose()
    broken = _govrag(env, "audit", "verify", "--json", check=False)
    assert broken.returncode == 5 and json.loads(broken.stdout)["problems"][0]["seq"] == 2
