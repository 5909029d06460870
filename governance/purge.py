"""Purge: delete vectors and content, keep a tombstone, honour legal holds, prove it.

Selectors: expired documents, one document, a source (kind or origin), a subject's own
documents. Work goes in batches; each batch deletes the vectors first (by the catalog's chunk
ids *and* by a query on ``document_id``, which also catches vectors the catalog lost track
of), then retires the documents in one catalog transaction, then verifies by query that no
vector of them is left. A crash anywhere leaves documents still selectable, so re-running
the same purge finishes it; purging twice changes nothing (idempotent).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, Field

from governance import audit
from governance.catalog import Catalog
from governance.vector_index import VectorIndex

BATCH_DOCUMENTS = 1000


class PurgeReport(BaseModel):
    """What a purge did (or, with ``dry_run``, would do)."""

    selector: dict[str, Any]
    dry_run: bool
    documents: list[str] = Field(default_factory=list, description="purged (or that would be)")
    held: dict[str, str] = Field(default_factory=dict, description="document -> the hold that kept it")
    vectors_deleted: int = 0
    verified: bool = True
    compaction_requested: bool = False
    reindexed: list[str] = Field(default_factory=list, description="documents re-indexed without a subject")


def select(catalog: Catalog, *, expired: bool = False, document: str | None = None, source: str | None = None,
           author: str | None = None, now: datetime | None = None) -> list[str]:
    if not any((expired, document, source, author)):
        raise ValueError("choose what to purge: expired, document, source or subject")
    return catalog.select_documents(expired_at=(now or datetime.now(timezone.utc)) if expired else None,
                                    document_id=document, source=source, author=author)


def purge_documents(catalog: Catalog, index: VectorIndex, document_ids: list[str], *, reason: str,
                    selector: dict[str, Any], dry_run: bool = False, actor: str | None = None) -> PurgeReport:
    """Purge these documents, except those under legal hold."""
    report = PurgeReport(selector=selector, dry_run=dry_run)
    report.held = catalog.held(document_ids)
    targets = [d for d in document_ids if d not in report.held]
    if dry_run:
        report.documents = targets
        return report
    for i in range(0, len(targets), BATCH_DOCUMENTS):
        batch = targets[i : i + BATCH_DOCUMENTS]
        ids = set(catalog.chunk_ids_of(batch)) | set(index.ids_of_documents(batch))
        report.vectors_deleted += index.delete_ids(sorted(ids)) if ids else 0
        catalog.retire_documents(batch, status="purged", reason=reason, drop_content=True)
        leftover = index.ids_of_documents(batch)
        if leftover:
            report.verified = False
        report.documents += batch
        audit.record(catalog, "purge", actor, {"reason": reason, "selector": selector, "documents": batch,
                                               "vectors_deleted": len(ids), "verified": not leftover})
    if report.held:
        audit.record(catalog, "purge_held", actor, {"selector": selector, "held": report.held})
    if report.documents:
        index.flush()
        report.compaction_requested = index.compact()
    return report


def tombstone_documents(catalog: Catalog, index: VectorIndex, document_ids: list[str], *, reason: str,
                        actor: str | None = None) -> int:
    """Take documents out of search (gone from a full export, or no longer covered by any
    access rule): vectors deleted, text kept as version history. Holds do not block this:
    a held document still obeys access rules."""
    if not document_ids:
        return 0
    ids = set(catalog.chunk_ids_of(document_ids)) | set(index.ids_of_documents(document_ids))
    if ids:
        index.delete_ids(sorted(ids))
    changed = catalog.retire_documents(document_ids, status="tombstoned", reason=reason, drop_content=False)
    audit.record(catalog, "tombstone", actor, {"reason": reason, "documents": changed, "vectors_deleted": len(ids)})
    return len(changed)
