"""Documents in the catalog: their versions from staging to publishing, where they came
from, who wrote them, and retiring them (tombstone, purge). The read-only queries are in
:mod:`governance.catalog.document_queries`."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar, cast

from sqlalchemy import String, Table, Text, bindparam, case, delete, func, insert, or_, select, update
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
    Version,
    utcnow,
)
from governance.catalog.scopes import load_scopes
from governance.catalog.statuses import DocumentStatus, VersionState
from governance.contracts import SourceDocument
from governance.errors import CatalogError

__all__ = ["DocumentExtras", "DocumentRepository", "DocumentState", "Publication", "Staging"]


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
        staging = Staging(
            doc, scope_id, expires_at, content_hash, source_hash, cleaned_text, texts, ingested_at, version
        )
        return self.stage_versions([staging], make_id)[0]

    def stage_versions(
        self, stagings: Sequence[Staging], make_id: Callable[[str, int, int], int]
    ) -> list[tuple[int, list[tuple[int, str]]]]:
        """:meth:`stage_version` for several documents in one transaction (all or none), in
        order: a document staged twice gets two versions. One commit for many small documents
        (Slack threads) instead of one each. Returns each staging's (version, chunks)."""
        if not stagings:
            return []
        with self._db.session() as s:
            staged: list[tuple[int, list[tuple[int, str]]]] = []
            for group in _distinct_runs(stagings, lambda st: st.doc.document_id):
                staged += _stage_group(s, group, make_id)
            return staged

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
            return _publish_all(s, publications)

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
            _record_extras(s, [(document_id, version, extras)])

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
            access = load_scopes(s, [scope])[scope.id]
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
            scope=access,
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


@dataclass(frozen=True)
class Staging:
    """One document's new version to record as pending: its text, chunks and access."""

    doc: SourceDocument
    scope_id: int
    expires_at: datetime | None
    content_hash: str
    source_hash: str | None
    cleaned_text: str
    texts: Sequence[str]
    ingested_at: datetime
    version: int | None = None  # a pending version a crashed run left: staged again


# Core tables: a statement run once per row (executemany) needs no ORM bookkeeping.
_DOCUMENTS = cast(Table, Document.__table__)
_VERSIONS = cast(Table, Version.__table__)
_CONTRIBUTORS = cast(Table, DocumentContributor.__table__)
_CHUNKS = cast(Table, ChunkRow.__table__)


T = TypeVar("T")


def _distinct_runs(items: Sequence[T], key: Callable[[T], str]) -> list[list[T]]:
    """``items`` cut, in order, into runs of distinct keys of at most PARAM_BATCH each: a
    document twice in one batch is handled twice, the later after the earlier."""
    runs: list[list[T]] = []
    run: list[T] = []
    keys: set[str] = set()
    for item in items:
        if len(run) >= PARAM_BATCH or key(item) in keys:
            runs.append(run)
            run, keys = [], set()
        run.append(item)
        keys.add(key(item))
    return [*runs, run] if run else runs


def _stage_group(
    s: Session, group: Sequence[Staging], make_id: Callable[[str, int, int], int]
) -> list[tuple[int, list[tuple[int, str]]]]:
    """Stage distinct documents: each gets what :meth:`DocumentRepository.stage_version`
    gives one document, a statement per step for the whole group."""
    ids = [st.doc.document_id for st in group]
    now = utcnow()
    known = set(s.scalars(select(Document.id).where(Document.id.in_(ids))))
    new_documents = [
        {
            "id": st.doc.document_id,
            "source": st.doc.source,
            "uri": st.doc.uri,
            "title": st.doc.title,
            "path": st.doc.path,
            "scope_id": st.scope_id,
            "classification": st.doc.classification,
            "author": st.doc.author,
            "modified_at": st.doc.modified_at,
            "expires_at": st.expires_at,
            "current_version": None,
            "status": DocumentStatus.ACTIVE.value,
            "created_at": now,
            "updated_at": now,
        }
        for st in group
        if st.doc.document_id not in known
    ]
    if new_documents:
        s.execute(insert(_DOCUMENTS), new_documents)
    latest: dict[str, int] = {
        document_id: version
        for document_id, version in s.execute(
            select(Version.document_id, func.max(Version.version))
            .where(Version.document_id.in_([st.doc.document_id for st in group if st.version is None]))
            .group_by(Version.document_id)
        ).tuples()
    }
    versions = [st.version if st.version is not None else (latest.get(st.doc.document_id) or 0) + 1 for st in group]
    fresh = [
        {
            "document_id": st.doc.document_id,
            "version": version,
            "content_hash": st.content_hash,
            "source_hash": st.source_hash,
            "cleaned_text": st.cleaned_text,
            "chunk_count": len(st.texts),
            "state": VersionState.PENDING.value,
            "created_at": st.ingested_at,
        }
        for st, version in zip(group, versions, strict=True)
        if st.version is None
    ]
    if fresh:
        s.execute(insert(_VERSIONS), fresh)
    resumed = [st for st in group if st.version is not None]
    if resumed:
        # Resuming a crashed run: the version counts as ingested now, like its expiry.
        s.execute(
            update(_VERSIONS)
            .where(_VERSIONS.c.document_id == bindparam("b_document"), _VERSIONS.c.version == bindparam("b_version"))
            .values(created_at=bindparam("b_created"), source_hash=bindparam("b_source_hash")),
            [
                {
                    "b_document": st.doc.document_id,
                    "b_version": st.version,
                    "b_created": st.ingested_at,
                    "b_source_hash": st.source_hash,
                }
                for st in resumed
            ],
        )
    s.execute(
        delete(_CHUNKS).where(
            _CHUNKS.c.document_id == bindparam("b_document"), _CHUNKS.c.version == bindparam("b_version")
        ),
        [{"b_document": d, "b_version": v} for d, v in zip(ids, versions, strict=True)],
    )
    staged = [
        (version, [(make_id(st.doc.document_id, version, i), text) for i, text in enumerate(st.texts)])
        for st, version in zip(group, versions, strict=True)
    ]
    rows = [
        {"id": cid, "document_id": st.doc.document_id, "version": version, "ordinal": i, "text": text}
        for st, (version, chunks) in zip(group, staged, strict=True)
        for i, (cid, text) in enumerate(chunks)
    ]
    if rows:
        s.execute(insert(_CHUNKS), rows)
    return staged


def _publish_all(s: Session, publications: Sequence[Publication]) -> list[list[int]]:
    """Publish in order (a document twice in one batch is published twice, the later version
    last). A version the batch ends on is never reported replaced: publishing a document's
    earlier version supersedes a later one staged beside it, which the later publication
    then makes current, and its vectors must stay."""
    replaced: list[list[tuple[str, int, int]]] = []
    for group in _distinct_runs(publications, lambda p: p.doc.document_id):
        replaced += _publish_group(s, group)
    final = {p.doc.document_id: p.version for p in publications}
    return [[cid for document_id, version, cid in ids if final[document_id] != version] for ids in replaced]


def _publish_group(s: Session, group: Sequence[Publication]) -> list[list[tuple[str, int, int]]]:
    """Publish documents that are all distinct, a statement per step for the whole group
    (statements built once and run for each document): per document, the same effects as
    one document published alone."""
    if not group:
        return []
    ids = [p.doc.document_id for p in group]
    # Rows locked in a fixed order (PostgreSQL: a concurrent retire or access change waits,
    # and two writers cannot deadlock on the same documents).
    found = set(s.scalars(select(Document.id).where(Document.id.in_(ids)).order_by(Document.id).with_for_update()))
    missing = next((p for p in group if p.doc.document_id not in found), None)
    if missing is not None:
        raise CatalogError(f"document {missing.doc.document_id!r} vanished while publishing version {missing.version}")
    versions, documents = _VERSIONS, _DOCUMENTS
    # The new version becomes current; everything else current or pending is superseded: the
    # previous current one and any version a crashed run staged but never published. Their
    # text stays in versions.cleaned_text (version history); their vectors must go next.
    s.execute(
        update(versions)
        .where(
            versions.c.document_id == bindparam("b_document"),
            or_(
                # No IN list: an expanding parameter cannot run per row.
                versions.c.state == VersionState.CURRENT.value,
                versions.c.state == VersionState.PENDING.value,
                versions.c.version == bindparam("b_version"),
            ),
        )
        .values(
            state=case(
                (versions.c.version == bindparam("b_version"), VersionState.CURRENT.value),
                else_=VersionState.SUPERSEDED.value,
            )
        ),
        [{"b_document": p.doc.document_id, "b_version": p.version} for p in group],
    )
    now = utcnow()
    s.execute(
        update(documents)
        .where(documents.c.id == bindparam("b_document"))
        .values(
            current_version=bindparam("b_version"),
            status=DocumentStatus.ACTIVE.value,
            scope_id=bindparam("b_scope"),
            expires_at=bindparam("b_expires"),
            uri=bindparam("b_uri"),
            title=bindparam("b_title"),
            path=bindparam("b_path"),
            classification=bindparam("b_classification"),
            author=bindparam("b_author"),
            modified_at=bindparam("b_modified"),
            updated_at=now,
        ),
        [
            {
                "b_document": p.doc.document_id,
                "b_version": p.version,
                "b_scope": p.scope_id,
                "b_expires": p.expires_at,
                "b_uri": p.doc.uri,
                "b_title": p.doc.title,
                "b_path": p.doc.path,
                "b_classification": p.doc.classification,
                "b_author": p.doc.author,
                "b_modified": p.doc.modified_at,
            }
            for p in group
        ],
    )
    _record_extras(s, [(p.doc.document_id, p.version, p.extras) for p in group if p.extras is not None])
    # Each document's chunks of other versions: (document, version, chunk id).
    chunks: dict[str, list[tuple[str, int, int]]] = {}
    wanted = {p.doc.document_id: p.version for p in group}
    for document_id, version, chunk_id_ in s.execute(
        select(ChunkRow.document_id, ChunkRow.version, ChunkRow.id)
        .where(ChunkRow.document_id.in_(ids))
        .order_by(ChunkRow.document_id, ChunkRow.version, ChunkRow.ordinal)
    ).tuples():
        if version != wanted[document_id]:
            chunks.setdefault(document_id, []).append((document_id, version, chunk_id_))
    return [chunks.get(document_id, []) for document_id in ids]


def _record_extras(s: Session, extras: Sequence[tuple[str, int, DocumentExtras]]) -> None:
    """Where each document came from, who wrote it and the blocks of its version, for
    (document, version, extras) of distinct documents."""
    if not extras:
        return
    documents, versions = _DOCUMENTS, _VERSIONS
    s.execute(
        update(documents)
        .where(documents.c.id == bindparam("b_document"))
        .values(
            origin=bindparam("b_origin"),
            # Absent (None): the document keeps what an earlier export said.
            source_as_of=func.coalesce(bindparam("b_as_of", type_=String), documents.c.source_as_of),
            ancestry=func.coalesce(bindparam("b_ancestry", type_=Text), documents.c.ancestry),
        ),
        [
            {
                "b_document": document_id,
                "b_origin": e.origin,
                "b_as_of": e.source_as_of,
                "b_ancestry": "/".join(e.ancestry) if e.ancestry is not None else None,
            }
            for document_id, _, e in extras
        ],
    )
    s.execute(delete(DocumentContributor).where(DocumentContributor.document_id.in_([d for d, _, _ in extras])))
    contributors = [
        {"document_id": document_id, "principal": principal}
        for document_id, _, e in extras
        for principal in sorted(set(e.contributors))
    ]
    if contributors:
        s.execute(insert(_CONTRIBUTORS), contributors)
    s.execute(
        update(versions)
        .where(versions.c.document_id == bindparam("b_document"), versions.c.version == bindparam("b_version"))
        .values(blocks=bindparam("b_blocks", type_=versions.c.blocks.type)),
        [{"b_document": document_id, "b_version": version, "b_blocks": e.blocks} for document_id, version, e in extras],
    )
