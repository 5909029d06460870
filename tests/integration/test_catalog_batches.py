"""Staging and publishing many documents in one transaction: each document ends as it would
had it been staged or published alone, in order (SQLite and, when configured, PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from governance.catalog import Catalog
from governance.catalog.documents import DocumentExtras, Publication, Staging
from governance.catalog.models import ChunkRow, Document, DocumentContributor, Version
from governance.contracts import AccessScope, SourceDocument

NOW = datetime(2026, 12, 1, tzinfo=UTC)
SCOPE = AccessScope(key="group:staff", layers=(frozenset({"group:staff"}),))


class Refused(Exception):
    pass


def _doc(name: str) -> SourceDocument:
    return SourceDocument(
        document_id=f"pdf:batches/{name}.pdf", source="pdf", uri=f"file:///{name}", title=name, scope=SCOPE
    )


def _make_id(document_id: str, version: int, ordinal: int) -> int:
    return hash((document_id, version, ordinal)) & 0x7FFFFFFFFFFF


def _staging(doc: SourceDocument, scope_id: int, *texts: str, version: int | None = None) -> Staging:
    joined = " ".join(texts)
    return Staging(doc, scope_id, None, joined.ljust(64, "0")[:64], None, joined, list(texts), NOW, version)


def _chunks(catalog: Catalog, doc: SourceDocument) -> dict[int, list[str]]:
    with catalog.session() as s:
        rows = s.execute(
            select(ChunkRow.version, ChunkRow.text)
            .where(ChunkRow.document_id == doc.document_id)
            .order_by(ChunkRow.version, ChunkRow.ordinal)
        ).all()
    out: dict[int, list[str]] = {}
    for version, text in rows:
        out.setdefault(version, []).append(text)
    return out


def _states(s, doc: SourceDocument) -> dict[int, str]:
    return {
        v: st
        for v, st in s.execute(select(Version.version, Version.state).where(Version.document_id == doc.document_id))
    }


def test_several_documents_are_staged_pending_with_their_chunks_in_one_call(catalog) -> None:
    scope_id, _ = catalog.scopes.upsert_scope(SCOPE)
    docs = [_doc(f"d{n}") for n in range(3)]
    staged = catalog.documents.stage_versions(
        [_staging(d, scope_id, f"{d.title} one", f"{d.title} two") for d in docs], _make_id
    )
    assert [version for version, _ in staged] == [1, 1, 1]
    for doc, (_, chunks) in zip(docs, staged, strict=True):
        assert [text for _, text in chunks] == [f"{doc.title} one", f"{doc.title} two"]
        assert [cid for cid, _ in chunks] == [_make_id(doc.document_id, 1, i) for i in range(2)]
        state = catalog.documents.document_state(doc.document_id)
        assert state.current_version is None and list(state.pending.values()) == [1]
        assert _chunks(catalog, doc) == {1: [f"{doc.title} one", f"{doc.title} two"]}


def test_a_failure_while_staging_a_group_stages_none_of_it(catalog) -> None:
    scope_id, _ = catalog.scopes.upsert_scope(SCOPE)
    docs = [_doc(f"all-or-none{n}") for n in range(3)]

    def refuse_the_last(document_id: str, version: int, ordinal: int) -> int:
        if document_id == docs[-1].document_id:
            raise Refused(document_id)
        return _make_id(document_id, version, ordinal)

    with pytest.raises(Refused):
        catalog.documents.stage_versions([_staging(d, scope_id, "text") for d in docs], refuse_the_last)
    assert all(catalog.documents.document_state(d.document_id) is None for d in docs)


def test_a_document_staged_twice_in_one_call_gets_two_versions_in_order(catalog) -> None:
    scope_id, _ = catalog.scopes.upsert_scope(SCOPE)
    doc = _doc("twice")
    staged = catalog.documents.stage_versions(
        [_staging(doc, scope_id, "earlier"), _staging(_doc("other"), scope_id, "x"), _staging(doc, scope_id, "later")],
        _make_id,
    )
    assert [version for version, _ in staged] == [1, 1, 2]
    assert _chunks(catalog, doc) == {1: ["earlier"], 2: ["later"]}


def test_staging_a_pending_version_again_replaces_its_chunks(catalog) -> None:
    """What a run resuming a crashed one does: the same version, its chunks written anew."""
    scope_id, _ = catalog.scopes.upsert_scope(SCOPE)
    doc = _doc("resumed")
    [(version, _)] = catalog.documents.stage_versions([_staging(doc, scope_id, "a", "b", "c")], _make_id)
    [(again, chunks)] = catalog.documents.stage_versions([_staging(doc, scope_id, "a", "b", version=version)], _make_id)
    assert again == version and [t for _, t in chunks] == ["a", "b"]
    assert _chunks(catalog, doc) == {version: ["a", "b"]}
    with catalog.session() as s:
        assert s.scalar(select(Version.created_at).where(Version.document_id == doc.document_id)) is not None


def test_a_document_published_twice_in_one_batch_ends_on_the_later_version(catalog) -> None:
    scope_id, _ = catalog.scopes.upsert_scope(SCOPE)
    doc = _doc("published-twice")
    (v1, c1), (v2, c2) = catalog.documents.stage_versions(
        [_staging(doc, scope_id, "first"), _staging(doc, scope_id, "second")], _make_id
    )
    replaced = catalog.documents.publish_versions(
        [Publication(doc, v1, scope_id, None), Publication(doc, v2, scope_id, None)]
    )
    assert replaced == [[], [cid for cid, _ in c1]], "the second publication replaces the first"
    state = catalog.documents.document_state(doc.document_id)
    assert state.current_version == v2 and not state.pending
    with catalog.session() as s:
        states = _states(s, doc)
    assert states == {v1: "superseded", v2: "current"}
    assert c2


def test_publishing_supersedes_the_current_and_every_other_pending_version(catalog) -> None:
    scope_id, _ = catalog.scopes.upsert_scope(SCOPE)
    doc = _doc("supersedes")
    [(v1, c1)] = catalog.documents.stage_versions([_staging(doc, scope_id, "one")], _make_id)
    catalog.documents.publish_versions([Publication(doc, v1, scope_id, None)])
    (v2, c2), (v3, _) = catalog.documents.stage_versions(
        [_staging(doc, scope_id, "crashed run"), _staging(doc, scope_id, "three")], _make_id
    )
    [replaced] = catalog.documents.publish_versions([Publication(doc, v3, scope_id, None)])
    assert sorted(replaced) == sorted(cid for cid, _ in c1 + c2)
    with catalog.session() as s:
        states = _states(s, doc)
    assert states == {v1: "superseded", v2: "superseded", v3: "current"}


def test_a_publication_records_its_extras_and_keeps_what_it_does_not_state(catalog) -> None:
    scope_id, _ = catalog.scopes.upsert_scope(SCOPE)
    doc, plain = _doc("extras"), _doc("plain")
    blocks = [{"author": "user:ann@example.com", "text": "hello"}]
    (v1, _), (p1, _) = catalog.documents.stage_versions(
        [_staging(doc, scope_id, "one"), _staging(plain, scope_id, "plain")], _make_id
    )
    first = DocumentExtras(
        "export:a", ("user:ann@example.com", "user:bob@example.com"), blocks, "2026-11-01", ["1", "2"]
    )
    catalog.documents.publish_versions(
        [Publication(doc, v1, scope_id, None, first), Publication(plain, p1, scope_id, None)]
    )
    [(v2, _)] = catalog.documents.stage_versions([_staging(doc, scope_id, "two")], _make_id)
    # A later export that states neither its time nor the pages above: both stay as they were.
    catalog.documents.publish_versions(
        [Publication(doc, v2, scope_id, None, DocumentExtras("export:b", ("user:cy@example.com",), None))]
    )
    with catalog.session() as s:
        row = s.get(Document, doc.document_id)
        assert (row.origin, row.source_as_of, row.ancestry) == ("export:b", "2026-11-01", "1/2")
        contributors = set(
            s.scalars(select(DocumentContributor.principal).where(DocumentContributor.document_id == doc.document_id))
        )
        blocks_by_version = {
            v: b
            for v, b in s.execute(select(Version.version, Version.blocks).where(Version.document_id == doc.document_id))
        }
        plain_row = s.get(Document, plain.document_id)
        assert (plain_row.origin, plain_row.current_version) == (None, p1)
    assert contributors == {"user:cy@example.com"}, "contributors are those of the current version"
    assert blocks_by_version[v1] == blocks and blocks_by_version[v2] is None
