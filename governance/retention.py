"""Retention: purge documents whose expiry has passed.

A minimal sweep (the full retention work — legal hold, right to be forgotten, tombstones —
is issue 4). For every active document with ``expires_at <= now``:

1. delete the vectors of all its chunk rows from Milvus (ids from the catalog);
2. in one catalog transaction mark it ``purged``, drop its cleaned text from every version
   and delete its chunk rows (chunk text is document content too);
3. append one ``purge`` audit event per batch.

Vectors go first: a crash between 1 and 2 leaves expired documents still ``active`` in the
catalog (search hides them: they are expired) and the next sweep deletes the same ids again,
which is harmless. The catalog statements belong in ``governance.catalog.store``; they are
kept here, in small functions, until they move.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Sequence

from sqlalchemy import select, update

from governance import audit
from governance.catalog import Catalog
from governance.catalog.models import ChunkRow, Document, Version, utcnow
from governance.vector_index import VectorIndex

__all__ = ["PurgeResult", "purge_expired", "expired_document_ids"]

BATCH_DOCUMENTS = 200


@dataclass
class PurgeResult:
    """What a sweep did."""

    now: datetime
    documents_purged: int = 0
    vectors_deleted: int = 0
    document_ids: list[str] = field(default_factory=list)  # first 100, for reports


def expired_document_ids(catalog: Catalog, now: datetime) -> list[str]:
    """Active documents whose expiry has passed (to move into Catalog)."""
    with catalog.session() as s:
        return list(s.scalars(
            select(Document.id).where(Document.status == "active", Document.expires_at.is_not(None),
                                      Document.expires_at <= now).order_by(Document.id)
        ))


def _chunk_ids(catalog: Catalog, document_ids: Sequence[str]) -> list[int]:
    with catalog.session() as s:
        return [int(i) for i in s.scalars(select(ChunkRow.id).where(ChunkRow.document_id.in_(list(document_ids))))]


def _mark_purged(catalog: Catalog, document_ids: Sequence[str], now: datetime) -> int:
    """Status ``purged``, no cleaned text, no chunk rows; only documents still expired."""
    with catalog.session() as s:
        ids = list(s.scalars(
            select(Document.id).where(Document.id.in_(list(document_ids)), Document.status == "active",
                                      Document.expires_at <= now).with_for_update()
        ))
        if not ids:
            return 0
        s.execute(update(Version).where(Version.document_id.in_(ids)).values(cleaned_text=None))
        s.query(ChunkRow).filter(ChunkRow.document_id.in_(ids)).delete(synchronize_session=False)
        s.execute(update(Document).where(Document.id.in_(ids)).values(status="purged", updated_at=utcnow()))
        return len(ids)


def purge_expired(catalog: Catalog, index: VectorIndex, *, now: datetime | None = None,
                  actor: str | None = None) -> PurgeResult:
    """Delete the vectors and content of every document expired at ``now``."""
    now = now or datetime.now(timezone.utc)
    result = PurgeResult(now=now)
    expired = expired_document_ids(catalog, now)
    for i in range(0, len(expired), BATCH_DOCUMENTS):
        batch = expired[i : i + BATCH_DOCUMENTS]
        ids = _chunk_ids(catalog, batch)
        deleted = index.delete_ids(ids) if ids else 0
        purged = _mark_purged(catalog, batch, now)
        result.vectors_deleted += deleted
        result.documents_purged += purged
        result.document_ids.extend(batch[: max(0, 100 - len(result.document_ids))])
        audit.record(catalog, "purge", actor, {"reason": "expired", "now": now.isoformat(),
                                               "documents": batch, "vectors_deleted": deleted})
    return result
