"""Alembic environment: runs on the connection handed over by ``governance.catalog.migrate``."""

from __future__ import annotations

from alembic import context

from governance.catalog.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        from sqlalchemy import create_engine

        connection = create_engine(config.get_main_option("sqlalchemy.url")).connect()
    if connection.dialect.name == "postgresql":
        # Fail fast instead of queueing forever behind a long lock held by another process.
        connection.exec_driver_sql("SET lock_timeout = '30s'")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
