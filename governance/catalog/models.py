"""The catalog schema (SQLAlchemy 2.x typed ORM). Migrations in ``migrations/`` mirror it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from governance.catalog.statuses import DocumentStatus, RunStatus, VersionState


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the catalog; use timezone-aware UTC")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON}


class Scope(Base):
    __tablename__ = "scopes"
    __table_args__ = (
        # A deny list is dropped when no scope carries it any more: found by this index.
        Index("ix_scopes_deny_list_id", "deny_list_id"),
        {"comment": "Access scopes: who may read the documents that carry one"},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(1024), unique=True, comment="Source-side name of the scope")
    fingerprint: Mapped[str] = mapped_column(String(64), comment="sha256 of the canonical layers")
    n_layers: Mapped[int] = mapped_column(Integer, comment="A reader must match every layer")
    description: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    source_as_of: Mapped[str | None] = mapped_column(
        String(64), comment="how new the export was that last stated this scope"
    )
    deny_list_id: Mapped[int | None] = mapped_column(
        ForeignKey("deny_lists.id"), comment="the shared deny list this scope carries (None: none)"
    )


class DenyList(Base):
    """A deny list stored once for every scope that carries it: a Slack workspace denies its
    deactivated accounts in every conversation, so thousands of scopes share one list."""

    __tablename__ = "deny_lists"
    # Ids are never reused (SQLite would reuse the largest after a delete): a search that
    # read a scope's list id must not find another list's principals under it.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True, comment="sha256 of the sorted principals")


class DenyListPrincipal(Base):
    __tablename__ = "deny_list_principals"
    __table_args__ = (Index("ix_deny_list_principals_principal", "principal", "list_id"),)

    list_id: Mapped[int] = mapped_column(ForeignKey("deny_lists.id", ondelete="CASCADE"), primary_key=True)
    principal: Mapped[str] = mapped_column(String(600), primary_key=True)


class ScopePrincipal(Base):
    __tablename__ = "scope_principals"
    __table_args__ = (Index("ix_scope_principals_principal", "principal", "scope_id", "layer"),)

    scope_id: Mapped[int] = mapped_column(ForeignKey("scopes.id", ondelete="CASCADE"), primary_key=True)
    layer: Mapped[int] = mapped_column(Integer, primary_key=True, comment="0.. the layers; -1 the deny list")
    principal: Mapped[str] = mapped_column(String(600), primary_key=True)


class Document(Base):
    __tablename__ = "documents"
    __table_args__ = (Index("ix_documents_source", "source"),)

    id: Mapped[str] = mapped_column(String(1024), primary_key=True, comment="source kind + native id")
    source: Mapped[str] = mapped_column(String(32))
    uri: Mapped[str] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text)
    path: Mapped[str | None] = mapped_column(Text)
    scope_id: Mapped[int | None] = mapped_column(ForeignKey("scopes.id"))
    classification: Mapped[str] = mapped_column(String(64), default="internal")
    author: Mapped[str | None] = mapped_column(String(600))
    modified_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    current_version: Mapped[int | None] = mapped_column(Integer, comment="Version visible in search")
    status: Mapped[str] = mapped_column(String(16), default=DocumentStatus.ACTIVE, comment="active|tombstoned|purged")
    status_reason: Mapped[str | None] = mapped_column(Text, comment="why tombstoned or purged")
    origin: Mapped[str | None] = mapped_column(
        String(1024), index=True, comment="the export / drop folder it came from"
    )
    source_as_of: Mapped[str | None] = mapped_column(
        String(64), comment="how new the export was that last stated this document"
    )
    ancestry: Mapped[str | None] = mapped_column(
        Text, comment="ids of the pages above it at the source, root first (Confluence)"
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Version(Base):
    __tablename__ = "versions"
    __table_args__ = (UniqueConstraint("document_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64), comment="sha256 of the cleaned text")
    source_hash: Mapped[str | None] = mapped_column(String(64), comment="sha256 of the raw input and parser version")
    cleaned_text: Mapped[str | None] = mapped_column(Text, comment="None once purged")
    blocks: Mapped[list[dict[str, Any]] | None] = mapped_column(
        JSON, comment='[{"author": principal|null, "text": ...}]: lets a subject be removed and the rest re-indexed'
    )
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(16), default=VersionState.PENDING, comment="pending|current|superseded")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DocumentContributor(Base):
    """Who wrote part of a document (Slack thread participants, page authors)."""

    __tablename__ = "document_contributors"
    __table_args__ = (Index("ix_document_contributors_principal", "principal"),)

    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), primary_key=True)
    principal: Mapped[str] = mapped_column(String(600), primary_key=True)


class Hold(Base):
    """Legal hold on a document, a source or a subject: never purged while held."""

    __tablename__ = "holds"
    __table_args__ = (UniqueConstraint("kind", "value"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16), comment="document|source|subject")
    value: Mapped[str] = mapped_column(String(1024))
    reason: Mapped[str] = mapped_column(Text, default="")
    actor: Mapped[str | None] = mapped_column(String(600))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ForgottenSubject(Base):
    """A person erased under the right to be forgotten: their content is dropped on every
    later ingest too."""

    __tablename__ = "forgotten_subjects"

    principal: Mapped[str] = mapped_column(String(600), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ChunkRow(Base):
    __tablename__ = "chunks"
    __table_args__ = (Index("ix_chunks_document_version", "document_id", "version"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False, comment="Milvus primary key")
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    ordinal: Mapped[int] = mapped_column(Integer)
    text: Mapped[str | None] = mapped_column(Text)


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = {"comment": "Append-only, hash-chained"}

    # 64-bit on PostgreSQL: one event per search overflows 32 bits in ~250 days at 100/s.
    # SQLite keeps INTEGER, its 64-bit rowid alias (a BIGINT key would not autoincrement).
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    ts: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str | None] = mapped_column(String(600))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """One row; writers update it first so that appends to the chain are serialised."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    last_hash: Mapped[str] = mapped_column(String(64))


class AclGeneration(Base):
    """One row, bumped in the same transaction as every scope change, so a process that
    cached a user's allowed scopes knows (one primary-key read) whether they still hold."""

    __tablename__ = "acl_generation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation: Mapped[int] = mapped_column(BigInteger, default=0)


class Quarantine(Base):
    __tablename__ = "quarantine"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int | None] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(32))
    path: Mapped[str] = mapped_column(Text)
    document_id: Mapped[str | None] = mapped_column(String(1024))
    reason: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16), default=RunStatus.RUNNING)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
