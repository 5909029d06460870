"""The catalog's list of a reader's searchable chunk ids (what the listed search plan reads
by primary key): current versions of active, unexpired documents of the scopes asked, never
more than the limit (SQLite and, when configured, PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from governance.catalog import Catalog
from governance.catalog.documents import Publication
from governance.catalog.statuses import DocumentStatus
from governance.contracts import AccessScope, SourceDocument

NOW = datetime(2026, 12, 1, tzinfo=UTC)
STAFF = AccessScope(key="group:staff", layers=(frozenset({"group:staff"}),))
FINANCE = AccessScope(key="group:finance", layers=(frozenset({"group:finance"}),))


def _doc(name: str) -> SourceDocument:
    return SourceDocument(
        document_id=f"pdf:list/{name}.pdf", source="pdf", uri=f"file:///{name}", title=name, scope=STAFF
    )


def _stage(
    catalog: Catalog, doc: SourceDocument, scope_id: int, texts: list[str], expires_at=None
) -> tuple[int, list[int]]:
    version, chunks = catalog.documents.stage_version(
        doc,
        scope_id=scope_id,
        expires_at=expires_at,
        content_hash=str(abs(hash(tuple(texts)))).ljust(64, "0")[:64],
        source_hash=None,
        cleaned_text="\n".join(texts),
        texts=texts,
        make_id=lambda d, v, i: abs(hash((d, v, i))) & 0x7FFFFFFFFFFF,
        ingested_at=NOW,
    )
    return version, [cid for cid, _ in chunks]


def _publish(catalog: Catalog, doc: SourceDocument, scope_id: int, texts: list[str], expires_at=None) -> list[int]:
    version, ids = _stage(catalog, doc, scope_id, texts, expires_at)
    catalog.documents.publish_versions([Publication(doc, version, scope_id, expires_at)])
    return ids


def test_the_listed_chunks_are_the_current_versions_of_the_scopes_asked(catalog):
    staff, _ = catalog.scopes.upsert_scope(STAFF)
    finance, _ = catalog.scopes.upsert_scope(FINANCE)
    a = _publish(catalog, _doc("a"), staff, ["one", "two"])
    b = _publish(catalog, _doc("b"), finance, ["three"])
    assert catalog.chunks.live_chunk_ids([staff], NOW, limit=10) == sorted(a)
    assert catalog.chunks.live_chunk_ids([staff, finance, 999_999_999], NOW, limit=10) == sorted(a + b)
    assert catalog.chunks.live_chunk_ids([], NOW, limit=10) == []


def test_a_version_staged_but_not_published_is_not_listed(catalog):
    staff, _ = catalog.scopes.upsert_scope(STAFF)
    published = _publish(catalog, _doc("a"), staff, ["one"])
    _, pending = _stage(catalog, _doc("a"), staff, ["one, revised"])
    _, new_pending = _stage(catalog, _doc("b"), staff, ["never published"])
    assert catalog.chunks.live_chunk_ids([staff], NOW, limit=10) == published
    assert not set(pending + new_pending) & set(published)


def test_a_replaced_version_is_not_listed(catalog):
    staff, _ = catalog.scopes.upsert_scope(STAFF)
    old = _publish(catalog, _doc("a"), staff, ["one"])
    new = _publish(catalog, _doc("a"), staff, ["one, revised"])
    assert catalog.chunks.live_chunk_ids([staff], NOW, limit=10) == new
    assert not set(old) & set(new)


def test_expired_and_tombstoned_documents_are_not_listed(catalog):
    staff, _ = catalog.scopes.upsert_scope(STAFF)
    _publish(catalog, _doc("expired"), staff, ["old news"], expires_at=NOW - timedelta(seconds=1))
    gone = _doc("gone")
    _publish(catalog, gone, staff, ["withdrawn"])
    catalog.documents.retire_documents(
        [gone.document_id], status=DocumentStatus.TOMBSTONED, reason="deleted at the source", drop_content=False
    )
    kept = _publish(catalog, _doc("kept"), staff, ["still here"], expires_at=NOW + timedelta(days=1))
    assert catalog.chunks.live_chunk_ids([staff], NOW, limit=10) == kept


def test_more_chunks_than_the_limit_lists_nothing(catalog):
    staff, _ = catalog.scopes.upsert_scope(STAFF)
    ids = _publish(catalog, _doc("a"), staff, ["one", "two", "three"])
    assert catalog.chunks.live_chunk_ids([staff], NOW, limit=2) is None
    assert catalog.chunks.live_chunk_ids([staff], NOW, limit=3) == sorted(ids)


def test_a_reader_with_more_scopes_than_one_sql_statement_takes_is_listed_in_full(catalog):
    staff, _ = catalog.scopes.upsert_scope(STAFF)
    ids = _publish(catalog, _doc("a"), staff, ["one"])
    many = [*range(10**9, 10**9 + 5000), staff]  # past the bound-parameter batch
    assert catalog.chunks.live_chunk_ids(many, NOW, limit=10) == ids
