"""Publishing a batch of versions in one transaction, and the SQLite catalog's pooled
connections (SQLite and, when configured, PostgreSQL)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from governance.catalog import Catalog
from governance.catalog.documents import Publication
from governance.catalog.engine import BUSY_TIMEOUT_MS
from governance.contracts import AccessScope, SourceDocument
from governance.errors import CatalogError

NOW = datetime(2026, 12, 1, tzinfo=UTC)
SCOPE = AccessScope(key="group:staff", layers=(frozenset({"group:staff"}),))


def _doc(n: int) -> SourceDocument:
    return SourceDocument(
        document_id=f"pdf:batch/{n}.pdf", source="pdf", uri=f"file:///{n}", title=f"doc {n}", scope=SCOPE
    )


def _stage(catalog: Catalog, doc: SourceDocument, scope_id: int, text_: str) -> int:
    version, _ = catalog.documents.stage_version(
        doc,
        scope_id=scope_id,
        expires_at=None,
        content_hash=text_.ljust(64, "0")[:64],
        source_hash=None,
        cleaned_text=text_,
        texts=[text_],
        make_id=lambda d, v, i: hash((d, v, i)) & 0x7FFFFFFFFFFF,
        ingested_at=NOW,
    )
    return version


def test_a_batch_is_published_in_one_transaction_and_returns_each_documents_replaced_chunks(catalog):
    scope_id, _ = catalog.scopes.upsert_scope(SCOPE)
    docs = [_doc(n) for n in range(3)]
    first = [Publication(d, _stage(catalog, d, scope_id, f"one {n}"), scope_id, None) for n, d in enumerate(docs)]
    assert catalog.documents.publish_versions(first) == [[], [], []]
    second = [Publication(d, _stage(catalog, d, scope_id, f"two {n}"), scope_id, None) for n, d in enumerate(docs)]
    replaced = catalog.documents.publish_versions(second)
    assert [len(ids) for ids in replaced] == [1, 1, 1]
    assert sorted(i for ids in replaced for i in ids) == sorted(catalog.chunks.superseded_chunk_ids())
    assert {catalog.documents.document_state(d.document_id).current_version for d in docs} == {2}


def test_a_batch_with_a_vanished_document_publishes_none_of_it(catalog):
    """All or none: the first document is not left current when the second cannot be."""
    scope_id, _ = catalog.scopes.upsert_scope(SCOPE)
    kept = _doc(1)
    version = _stage(catalog, kept, scope_id, "kept")
    with pytest.raises(CatalogError, match="vanished"):
        catalog.documents.publish_versions(
            [Publication(kept, version, scope_id, None), Publication(_doc(2), 1, scope_id, None)]
        )
    state = catalog.documents.document_state(kept.document_id)
    assert state.current_version is None and state.pending, "the version stays staged for the next run"


def test_sqlite_catalog_keeps_its_connections_and_their_settings_across_sessions(tmp_path):
    catalog = Catalog(f"sqlite:///{tmp_path / 'c.sqlite3'}")
    try:
        with catalog.session() as s:
            first = s.connection().connection.dbapi_connection
        with catalog.session() as s:
            assert s.connection().connection.dbapi_connection is first, "one connection, reused"
        catalog.checkpoint()  # waits less on readers, then gives the connection back as it was
        with catalog.session() as s:
            assert s.execute(text("PRAGMA busy_timeout")).scalar() == BUSY_TIMEOUT_MS
            assert s.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert s.execute(text("PRAGMA secure_delete")).scalar() == 1
    finally:
        catalog.dispose()


def test_sqlite_catalog_serves_concurrent_threads_beyond_its_pool(tmp_path):
    """More threads than pooled connections each get one (the service's worker threads)."""
    catalog = Catalog(f"sqlite:///{tmp_path / 'c.sqlite3'}")
    errors: list[BaseException] = []
    barrier = threading.Barrier(12)

    def work(n: int) -> None:
        try:
            with catalog.session() as s:
                barrier.wait(timeout=30)  # all twelve hold a connection at once
                s.execute(text("SELECT 1")).scalar()
            catalog.scopes.upsert_scope(AccessScope(key=f"group:g{n}", layers=(frozenset({f"group:g{n}"}),)))
        except BaseException as exc:  # handed to the test thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(12)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert not errors
        with catalog.session() as s:
            assert s.execute(text("SELECT count(*) FROM scopes")).scalar() == 12
    finally:
        catalog.dispose()


def test_sqlite_catalog_replaced_on_disk_is_reopened_not_written_behind_its_back(tmp_path):
    """A pooled connection keeps the file it opened; a catalog file swapped under a running
    process (a restore) must be the one the next session reads and writes."""
    path = tmp_path / "c.sqlite3"
    other = Catalog(f"sqlite:///{tmp_path / 'restored.sqlite3'}")
    other.scopes.upsert_scope(AccessScope(key="group:restored", layers=(frozenset({"group:restored"}),)))
    other.dispose()
    catalog = Catalog(f"sqlite:///{path}")
    try:
        catalog.scopes.upsert_scope(AccessScope(key="group:before", layers=(frozenset({"group:before"}),)))
        for suffix in ("-wal", "-shm"):
            (tmp_path / f"c.sqlite3{suffix}").unlink(missing_ok=True)
        (tmp_path / "restored.sqlite3").replace(path)
        with catalog.session() as s:
            assert s.execute(text("SELECT key FROM scopes")).scalars().all() == ["group:restored"]
        garbage = tmp_path / "garbage"
        garbage.write_bytes(b"this is not a SQLite database\n" * 200)
        garbage.replace(path)
        with pytest.raises(CatalogError, match="file is not a database"):
            catalog.scopes.upsert_scope(SCOPE)
    finally:
        catalog.dispose()
