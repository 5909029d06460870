"""``govrag doctor --repair``: make the index agree with the catalog (the source of truth).

Orphan vectors are deleted, missing ones re-embedded from the catalog's chunk text, vectors
with stale scope or expiry rewritten (same vector, no embedding), and expired documents
purged (legal holds respected). Pending vectors belong to a staged version (a crashed or
running ingest) and are left to the next ingest, which publishes or replaces them.
"""

from __future__ import annotations

from pydantic import BaseModel

from governance import audit, purge
from governance.consistency import ConsistencyReport, check_consistency
from governance.vector_index import VectorRow, expiry_epoch
from ingest.pipeline.run import Ingestor


class RepairResult(BaseModel):
    orphans_deleted: int = 0
    missing_reembedded: int = 0
    access_rewritten: int = 0
    expired_purged: int = 0
    held: int = 0
    work_folders_removed: int = 0  # extracted exports a crashed run left under GOVRAG_HOME/work


def _row(chunk: dict, vector: list[float]) -> VectorRow:
    """The vector row of a catalog chunk (``chunks_for_repair``)."""
    return VectorRow(**{**chunk, "expires_at": expiry_epoch(chunk["expires_at"]), "vector": vector})


def repair(ingestor: Ingestor, report: ConsistencyReport, *, actor: str | None = None) -> RepairResult:
    """Fix what ``report`` found."""
    catalog, index = ingestor.stores.catalog, ingestor.stores.index
    result = RepairResult()
    if report.orphan_vectors.ids:
        result.orphans_deleted = index.delete_ids(report.orphan_vectors.ids)
    missing = catalog.chunks.chunks_for_repair(report.missing_vectors.ids)
    if missing:
        vectors = ingestor.embedder.embed([c["text"] for c in missing])
        index.upsert([_row(chunk, vectors[i].tolist()) for i, chunk in enumerate(missing)])
        result.missing_reembedded = len(missing)
    stale = catalog.chunks.chunks_for_repair(report.stale_access.ids)
    if stale:
        existing = {int(r["id"]): r for r in index.get([c["id"] for c in stale], ["id", "vector"])}
        rows = [_row(chunk, existing[chunk["id"]]["vector"]) for chunk in stale if chunk["id"] in existing]
        index.upsert(rows)
        result.access_rewritten = len(rows)
    if report.expired_present.count:
        ids = purge.select(catalog, expired=True)
        done = purge.purge_documents(catalog, index, ids, reason="expired", selector={"expired": True}, actor=actor)
        result.expired_purged, result.held = len(done.documents), len(done.held)
    audit.record(catalog, "doctor_repair", actor, result.model_dump())
    return result


def doctor(
    ingestor: Ingestor, *, fix: bool = False, scan_secrets: bool = True, actor: str | None = None
) -> tuple[ConsistencyReport, RepairResult | None, ConsistencyReport | None]:
    """Check; with ``fix``, repair and check again. Returns (before, repair, after)."""
    from ingest.sources.archive import clean_work

    catalog, index = ingestor.stores.catalog, ingestor.stores.index
    before = check_consistency(catalog, index, scan_secrets=scan_secrets)
    removed = clean_work() if fix else 0
    if not fix or (before.agrees and before.no_expired):
        return before, (RepairResult(work_folders_removed=removed) if removed else None), None
    result = repair(ingestor, before, actor=actor)
    result.work_folders_removed = removed
    return before, result, check_consistency(catalog, index, scan_secrets=scan_secrets)
