"""Catalog operations. Every SQL statement govrag runs lives here or in ``governance.audit``.

Principals are only ever bound as parameters; nothing from a user reaches SQL text.
"""

from __future__ import annotations

import functools
import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from sqlalchemy import Engine, case, create_engine, delete, event, func, insert, or_, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from governance.catalog.migrate import upgrade_to_head
from governance.catalog.models import (
    AclGeneration,
    ChunkRow,
    Document,
    DocumentContributor,
    ForgottenSubject,
    Hold,
    Quarantine,
    Run,
    Scope,
    ScopePrincipal,
    Version,
    utcnow,
)
from governance.contracts import AccessScope, SourceDocument
from governance.errors import CatalogError, HoldRefused
from governance.tenancy import tenant_schema, without_schema

log = logging.getLogger(__name__)

# A read whose connection died under it (PostgreSQL restarted, the backend terminated, a
# network cut) is run again on a fresh connection after these pauses; reads are safe to
# repeat. Writes are not repeated: the caller's next run redoes them (see docs/faults.md).
READ_RETRY_DELAYS_S = (0.1, 0.5)

# SQLite caps bound parameters (32766 on current builds); stay well below.
PARAM_BATCH = 900
# Principals bound into one scope-resolution statement (SQLite >= 3.32 allows 32,766
# parameters, PostgreSQL 65,535); a user with more is resolved in parts.
PRINCIPALS_PER_QUERY = 20_000


DENY_LAYER = -1  # scope_principals.layer of a scope's deny list


def _match_holds(holds: Sequence[Hold], info: dict[str, dict[str, Any]], ids: Sequence[str]) -> dict[str, str]:
    """Document id -> the first hold that covers it (by id, source or origin, author or contributor)."""
    out: dict[str, str] = {}
    for doc_id in ids:
        d = info.get(doc_id, {})
        for h in holds:
            k, v = h.kind, h.value
            if ((k == "document" and v == doc_id)
                    or (k == "source" and v in (d.get("source"), d.get("origin")))
                    or (k == "subject" and (v == d.get("author") or v in d.get("contributors", [])))):
                out[doc_id] = f"{k}:{v}"
                break
    return out


def is_older(as_of: str | None, than: str | None) -> bool:
    """True when a statement stamped ``as_of`` is older than one stamped ``than``; unknown
    times never count as older (a source without timestamps still applies)."""
    return as_of is not None and than is not None and as_of < than


def _scope_from_rows(key: str, rows: Iterable[tuple[int, str]], description: str = "",
                     n_layers: int | None = None) -> AccessScope:
    """An AccessScope from its scope_principals rows (layer, principal)."""
    layers: dict[int, set[str]] = {i: set() for i in range(n_layers or 0)}
    deny: set[str] = set()
    for layer, p in rows:
        (deny if layer == DENY_LAYER else layers.setdefault(layer, set())).add(p)
    return AccessScope(key=key, layers=[layers[k] for k in sorted(layers)] or [[]], deny=deny,
                       description=description or "")


@dataclass(frozen=True)
class DocumentState:
    """What the catalog knows about a document before an ingest decides what to do."""

    document_id: str
    status: str
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


def describe_db_error(exc: BaseException) -> str:
    """One line for a database error: the driver's message without the SQL text, the bound
    parameters (principals, document ids) or SQLAlchemy's background link."""
    orig = getattr(exc, "orig", None)
    if orig is not None:
        detail = f"{type(exc).__name__} ({type(orig).__name__}): {orig}"
    else:
        detail = f"{type(exc).__name__}: {exc.args[0] if exc.args else exc}"
    detail = str(detail).split("\n[SQL:", 1)[0].split("(Background on this error", 1)[0]
    return " ".join(detail.split())[:400]


def _disconnected(exc: BaseException) -> bool:
    """True when ``exc`` (a CatalogError) was caused by a lost database connection."""
    cause = exc.__cause__
    return isinstance(cause, DBAPIError) and bool(cause.connection_invalidated)


def _read(method: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a read-only catalog method: retried on a fresh connection when its connection
    was lost mid-query (``READ_RETRY_DELAYS_S``)."""

    @functools.wraps(method)
    def wrapper(self: "Catalog", *args: Any, **kwargs: Any) -> Any:
        for delay in (*READ_RETRY_DELAYS_S, None):
            try:
                return method(self, *args, **kwargs)
            except CatalogError as exc:
                if delay is None or not _disconnected(exc):
                    raise
                log.info("catalog connection lost during %s; trying again", method.__name__)
                time.sleep(delay)
        raise AssertionError("unreachable")

    return wrapper


def _engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # NullPool + WAL: several processes (ingest, search, Dagster runs) share the file.
        engine = create_engine(url, poolclass=NullPool, connect_args={"timeout": 60})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _rec: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA secure_delete=ON")  # deleted text is zeroed, not left in free pages
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def _ensure_schema(url: str, schema: str) -> None:
    """Make a tenant's PostgreSQL schema (its name is ``govrag_`` + a checked slug)."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    finally:
        engine.dispose()


def catalog_exists(url: str) -> bool:
    """Whether a catalog was ever made at ``url`` (a file, or a tenant's schema), without
    making one: a search by a tenant nobody ingested for must not create its catalog."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return bool(parsed.database) and (parsed.database == ":memory:" or Path(parsed.database).is_file())
    schema = tenant_schema(url)
    if schema is None:
        return True
    engine = create_engine(without_schema(url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            found = conn.execute(text("SELECT 1 FROM information_schema.schemata WHERE schema_name = :s"),
                                 {"s": schema}).first()
    except SQLAlchemyError as exc:
        raise CatalogError(f"cannot reach the catalog at {parsed.render_as_string(hide_password=True)}: "
                           f"{describe_db_error(exc)}", hint="check GOVRAG_DATABASE_URL") from exc
    finally:
        engine.dispose()
    return found is not None


class Catalog:
    """Entry point to the SQL catalog (SQLite or PostgreSQL)."""

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = url
        try:
            schema = tenant_schema(url)
            if schema and migrate:
                _ensure_schema(without_schema(url), schema)
            self.engine = _engine(url)
            if migrate:
                upgrade_to_head(self.engine)
        except SQLAlchemyError as exc:
            raise CatalogError(f"cannot open the catalog at {self.safe_url}: {describe_db_error(exc)}",
                               hint="check GOVRAG_DATABASE_URL and that the database is running") from exc
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def safe_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True) if hasattr(self, "engine") else "?"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed on success, rolled back on error."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except SQLAlchemyError as exc:
            try:
                session.rollback()
            except SQLAlchemyError:  # the connection is gone: nothing to roll back on it
                log.debug("rollback after a catalog error failed", exc_info=True)
            raise CatalogError(f"catalog operation failed at {self.safe_url}: {describe_db_error(exc)}",
                               hint="check that the database is running and reachable (GOVRAG_DATABASE_URL); the "
                                    "transaction was rolled back, so running the command again is safe") from exc
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()

    # -- scopes ---------------------------------------------------------------------------
    def upsert_scope(self, scope: AccessScope, *, actor: str | None = None,
                     as_of: str | None = None) -> tuple[int, bool]:
        """Store a scope by key; returns (scope id, whether it is new or its layers changed).
        A change to an existing scope is an ACL change and lands in the audit log.

        ``as_of`` is how new the source's statement is (``ingest.sources.base.as_of_stamp``):
        a statement older than the one the scope row already holds changes nothing, so an
        older export never overrides a newer one, whatever order they are applied in."""
        fp = scope.fingerprint()
        scope_id, changed, existed = self._upsert_scope(scope, fp, as_of)
        if changed and existed:
            from governance import audit  # audit builds on this module

            audit.record(self, "acl_change", actor, {"scope_id": scope_id, "scope": scope.key, "fingerprint": fp,
                                                     "layers": [len(layer) for layer in scope.layers],
                                                     "deny": len(scope.deny), "as_of": as_of})
        return scope_id, changed

    def _upsert_scope(self, scope: AccessScope, fp: str, as_of: str | None) -> tuple[int, bool, bool]:
        for attempt in range(2):
            try:
                with self.session() as s:
                    row = s.scalar(select(Scope).where(Scope.key == scope.key))
                    if row is not None and is_older(as_of, row.source_as_of):
                        return row.id, False, True  # a newer export already spoke for this scope
                    if row is not None and row.fingerprint == fp:
                        if as_of is not None and row.source_as_of != as_of:
                            row.source_as_of = as_of
                        return row.id, False, True
                    existed = row is not None
                    if row is None:
                        row = Scope(key=scope.key, fingerprint=fp, n_layers=len(scope.layers), description=scope.description,
                                    source_as_of=as_of)
                        s.add(row)
                        s.flush()
                    else:
                        s.query(ScopePrincipal).filter(ScopePrincipal.scope_id == row.id).delete()
                        row.fingerprint, row.n_layers, row.updated_at = fp, len(scope.layers), utcnow()
                        row.description = scope.description
                        if as_of is not None:
                            row.source_as_of = as_of
                    # Core executemany, not ORM objects: a workspace-wide layer can hold tens of
                    # thousands of principals (~10x faster on SQLite).
                    members = [{"scope_id": row.id, "layer": i, "principal": p}
                               for i, layer in enumerate(scope.layers) for p in sorted(layer)]
                    members += [{"scope_id": row.id, "layer": DENY_LAYER, "principal": p} for p in sorted(scope.deny)]
                    if members:
                        s.execute(insert(ScopePrincipal), members)
                    s.execute(update(AclGeneration).where(AclGeneration.id == 1)
                              .values(generation=AclGeneration.generation + 1))
                    return row.id, True, existed
            except CatalogError as exc:
                # Two processes inserting the same new scope: the loser reads the winner's row.
                if attempt == 0 and isinstance(exc.__cause__, IntegrityError):
                    continue
                raise
        raise AssertionError("unreachable")

    def scopes_with_prefix(self, prefix: str) -> list[tuple[AccessScope, str | None]]:
        """Every stored scope whose key starts with ``prefix`` (``%`` and ``_`` in it are
        literal), rebuilt with its layers and deny list, and the ``source_as_of`` of the
        export that last stated it: the rows an export's permission state re-bases."""
        stamps = self.scope_stamps(prefix)
        return [(scope, stamps[scope.key][1]) for scope in self.scopes_by_keys(sorted(stamps))]

    @_read
    def active_documents_on_scopes(self, keys: Sequence[str], derived_sep: str = "|policy:") -> list[tuple[str, str]]:
        """(document id, scope key) of active documents whose scope is one of ``keys`` or a
        narrowed variant of one (``<key><derived_sep>…``)."""
        if not keys:
            return []
        conds = [Scope.key.in_(list(keys)), *[Scope.key.startswith(k + derived_sep, autoescape=True) for k in keys]]
        with self.session() as s:
            return [(d, k) for d, k in s.execute(select(Document.id, Scope.key).join(Scope, Scope.id == Document.scope_id)
                                                 .where(Document.status == "active", or_(*conds)))]

    @_read
    def scopes_by_keys(self, keys: Sequence[str]) -> list[AccessScope]:
        """The stored scopes with these keys, with their layers and deny lists."""
        keys = list(keys)
        out: list[AccessScope] = []
        with self.session() as s:
            for i in range(0, len(keys), PARAM_BATCH):
                part = keys[i : i + PARAM_BATCH]
                rows = s.execute(select(Scope.id, Scope.key, Scope.description, Scope.n_layers)
                                 .where(Scope.key.in_(part))).all()
                members: dict[int, list[tuple[int, str]]] = {}
                for sid, layer, p in s.execute(select(ScopePrincipal.scope_id, ScopePrincipal.layer, ScopePrincipal.principal)
                                               .where(ScopePrincipal.scope_id.in_([r[0] for r in rows]))):
                    members.setdefault(sid, []).append((layer, p))
                out += [_scope_from_rows(key, members.get(sid, []), desc, n) for sid, key, desc, n in rows]
        return out

    @_read
    def scope_by_id(self, scope_id: int) -> AccessScope | None:
        """A stored scope with its layers and deny list."""
        with self.session() as s:
            row = s.get(Scope, scope_id)
            if row is None:
                return None
            members = s.execute(select(ScopePrincipal.layer, ScopePrincipal.principal)
                                .where(ScopePrincipal.scope_id == scope_id)).all()
            return _scope_from_rows(row.key, members, row.description, row.n_layers)

    @_read
    def readable_documents(self, scope_ids: Sequence[int], *, now: datetime, limit: int,
                           document_id: str | None = None) -> list[dict[str, Any]]:
        """Documents search can show in these scopes: active, with a current version, not
        expired (the post-check's conditions), by id, at most ``limit``."""
        ids = sorted({int(x) for x in scope_ids})
        out: list[dict[str, Any]] = []
        with self.session() as s:
            for i in range(0, len(ids), PARAM_BATCH):
                q = (select(Document.id, Document.title, Document.source, Document.scope_id, Document.expires_at)
                     .where(Document.scope_id.in_(ids[i : i + PARAM_BATCH]), Document.status == "active",
                            Document.current_version.is_not(None),
                            or_(Document.expires_at.is_(None), Document.expires_at > now)))
                if document_id is not None:
                    q = q.where(Document.id == document_id)
                out += [{"document_id": d, "title": t, "source": src, "scope_id": sid, "expires_at": exp}
                        for d, t, src, sid, exp in s.execute(q.order_by(Document.id).limit(limit + 1))]
        return sorted(out, key=lambda r: r["document_id"])[: limit + 1]

    @_read
    def document_row(self, document_id: str) -> dict[str, Any] | None:
        """What the catalog holds about one document (status, scope, expiry, version)."""
        with self.session() as s:
            d = s.get(Document, document_id)
            if d is None:
                return None
            return {"document_id": d.id, "title": d.title, "source": d.source, "status": d.status,
                    "status_reason": d.status_reason, "scope_id": d.scope_id, "expires_at": d.expires_at,
                    "current_version": d.current_version}

    @_read
    def scope_as_of(self, key: str) -> str | None:
        """The ``source_as_of`` of the scope row ``key`` (None: no row, or no time)."""
        with self.session() as s:
            return s.scalar(select(Scope.source_as_of).where(Scope.key == key))

    @_read
    def scope_stamps(self, prefix: str) -> dict[str, tuple[str, str | None]]:
        """``{key: (fingerprint, source_as_of)}`` of the stored scopes under ``prefix``: enough
        to tell which stated scopes changed without reading their members."""
        with self.session() as s:
            return {k: (fp, as_of) for k, fp, as_of in s.execute(
                select(Scope.key, Scope.fingerprint, Scope.source_as_of).where(Scope.key.startswith(prefix, autoescape=True)))}

    def stamp_scopes(self, keys: Sequence[str], as_of: str | None) -> None:
        """Record that an export stamped ``as_of`` stated these scopes unchanged (so an older
        export applied later cannot override them)."""
        if as_of is None:
            return
        keys = list(keys)
        with self.session() as s:
            for i in range(0, len(keys), PARAM_BATCH):
                s.execute(update(Scope).where(Scope.key.in_(keys[i : i + PARAM_BATCH]),
                                              or_(Scope.source_as_of.is_(None), Scope.source_as_of < as_of))
                          .values(source_as_of=as_of))

    @_read
    def acl_generation(self) -> int:
        """Bumped in the transaction of every scope change (see :class:`ScopeResolver`)."""
        with self.session() as s:
            return int(s.scalar(select(AclGeneration.generation).where(AclGeneration.id == 1)) or 0)

    @_read
    def allowed_scope_ids(self, principals: Iterable[str], among: Iterable[int] | None = None) -> list[int]:
        """Scopes in which the principals match at least one member of every layer.

        One query: the database counts, per scope, the distinct layers the principals hit and
        keeps the scopes where that equals ``n_layers``. (Grouping in Python instead cost
        ~0.5 s for a user in a group that sits in a layer of 10k scopes.)"""
        principals = sorted(set(principals))
        only = None if among is None else sorted({int(x) for x in among})
        if not principals or only == []:
            return []
        if len(principals) > PRINCIPALS_PER_QUERY or (only is not None and len(only) > PARAM_BATCH):
            got = self._allowed_scope_ids_in_parts(principals)
            return got if only is None else sorted(set(got) & set(only))
        # Layers hit (the deny "layer" -1 does not count) must equal n_layers, and no
        # principal of the caller may sit in the deny list.
        hit_layers = func.count(case((ScopePrincipal.layer >= 0, ScopePrincipal.layer)).distinct())
        denied = func.sum(case((ScopePrincipal.layer == DENY_LAYER, 1), else_=0))
        q = (select(ScopePrincipal.scope_id)
             .join(Scope, Scope.id == ScopePrincipal.scope_id)
             .where(ScopePrincipal.principal.in_(principals), Scope.n_layers > 0)  # no layers = nobody's
             .group_by(ScopePrincipal.scope_id, Scope.n_layers)
             .having(hit_layers == Scope.n_layers, denied == 0))
        if only is not None:  # the post-check: just these scopes, straight from the tables
            q = q.where(ScopePrincipal.scope_id.in_(only))
        with self.session() as s:
            return sorted(int(sid) for sid in s.scalars(q))

    def _allowed_scope_ids_in_parts(self, principals: list[str]) -> list[int]:
        """The same answer for principal sets too big for one statement's parameters: the
        layers hit are collected part by part and compared in Python."""
        matched: dict[int, set[int]] = {}
        with self.session() as s:
            for i in range(0, len(principals), PARAM_BATCH):
                for scope_id, layer in s.execute(
                        select(ScopePrincipal.scope_id, ScopePrincipal.layer)
                        .where(ScopePrincipal.principal.in_(principals[i : i + PARAM_BATCH])).distinct()):
                    matched.setdefault(scope_id, set()).add(layer)
            n_layers: dict[int, int] = {}
            ids = sorted(matched)
            for i in range(0, len(ids), PARAM_BATCH):
                n_layers.update(s.execute(select(Scope.id, Scope.n_layers).where(Scope.id.in_(ids[i : i + PARAM_BATCH]))).all())
        return sorted(sid for sid, layers in matched.items()
                      if DENY_LAYER not in layers and n_layers.get(sid, 0) > 0 and len(layers) == n_layers[sid])

    @_read
    def scope_count(self) -> int:
        with self.session() as s:
            return int(s.scalar(select(func.count()).select_from(Scope)) or 0)

    # -- documents and versions -----------------------------------------------------------
    @_read
    def document_state(self, document_id: str) -> DocumentState | None:
        with self.session() as s:
            doc = s.get(Document, document_id)
            if doc is None:
                return None
            versions = s.execute(
                select(Version.version, Version.content_hash, Version.state, Version.source_hash, Version.created_at)
                .where(Version.document_id == document_id)
            ).all()
        current = next((row for row in versions if row[0] == doc.current_version), None)
        pending = {h: v for v, h, st, _, _ in versions if st == "pending"}
        return DocumentState(
            document_id=doc.id, status=doc.status, current_version=doc.current_version,
            current_hash=current[1] if current else None,
            current_source_hash=current[3] if current else None,
            current_created_at=current[4] if current else None,
            scope_id=doc.scope_id, expires_at=doc.expires_at,
            classification=doc.classification, pending=pending, source_as_of=doc.source_as_of, origin=doc.origin,
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
        with self.session() as s:
            row = s.get(Document, doc.document_id)
            if row is None:
                row = Document(id=doc.document_id, source=doc.source, uri=doc.uri, title=doc.title,
                               path=doc.path, scope_id=scope_id, classification=doc.classification,
                               author=doc.author, modified_at=doc.modified_at, expires_at=expires_at,
                               current_version=None, status="active")
                s.add(row)
                s.flush()
            if version is None:
                latest = s.scalar(select(func.max(Version.version)).where(Version.document_id == doc.document_id))
                version = (latest or 0) + 1
                s.add(Version(document_id=doc.document_id, version=version, content_hash=content_hash,
                              source_hash=source_hash, cleaned_text=cleaned_text, chunk_count=len(texts), state="pending",
                              created_at=ingested_at))
            else:
                # Resuming a crashed run: the version counts as ingested now, like its expiry.
                s.execute(update(Version).where(Version.document_id == doc.document_id, Version.version == version)
                          .values(created_at=ingested_at, source_hash=source_hash))
            chunks = [(make_id(doc.document_id, version, i), text) for i, text in enumerate(texts)]
            s.query(ChunkRow).filter(ChunkRow.document_id == doc.document_id, ChunkRow.version == version).delete()
            s.add_all(ChunkRow(id=cid, document_id=doc.document_id, version=version, ordinal=i, text=text)
                      for i, (cid, text) in enumerate(chunks))
            return version, chunks

    def publish_version(
        self, doc: SourceDocument, version: int, *, scope_id: int, expires_at: datetime | None
    ) -> list[int]:
        """Make ``version`` the one search shows; returns chunk ids of the versions it replaced
        (their vectors must be deleted next, then :meth:`forget_chunks` called). Their chunk
        rows stay until then, so a run that dies in between (Milvus down, kill -9) leaves the
        catalog knowing which vectors are owed a delete (:meth:`superseded_chunk_ids`)."""
        with self.session() as s:
            row = s.get(Document, doc.document_id, with_for_update=True)
            if row is None:
                raise CatalogError(f"document {doc.document_id!r} vanished while publishing version {version}")
            s.execute(update(Version).where(Version.document_id == doc.document_id, Version.state == "current")
                      .values(state="superseded"))
            s.execute(update(Version).where(Version.document_id == doc.document_id, Version.version == version)
                      .values(state="current"))
            row.current_version, row.status = version, "active"
            row.scope_id, row.expires_at = scope_id, expires_at
            row.uri, row.title, row.path = doc.uri, doc.title, doc.path
            row.classification, row.author, row.modified_at = doc.classification, doc.author, doc.modified_at
            row.updated_at = utcnow()
            # Everything but the new version is superseded: the previous current one and any
            # version a crashed run staged but never published. Their text stays in
            # versions.cleaned_text (version history); their vectors must go next.
            s.execute(update(Version).where(Version.document_id == doc.document_id, Version.state == "pending",
                                            Version.version != version).values(state="superseded"))
            return list(s.scalars(select(ChunkRow.id).where(ChunkRow.document_id == doc.document_id,
                                                            ChunkRow.version != version)))

    @_read
    def superseded_chunk_ids(self) -> list[int]:
        """Chunks of superseded versions whose vectors are not known to be deleted yet (a run
        stopped between publishing a version and deleting the old one's vectors)."""
        with self.session() as s:
            return [int(x) for x in s.scalars(
                select(ChunkRow.id).join(Version, (Version.document_id == ChunkRow.document_id)
                                         & (Version.version == ChunkRow.version))
                .where(Version.state == "superseded"))]

    def forget_chunks(self, chunk_ids: Sequence[int]) -> None:
        """Drop the rows of superseded chunks once their vectors are deleted (rows of a
        current or pending version are never dropped here)."""
        ids = list(chunk_ids)
        with self.session() as s:
            for i in range(0, len(ids), PARAM_BATCH):
                superseded = (select(ChunkRow.id)
                              .join(Version, (Version.document_id == ChunkRow.document_id)
                                    & (Version.version == ChunkRow.version))
                              .where(ChunkRow.id.in_(ids[i : i + PARAM_BATCH]), Version.state == "superseded"))
                s.execute(delete(ChunkRow).where(ChunkRow.id.in_(superseded)))

    def update_document_access(
        self, document_id: str, *, scope_id: int, expires_at: datetime | None, classification: str
    ) -> list[int]:
        """Change scope/expiry of an unchanged document; returns its current chunk ids."""
        with self.session() as s:
            row = s.get(Document, document_id)
            if row is None:
                return []
            row.scope_id, row.expires_at, row.classification, row.updated_at = scope_id, expires_at, classification, utcnow()
            return list(s.scalars(select(ChunkRow.id).where(ChunkRow.document_id == document_id, ChunkRow.version == row.current_version)))

    @_read
    def visible_chunks(
        self, chunk_ids: Sequence[int], *, allowed_scope_ids: Sequence[int], now: datetime
    ) -> dict[int, VisibleChunk]:
        """The post-check: of these chunk ids, those whose document is active, whose version
        is current, whose scope is allowed and which have not expired, per the catalog."""
        if not chunk_ids or not allowed_scope_ids:
            return {}
        allowed = set(allowed_scope_ids)
        out: dict[int, VisibleChunk] = {}
        with self.session() as s:
            rows = s.execute(
                select(ChunkRow.id, ChunkRow.version, Document.id, Document.current_version, Document.status,
                       Document.scope_id, Document.expires_at, Document.source, Document.title, Document.uri)
                .join(Document, Document.id == ChunkRow.document_id)
                .where(ChunkRow.id.in_(list(chunk_ids)))
            ).all()
        for cid, ver, doc_id, cur, status, scope_id, expires_at, source, title, uri in rows:
            if status != "active" or ver != cur or scope_id not in allowed:
                continue
            if expires_at is not None and expires_at <= now:
                continue
            out[cid] = VisibleChunk(cid, doc_id, ver, source, title, uri, expires_at, scope_id)
        return out

    @_read
    def live_chunks_by_scope(self, now: datetime) -> dict[int, int]:
        """Searchable chunks per scope id: current version of an active, unexpired document.
        What a search's filter excludes is the total minus the caller's scopes' share."""
        q = (select(Document.scope_id, func.count(ChunkRow.id))
             .join(ChunkRow, (ChunkRow.document_id == Document.id) & (ChunkRow.version == Document.current_version))
             .where(Document.status == "active", or_(Document.expires_at.is_(None), Document.expires_at > now))
             .group_by(Document.scope_id))
        with self.session() as s:
            return {int(scope): int(n) for scope, n in s.execute(q).all() if scope is not None}

    # -- quarantine and runs --------------------------------------------------------------
    def quarantine(self, *, run_id: int | None, source: str, path: str, document_id: str | None, reason: str, message: str) -> None:
        with self.session() as s:
            s.add(Quarantine(run_id=run_id, source=source, path=path, document_id=document_id, reason=reason, message=message))

    def start_run(self, kind: str) -> int:
        with self.session() as s:
            run = Run(kind=kind)
            s.add(run)
            s.flush()
            return run.id

    def finish_run(self, run_id: int, status: str, summary: dict[str, Any]) -> None:
        with self.session() as s:
            run = s.get(Run, run_id)
            if run is not None:
                run.status, run.summary, run.finished_at = status, summary, utcnow()

    @_read
    def status_counts(self) -> dict[str, Any]:
        with self.session() as s:
            docs = dict(s.execute(select(Document.status, func.count()).group_by(Document.status)).all())
            by_source = dict(s.execute(select(Document.source, func.count()).where(Document.status == "active").group_by(Document.source)).all())
            chunks = s.scalar(select(func.count()).select_from(ChunkRow).join(Document, Document.id == ChunkRow.document_id)
                              .where(ChunkRow.version == Document.current_version)) or 0
            quarantined = s.scalar(select(func.count()).select_from(Quarantine)) or 0
            scopes = s.scalar(select(func.count()).select_from(Scope)) or 0
            no_expiry = s.scalar(select(func.count()).select_from(Document)
                                 .where(Document.status == "active", Document.expires_at.is_(None))) or 0
            files = s.scalar(select(func.count(func.distinct(Quarantine.path)))) or 0
            last = s.scalar(select(Run).order_by(Run.id.desc()).limit(1))
        return {
            "documents": docs, "documents_by_source": by_source, "chunks": int(chunks),
            "documents_without_expiry": int(no_expiry),
            "scopes": int(scopes), "quarantined": int(quarantined), "quarantined_files": int(files),
            "last_run": None if last is None else {"id": last.id, "kind": last.kind, "status": last.status,
                                                   "started_at": last.started_at.isoformat(), "summary": last.summary},
        }

    def gauges(self) -> dict[str, Any]:
        """What `govrag metrics serve` exports: quarantine counts by reason and, per run
        kind, the last run's status, start and end (batch jobs end before any scrape)."""
        with self.session() as s:
            quarantine = dict(s.execute(select(Quarantine.reason, func.count()).group_by(Quarantine.reason)).all())
            latest = select(Run.kind, func.max(Run.id).label("id")).group_by(Run.kind).subquery()
            runs = s.execute(select(Run.kind, Run.status, Run.started_at, Run.finished_at)
                             .join(latest, Run.id == latest.c.id)).all()
        return {"quarantine_by_reason": {str(k): int(v) for k, v in quarantine.items()},
                "last_runs": {kind: {"status": status, "started_at": started, "finished_at": finished}
                              for kind, status, started, finished in runs}}

    def drop_quarantine_before(self, cutoff: datetime) -> int:
        """Delete quarantine records made before ``cutoff``; returns how many."""
        with self.session() as s:
            return int(s.execute(delete(Quarantine).where(Quarantine.created_at < cutoff)).rowcount or 0)

    def quarantined_files(self, limit: int = 100) -> list[dict[str, Any]]:
        """Each quarantined file once, with its latest reason and how often it was refused,
        most recent first."""
        with self.session() as s:
            latest = (select(Quarantine.path, func.max(Quarantine.id).label("id"), func.count().label("times"))
                      .group_by(Quarantine.path).subquery())
            rows = s.execute(select(Quarantine, latest.c.times).join(latest, Quarantine.id == latest.c.id)
                             .order_by(Quarantine.id.desc()).limit(limit)).all()
            return [{"path": r.path, "source": r.source, "reason": r.reason, "message": r.message, "times": int(times),
                     "run_id": r.run_id, "at": r.created_at.isoformat()} for r, times in rows]

    def quarantined(self, limit: int = 100) -> list[dict[str, Any]]:
        with self.session() as s:
            rows = s.scalars(select(Quarantine).order_by(Quarantine.id.desc()).limit(limit)).all()
            return [{"path": r.path, "source": r.source, "reason": r.reason, "message": r.message,
                     "run_id": r.run_id, "at": r.created_at.isoformat()} for r in rows]

    # -- lifecycle: origins, contributors, tombstones, purge ------------------------------
    def set_document_extras(self, document_id: str, *, origin: str | None, contributors: Iterable[str],
                            version: int, blocks: list[dict[str, Any]] | None, source_as_of: str | None = None,
                            ancestry: Sequence[str] | None = None) -> None:
        """Record where a document came from, who contributed to it, and its authored blocks."""
        with self.session() as s:
            doc = s.get(Document, document_id)
            if doc is None:
                return
            doc.origin = origin
            if source_as_of is not None:
                doc.source_as_of = source_as_of
            if ancestry is not None:
                doc.ancestry = "/".join(ancestry)
            s.execute(delete(DocumentContributor).where(DocumentContributor.document_id == document_id))
            s.add_all(DocumentContributor(document_id=document_id, principal=p) for p in sorted(set(contributors)))
            s.execute(update(Version).where(Version.document_id == document_id, Version.version == version)
                      .values(blocks=blocks))

    def note_source(self, document_id: str, *, origin: str | None, source_as_of: str | None,
                    ancestry: Sequence[str] | None = None) -> None:
        """An unchanged document seen again: remember the export that stated it last (its
        source identity for ``--prune``, how new that export was, the pages above it)."""
        with self.session() as s:
            doc = s.get(Document, document_id)
            if doc is None:
                return
            if ancestry is not None:
                doc.ancestry = "/".join(ancestry)
            if origin is not None and doc.origin != origin:
                doc.origin = origin
            if source_as_of is not None and not is_older(source_as_of, doc.source_as_of):
                doc.source_as_of = source_as_of

    @_read
    def documents_below(self, id_prefix: str, page_ids: Iterable[str]) -> list[tuple[str, list[str], str]]:
        """(document id, ancestry, scope key) of active documents under ``id_prefix`` whose
        recorded ancestry holds one of ``page_ids``."""
        wanted = set(page_ids)
        with self.session() as s:
            rows = s.execute(select(Document.id, Document.ancestry, Scope.key).join(Scope, Scope.id == Document.scope_id)
                             .where(Document.status == "active", Document.ancestry.is_not(None),
                                    Document.id.startswith(id_prefix, autoescape=True))).all()
        out = []
        for doc_id, ancestry, key in rows:
            chain = [a for a in ancestry.split("/") if a]
            if wanted.intersection(chain):
                out.append((doc_id, chain, key))
        return out

    @_read
    def active_ids_by_origin(self, origin: str, *, not_newer_than: str | None = None) -> list[str]:
        """Active documents of one source identity. ``not_newer_than``: leave out documents a
        newer export stated (an older full export must not prune what came later)."""
        with self.session() as s:
            rows = s.execute(select(Document.id, Document.source_as_of)
                             .where(Document.origin == origin, Document.status == "active")).all()
        return [doc_id for doc_id, as_of in rows if not is_older(not_newer_than, as_of)]

    @_read
    def chunk_ids_of(self, document_ids: Sequence[str]) -> list[int]:
        """Every chunk id (all versions) of these documents."""
        out: list[int] = []
        ids = list(document_ids)
        with self.session() as s:
            for i in range(0, len(ids), PARAM_BATCH):
                out += [int(x) for x in s.scalars(select(ChunkRow.id).where(ChunkRow.document_id.in_(ids[i : i + PARAM_BATCH])))]
        return out

    def retire_documents(self, document_ids: Sequence[str], *, status: str, reason: str,
                         drop_content: bool) -> list[str]:
        """Mark documents ``tombstoned`` or ``purged``. Purge also drops every version's text
        and blocks and all chunk rows, keeping a tombstone: id, content hashes, when, why.
        Returns the ids changed (already retired ones are skipped: idempotent)."""
        assert status in ("tombstoned", "purged")
        ids = list(document_ids)
        changed: list[str] = []
        with self.session() as s:
            for i in range(0, len(ids), PARAM_BATCH):
                part = ids[i : i + PARAM_BATCH]
                skip = ("purged", "purging") if status == "tombstoned" else ("purged",)  # a purge in progress wins
                todo = list(s.scalars(select(Document.id).where(Document.id.in_(part), Document.status != status,
                                                                Document.status.not_in(skip))))
                if not todo:
                    continue
                s.execute(delete(ChunkRow).where(ChunkRow.document_id.in_(todo)))
                if drop_content:
                    s.execute(update(Version).where(Version.document_id.in_(todo)).values(cleaned_text=None, blocks=None))
                    # The tombstone keeps the id, the content hashes, when and why: no title (a
                    # Slack thread's title quotes its root message), link, path, author or
                    # contributor is left to name a person or repeat the text.
                    s.execute(delete(DocumentContributor).where(DocumentContributor.document_id.in_(todo)))
                    # Quarantine records of the document name its file and repeat parser messages.
                    s.execute(delete(Quarantine).where(Quarantine.document_id.in_(todo)))
                    s.execute(update(Document).where(Document.id.in_(todo))
                              .values(title="", uri="", path=None, author=None, ancestry=None))
                s.execute(update(Document).where(Document.id.in_(todo))
                          .values(status=status, status_reason=reason, current_version=None, updated_at=utcnow()))
                changed += todo
        if drop_content and changed:
            self.checkpoint()
        return changed

    @_read
    def select_documents(self, *, expired_at: datetime | None = None, document_id: str | None = None,
                         source: str | None = None, author: str | None = None,
                         contributor: str | None = None, include_tombstoned: bool = True) -> list[str]:
        """Document ids for a purge selector (not yet purged)."""
        # "purging": claimed by a purge that did not finish (a crash): the next purge takes it.
        statuses = ["active", "tombstoned", "purging"] if include_tombstoned else ["active", "purging"]
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
            q = q.where(Document.id.in_(select(DocumentContributor.document_id)
                                        .where(DocumentContributor.principal == contributor)))
        with self.session() as s:
            return list(s.scalars(q.order_by(Document.id)))

    @_read
    def documents_info(self, document_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        with self.session() as s:
            return self._documents_info(s, list(document_ids))

    @staticmethod
    def _documents_info(s: Session, ids: list[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for i in range(0, len(ids), PARAM_BATCH):
            for d in s.scalars(select(Document).where(Document.id.in_(ids[i : i + PARAM_BATCH]))):
                out[d.id] = {"source": d.source, "origin": d.origin, "author": d.author, "status": d.status,
                             "current_version": d.current_version}
            contrib = s.execute(select(DocumentContributor.document_id, DocumentContributor.principal)
                                .where(DocumentContributor.document_id.in_(ids[i : i + PARAM_BATCH]))).all()
            for doc_id, principal_ in contrib:
                out.setdefault(doc_id, {}).setdefault("contributors", []).append(principal_)
        return out

    def current_blocks(self, document_id: str) -> tuple[int | None, list[dict[str, Any]] | None]:
        with self.session() as s:
            doc = s.get(Document, document_id)
            if doc is None or doc.current_version is None:
                return None, None
            v = s.scalar(select(Version).where(Version.document_id == document_id, Version.version == doc.current_version))
            return doc.current_version, (v.blocks if v else None)

    def scrub_old_versions(self, document_id: str, keep_version: int) -> None:
        """Drop text and blocks of every version but ``keep_version`` (they held erased content)."""
        with self.session() as s:
            s.execute(update(Version).where(Version.document_id == document_id, Version.version != keep_version)
                      .values(cleaned_text=None, blocks=None))
        self.checkpoint()

    def checkpoint(self) -> bool:
        """After content was dropped, on SQLite: copy the write-ahead log into the database
        file and truncate it, so no older image of a page (the dropped text) stays in
        ``-wal`` while other processes keep the catalog open (SQLite removes the log only
        when the last connection closes). True when done; False when a reader kept part of
        the log (it is truncated at a later checkpoint) and on other databases."""
        if self.engine.dialect.name != "sqlite":
            return False
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA busy_timeout=5000")  # a reader in a transaction: not for long
                busy = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()[0]
        except SQLAlchemyError as exc:
            log.warning("catalog checkpoint failed: %s", describe_db_error(exc))
            return False
        if busy:
            log.info("catalog write-ahead log in use by a reader; it is truncated at a later checkpoint")
        return not busy

    # -- legal holds ----------------------------------------------------------------------
    def _lock_holds(self, s: Session) -> None:
        """Serialize adding holds with claiming documents for a purge: a hold either commits
        before a purge batch checks holds (and the purge skips its documents) or after the
        batch claimed them (and the hold is refused) — never in between."""
        if self.engine.dialect.name == "postgresql":
            s.execute(text("LOCK TABLE holds IN SHARE ROW EXCLUSIVE MODE"))
        else:  # SQLite: a write takes the database's write lock for the whole transaction
            s.execute(update(Hold).where(Hold.id == -1).values(reason=""))

    def add_hold(self, kind: str, value: str, reason: str, actor: str | None) -> bool:
        if kind not in ("document", "source", "subject"):
            raise ValueError("hold kind must be document, source or subject")
        with self.session() as s:
            self._lock_holds(s)
            if s.scalar(select(Hold).where(Hold.kind == kind, Hold.value == value)) is not None:
                return False
            if kind == "document":
                status = s.scalar(select(Document.status).where(Document.id == value))
                if status in ("purging", "purged"):
                    raise HoldRefused(f"document {value!r} is {status} already: a hold cannot keep it",
                                      hint="holds keep documents that still exist; see govrag audit export --kind purge")
            s.add(Hold(kind=kind, value=value, reason=reason, actor=actor))
            return True

    def claim_for_purge(self, document_ids: Sequence[str]) -> tuple[list[str], dict[str, str]]:
        """In one transaction with the hold lock: the documents under legal hold *now* (and
        by which hold), and the others marked ``purging`` (out of search at once, refused to
        new holds, picked up again by a purge that a crash interrupted)."""
        ids = list(document_ids)
        with self.session() as s:
            self._lock_holds(s)
            held = _match_holds(list(s.scalars(select(Hold).order_by(Hold.id))), self._documents_info(s, ids), ids)
            claimed = [d for d in ids if d not in held]
            for i in range(0, len(claimed), PARAM_BATCH):
                s.execute(update(Document).where(Document.id.in_(claimed[i : i + PARAM_BATCH]),
                                                 Document.status.in_(("active", "tombstoned", "purging")))
                          .values(status="purging", updated_at=utcnow()))
        return claimed, held

    def remove_hold(self, kind: str, value: str) -> bool:
        with self.session() as s:
            return bool(s.execute(delete(Hold).where(Hold.kind == kind, Hold.value == value)).rowcount)

    @_read
    def holds(self) -> list[dict[str, Any]]:
        with self.session() as s:
            return [{"kind": h.kind, "value": h.value, "reason": h.reason, "actor": h.actor,
                     "created_at": h.created_at.isoformat()} for h in s.scalars(select(Hold).order_by(Hold.id))]

    def held(self, document_ids: Sequence[str]) -> dict[str, str]:
        """Which of these documents are under legal hold, and by which hold."""
        ids = list(document_ids)
        with self.session() as s:
            holds = list(s.scalars(select(Hold).order_by(Hold.id)))
            if not holds:
                return {}
            return _match_holds(holds, self._documents_info(s, ids), ids)

    # -- right to be forgotten ------------------------------------------------------------
    def forget_subject(self, principal_: str) -> None:
        with self.session() as s:
            if s.get(ForgottenSubject, principal_) is None:
                s.add(ForgottenSubject(principal=principal_))

    @_read
    def forgotten_subjects(self) -> frozenset[str]:
        with self.session() as s:
            return frozenset(s.scalars(select(ForgottenSubject.principal)))

    def source_document(self, document_id: str) -> SourceDocument | None:
        """Rebuild a document's contract from the catalog (for re-indexing without the source)."""
        with self.session() as s:
            d = s.get(Document, document_id)
            if d is None or d.scope_id is None:
                return None
            scope = s.get(Scope, d.scope_id)
            rows = s.execute(select(ScopePrincipal.layer, ScopePrincipal.principal)
                             .where(ScopePrincipal.scope_id == d.scope_id)).all()
            n_layers = scope.n_layers
            source_hash = s.scalar(select(Version.source_hash).where(Version.document_id == document_id,
                                                                     Version.version == d.current_version))
        return SourceDocument(
            document_id=d.id, source=d.source, uri=d.uri, title=d.title, path=d.path,
            scope=_scope_from_rows(scope.key, rows, n_layers=n_layers),
            classification=d.classification, modified_at=d.modified_at, author=d.author,
            metadata={"scope_id": d.scope_id, "expires_at": d.expires_at, "origin": d.origin,
                      "source_hash": source_hash},
        )

    @_read
    def chunks_for_repair(self, chunk_ids: Sequence[int]) -> list[dict[str, Any]]:
        """Current chunks of active documents with what a vector row needs (doctor --repair)."""
        ids = list(chunk_ids)
        out: list[dict[str, Any]] = []
        with self.session() as s:
            for i in range(0, len(ids), PARAM_BATCH):
                rows = s.execute(
                    select(ChunkRow.id, ChunkRow.text, ChunkRow.version, Document.id, Document.source, Document.scope_id,
                           Document.classification, Document.expires_at, Document.title, Document.uri)
                    .join(Document, Document.id == ChunkRow.document_id)
                    .where(ChunkRow.id.in_(ids[i : i + PARAM_BATCH]), Document.status == "active",
                           ChunkRow.version == Document.current_version)
                ).all()
                out += [{"id": r[0], "text": r[1] or "", "source_version": r[2], "document_id": r[3], "source": r[4],
                         "scope_id": r[5], "classification": r[6], "expires_at": r[7], "title": r[8], "uri": r[9]}
                        for r in rows]
        return out
