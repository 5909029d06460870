"""Fresh PostgreSQL databases for the tests that run on PostgreSQL too: the server is the
one ``GOVRAG_TEST_DATABASE_URL`` names; each database is dropped after its test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

ADMIN_URL_VARIABLE = "GOVRAG_TEST_DATABASE_URL"


def admin_url() -> str | None:
    """The URL of the PostgreSQL server the tests may create databases on (None: none)."""
    return os.environ.get(ADMIN_URL_VARIABLE) or None


@contextmanager
def fresh_database(prefix: str = "govrag_t", drivername: str | None = None) -> Iterator[str]:
    """A new database on the server of :func:`admin_url`, as a URL (with ``drivername`` when
    given); its connections are ended and it is dropped on exit."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    url = admin_url()
    if url is None:
        raise RuntimeError(f"{ADMIN_URL_VARIABLE} is not set")
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        target = make_url(url).set(database=name)
        if drivername:
            target = target.set(drivername=drivername)
        yield target.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = :n AND pid <> pg_backend_pid()"
                ),
                {"n": name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()
