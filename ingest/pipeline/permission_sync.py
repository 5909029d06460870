"""Permission sync: re-read the permissions of exports without re-embedding.

First the export's permission state is applied (``ingest.pipeline.permission_state``): every
conversation, space and restricted-page chain it states, with documents in it or not, and
monotone in the export's own time, so syncing last month's export after this month's changes
nothing. Then each document's scope is re-resolved (``resolve_scope`` + ``upsert_scope``):
a membership or rule edit rewrites one scope row and takes effect on the next search.
Unchanged documents then go through the ingest, which for them only updates scope, expiry
and classification (catalog rows and vector metadata; no parse, no embedding); documents
whose content changed are left to the ingest.

Documents that no access rule covers any more go through the ingest too, which quarantines
them and tombstones the ones that were searchable (fail closed): ``tombstoned`` counts them.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, Field

from governance import audit
from governance.catalog.freshness import is_older
from governance.catalog.statuses import DocumentStatus
from governance.errors import QuarantinedDocument
from governance.scope_rules import resolve_scope
from ingest.pipeline.run import Ingestor
from ingest.sources.base import SourceExport, SourceItem

__all__ = ["PermissionSyncSummary", "sync_permissions"]


class PermissionSyncSummary(BaseModel):
    documents_seen: int = 0
    scopes_resolved: int = 0
    scopes_changed: int = 0
    changed_scope_keys: list[str] = Field(default_factory=list)
    scopes_stale: int = Field(0, description="statements ignored: a newer export already spoke for these scopes")
    stale_documents: int = Field(0, description="documents a newer export already stated")
    access_updated: int = 0
    left_to_ingest: int = 0
    uncovered: int = 0
    refused: int = Field(0, description="documents this export refuses (quarantined; a searchable copy is retired)")
    uncovered_active: list[str] = Field(default_factory=list)
    tombstoned: int = 0


def sync_permissions(
    ingestor: Ingestor, exports: Sequence[SourceExport] | Sequence[SourceItem], *, actor: str | None = None
) -> PermissionSyncSummary:
    """Apply each export's permission state, then re-resolve every item's scope and update
    the access of unchanged documents. (Bare items are accepted too: no export-wide state.)"""
    catalog, policy = ingestor.stores.catalog, ingestor.stores.policy
    summary = PermissionSyncSummary()
    changed_keys: set[str] = set()
    items: list[SourceItem] = []
    for export in exports:
        if isinstance(export, SourceItem):
            items.append(export)
            continue
        applied = ingestor.apply_state(export, actor=actor)
        changed_keys.update(applied.changed_scope_keys)
        summary.scopes_stale += applied.scopes_stale
        summary.scopes_resolved += applied.scopes_stated
        items.extend(export.items)
    resolved: dict[str, bool] = {}
    unchanged: list[SourceItem] = []
    for item in items:
        summary.documents_seen += 1
        state = catalog.documents.document_state(item.document_id)
        if state is not None and is_older(item.as_of, state.source_as_of):
            summary.stale_documents += 1
            continue
        try:
            scope, _ = resolve_scope(policy, item)
        except QuarantinedDocument:
            summary.uncovered += 1
            if state is not None and state.status == DocumentStatus.ACTIVE:
                summary.uncovered_active.append(item.document_id)
                unchanged.append(item)  # the ingest retires it: no rule, no visibility
            continue
        if scope.key not in resolved:
            _, changed = catalog.scopes.upsert_scope(scope, actor=actor, as_of=item.as_of)
            resolved[scope.key] = changed
        try:
            fingerprint = item.fingerprint()
        except QuarantinedDocument:
            # Refused by this export (a private channel left with no active member, permission
            # data incomplete): the ingest quarantines it and takes a searchable copy out.
            summary.refused += 1
            if state is not None and state.status == DocumentStatus.ACTIVE:
                unchanged.append(item)
            continue
        if state is not None and state.status == DocumentStatus.ACTIVE and state.current_source_hash == fingerprint:
            unchanged.append(item)
        else:
            summary.left_to_ingest += 1
    summary.scopes_resolved += len(resolved)
    changed_keys.update(k for k, changed in resolved.items() if changed)
    summary.changed_scope_keys = sorted(changed_keys)
    summary.scopes_changed = len(summary.changed_scope_keys)
    if unchanged:
        result = ingestor.ingest_items(unchanged)
        summary.access_updated, summary.tombstoned = result.access_updated, result.tombstoned
    audit.record(catalog, "permission_sync", actor, summary.model_dump())
    return summary
