"""Documents in the catalog: their versions from staging to publishing, where they came
from, who wrote them, and retiring them (tombstone, purge). The read-only queries are in
:mod:`governance.catalog.document_queries`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from governance.catalog.document_queries import DocumentQueries
from governance.catalog.engine import PARAM_BATCH, retry_read
from governance.catalog.freshness import is_older
from governance.catalog.models import (
    ChunkRow,
    Document,
    DocumentContributor,
    Quarantine,
    Scope,
    ScopePrincipal,
    Version,
    utcnow,
)
from governance.catalog.scopes import scope_from_rows
from governance.catalog.statuses import DocumentStatus, VersionState
from governance.contracts import SourceDocument
from governance.errors import CatalogError

__all__ = ["DocumentExtras", "DocumentRepository", "DocumentState", "Publication"]


@dataclass(frozen=True)
class DocumentState:
    """What the catalog knows about a document before an ingest decides what to do."""

    document_id: str
    status: DocumentStatus
    current_version: int | None
    current_hash: str | None
    current_source_hash: str | None
    current_created_at: datetime | None
    scope_id: int | None
    expires_at: datetime | None
    classification: str
    pending: dict[str, int]  # content hash -> version number of unpublished versions
    source_as_of: str | None = None  # how new the export was that last stated this document
    origin: str | None = None
    ancestry: str | None = None


class DocumentRepository(DocumentQueries):
    """The ``documents``, ``versions`` and ``document_contributors`` tables (chunk rows are
    written with their version here; reading them is :class:`ChunkRepository`'s job). The
    queries that change nothing come from :class:`DocumentQueries`."""

    @retry_read
    def document_state(self, document_id: str) -> DocumentState | None:
        """What an ingest needs to know about a stored document (None: never seen)."""
        with self._db.session() as s:
            doc = s.get(Document, document_id)
            if doc is None:
                return None
            versions = s.execute(
                select(
                    Version.version, Version.content_hash, Version.state, Version.source_hash, Version.created_at
                ).where(Version.document_id == document_id)
            ).all()
        current = next((row for row in versions if row[0] == doc.current_version), None)
        pending = {h: v for v, h, st, _, _ in versions if st == VersionState.PENDING}
        return DocumentState(
            document_id=doc.id,
            status=DocumentStatus(doc.status),
            current_version=doc.current_version,
            current_hash=current[1] if current else None,
            current_source_hash=current[3] if current else None,
            current_created_at=current[4] if current else None,
            scope_id=doc.scope_id,
            expires_at=doc.expires_at,
            classification=doc.classification,
            pending=pending,
            source_as_of=doc.source_as_of,
            origin=doc.origin,
            ancestry=doc.ancestry,
        )

    def stage_version(
        self,
        doc: SourceDocument,
        *,
        scope_id: int,
        expires_at: datetime | None,
        content_hash: str,
        source_hash: str | None,
        cleaned_text: str,
        texts: Sequence[str],
        make_id: Callable[[str, int, int], int],
        ingested_at: datetime,
        version: int | None = None,
    ) -> tuple[int, list[tuple[int, str]]]:
        """Record a new version as *pending* with its chunks (ids from ``make_id(document,
        version, ordinal)``); search ignores it until :meth:`publish_version`. Re-staging a
        pending version (after a crash) replaces its chunks. Returns (version, chunks)."""
        with self._db.session() as s:
            row = s.get(Document, doc.document_id)
            if row is None:
                row = Document(
                    id=doc.document_id,
                    source=doc.source,
                    uri=doc.uri,
                    title=doc.title,
                    path=doc.path,
                    scope_id=scope_id,
                    classification=doc.classification,
                    author=doc.author,
                    modified_at=doc.modified_at,
                    expires_at=expires_at,
                    current_version=None,
                    status=DocumentStatus.ACTIVE,
                )
                s.add(row)
                s.flush()
            if version is None:
                latest = s.scalar(select(func.max(Version.version)).where(Version.document_id == doc.document_id))
                version = (latest or 0) + 1
                s.add(
                    Version(
                        document_id=doc.document_id,
                        version=version,
                        content_hash=content_hash,
                        source_hash=source_hash,
                        cleaned_text=cleaned_text,
                        chunk_count=len(texts),
                        state=VersionState.PENDING,
                        created_at=ingested_at,
                    )
                )
            else:
                # Resuming a crashed run: the version counts as ingested now, like its expiry.
                s.execute(
                    update(Version)
                    .where(Version.document_id == doc.document_id, Version.version == version)
                    .values(created_at=ingested_at, source_hash=source_hash)
                )
            chunks = [(make_id(doc.document_id, version, i), text) for i, text in enumerate(texts)]
            s.query(ChunkRow).filter(ChunkRow.document_id == doc.document_id, ChunkRow.version == version).delete()
            s.add_all(
                ChunkRow(id=cid, document_id=doc.document_id, version=version, ordinal=i, text=text)
                for i, (cid, text) in enumerate(chunks)
            )
            return version, chunks

    def publish_version(
        self,
        doc: SourceDocument,
        version: int,
        *,
        scope_id: int,
        expires_at: datetime | None,
        extras: DocumentExtras | None = None,
    ) -> list[int]:
        """Make ``version`` the one search shows; returns chunk ids of the versions it replaced
        (their vectors must be deleted next, then :meth:`forget_chunks` called). Their chunk
        rows stay until then, so a run that dies in between (Milvus down, kill -9) leaves the
        catalog knowing which vectors are owed a delete (:meth:`superseded_chunk_ids`).
        ``extras`` are recorded in the same transaction."""
        return self.publish_versions([Publication(doc, version, scope_id, expires_at, extras)])[0]

    def publish_versions(self, publications: Sequence[Publication]) -> list[list[int]]:
        """:meth:`publish_version` for several documents in one transaction: all of them or
        none (a failure rolls the batch back and the next run publishes it; the versions stay
        staged, their vectors written under the same ids). One commit per batch instead of
        one per document: on SQLite each commit is a sync to disk, the ingest's largest cost
        on many small documents. Returns each publication's replaced chunk ids, in order."""
        if not publications:
            return []
        with self._db.session() as s:
            return [_publish(s, p) for p in publications]

    def update_document_access(
        self, document_id: str, *, scope_id: int, expires_at: datetime | None, classification: str
    ) -> list[int]:
        """Change scope/expiry of an unchanged document; returns its current chunk ids."""
        with self._db.session() as s:
            row = s.get(Document, document_id)
            if row is None:
                return []
            row.scope_id, row.expires_at, row.classification, row.updated_at = (
                scope_id,
                expires_at,
                classification,
                utcnow(),
            )
            return list(
                s.scalars(
                    select(ChunkRow.id).where(
                        ChunkRow.document_id == document_id, ChunkRow.version == row.current_version
                    )
                )
            )

    def set_document_extras(
        self,
        document_id: str,
        *,
        origin: str | None,
        contributors: Iterable[str],
        version: int,
        blocks: list[dict[str, Any]] | None,
        source_as_of: str | None = None,
        ancestry: Sequence[str] | None = None,
    ) -> None:
        """Record where a document came from, who contributed to it, and its authored blocks."""
        with self._db.session() as s:
            doc = s.get(Document, document_id)
            if doc is None:
                return
            extras = DocumentExtras(origin, tuple(contributors), blocks, source_as_of, ancestry)
            _record_extras(s, doc, version, extras)

    def note_source(
        self, document_id: str, *, origin: str | None, source_as_of: str | None, ancestry: Sequence[str] | None = None
    ) -> None:
        """An unchanged document seen again: remember the export that stated it last (its
        source identity for ``--prune``, how new that export was, the pages above it)."""
        with self._db.session() as s:
            doc = s.get(Document, document_id)
            if doc is None:
                return
            if ancestry is not None:
                doc.ancestry = "/".join(ancestry)
            if origin is not None and doc.origin != origin:
                doc.origin = origin
            if source_as_of is not None and not is_older(source_as_of, doc.source_as_of):
                doc.source_as_of = source_as_of

    def retire_documents(
        self, document_ids: Sequence[str], *, status: DocumentStatus, reason: str, drop_content: bool
    ) -> list[str]:
        """Mark documents ``tombstoned`` or ``purged``. Purge also drops every version's text
        and blocks and all chunk rows, keeping a tombstone: id, content hashes, when, why.
        Returns the ids changed (already retired ones are skipped: idempotent)."""
        assert status in (DocumentStatus.TOMBSTONED, DocumentStatus.PURGED)
        ids = list(document_ids)
        changed: list[str] = []
        with self._db.session() as s:
            for i in range(0, len(ids), PARAM_BATCH):
                part = ids[i : i + PARAM_BATCH]
                # A purge in progress wins over a tombstone.
                skip = (
                    (DocumentStatus.PURGED, DocumentStatus.PURGING)
                    if status == DocumentStatus.TOMBSTONED
                    else (DocumentStatus.PURGED,)
                )
                todo = list(
                    s.scalars(
                        select(Document.id).where(
                            Document.id.in_(part), Document.status != status, Document.status.not_in(skip)
                        )
                    )
                )
                if not todo:
                    continue
                s.execute(delete(ChunkRow).where(ChunkRow.document_id.in_(todo)))
                if drop_content:
                    s.execute(
                        update(Version).where(Version.document_id.in_(todo)).values(cleaned_text=None, blocks=None)
                    )
                    # The tombstone keeps the id, the content hashes, when and why: no title (a
                    # Slack thread's title quotes its root message), link, path, author or
                    # contributor is left to name a person or repeat the text.
                    s.execute(delete(DocumentContributor).where(DocumentContributor.document_id.in_(todo)))
                    # Quarantine records of the document name its file and repeat parser messages.
                    s.execute(delete(Quarantine).where(Quarantine.document_id.in_(todo)))
                    s.execute(
                        update(Document)
                        .where(Document.id.in_(todo))
                        .values(title="", uri="", path=None, author=None, ancestry=None)
                    )
                s.execute(
                    update(Document)
                    .where(Document.id.in_(todo))
                    .values(status=status, status_reason=reason, current_version=None, updated_at=utcnow())
                )
                changed += todo
        if drop_content and changed:
            self._db.checkpoint()
        return changed

    def current_blocks(self, document_id: str) -> tuple[int | None, list[dict[str, Any]] | None]:
        """The current version number and its authored blocks (None, None: nothing current)."""
        with self._db.session() as s:
            doc = s.get(Document, document_id)
            if doc is None or doc.current_version is None:
                return None, None
            v = s.scalar(
                select(Version).where(Version.document_id == document_id, Version.version == doc.current_version)
            )
            return doc.current_version, (v.blocks if v else None)

    def scrub_old_versions(self, document_id: str, keep_version: int) -> None:
        """Drop text and blocks of every version but ``keep_version`` (they held erased content)."""
        with self._db.session() as s:
            s.execute(
                update(Version)
                .where(Version.document_id == document_id, Version.version != keep_version)
                .values(cleaned_text=None, blocks=None)
            )
        self._db.checkpoint()

    def source_document(self, document_id: str) -> SourceDocument | None:
        """Rebuild a document's contract from the catalog (for re-indexing without the source)."""
        with self._db.session() as s:
            d = s.get(Document, document_id)
            if d is None or d.scope_id is None:
                return None
            scope = s.get(Scope, d.scope_id)
            if scope is None:  # the foreign key keeps it; checked for the type checker
                return None
            rows = s.execute(
                select(ScopePrincipal.layer, ScopePrincipal.principal).where(ScopePrincipal.scope_id == d.scope_id)
            ).all()
            n_layers = scope.n_layers
            source_hash = s.scalar(
                select(Version.source_hash).where(
                    Version.document_id == document_id, Version.version == d.current_version
                )
            )
        return SourceDocument(
            document_id=d.id,
            source=d.source,
            uri=d.uri,
            title=d.title,
            path=d.path,
            scope=scope_from_rows(scope.key, rows, n_layers=n_layers),
            classification=d.classification,
            modified_at=d.modified_at,
            author=d.author,
            metadata={
                "scope_id": d.scope_id,
                "expires_at": d.expires_at,
                "origin": d.origin,
                "source_hash": source_hash,
            },
        )


@dataclass(frozen=True)
class DocumentExtras:
    """What a published version records besides its text: where the document came from
    (origin, how new that export was, the pages above it), who wrote it, its authored blocks."""

    origin: str | None
    contributors: tuple[str, ...] = ()
    blocks: list[dict[str, Any]] | None = None
    source_as_of: str | None = None
    ancestry: Sequence[str] | None = None


@dataclass(frozen=True)
class Publication:
    """One document's staged version to make current, with where it may be read."""

    doc: SourceDocument
    version: int
    scope_id: int
    expires_at: datetime | None
    extras: DocumentExtras | None = None


def _publish(s: Session, p: Publication) -> list[int]:
    doc, version = p.doc, p.version
    row = s.get(Document, doc.document_id, with_for_update=True)
    if row is None:
        raise CatalogError(f"document {doc.document_id!r} vanished while publishing version {version}")
    s.execute(
        update(Version)
        .where(Version.document_id == doc.document_id, Version.state == VersionState.CURRENT)
        .values(state=VersionState.SUPERSEDED)
    )
    s.execute(
        update(Version)
        .where(Version.document_id == doc.document_id, Version.version == version)
        .values(state=VersionState.CURRENT)
    )
    row.current_version, row.status = version, DocumentStatus.ACTIVE
    row.scope_id, row.expires_at = p.scope_id, p.expires_at
    row.uri, row.title, row.path = doc.uri, doc.title, doc.path
    row.classification, row.author, row.modified_at = doc.classification, doc.author, doc.modified_at
    row.updated_at = utcnow()
    # Everything but the new version is superseded: the previous current one and any
    # version a crashed run staged but never published. Their text stays in
    # versions.cleaned_text (version history); their vectors must go next.
    s.execute(
        update(Version)
        .where(
            Version.document_id == doc.document_id,
            Version.state == VersionState.PENDING,
            Version.version != version,
        )
        .values(state=VersionState.SUPERSEDED)
    )
    if p.extras is not None:
        _record_extras(s, row, version, p.extras)
    return list(
        s.scalars(select(ChunkRow.id).where(ChunkRow.document_id == doc.document_id, ChunkRow.version != version))
    )


def _record_extras(s: Session, doc: Document, version: int, extras: DocumentExtras) -> None:
    doc.origin = extras.origin
    if extras.source_as_of is not None:
        doc.source_as_of = extras.source_as_of
    if extras.ancestry is not None:
        doc.ancestry = "/".join(extras.ancestry)
    s.execute(delete(DocumentContributor).where(DocumentContributor.document_id == doc.id))
    s.add_all(DocumentContributor(document_id=doc.id, principal=p) for p in sorted(set(extras.contributors)))
    s.execute(
        update(Version).where(Version.document_id == doc.id, Version.version == version).values(blocks=extras.blocks)
    )
