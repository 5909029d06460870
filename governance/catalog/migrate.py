"""Apply Alembic migrations on start (idempotent; safe when several processes start at once)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

MIGRATIONS = Path(__file__).parent / "migrations"


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _migrate(engine: Engine) -> None:
    if current_revision(engine) == head_revision():
        return
    cfg = _config()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Serialise concurrent starters; the lock ends with the transaction.
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7426871021)")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def upgrade_to_head(engine: Engine) -> None:
    """Bring the catalog schema to the newest migration. Several processes may start on a
    fresh catalog at once (Dagster runs, a searcher): one migrates, the others wait and find
    it done."""
    if current_revision(engine) == head_revision():
        return
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if database and database != ":memory:":
        from filelock import FileLock

        with FileLock(database + ".migrate.lock", timeout=300):
            _migrate(engine)
    else:
        _migrate(engine)
