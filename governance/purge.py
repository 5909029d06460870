"""Purge: delete vectors and content, keep a tombstone, honour legal holds, prove it.

Selectors: expired documents, one document, a source (kind or origin), a subject's own
documents. Work goes in batches: each batch deletes the vectors the catalog knows (by
primary key, the cheap path), then retires the documents in one catalog transaction.
Vectors the catalog lost track of (a crash between a vector write and its catalog record)
are swept afterwards by one query per selector — for ``--expired`` by the expiry every
vector carries, an integer filter Milvus answers from its scalar index; otherwise by
``document_id`` — and the purge is verified by query: no vector of a purged document left.

Measured on Milvus Lite 3.2.2 (100k rows, 2 cores): one ``document_id in [1000 ids]``
query costs ~2 s while deleting 5,000 rows by primary key costs ~0.25 s; querying
``document_id`` twice per batch (before and after) was 90 % of a 308 s purge.

A crash anywhere leaves documents still selectable (vectors go before the catalog row), so
re-running the same purge finishes it; an orphan a crash left behind a retired document is
what ``govrag doctor`` reports and repairs. Purging twice changes nothing (idempotent).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from governance import audit
from governance.catalog import Catalog
from governance.catalog.statuses import DocumentStatus
from governance.observability import metrics
from governance.vector_index import VectorIndex

BATCH_DOCUMENTS = 1000
SWEEP_DOCUMENTS = 1000  # document ids per ``document_id in [...]`` sweep query
VERIFY_IDS = 16384  # primary keys per verification lookup


class PurgeReport(BaseModel):
    """What a purge did (or, with ``dry_run``, would do)."""

    selector: dict[str, Any]
    dry_run: bool
    documents: list[str] = Field(default_factory=list, description="purged (or that would be)")
    held: dict[str, str] = Field(default_factory=dict, description="document -> the hold that kept it")
    vectors_deleted: int = 0
    orphans_deleted: int = Field(0, description="vectors the catalog did not know, found by the sweep")
    verified: bool = True
    compaction_requested: bool = False
    seconds: float = 0.0
    reindexed: list[str] = Field(default_factory=list, description="documents re-indexed without a subject")
    quarantine_records_deleted: int = Field(0, description="quarantine records past GOVRAG_QUARANTINE_KEEP_DAYS")


def expire_quarantine(catalog: Catalog, report: PurgeReport, *, keep_days: int, now: datetime) -> None:
    """The retention of quarantine records (they name files and repeat parser messages):
    those older than ``keep_days`` go with the expired sweep."""
    if not report.dry_run:
        report.quarantine_records_deleted = catalog.runs.drop_quarantine_before(now - timedelta(days=keep_days))


def select(
    catalog: Catalog,
    *,
    expired: bool = False,
    document: str | None = None,
    source: str | None = None,
    author: str | None = None,
    now: datetime | None = None,
) -> list[str]:
    if not any((expired, document, source, author)):
        raise ValueError("choose what to purge: expired, document, source or subject")
    return catalog.documents.select_documents(
        expired_at=(now or datetime.now(UTC)) if expired else None,
        document_id=document,
        source=source,
        author=author,
    )


def purge_documents(
    catalog: Catalog,
    index: VectorIndex,
    document_ids: list[str],
    *,
    reason: str,
    selector: dict[str, Any],
    dry_run: bool = False,
    actor: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> PurgeReport:
    """Purge these documents, except those under legal hold.

    ``progress(done, total)`` is called after each batch (the CLI draws a bar with it)."""
    started = time.perf_counter()
    report = PurgeReport(selector=selector, dry_run=dry_run)
    report.held = catalog.holds.held(document_ids)
    targets = [d for d in document_ids if d not in report.held]
    if dry_run:
        report.documents = targets
        report.vectors_deleted = len(catalog.chunks.chunk_ids_of(targets))  # what would be deleted
        return report
    # Sealed segments answer filter queries from their indexes; growing ones are scanned.
    index.flush()
    deleted: list[int] = []
    for i in range(0, len(targets), BATCH_DOCUMENTS):
        # Holds are checked again per batch, at the moment its documents are claimed, in one
        # transaction with the claim: a hold committed while this purge runs wins.
        batch, held_now = catalog.holds.claim_for_purge(targets[i : i + BATCH_DOCUMENTS])
        report.held.update(held_now)
        if not batch:
            continue
        ids = catalog.chunks.chunk_ids_of(batch)
        if ids:
            index.delete_ids(ids)
        catalog.documents.retire_documents(batch, status=DocumentStatus.PURGED, reason=reason, drop_content=True)
        deleted += ids
        report.documents += batch
        audit.record(
            catalog,
            "purge",
            actor,
            {"reason": reason, "selector": selector, "documents": batch, "vectors_deleted": len(ids)},
        )
        if progress:
            progress(len(report.documents), len(targets))
    targets = [d for d in targets if d not in report.held]
    if targets:
        # One clock for the sweep and its verification ("expired" as of this purge).
        now_epoch = int(time.time()) if selector.get("expired") else None
        orphans = _sweep(index, targets, set(report.held), expired_at=now_epoch)
        if orphans:
            index.delete_ids(orphans)
        report.orphans_deleted = len(orphans)
        report.vectors_deleted = len(deleted) + len(orphans)
        leftover = _leftover(index, deleted + orphans, targets, set(report.held), expired_at=now_epoch)
        report.verified = not leftover
        index.flush()
        report.compaction_requested = index.compact()
        audit.record(
            catalog,
            "purge_verified",
            actor,
            {
                "reason": reason,
                "selector": selector,
                "documents": len(targets),
                "vectors_deleted": report.vectors_deleted,
                "orphans_deleted": len(orphans),
                "verified": report.verified,
                "left": leftover[:100],
            },
        )
        metrics.PURGED_DOCUMENTS.labels(reason=_reason_label(selector)).inc(len(targets))
        metrics.PURGED_VECTORS.inc(report.vectors_deleted)
    if report.held:
        audit.record(catalog, "purge_held", actor, {"selector": selector, "held": report.held})
    report.seconds = round(time.perf_counter() - started, 3)
    return report


def _sweep(index: VectorIndex, targets: Sequence[str], held: set[str], *, expired_at: int | None) -> list[int]:
    """Ids of vectors of ``targets`` still in Milvus (orphans: the catalog did not list them).
    ``expired_at``: an expiry purge, swept by the integer expiry filter as of that time."""
    wanted = set(targets)
    if expired_at is not None:
        rows = index.expired_rows(expired_at, exclude_documents=sorted(held))
        if rows is not None:
            return [int(r["id"]) for r in rows if r["document_id"] in wanted]
    return index.ids_of_documents(list(targets), batch=SWEEP_DOCUMENTS)


def _leftover(
    index: VectorIndex, deleted: Sequence[int], targets: Sequence[str], held: set[str], *, expired_at: int | None
) -> list[int]:
    """Verification by query: deleted primary keys are gone, and no vector of a target is left."""
    left = [int(r["id"]) for i in range(0, len(deleted), VERIFY_IDS) for r in index.get(deleted[i : i + VERIFY_IDS])]
    return sorted(set(left) | set(_sweep(index, targets, held, expired_at=expired_at)))


def _reason_label(selector: dict[str, Any]) -> str:
    for key in ("expired", "document", "source", "subject"):
        if selector.get(key):
            return key
    return "other"


def tombstone_documents(
    catalog: Catalog, index: VectorIndex, document_ids: list[str], *, reason: str, actor: str | None = None
) -> int:
    """Take documents out of search (gone from a full export, or no longer covered by any
    access rule): vectors deleted, text kept as version history. Holds do not block this:
    a held document still obeys access rules."""
    if not document_ids:
        return 0
    ids = set(catalog.chunks.chunk_ids_of(document_ids)) | set(index.ids_of_documents(document_ids))
    if ids:
        index.delete_ids(sorted(ids))
    changed = catalog.documents.retire_documents(
        document_ids, status=DocumentStatus.TOMBSTONED, reason=reason, drop_content=False
    )
    audit.record(catalog, "tombstone", actor, {"reason": reason, "documents": changed, "vectors_deleted": len(ids)})
    metrics.PURGED_VECTORS.inc(len(ids))
    return len(changed)
