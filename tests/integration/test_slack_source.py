"""A generated Slack export through the real pipeline and search (reading, rendering and
scopes: tests/unit/test_slack_source.py)."""

from __future__ import annotations

from pathlib import Path

from testsupport.sources_fixtures import small_slack_export


def test_ingest_generated_export_end_to_end(
    tmp_path: Path, sqlite_stores, embedder, make_ingestor, make_retriever
) -> None:
    from governance.identity import User

    z = small_slack_export(tmp_path / "exp", as_zip=True)
    summary = make_ingestor(sqlite_stores, embedder).ingest_paths([z])
    assert summary.quarantined == 0 and summary.new == 5, summary
    again = make_ingestor(sqlite_stores, embedder).ingest_paths([z])
    assert again.new == 0 and again.unchanged == 5 and again.chunks_written == 0
    r = make_retriever(sqlite_stores, embedder)
    bob = User(id="bob@corp.example", email="bob@corp.example")
    hits = r.search(bob, "private roadmap", k=10)
    assert hits and all("G1" not in h.document_id for h in hits)
    alice = User(id="alice@corp.example", email="alice@corp.example")
    assert r.search(alice, "guest carol shares the private roadmap", k=1)[0].document_id.startswith("slack:T0ACME:G1:")
