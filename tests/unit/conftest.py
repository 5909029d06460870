"""The unit layer stays unit: a test here that asks for a catalog, an index, a Milvus server
or the embedding model fails collection, naming the fixture (such a test belongs in
tests/integration)."""

from __future__ import annotations

from pathlib import Path

import pytest

HEAVY_FIXTURES = frozenset(
    {
        "database_url",
        "pg_database",
        "settings",
        "sqlite_settings",
        "stores",
        "sqlite_stores",  # catalogs
        "backend",
        "make_index",
        "milvus_server",  # Milvus
        "embedder",
        "make_ingestor",
        "make_retriever",  # the embedding model and what runs it
    }
)
UNIT = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if UNIT not in item.path.parents:
            continue
        heavy = sorted(HEAVY_FIXTURES.intersection(getattr(item, "fixturenames", ())))
        if heavy:
            raise pytest.UsageError(
                f"{item.nodeid} is a unit test but uses {', '.join(heavy)}: move it to tests/integration"
            )
