"""Permission sync: re-resolve the access scopes of a source without re-embedding.

For now this runs the ingest's own scope resolution (``resolve_scope`` + ``upsert_scope``):
a membership or rule edit rewrites one scope row and takes effect on the next search. Items
whose content is unchanged then go through the ingest, which for unchanged documents only
updates their scope/expiry/classification (catalog rows and vector metadata; no parse, no
embedding). Items whose content changed are left to the ingest.

Documents that no access rule covers any more go through the ingest too, which quarantines
them and tombstones the ones that were searchable (fail closed): ``tombstoned`` counts them.
"""

from __future__ import annotations

from typing import Sequence

from pydantic import BaseModel, Field

from governance import audit
from governance.errors import QuarantinedDocument
from ingest.pipeline.run import Ingestor
from ingest.sources.base import SourceItem, resolve_scope

__all__ = ["PermissionSyncSummary", "sync_permissions"]


class PermissionSyncSummary(BaseModel):
    documents_seen: int = 0
    scopes_resolved: int = 0
    scopes_changed: int = 0
    changed_scope_keys: list[str] = Field(default_factory=list)
    access_updated: int = 0
    left_to_ingest: int = 0
    uncovered: int = 0
    uncovered_active: list[str] = Field(default_factory=list)
    tombstoned: int = 0


def sync_permissions(ingestor: Ingestor, items: Sequence[SourceItem], *, actor: str | None = None) -> PermissionSyncSummary:
    """Re-resolve every item's scope; update access of unchanged documents."""
    catalog, policy = ingestor.stores.catalog, ingestor.stores.policy
    summary = PermissionSyncSummary()
    resolved: dict[str, bool] = {}
    unchanged: list[SourceItem] = []
    for item in items:
        summary.documents_seen += 1
        state = catalog.document_state(item.document_id)
        try:
            scope, _ = resolve_scope(policy, item)
        except QuarantinedDocument:
            summary.uncovered += 1
            if state is not None and state.status == "active":
                summary.uncovered_active.append(item.document_id)
                unchanged.append(item)  # the ingest retires it: no rule, no visibility
            continue
        if scope.key not in resolved:
            _, changed = catalog.upsert_scope(scope)
            resolved[scope.key] = changed
        if state is not None and state.status == "active" and state.current_source_hash == item.fingerprint():
            unchanged.append(item)
        else:
            summary.left_to_ingest += 1
    summary.scopes_resolved = len(resolved)
    summary.changed_scope_keys = sorted(k for k, changed in resolved.items() if changed)
    summary.scopes_changed = len(summary.changed_scope_keys)
    if unchanged:
        result = ingestor.ingest_items(unchanged)
        summary.access_updated, summary.tombstoned = result.access_updated, result.tombstoned
    audit.record(catalog, "permission_sync", actor, summary.model_dump())
    return summary
