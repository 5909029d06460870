"""Explain access: which documents a caller can read and why, and who can read a document.

For compliance and for tests. It reads the catalog only and decides with the code search
uses — ``catalog.scopes.allowed_scope_ids`` for the caller's principals (roles expanded by the
policy, as in ``retrieval.search``) and the post-check's conditions (active, a current
version, not expired) — so it cannot disagree with search; the per-layer detail (which of
the caller's principals matched each layer, which deny entry refused them) is read from the
same scope rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from pydantic import BaseModel, Field

from governance.catalog import Catalog
from governance.catalog.statuses import DocumentStatus
from governance.contracts import AccessScope


class LayerMatch(BaseModel):
    """One layer of a scope: how many principals it holds and which of the caller's match."""

    layer: int
    principals: int
    matched: list[str] = Field(default_factory=list)


class DocumentAccess(BaseModel):
    document_id: str
    title: str | None = None
    source: str | None = None
    readable: bool
    why: str = Field(description="one line: why the caller can or cannot read it")
    scope: str | None = None
    layers: list[LayerMatch] = Field(default_factory=list)
    denied_by: list[str] = Field(default_factory=list, description="the caller's principals on the scope's deny list")
    expires_at: datetime | None = None


class AccessExplanation(BaseModel):
    principals: list[str]
    allowed_scopes: int
    documents: list[DocumentAccess]
    truncated: bool = False


class Readers(BaseModel):
    """Who can read a document: one principal of every layer, and none on the deny list."""

    document_id: str
    status: str
    scope: str | None = None
    layers: list[list[str]] = Field(default_factory=list)
    deny: list[str] = Field(default_factory=list)
    expires_at: datetime | None = None
    readable_by_anyone: bool = False
    why: str = ""


def _detail(scope: AccessScope | None, principals: frozenset[str]) -> tuple[list[LayerMatch], list[str]]:
    if scope is None:
        return [], []
    layers = [
        LayerMatch(layer=i, principals=len(layer), matched=sorted(layer & principals))
        for i, layer in enumerate(scope.layers)
    ]
    return layers, sorted(scope.deny & principals)


def explain(
    catalog: Catalog, principals: Iterable[str], *, now: datetime, document_id: str | None = None, limit: int = 100
) -> AccessExplanation:
    """What these principals can read (or whether they can read ``document_id``), and why."""
    held = frozenset(principals)
    allowed = catalog.scopes.allowed_scope_ids(held)
    scopes: dict[int, AccessScope | None] = {}

    def scope(sid: int | None) -> AccessScope | None:
        if sid is None:
            return None
        if sid not in scopes:
            scopes[sid] = catalog.scopes.scope_by_id(sid)
        return scopes[sid]

    out = AccessExplanation(principals=sorted(held), allowed_scopes=len(allowed), documents=[])
    rows = catalog.documents.readable_documents(allowed, now=now, limit=limit, document_id=document_id)
    out.truncated = len(rows) > limit
    for row in rows[:limit]:
        sc = scope(row["scope_id"])
        layers, _ = _detail(sc, held)
        out.documents.append(
            DocumentAccess(
                document_id=row["document_id"],
                title=row["title"],
                source=row["source"],
                readable=True,
                why="a principal of the caller is in every layer of the document's scope, none is denied",
                scope=sc.key if sc else None,
                layers=layers,
                expires_at=row["expires_at"],
            )
        )
    if document_id is not None and not out.documents:
        out.documents.append(_why_not(catalog, document_id, held, set(allowed), now, scope))
    return out


def _why_not(
    catalog: Catalog,
    document_id: str,
    held: frozenset[str],
    allowed: set[int],
    now: datetime,
    scope: Callable[[int | None], AccessScope | None],
) -> DocumentAccess:
    row = catalog.documents.document_row(document_id)
    if row is None:
        return DocumentAccess(document_id=document_id, readable=False, why="no such document in the catalog")
    sc = scope(row["scope_id"])
    layers, denied = _detail(sc, held)
    base = DocumentAccess(
        document_id=document_id,
        title=row["title"],
        source=row["source"],
        readable=False,
        why="",
        scope=sc.key if sc else None,
        layers=layers,
        denied_by=denied,
        expires_at=row["expires_at"],
    )
    if row["status"] != DocumentStatus.ACTIVE or row["current_version"] is None:
        base.why = f"the document is {row['status']}" + (f" ({row['status_reason']})" if row["status_reason"] else "")
    elif row["expires_at"] is not None and row["expires_at"] <= now:
        base.why = f"the document expired at {row['expires_at'].isoformat()}"
    elif denied:
        base.why = f"denied: {', '.join(denied)} is on the scope's deny list"
    elif sc is None or not sc.layers or any(not layer.principals for layer in layers):
        base.why = "the document's scope is readable by nobody"
    else:
        missing = [str(m.layer) for m in layers if not m.matched]
        base.why = (
            f"no principal of the caller is in layer {', '.join(missing)} of the scope"
            if missing
            else "the scope does not allow the caller"
        )
    return base


def who(catalog: Catalog, document_id: str, *, now: datetime) -> Readers:
    """The principals that can read ``document_id`` (search shows it to a caller who holds
    one principal of every layer and none of the deny list)."""
    row = catalog.documents.document_row(document_id)
    if row is None:
        return Readers(document_id=document_id, status="unknown", why="no such document in the catalog")
    sc = catalog.scopes.scope_by_id(row["scope_id"]) if row["scope_id"] is not None else None
    out = Readers(
        document_id=document_id,
        status=row["status"],
        scope=sc.key if sc else None,
        layers=[sorted(layer) for layer in sc.layers] if sc else [],
        deny=sorted(sc.deny) if sc else [],
        expires_at=row["expires_at"],
    )
    if row["status"] != DocumentStatus.ACTIVE or row["current_version"] is None:
        out.why = f"nobody: the document is {row['status']}"
    elif row["expires_at"] is not None and row["expires_at"] <= now:
        out.why = "nobody: the document has expired"
    elif sc is None or not sc.layers or any(not layer for layer in sc.layers):
        out.why = "nobody: its scope has an empty layer"
    else:
        out.readable_by_anyone = True
        out.why = "one principal of every layer, none of the deny list"
    return out
