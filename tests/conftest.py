"""Fixtures every layer shares: settings isolated from the developer's environment, the real
embedder, catalogs on SQLite and on PostgreSQL, stores, the sample corpus, the ingest and
search factories and service signing keys. The Milvus fixtures (``backend``, ``make_index``,
``milvus_server``) are the plugin tests/milvus_server_fixtures.py.

Test modules take these as fixtures and never import a test module or this file; plain
builders (exports, tokens, settings, paths) live in ``testsupport``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("SCARF_NO_ANALYTICS", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

from governance.settings import Settings, get_settings
from testsupport import postgres
from testsupport.paths import CORPUS
from testsupport.store_settings import embedded_settings

pytest_plugins = ["tests.milvus_server_fixtures"]


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


@pytest.fixture(autouse=True)
def _no_stale_dagster_state_storage() -> None:
    """Dagster keeps the current defs-state storage in a context variable that an entered
    instance sets; one an earlier test in this worker left set points at a collected instance,
    and the next ``materialize`` with a plain instance would fail on it. Start each test clear."""
    state = sys.modules.get("dagster._core.storage.defs_state.base")
    if state is not None:
        state._current_storage.set(None)


@pytest.fixture(scope="session")
def embedder():
    """The real all-MiniLM-L6-v2 on CPU, loaded once per session."""
    from embedding.local import LocalEmbedder

    return LocalEmbedder()


# -- catalogs ------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def pg_database() -> Callable[..., AbstractContextManager[str]]:
    """``with pg_database() as url:`` a fresh PostgreSQL database, dropped afterwards (keyword
    arguments: ``testsupport.postgres.fresh_database``); skips the test where
    GOVRAG_TEST_DATABASE_URL is not set."""

    def fresh(**kwargs: Any) -> AbstractContextManager[str]:
        if postgres.admin_url() is None:
            pytest.skip("GOVRAG_TEST_DATABASE_URL not set")
        return postgres.fresh_database(**kwargs)

    return fresh


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, pg_database: Callable[..., AbstractContextManager[str]]
) -> Iterator[str]:
    """Catalog URL: SQLite always; PostgreSQL when GOVRAG_TEST_DATABASE_URL is set."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
        return
    with pg_database() as url:
        yield url


@pytest.fixture
def catalog(database_url: str) -> Iterator[Any]:
    """A catalog on ``database_url`` (SQLite, and PostgreSQL when configured), migrated."""
    from governance.catalog import Catalog

    opened = Catalog(database_url)
    yield opened
    opened.dispose()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Embedded stores in a temp dir: in-process Milvus Lite file and the given catalog."""
    return embedded_settings(tmp_path, database_url=database_url)


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    """Like ``settings`` but SQLite only (tests about Milvus or parsing, not the catalog)."""
    return embedded_settings(tmp_path)


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


# -- inputs --------------------------------------------------------------------------------------
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


# -- ingest and search ---------------------------------------------------------------------------
@pytest.fixture(scope="session")
def make_ingestor() -> Callable[[Any, Any], Any]:
    """``make_ingestor(stores, embedder, workers=None)``: an Ingestor writing to ``stores`` with
    ``embedder`` (``workers``: parse processes; None: the settings', one per core)."""
    from ingest.pipeline.run import Ingestor

    def make(stores: Any, embedder: Any, *, workers: int | None = None) -> Ingestor:
        return Ingestor(stores, lambda: embedder, workers=workers)

    return make


@pytest.fixture(scope="session")
def make_retriever() -> Callable[[Any, Any], Any]:
    """``make_retriever(stores, embedder)``: a Retriever searching ``stores`` with ``embedder``."""
    from retrieval.search import Retriever

    def make(stores: Any, embedder: Any) -> Retriever:
        return Retriever(stores, lambda: embedder)

    return make


# -- the retrieval service -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory):
    """An RSA and an EC key pair and the JWKS file of their public halves, fresh per module."""
    from testsupport.service_tokens import make_keys

    return make_keys(tmp_path_factory.mktemp("keys"))
