"""Bad values never stop a run: an export with timestamps far in the future, negative or not
numbers is ingested, the rest of it lands (the pure checks are in tests/unit/test_bad_values.py)."""

from __future__ import annotations

from pathlib import Path

from governance.policy import LATEST
from testsupport.sources_fixtures import SConv, SUser, add_messages, msg, write_slack_export


def test_slack_export_with_far_future_negative_and_junk_timestamps_lands_the_rest(
    sqlite_stores, embedder, make_ingestor, tmp_path: Path
) -> None:
    users = [SUser("U1", "alice", "alice@corp.example")]
    c = SConv("C1", "general", "public", ["U1"])
    add_messages(c, [msg("U1", "an ordinary message about the garden", 0)])
    c.days["2026-01-01"] = [
        {"type": "message", "user": "U1", "text": "from the year 9999", "ts": "253402300000.000100"},
        {"type": "message", "user": "U1", "text": "before the epoch", "ts": "-86400.5"},
        {"type": "message", "user": "U1", "text": "no number at all", "ts": "soon"},
        {"type": "message", "user": "U1", "text": "beyond any date", "ts": "1e300"},
    ]
    path = write_slack_export(tmp_path / "x", users, [c], team_info={"id": "T0ACME"})
    summary = make_ingestor(sqlite_stores, embedder).ingest_paths([path])
    assert summary.new >= 1 and summary.quarantined == 0
    documents = sqlite_stores.catalog.documents
    expiries = [documents.document_state(d).expires_at for d in documents.select_documents()]
    assert all(e is None or e <= LATEST for e in expiries)
