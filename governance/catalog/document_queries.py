"""Read-only document queries: selecting documents for a purge or an erasure, what search
can show a caller, and what an export's permission state or a prune needs to find."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from governance.catalog.engine import PARAM_BATCH, Database, retry_read
from governance.catalog.freshness import is_older
from governance.catalog.models import Document, DocumentContributor, Scope
from governance.catalog.statuses import DocumentStatus

__all__ = ["DocumentQueries", "documents_info_in"]


def documents_info_in(s: Session, ids: list[str]) -> dict[str, dict[str, Any]]:
    """:meth:`DocumentQueries.documents_info` inside an open transaction (a purge claims
    documents in the same transaction that matches them against holds)."""
    out: dict[str, dict[str, Any]] = {}
    for i in range(0, len(ids), PARAM_BATCH):
        for d in s.scalars(select(Document).where(Document.id.in_(ids[i : i + PARAM_BATCH]))):
            out[d.id] = {
                "source": d.source,
                "origin": d.origin,
                "author": d.author,
                "status": d.status,
                "current_version": d.current_version,
            }
        contrib = s.execute(
            select(DocumentContributor.document_id, DocumentContributor.principal).where(
                DocumentContributor.document_id.in_(ids[i : i + PARAM_BATCH])
            )
        ).all()
        for doc_id, principal_ in contrib:
            out.setdefault(doc_id, {}).setdefault("contributors", []).append(principal_)
    return out


class DocumentQueries:
    """The read side of :class:`~governance.catalog.documents.DocumentRepository`: queries
    over ``documents`` (with their scope and contributors) that change nothing."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @retry_read
    def active_documents_on_scopes(self, keys: Sequence[str], derived_sep: str = "|policy:") -> list[tuple[str, str]]:
        """(document id, scope key) of active documents whose scope is one of ``keys`` or a
        narrowed variant of one (``<key><derived_sep>…``)."""
        if not keys:
            return []
        conds = [Scope.key.in_(list(keys)), *[Scope.key.startswith(k + derived_sep, autoescape=True) for k in keys]]
        with self._db.session() as s:
            return [
                (d, k)
                for d, k in s.execute(
                    select(Document.id, Scope.key)
                    .join(Scope, Scope.id == Document.scope_id)
                    .where(Document.status == DocumentStatus.ACTIVE, or_(*conds))
                )
            ]

    @retry_read
    def readable_documents(
        self, scope_ids: Sequence[int], *, now: datetime, limit: int, document_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Documents search can show in these scopes: active, with a current version, not
        expired (the post-check's conditions), by id, at most ``limit``."""
        ids = sorted({int(x) for x in scope_ids})
        out: list[dict[str, Any]] = []
        with self._db.session() as s:
            for i in range(0, len(ids), PARAM_BATCH):
                q = select(Document.id, Document.title, Document.source, Document.scope_id, Document.expires_at).where(
                    Document.scope_id.in_(ids[i : i + PARAM_BATCH]),
                    Document.status == DocumentStatus.ACTIVE,
                    Document.current_version.is_not(None),
                    or_(Document.expires_at.is_(None), Document.expires_at > now),
                )
                if document_id is not None:
                    q = q.where(Document.id == document_id)
                out += [
                    {"document_id": d, "title": t, "source": src, "scope_id": sid, "expires_at": exp}
                    for d, t, src, sid, exp in s.execute(q.order_by(Document.id).limit(limit + 1))
                ]
        return sorted(out, key=lambda r: r["document_id"])[: limit + 1]

    @retry_read
    def document_row(self, document_id: str) -> dict[str, Any] | None:
        """What the catalog holds about one document (status, scope, expiry, version)."""
        with self._db.session() as s:
            d = s.get(Document, document_id)
            if d is None:
                return None
            return {
                "document_id": d.id,
                "title": d.title,
                "source": d.source,
                "status": d.status,
                "status_reason": d.status_reason,
                "scope_id": d.scope_id,
                "expires_at": d.expires_at,
                "current_version": d.current_version,
            }

    @retry_read
    def documents_below(self, id_prefix: str, page_ids: Iterable[str]) -> list[tuple[str, list[str], str]]:
        """(document id, ancestry, scope key) of active documents under ``id_prefix`` whose
        recorded ancestry holds one of ``page_ids``."""
        wanted = set(page_ids)
        with self._db.session() as s:
            rows = s.execute(
                select(Document.id, Document.ancestry, Scope.key)
                .join(Scope, Scope.id == Document.scope_id)
                .where(
                    Document.status == DocumentStatus.ACTIVE,
                    Document.ancestry.is_not(None),
                    Document.id.startswith(id_prefix, autoescape=True),
                )
            ).all()
        out = []
        for doc_id, ancestry, key in rows:
            chain = [a for a in (ancestry or "").split("/") if a]  # never None: the query asks for one
            if wanted.intersection(chain):
                out.append((doc_id, chain, key))
        return out

    @retry_read
    def active_ids_by_origin(self, origin: str, *, not_newer_than: str | None = None) -> list[str]:
        """Active documents of one source identity. ``not_newer_than``: leave out documents a
        newer export stated (an older full export must not prune what came later)."""
        with self._db.session() as s:
            rows = s.execute(
                select(Document.id, Document.source_as_of).where(
                    Document.origin == origin, Document.status == DocumentStatus.ACTIVE
                )
            ).all()
        return [doc_id for doc_id, as_of in rows if not is_older(not_newer_than, as_of)]

    @retry_read
    def select_documents(
        self,
        *,
        expired_at: datetime | None = None,
        document_id: str | None = None,
        source: str | None = None,
        author: str | None = None,
        contributor: str | None = None,
        include_tombstoned: bool = True,
    ) -> list[str]:
        """Document ids for a purge selector (not yet purged)."""
        # "purging": claimed by a purge that did not finish (a crash): the next purge takes it.
        statuses = [DocumentStatus.ACTIVE, DocumentStatus.PURGING]
        if include_tombstoned:
            statuses.append(DocumentStatus.TOMBSTONED)
        q = select(Document.id).where(Document.status.in_(statuses))
        if expired_at is not None:
            q = q.where(Document.expires_at.is_not(None), Document.expires_at <= expired_at)
        if document_id is not None:
            q = q.where(Document.id == document_id)
        if source is not None:
            q = q.where(or_(Document.source == source, Document.origin == source))
        if author is not None:
            q = q.where(Document.author == author)
        if contributor is not None:
            q = q.where(
                Document.id.in_(
                    select(DocumentContributor.document_id).where(DocumentContributor.principal == contributor)
                )
            )
        with self._db.session() as s:
            return list(s.scalars(q.order_by(Document.id)))

    @retry_read
    def documents_info(self, document_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Per document id: source, origin, author, status, current version and contributors."""
        with self._db.session() as s:
            return documents_info_in(s, list(document_ids))
