"""What an export states besides its documents' text, brought into the catalog and the
index: its permission state, documents it moves to another scope without holding them, and
(for a full export) documents it no longer holds. Also taking a document out of search when
an ingest refuses it."""

from __future__ import annotations

from governance.catalog.statuses import DocumentStatus
from governance.contracts import AccessScope
from governance.scope_rules import POLICY_SEP
from governance.stores import Stores
from ingest.pipeline.permission_state import AppliedState, apply_permission_state
from ingest.pipeline.write import rewrite_access
from ingest.sources.base import SourceExport


def apply_state(stores: Stores, export: SourceExport, actor: str | None = None) -> AppliedState:
    """The export's permission state into the catalog, and documents it knows under
    former ids (an earlier govrag's) taken out of search: they would keep old access."""
    from governance.purge import tombstone_documents

    aliases = sorted({a for item in export.items for a in item.aliases if a != item.document_id})
    if aliases:
        info = stores.catalog.documents.documents_info(aliases)
        live = [a for a in aliases if info.get(a, {}).get("status") == DocumentStatus.ACTIVE]
        if live:
            tombstone_documents(
                stores.catalog,
                stores.index,
                live,
                reason="renamed: the document is now known by its source identity",
            )
    if export.state is None:
        return AppliedState(identity=str(export.path))
    applied = apply_permission_state(stores.catalog, export.state, actor=actor)
    applied.documents_moved = move_documents(stores, export)
    return applied


def move_documents(stores: Stores, export: SourceExport) -> int:
    """Documents this export does not hold whose scope it changes: those an earlier
    govrag put on a key no export states any more (``state.legacy``), and pages below
    pages it holds (``state.descendants``). Each gets its current scope, its vectors'
    metadata rewritten once (nothing embedded)."""
    state, catalog = export.state, stores.catalog
    assert state is not None
    stored: dict[str, AccessScope] = {}

    def lookup(key: str) -> AccessScope | None:
        if key not in stored:
            stored.update((sc.key, sc) for sc, _ in catalog.scopes.scopes_with_prefix(key))
        return stored.get(key)

    moves: list[tuple[str, str, AccessScope]] = []  # (document, its scope key, its new source scope)
    if state.legacy is not None:
        for doc_id, old_key in catalog.documents.active_documents_on_scopes(state.legacy.keys):
            base = state.legacy.key_for(doc_id)
            target = lookup(base) if base is not None else None
            if target is not None:  # else this export did not state the conversation / space
                moves.append((doc_id, old_key, target))
    if state.descendants is not None:
        held = {item.document_id for item in export.items}
        below = catalog.documents.documents_below(state.descendants.id_prefix, state.descendants.page_ids)
        for doc_id, ancestry, old_key in below:
            current = lookup(old_key.partition(POLICY_SEP)[0])
            if doc_id in held or current is None:
                continue
            target = state.descendants.rescope(doc_id, ancestry, current)
            if target is not None and target.key != current.key:
                moves.append((doc_id, old_key, target))
    for doc_id, old_key, target in moves:
        old_base, sep, rule = old_key.partition(POLICY_SEP)
        if sep and (narrowed := lookup(old_key)) is not None:  # keep the policy rule's layers after the source's
            n = len(base_scope.layers) if (base_scope := lookup(old_base)) is not None else 1
            target = AccessScope(
                key=target.key + POLICY_SEP + rule,
                deny=target.deny,
                description=narrowed.description,
                layers=(*target.layers, *narrowed.layers[n:]),
            )
        scope_id, _ = catalog.scopes.upsert_scope(target, as_of=state.as_of)
        doc = catalog.documents.document_state(doc_id)
        if doc is not None and doc.scope_id != scope_id:
            rewrite_access(stores, doc_id, scope_id, doc.expires_at, doc.classification)
    return len(moves)


def prune(stores: Stores, export: SourceExport) -> int:
    """Tombstone active documents of this export's source identities that it no longer
    holds (never those a newer export stated)."""
    from governance.purge import tombstone_documents

    seen: dict[str, set[str]] = {}
    for item in export.items:
        seen.setdefault(item.origin or "", set()).add(item.document_id)
    origins = set(seen) | {f"path:{export.path.resolve()}"}  # what earlier versions recorded
    as_of = next((i.as_of for i in export.items if i.as_of), None)
    all_seen = set().union(*seen.values()) if seen else set()
    if export.state is not None:  # a space or workspace whose documents are all gone
        origins |= set(export.state.origins)
    documents = stores.catalog.documents
    gone = sorted({d for o in origins for d in documents.active_ids_by_origin(o, not_newer_than=as_of)} - all_seen)
    done = tombstone_documents(stores.catalog, stores.index, gone, reason=f"gone from full export {export.path.name}")
    for doc_id in gone:  # an older export must not bring them back
        documents.note_source(doc_id, origin=None, source_as_of=as_of)
    return done


def retire_if_indexed(stores: Stores, document_id: str, reason: str) -> int:
    """A document that was searchable and is now refused (no access rule covers it any
    more, or it became unreadable) must not stay visible with its old access: fail closed.
    Returns the documents tombstoned (0 or 1)."""
    state = stores.catalog.documents.document_state(document_id)
    if state is not None and state.status == DocumentStatus.ACTIVE:
        from governance.purge import tombstone_documents

        return tombstone_documents(
            stores.catalog, stores.index, [document_id], reason=f"refused on re-ingest: {reason}"
        )
    return 0
