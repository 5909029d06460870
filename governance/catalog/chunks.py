"""Chunk rows in the catalog: the post-check search relies on, the superseded chunks whose
vectors are owed a delete, and what the doctor needs to rebuild a missing vector."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, delete, func, or_, select

from governance.catalog.engine import PARAM_BATCH, Database, retry_read
from governance.catalog.models import ChunkRow, Document, Version
from governance.catalog.statuses import DocumentStatus, VersionState

__all__ = ["ChunkRepository", "ChunkState", "VisibleChunk"]

_Query = TypeVar("_Query", bound="Select[*tuple[Any, ...]]")  # a select of any columns


@dataclass(frozen=True)
class VisibleChunk:
    """A chunk that passed the post-check, with the catalog's view of its document."""

    chunk_id: int
    document_id: str
    version: int
    source: str
    title: str
    uri: str
    expires_at: datetime | None
    scope_id: int


@dataclass(frozen=True)
class ChunkState:
    """A chunk row with its document's and version's state (what the consistency check
    compares each vector with)."""

    document_id: str
    active: bool
    current: bool
    pending: bool
    scope_id: int | None
    expires_at: datetime | None


class ChunkRepository:
    """The ``chunks`` table, read with its document's and version's state."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @retry_read
    def superseded_chunk_ids(self) -> list[int]:
        """Chunks of superseded versions whose vectors are not known to be deleted yet (a run
        stopped between publishing a version and deleting the old one's vectors)."""
        with self._db.session() as s:
            return [
                int(x)
                for x in s.scalars(
                    select(ChunkRow.id)
                    .join(
                        Version, (Version.document_id == ChunkRow.document_id) & (Version.version == ChunkRow.version)
                    )
                    .where(Version.state == VersionState.SUPERSEDED)
                )
            ]

    def forget_chunks(self, chunk_ids: Sequence[int]) -> None:
        """Drop the rows of superseded chunks once their vectors are deleted (rows of a
        current or pending version are never dropped here)."""
        ids = list(chunk_ids)
        with self._db.session() as s:
            for i in range(0, len(ids), PARAM_BATCH):
                superseded = (
                    select(ChunkRow.id)
                    .join(
                        Version, (Version.document_id == ChunkRow.document_id) & (Version.version == ChunkRow.version)
                    )
                    .where(ChunkRow.id.in_(ids[i : i + PARAM_BATCH]), Version.state == VersionState.SUPERSEDED)
                )
                s.execute(delete(ChunkRow).where(ChunkRow.id.in_(superseded)))

    @retry_read
    def visible_chunks(
        self, chunk_ids: Sequence[int], *, allowed_scope_ids: Collection[int], now: datetime
    ) -> dict[int, VisibleChunk]:
        """The post-check: of these chunk ids, those whose document is active, whose version
        is current, whose scope is allowed and which have not expired, per the catalog.
        ``allowed_scope_ids`` given as a set is used as it is (no copy of 100,000 ids)."""
        if not chunk_ids or not allowed_scope_ids:
            return {}
        allowed = allowed_scope_ids if isinstance(allowed_scope_ids, (set, frozenset)) else set(allowed_scope_ids)
        out: dict[int, VisibleChunk] = {}
        with self._db.session() as s:
            rows = s.execute(
                select(
                    ChunkRow.id,
                    ChunkRow.version,
                    Document.id,
                    Document.current_version,
                    Document.status,
                    Document.scope_id,
                    Document.expires_at,
                    Document.source,
                    Document.title,
                    Document.uri,
                )
                .join(Document, Document.id == ChunkRow.document_id)
                .where(ChunkRow.id.in_(list(chunk_ids)))
            ).all()
        for cid, ver, doc_id, cur, status, scope_id, expires_at, source, title, uri in rows:
            if status != DocumentStatus.ACTIVE or ver != cur or scope_id is None or scope_id not in allowed:
                continue
            if expires_at is not None and expires_at <= now:
                continue
            out[cid] = VisibleChunk(cid, doc_id, ver, source, title, uri, expires_at, scope_id)
        return out

    @retry_read
    def live_chunks_by_scope(self, now: datetime) -> dict[int, int]:
        """Searchable chunks per scope id: current version of an active, unexpired document.
        What a search's filter excludes is the total minus the caller's scopes' share."""
        q = _searchable(select(Document.scope_id, func.count(ChunkRow.id)), now).group_by(Document.scope_id)
        with self._db.session() as s:
            return {int(scope): int(n) for scope, n in s.execute(q).all() if scope is not None}

    @retry_read
    def live_chunk_ids(self, scope_ids: Collection[int], now: datetime, limit: int) -> list[int] | None:
        """Ids of the searchable chunks (current version of an active, unexpired document)
        in these scopes, sorted; None when there are more than ``limit`` (the search's listed
        plan then searches by filter instead)."""
        scopes = sorted({int(x) for x in scope_ids})
        out: list[int] = []
        with self._db.session() as s:
            for i in range(0, len(scopes), PARAM_BATCH):
                q = (
                    _searchable(select(ChunkRow.id), now)
                    .where(Document.scope_id.in_(scopes[i : i + PARAM_BATCH]))
                    .limit(limit + 1 - len(out))
                )
                out += [int(x) for x in s.scalars(q)]
                if len(out) > limit:
                    return None
        return sorted(out)

    @retry_read
    def chunk_ids_of(self, document_ids: Sequence[str]) -> list[int]:
        """Every chunk id (all versions) of these documents."""
        out: list[int] = []
        ids = list(document_ids)
        with self._db.session() as s:
            for i in range(0, len(ids), PARAM_BATCH):
                out += [
                    int(x)
                    for x in s.scalars(select(ChunkRow.id).where(ChunkRow.document_id.in_(ids[i : i + PARAM_BATCH])))
                ]
        return out

    @retry_read
    def chunks_for_repair(self, chunk_ids: Sequence[int]) -> list[dict[str, Any]]:
        """Current chunks of active documents with what a vector row needs (doctor --repair)."""
        ids = list(chunk_ids)
        out: list[dict[str, Any]] = []
        with self._db.session() as s:
            for i in range(0, len(ids), PARAM_BATCH):
                rows = s.execute(
                    select(
                        ChunkRow.id,
                        ChunkRow.text,
                        ChunkRow.version,
                        Document.id,
                        Document.source,
                        Document.scope_id,
                        Document.classification,
                        Document.expires_at,
                        Document.title,
                        Document.uri,
                    )
                    .join(Document, Document.id == ChunkRow.document_id)
                    .where(
                        ChunkRow.id.in_(ids[i : i + PARAM_BATCH]),
                        Document.status == DocumentStatus.ACTIVE,
                        ChunkRow.version == Document.current_version,
                    )
                ).all()
                out += [
                    {
                        "id": r[0],
                        "text": r[1] or "",
                        "source_version": r[2],
                        "document_id": r[3],
                        "source": r[4],
                        "scope_id": r[5],
                        "classification": r[6],
                        "expires_at": r[7],
                        "title": r[8],
                        "uri": r[9],
                    }
                    for r in rows
                ]
        return out

    def chunk_states(self) -> dict[int, ChunkState]:
        """Every chunk row by id, with its document's state (streamed; one pass)."""
        out: dict[int, ChunkState] = {}
        with self._db.session() as s:
            rows = s.execute(
                select(
                    ChunkRow.id,
                    ChunkRow.document_id,
                    ChunkRow.version,
                    Version.state,
                    Document.status,
                    Document.current_version,
                    Document.scope_id,
                    Document.expires_at,
                )
                .join(Document, Document.id == ChunkRow.document_id)
                .join(Version, (Version.document_id == ChunkRow.document_id) & (Version.version == ChunkRow.version))
                .execution_options(yield_per=5000)
            )
            for cid, doc_id, ver, state, status, cur, scope_id, expires_at in rows:
                out[int(cid)] = ChunkState(
                    doc_id,
                    status == DocumentStatus.ACTIVE,
                    ver == cur and state == VersionState.CURRENT,
                    state == VersionState.PENDING,
                    scope_id,
                    expires_at,
                )
        return out


def _searchable(q: _Query, now: datetime) -> _Query:
    """``q`` over the searchable chunks: the current version of an active document not
    expired at ``now`` (what search may return; the per-scope counts and the listed plan's
    ids both count exactly these)."""
    return q.join_from(
        ChunkRow, Document, (ChunkRow.document_id == Document.id) & (ChunkRow.version == Document.current_version)
    ).where(Document.status == DocumentStatus.ACTIVE, or_(Document.expires_at.is_(None), Document.expires_at > now))
