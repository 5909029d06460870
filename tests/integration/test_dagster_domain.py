"""Domain helpers behind the Dagster code location, on real stores: retention sweep,
catalog/index consistency, source snapshots, permission sync (the secret detector and the
drop-folder keys: tests/unit/test_dagster_domain.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from governance.consistency import check_consistency
from governance.contracts import AccessScope, SourceDocument
from governance.vector_index import NEVER_EXPIRES, ROW_FIELDS, VectorRow, expiry_epoch
from ingest.chunking import chunk_id
from ingest.pipeline.snapshot import load_manifest, manifest_path, save_manifest, take_snapshot
from ingest.sources.base import Parsed, SourceItem

NOW = datetime.now(UTC)


def _vector(seed: int, dim: int = 384) -> list[float]:
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return (v / np.linalg.norm(v)).tolist()


def plant_document(
    stores,
    doc_id: str,
    *,
    expires_at: datetime | None,
    texts=("alpha text", "beta text"),
    layers=(frozenset({"group:eng"}),),
    scope_key: str = "test:eng",
) -> list[int]:
    """A published document with vectors, written without parsing or embedding."""
    scope_id, _ = stores.catalog.scopes.upsert_scope(AccessScope(key=scope_key, layers=layers))
    doc = SourceDocument(
        document_id=doc_id,
        source="pdf",
        uri=f"file:///{doc_id}",
        title=doc_id,
        path=doc_id,
        scope=AccessScope(key=scope_key, layers=layers),
    )
    version, chunks = stores.catalog.documents.stage_version(
        doc,
        scope_id=scope_id,
        expires_at=expires_at,
        content_hash=doc_id.ljust(64, "0")[:64],
        source_hash="s" * 64,
        cleaned_text="\n\n".join(texts),
        texts=list(texts),
        make_id=chunk_id,
        ingested_at=NOW,
    )
    epoch = expiry_epoch(expires_at)
    stores.index.upsert(
        [
            VectorRow(
                id=cid,
                vector=_vector(i),
                document_id=doc_id,
                source="pdf",
                source_version=version,
                scope_id=scope_id,
                classification="internal",
                expires_at=epoch,
                title=doc_id,
                uri=doc.uri,
                text=text,
            )
            for i, (cid, text) in enumerate(chunks)
        ]
    )
    stores.catalog.documents.publish_version(doc, version, scope_id=scope_id, expires_at=expires_at)
    return [cid for cid, _ in chunks]


# -- purge + consistency ------------------------------------------------------------------------
def test_purged_and_tombstoned_documents_leave_the_index_consistent(stores):
    from governance.purge import purge_documents, tombstone_documents
    from governance.purge import select as select_documents

    plant_document(stores, "pdf:old.pdf", expires_at=NOW - timedelta(days=1))
    kept = plant_document(stores, "pdf:new.pdf", expires_at=NOW + timedelta(days=30))
    plant_document(stores, "pdf:gone.pdf", expires_at=NOW + timedelta(days=30))
    report = check_consistency(stores.catalog, stores.index, now=NOW)
    assert report.expired_present.count == 2 and report.agrees  # expired, not yet swept

    expired = select_documents(stores.catalog, expired=True, now=NOW)
    assert expired == ["pdf:old.pdf"]
    purge_documents(stores.catalog, stores.index, expired, reason="expired", selector={"expired": True})
    tombstone_documents(stores.catalog, stores.index, ["pdf:gone.pdf"], reason="test")
    report = check_consistency(stores.catalog, stores.index, now=NOW)
    assert report.ok, report.counts()
    assert (report.vectors, report.catalog_current_chunks) == (len(kept), len(kept))


# -- consistency -----------------------------------------------------------------------------
def test_consistency_clean_then_each_planted_fault(sqlite_stores):
    stores = sqlite_stores
    ids = plant_document(stores, "pdf:a.pdf", expires_at=NOW + timedelta(days=10))
    report = check_consistency(stores.catalog, stores.index, now=NOW)
    assert report.ok, report.counts()
    assert (report.vectors, report.catalog_current_chunks) == (2, 2)

    row = stores.index.get([ids[0]], ROW_FIELDS)[0]
    orphan = {**row, "id": 12345}
    secret = {**row, "id": 777, "text": "key AKIAABCDEFGHIJKLMNOP leaked"}
    unscoped = {**row, "id": 778, "scope_id": 99999, "expires_at": NEVER_EXPIRES}
    expired = {**row, "id": 779, "expires_at": int((NOW - timedelta(days=1)).timestamp())}
    stores.index.upsert([VectorRow(**r) for r in (orphan, secret, unscoped, expired)])
    stores.index.delete_ids([ids[1]])

    report = check_consistency(stores.catalog, stores.index, now=NOW)
    assert not report.ok
    assert set(report.orphan_vectors.sample) == {12345, 777, 778, 779}
    assert report.missing_vectors.sample == [ids[1]]
    assert report.unscoped.sample == [778] and report.no_expiry.sample == [778]
    assert report.expired_present.sample == [779]
    assert [(f.kind, f.ref) for f in report.secrets] == [("aws_access_key_id", "777")]
    assert "AKIAABCDEFGHIJKLMNOP" not in repr(report.secrets)


def test_consistency_pending_vectors_are_not_orphans(sqlite_stores):
    stores = sqlite_stores
    scope_id, _ = stores.catalog.scopes.upsert_scope(AccessScope(key="k", layers=(frozenset({"group:x"}),)))
    doc = SourceDocument(
        document_id="pdf:p.pdf",
        source="pdf",
        uri="file:///p",
        title="p",
        scope=AccessScope(key="k", layers=(frozenset({"group:x"}),)),
    )
    _, chunks = stores.catalog.documents.stage_version(
        doc,
        scope_id=scope_id,
        expires_at=NOW + timedelta(days=1),
        content_hash="c" * 64,
        source_hash=None,
        cleaned_text="t",
        texts=["t"],
        make_id=chunk_id,
        ingested_at=NOW,
    )
    stores.index.upsert(
        [
            VectorRow(
                id=chunks[0][0],
                vector=_vector(1),
                document_id="pdf:p.pdf",
                source="pdf",
                source_version=1,
                scope_id=scope_id,
                classification="internal",
                expires_at=int((NOW + timedelta(days=1)).timestamp()),
                title="p",
                uri="u",
                text="t",
            )
        ]
    )
    report = check_consistency(stores.catalog, stores.index, now=NOW)
    assert report.pending_vectors.count == 1 and report.orphan_vectors.count == 0 and report.agrees


def test_iter_vectors_pages_past_one_batch(sqlite_stores):
    rows = [
        {
            "id": i - 3,
            "vector": _vector(i),
            "document_id": "d",
            "source": "pdf",
            "source_version": 1,
            "scope_id": 1,
            "classification": "x",
            "expires_at": 1,
            "title": "t",
            "uri": "u",
            "text": "x",
        }
        for i in range(25)
    ]
    sqlite_stores.index.upsert([VectorRow(**r) for r in rows])
    assert sorted(r["id"] for r in sqlite_stores.index.iter_rows(["scope_id"], batch_size=7)) == list(range(-3, 22))


# -- snapshot ---------------------------------------------------------------------------------
def _item(doc_id: str, fp: str) -> SourceItem:
    return SourceItem(
        source="pdf",
        path=Path(doc_id),
        rel_path=doc_id,
        document_id=doc_id,
        fingerprint=lambda: fp,
        parse=lambda: Parsed(elements=[]),
        facts={"source": "pdf"},
    )


def test_snapshot_classifies_without_parsing(sqlite_stores, tmp_path):
    plant_document(sqlite_stores, "pdf:same.pdf", expires_at=NOW + timedelta(days=1))
    plant_document(sqlite_stores, "pdf:edit.pdf", expires_at=NOW + timedelta(days=1))
    items = [_item("pdf:same.pdf", "s" * 64), _item("pdf:edit.pdf", "other"), _item("pdf:brand-new.pdf", "n")]
    for it in items:
        it.parse = lambda: pytest.fail("the snapshot must not parse")
    save_manifest(tmp_path, "src", ["pdf:same.pdf", "pdf:edit.pdf", "pdf:removed.pdf"])
    snap = take_snapshot(sqlite_stores.catalog, items, load_manifest(tmp_path, "src"))
    assert snap.counts() == {"items": 3, "new": 1, "changed": 1, "unchanged": 1, "deleted": 1}
    assert (snap.new, snap.changed, snap.unchanged, snap.deleted) == (
        ["pdf:brand-new.pdf"],
        ["pdf:edit.pdf"],
        ["pdf:same.pdf"],
        ["pdf:removed.pdf"],
    )
    assert load_manifest(tmp_path, "never") == []
    with pytest.raises(ValueError):
        manifest_path(tmp_path, "../escape")


# -- permission sync --------------------------------------------------------------------------
POLICY = """
version: 1
access:
  - match: {{source: pdf, path: "handbook/**"}}
    allow: [["{group}"]]
retention:
  - match: {{}}
    keep_for: {keep}
"""


def _text_item(rel: str, text: str) -> SourceItem:
    from ingest.sources.base import TextBlock

    return SourceItem(
        source="pdf",
        path=Path(rel),
        rel_path=rel,
        document_id=f"pdf:{rel}",
        fingerprint=lambda: "fp-" + text,
        parse=lambda: Parsed(elements=[TextBlock(text)], title=rel),
        facts={"source": "pdf", "path": rel},
    )


def test_permission_sync_rewrites_scopes_without_embedding(
    sqlite_stores, embedder, make_ingestor, make_retriever, tmp_path
):
    from governance.policy import load_policy
    from ingest.pipeline.permission_sync import sync_permissions

    stores = sqlite_stores
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY.format(group="group:staff", keep="30d"))
    stores.policy = load_policy(path)
    items = [
        _text_item("handbook/leave.pdf", "Every employee receives 27 days of paid annual leave."),
        _text_item("unfiled/draft.pdf", "A draft no rule covers."),
    ]
    ingestor = make_ingestor(stores, embedder)
    assert ingestor.ingest_items(items).new == 1
    retriever = make_retriever(stores, embedder)
    staff, hr = {"sub": "s", "groups": ["staff"]}, {"sub": "h", "groups": ["hr"]}
    assert retriever.search(staff, "annual leave days") and not retriever.search(hr, "annual leave days")

    # The rule now names another group: one scope row changes, nothing is embedded.
    path.write_text(POLICY.format(group="group:hr", keep="30d"))
    stores.policy = load_policy(path)
    ingestor._embedder_factory = lambda: pytest.fail("permission sync must not embed")
    ingestor._embedder = None
    summary = sync_permissions(ingestor, items, actor="test")
    assert (summary.scopes_resolved, summary.scopes_changed, summary.access_updated) == (1, 1, 0)
    assert summary.changed_scope_keys == ["policy:path=handbook/**,source=pdf"]
    assert (summary.uncovered, summary.uncovered_active) == (1, [])
    assert retriever.search(hr, "annual leave days") and not retriever.search(staff, "annual leave days")

    # A retention change moves the expiry of the unchanged document (catalog and vectors).
    path.write_text(POLICY.format(group="group:hr", keep="10d"))
    stores.policy = load_policy(path)
    summary = sync_permissions(ingestor, items)
    assert (summary.scopes_changed, summary.access_updated, summary.left_to_ingest) == (0, 1, 0)
    assert check_consistency(stores.catalog, stores.index).agrees
    assert stores.catalog.documents.document_state("pdf:handbook/leave.pdf").expires_at < NOW + timedelta(days=11)
    kinds = [e["kind"] for e in audit_kinds(stores)]
    assert kinds.count("permission_sync") == 2


def audit_kinds(stores) -> list[dict]:
    from governance.catalog.models import AuditEvent

    with stores.catalog.session() as s:
        return [{"kind": k} for k in s.scalars(select(AuditEvent.kind).order_by(AuditEvent.seq))]
