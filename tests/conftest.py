"""Shared fixtures: temporary stores on embedded backends, PostgreSQL when configured."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Iterator

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("SCARF_NO_ANALYTICS", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

from governance.settings import Settings, get_settings  # noqa: E402
from tests.milvus_server_fixtures import make_index, milvus_server  # noqa: E402,F401  (real Milvus server)

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus"
SAMPLE_POLICY = REPO / "govrag" / "sample" / "policy.yaml"
PG_URL = os.environ.get("GOVRAG_TEST_DATABASE_URL")


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No test reads the developer's GOVRAG_* environment or ./.govrag."""
    for key in list(os.environ):
        if key.startswith("GOVRAG_") and key not in ("GOVRAG_TEST_DATABASE_URL", "GOVRAG_TRITON_ENV"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("GOVRAG_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def embedder():
    """The real all-MiniLM-L6-v2 on CPU, loaded once per session."""
    from embedding.local import LocalEmbedder

    return LocalEmbedder()


def _pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    name = f"govrag_t_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n AND pid <> pg_backend_pid()"
            ), {"n": name})
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Catalog URL: SQLite always; PostgreSQL when GOVRAG_TEST_DATABASE_URL is set."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
        return
    if not PG_URL:
        pytest.skip("GOVRAG_TEST_DATABASE_URL not set")
    yield from _pg_database()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Embedded stores in a temp dir: in-process Milvus Lite file and the given catalog."""
    return Settings(home=tmp_path / "home", database_url=database_url,
                    milvus_uri=str(tmp_path / "milvus.db"), policy=SAMPLE_POLICY,
                    collection="test_chunks")


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    """Like ``settings`` but SQLite only (tests about Milvus or parsing, not the catalog)."""
    return Settings(home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'catalog.sqlite3'}",
                    milvus_uri=str(tmp_path / "milvus.db"), policy=SAMPLE_POLICY, collection="test_chunks")


@pytest.fixture
def stores(settings: Settings):
    from governance.stores import Stores

    s = Stores.open(settings)
    yield s
    s.close()


@pytest.fixture
def sqlite_stores(sqlite_settings: Settings):
    from governance.stores import Stores

    s = Stores.open(sqlite_settings)
    yield s
    s.close()


@pytest.fixture(scope="session")
def sample_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample corpus (good PDFs plus encrypted, corrupt, image-only, uncovered)."""
    from govrag.sample_corpus import write_sample_corpus

    out = tmp_path_factory.mktemp("sample") / "corpus"
    write_sample_corpus(out)
    return out


@pytest.fixture
def corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.skip("../shared/corpus is absent")
    return CORPUS


def make_ingestor(stores, embedder):
    from ingest.pipeline.run import Ingestor

    return Ingestor(stores, lambda: embedder)


def make_retriever(stores, embedder):
    from retrieval.search import Retriever

    return Retriever(stores, lambda: embedder)
