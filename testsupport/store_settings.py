"""Settings of stores kept in one folder: a SQLite catalog, a Milvus Lite file, the sample policy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from governance.settings import Settings
from testsupport.paths import SAMPLE_POLICY


def sqlite_url(root: Path) -> str:
    """The URL of the SQLite catalog ``root/catalog.sqlite3``."""
    return f"sqlite:///{root / 'catalog.sqlite3'}"


def embedded_settings(root: Path, **overrides: Any) -> Settings:
    """Settings whose home, catalog and index all lie under ``root``; ``overrides`` replace
    any field (another catalog URL, a policy, a collection, a Milvus server's URI)."""
    values: dict[str, Any] = dict(
        home=root / "home",
        database_url=sqlite_url(root),
        milvus_uri=str(root / "milvus.db"),
        policy=SAMPLE_POLICY,
        collection="test_chunks",
    )
    values.update(overrides)
    return Settings(**values)
