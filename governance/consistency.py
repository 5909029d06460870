"""Does the vector index agree with the catalog? (the ``doctor``).

The catalog is the source of truth. One pass over every vector in Milvus and one over the
catalog's chunk rows classify each chunk:

- **orphan vector**: in Milvus, but not a chunk the catalog knows, or a chunk of a superseded
  version or of a document that is no longer active (purged, tombstoned);
- **pending vector**: a chunk of a version staged but not yet published (a crashed or running
  ingest; the next run publishes or overwrites it). Not a fault, reported for information;
- **missing vector**: a current chunk of an active document with no vector;
- **unscoped**: a vector whose ``scope_id`` the catalog does not know, or whose document has no
  scope (search could never show it, but it should not exist);
- **no expiry**: a vector or document without an expiry (``NEVER_EXPIRES``: no retention rule
  matched it);
- **expired present**: a vector whose expiry (in Milvus or in the catalog) has passed and
  which the purge has not removed yet;
- **stale access**: vector metadata (scope, expiry) that differs from its document's;
- **secrets**: secret-shaped strings in indexed texts (:mod:`governance.secrets_scan`).

The catalog side is read through its repositories (``catalog.chunks.chunk_states``,
``catalog.scopes.live_scope_ids``), the Milvus side through ``VectorIndex.iter_rows``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from governance.catalog import Catalog
from governance.secrets_scan import SecretFinding, scan_text
from governance.vector_index import NEVER_EXPIRES, VectorIndex, expiry_epoch

__all__ = ["ConsistencyReport", "check_consistency"]

SAMPLE = 20  # ids kept per problem kind (counts are exact)
ITER_BATCH = 2000


@dataclass
class Problem:
    """One kind of problem: every chunk id (for repair), exact count, a sample for reports."""

    ids: list[int] = field(default_factory=list)

    def add(self, chunk_id: int) -> None:
        self.ids.append(int(chunk_id))

    @property
    def count(self) -> int:
        return len(self.ids)

    @property
    def sample(self) -> list[int]:
        return self.ids[:SAMPLE]


@dataclass
class ConsistencyReport:
    """The outcome of :func:`check_consistency`."""

    checked_at: datetime
    vectors: int = 0
    catalog_current_chunks: int = 0
    orphan_vectors: Problem = field(default_factory=Problem)
    pending_vectors: Problem = field(default_factory=Problem)
    missing_vectors: Problem = field(default_factory=Problem)
    unscoped: Problem = field(default_factory=Problem)
    no_expiry: Problem = field(default_factory=Problem)
    expired_present: Problem = field(default_factory=Problem)
    stale_access: Problem = field(default_factory=Problem)
    secrets: list[SecretFinding] = field(default_factory=list)
    secrets_scanned: bool = False

    @property
    def agrees(self) -> bool:
        """Catalog and index hold the same current chunks with the same access metadata."""
        return not (self.orphan_vectors.count or self.missing_vectors.count or self.stale_access.count)

    @property
    def scoped_and_expiring(self) -> bool:
        return not (self.unscoped.count or self.no_expiry.count)

    @property
    def no_expired(self) -> bool:
        return not self.expired_present.count

    @property
    def no_secrets(self) -> bool:
        return not self.secrets

    @property
    def ok(self) -> bool:
        return self.agrees and self.scoped_and_expiring and self.no_expired and self.no_secrets

    def counts(self) -> dict[str, int]:
        return {
            "vectors": self.vectors,
            "catalog_current_chunks": self.catalog_current_chunks,
            **{
                name: getattr(self, name).count
                for name in (
                    "orphan_vectors",
                    "pending_vectors",
                    "missing_vectors",
                    "unscoped",
                    "no_expiry",
                    "expired_present",
                    "stale_access",
                )
            },
            "secrets": len(self.secrets),
        }

    def samples(self) -> dict[str, list[int]]:
        return {
            name: getattr(self, name).sample
            for name in (
                "orphan_vectors",
                "missing_vectors",
                "unscoped",
                "no_expiry",
                "expired_present",
                "stale_access",
            )
            if getattr(self, name).count
        }


def check_consistency(
    catalog: Catalog, index: VectorIndex, *, now: datetime | None = None, scan_secrets: bool = True
) -> ConsistencyReport:
    """Compare every vector with the catalog (one pass over each; O(chunks) memory)."""
    now = now or datetime.now(UTC)
    now_epoch = int(now.timestamp())
    report = ConsistencyReport(checked_at=now, secrets_scanned=scan_secrets)
    chunks = catalog.chunks.chunk_states()
    scopes = catalog.scopes.live_scope_ids()
    seen: set[int] = set()
    fields = ["scope_id", "expires_at", *(["text"] if scan_secrets else [])]
    for row in index.iter_rows(fields, ITER_BATCH):
        cid = int(row["id"])
        report.vectors += 1
        seen.add(cid)
        scope_id, expires_epoch = int(row["scope_id"]), int(row["expires_at"])
        if scan_secrets:
            for f in scan_text(str(row.get("text") or "")):
                report.secrets.append(SecretFinding(f.kind, f.start, f.end, f.preview, str(cid)))
        known = chunks.get(cid)
        if known is None or not known.active or not (known.current or known.pending):
            report.orphan_vectors.add(cid)
        elif known.pending:
            report.pending_vectors.add(cid)
        if scope_id not in scopes or (known is not None and known.scope_id not in scopes):
            report.unscoped.add(cid)
        if expires_epoch >= NEVER_EXPIRES or (known is not None and known.current and known.expires_at is None):
            report.no_expiry.add(cid)
        catalog_expired = known is not None and known.expires_at is not None and known.expires_at <= now
        if expires_epoch <= now_epoch or catalog_expired:
            report.expired_present.add(cid)
        if (
            known is not None
            and known.current
            and known.active
            and (scope_id != known.scope_id or expires_epoch != expiry_epoch(known.expires_at))
        ):
            report.stale_access.add(cid)
    for cid, known in chunks.items():
        if known.active and known.current:
            report.catalog_current_chunks += 1
            if cid not in seen:
                report.missing_vectors.add(cid)
    return report
