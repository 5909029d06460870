"""The catalog's database: engines, migrations on open, transactions, and retried reads.

Every repository (:mod:`governance.catalog.scopes`, ``documents``, ``chunks``, ``runs``,
``holds``) runs its statements in :meth:`Database.session`; nothing else opens connections.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar, cast

from sqlalchemy import CursorResult, Engine, Result, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from governance.catalog.migrate import upgrade_to_head
from governance.errors import CatalogError
from governance.tenancy import tenant_schema, without_schema

__all__ = ["PARAM_BATCH", "READ_RETRY_DELAYS_S", "Database", "catalog_exists", "describe_db_error", "retry_read"]

log = logging.getLogger(__name__)

# A read whose connection died under it (PostgreSQL restarted, the backend terminated, a
# network cut) is run again on a fresh connection after these pauses; reads are safe to
# repeat. Writes are not repeated: the caller's next run redoes them (see docs/faults.md).
READ_RETRY_DELAYS_S = (0.1, 0.5)

# SQLite caps bound parameters (32766 on current builds); stay well below.
PARAM_BATCH = 900

# SQLite: how long a writer waits for another's lock (a long ingest transaction), how long a
# checkpoint waits for readers, and the connections each process keeps open.
BUSY_TIMEOUT_MS = 60_000
CHECKPOINT_BUSY_MS = 5_000
SQLITE_POOL_SIZE = 5

F = TypeVar("F", bound=Callable[..., Any])


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


def retry_read(method: F) -> F:
    """Mark a read-only repository method: retried on a fresh connection when its
    connection was lost mid-query (``READ_RETRY_DELAYS_S``)."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        for delay in (*READ_RETRY_DELAYS_S, None):
            try:
                return method(*args, **kwargs)
            except CatalogError as exc:
                if delay is None or not _disconnected(exc):
                    raise
                log.info("catalog connection lost during %s; trying again", method.__name__)
                time.sleep(delay)
        raise AssertionError("unreachable")

    return wrapper  # type: ignore[return-value]


def _make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        return _sqlite_engine(url)
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def _sqlite_engine(url: str) -> Engine:
    database = make_url(url).database
    if not database or database == ":memory:":
        engine = create_engine(url, poolclass=NullPool, connect_args={"timeout": 60})
    else:
        path = Path(database).absolute()
        path.parent.mkdir(parents=True, exist_ok=True)
        # WAL lets several processes (ingest, search, Dagster runs) share the file. Each
        # process keeps its connections in a pool: a connection per session ran the pragmas
        # on every open, and closing the last one checkpointed the log into the file (a
        # sync), which made the catalog the ingest's wall (with a fixed-vector embedder, a
        # 10,000-message Slack export ingested 1.5-2.0x faster pooled, 500 Confluence pages
        # 1.2x; docs/benchmarks.md). Erasures truncate the log
        # themselves (:meth:`Database.checkpoint`). Overflow is unbounded: a busy service
        # must wait on SQLite's lock, never on the pool.
        engine = create_engine(
            url,
            connect_args={"timeout": 60, "check_same_thread": False},
            pool_size=SQLITE_POOL_SIZE,
            max_overflow=-1,
        )

        @event.listens_for(engine, "checkout")
        def _same_file(_dbapi_conn: Any, record: Any, _proxy: Any) -> None:
            # A pooled connection keeps the file it opened. If the catalog file was replaced
            # since (a restore, a file swapped under a running service), it would go on reading
            # and writing the old one unseen: open the file that is there now instead, as a
            # connection per session did (a few microseconds: one stat).
            if record.info.get("file") != _file_identity(path):
                raise DisconnectionError("the catalog file was replaced; reopening it")

        @event.listens_for(engine, "connect")
        def _remember_file(_dbapi_conn: Any, record: Any) -> None:
            record.info["file"] = _file_identity(path)

    @event.listens_for(engine, "connect", insert=True)
    def _pragmas(dbapi_conn: Any, _rec: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA secure_delete=ON")  # deleted text is zeroed, not left in free pages
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cur.close()

    return engine


def _file_identity(path: Path) -> tuple[int, int] | None:
    """The device and inode of ``path`` (None: no file there)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _ensure_schema(url: str, schema: str) -> None:
    """Make a tenant's PostgreSQL schema (its name is ``govrag_`` + a checked slug)."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    finally:
        engine.dispose()


def rows_matched(result: Result[Any]) -> int:
    """How many rows a DELETE or UPDATE matched. ``Session.execute`` is typed as returning a
    plain ``Result``; for these statements it is a ``CursorResult``, which counts them."""
    return cast("CursorResult[Any]", result).rowcount


def catalog_exists(url: str) -> bool:
    """Whether a catalog was ever made at ``url`` (a file, or a tenant's schema), without
    making one: a search by a tenant nobody ingested for must not create its catalog."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if not database:
            return False
        return database == ":memory:" or Path(database).is_file()
    schema = tenant_schema(url)
    if schema is None:
        return True
    engine = create_engine(without_schema(url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            found = conn.execute(
                text("SELECT 1 FROM information_schema.schemata WHERE schema_name = :s"), {"s": schema}
            ).first()
    except SQLAlchemyError as exc:
        raise CatalogError(
            f"cannot reach the catalog at {parsed.render_as_string(hide_password=True)}: {describe_db_error(exc)}",
            hint="check GOVRAG_DATABASE_URL",
        ) from exc
    finally:
        engine.dispose()
    return found is not None


class Database:
    """One catalog database (SQLite or PostgreSQL), migrated to the newest schema on open."""

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = url
        try:
            schema = tenant_schema(url)
            if schema and migrate:
                _ensure_schema(without_schema(url), schema)
            self.engine = _make_engine(url)
            if migrate:
                upgrade_to_head(self.engine)
        except SQLAlchemyError as exc:
            raise CatalogError(
                f"cannot open the catalog at {self.safe_url}: {describe_db_error(exc)}",
                hint="check GOVRAG_DATABASE_URL and that the database is running",
            ) from exc
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def safe_url(self) -> str:
        """The database URL without its password (for messages and logs)."""
        return self.engine.url.render_as_string(hide_password=True) if hasattr(self, "engine") else "?"

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

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
            raise CatalogError(
                f"catalog operation failed at {self.safe_url}: {describe_db_error(exc)}",
                hint="check that the database is running and reachable (GOVRAG_DATABASE_URL); the "
                "transaction was rolled back, so running the command again is safe",
            ) from exc
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        """Close the engine's pooled connections."""
        self.engine.dispose()

    def checkpoint(self) -> bool:
        """After content was dropped, on SQLite: copy the write-ahead log into the database
        file and truncate it, so no older image of a page (the dropped text) stays in
        ``-wal`` while other processes keep the catalog open (SQLite removes the log only
        when the last connection closes). True when done; False when a reader kept part of
        the log (it is truncated at a later checkpoint) and on other databases."""
        if self.dialect != "sqlite":
            return False
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql(
                    f"PRAGMA busy_timeout={CHECKPOINT_BUSY_MS}"
                )  # a reader in a transaction: not for long
                try:
                    busy = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()[0]
                finally:  # the connection goes back to the pool: later sessions wait as long as ever
                    conn.exec_driver_sql(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        except SQLAlchemyError as exc:
            log.warning("catalog checkpoint failed: %s", describe_db_error(exc))
            return False
        if busy:
            log.info("catalog write-ahead log in use by a reader; it is truncated at a later checkpoint")
        return not busy
