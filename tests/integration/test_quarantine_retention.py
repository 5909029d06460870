"""Quarantine records name files and repeat parser messages: they go with the document they
belong to when it is purged, and with the retention sweep once older than
GOVRAG_QUARANTINE_KEEP_DAYS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from governance import purge
from governance.catalog.models import Quarantine


def _record(catalog, path: str, document_id: str | None, age_days: float = 0) -> None:
    catalog.runs.quarantine(
        run_id=None, source="pdf", path=path, document_id=document_id, reason="corrupt", message=f"{path}: broken"
    )
    if age_days:
        with catalog.session() as s:
            s.execute(
                update(Quarantine)
                .where(Quarantine.path == path)
                .values(created_at=datetime.now(UTC) - timedelta(days=age_days))
            )


def test_purging_a_document_deletes_its_quarantine_records(
    sqlite_stores, embedder, sample_corpus, make_ingestor
) -> None:

    make_ingestor(sqlite_stores, embedder).ingest_paths([sample_corpus])
    doc = "pdf:handbook/holidays-and-leave.pdf"
    _record(sqlite_stores.catalog, "handbook/jane-doe-leave.pdf", doc)
    _record(sqlite_stores.catalog, "other/unrelated.pdf", None)
    purge.purge_documents(sqlite_stores.catalog, sqlite_stores.index, [doc], reason="t", selector={"document": doc})
    paths = [q["path"] for q in sqlite_stores.catalog.runs.quarantined()]
    assert "other/unrelated.pdf" in paths and "handbook/jane-doe-leave.pdf" not in paths


def test_the_expired_sweep_deletes_quarantine_records_past_their_keep_days(sqlite_stores) -> None:
    catalog = sqlite_stores.catalog
    _record(catalog, "old.pdf", None, age_days=91)
    _record(catalog, "recent.pdf", None, age_days=89)
    report = purge.purge_documents(catalog, sqlite_stores.index, [], reason="expired", selector={"expired": True})
    purge.expire_quarantine(catalog, report, keep_days=90, now=datetime.now(UTC))
    assert report.quarantine_records_deleted == 1
    assert [q["path"] for q in catalog.runs.quarantined()] == ["recent.pdf"]


def test_a_dry_run_keeps_quarantine_records(sqlite_stores) -> None:
    _record(sqlite_stores.catalog, "old.pdf", None, age_days=400)
    report = purge.purge_documents(
        sqlite_stores.catalog, sqlite_stores.index, [], reason="expired", selector={"expired": True}, dry_run=True
    )
    purge.expire_quarantine(sqlite_stores.catalog, report, keep_days=90, now=datetime.now(UTC))
    assert report.quarantine_records_deleted == 0 and len(sqlite_stores.catalog.runs.quarantined()) == 1
