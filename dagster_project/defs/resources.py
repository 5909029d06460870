"""Resources: thin wrappers that open govrag's stores and embedder from `GOVRAG_*` settings.

Every field defaults to `None`, meaning "take it from the process's `GOVRAG_*`
environment" (`governance.settings.Settings`); set a field in run config to override it
for one run, e.g.::

    resources:
      stores:
        config: {milvus_uri: http://127.0.0.1:19530, policy: /etc/govrag/policy.yaml}
      embedder:
        config: {kind: triton, triton_url: "triton:8001"}
"""

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
from filelock import FileLock
from pydantic import PrivateAttr

from embedding.base import Embedder
from governance.settings import Settings
from governance.stores import Stores

DROP_DIR_ENV = "GOVRAG_DROP_DIR"


def _overrides(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


class GovragStoresResource(dg.ConfigurableResource):
    """The catalog, the Milvus index and the policy (`governance.stores.Stores`).

    Opened on first use in a step and closed when the step ends, so a step that does not
    touch the stores opens nothing.
    """

    home: str | None = None
    database_url: str | None = None
    milvus_uri: str | None = None
    policy: str | None = None
    collection: str | None = None

    _stores: Stores | None = PrivateAttr(default=None)

    def settings(self) -> Settings:
        return Settings(
            **_overrides(
                home=self.home,
                database_url=self.database_url,
                milvus_uri=self.milvus_uri,
                policy=self.policy,
                collection=self.collection,
            )
        )

    def open(self) -> Stores:
        if self._stores is None:
            settings = self.settings()
            home = settings.resolved_home
            home.mkdir(parents=True, exist_ok=True)
            # Steps of one run start together in separate processes; on a fresh home they
            # would all migrate the catalog at once. One at a time per home.
            with FileLock(str(home / ".stores-open.lock"), timeout=300):
                self._stores = Stores.open(settings)
        return self._stores

    def close(self) -> None:
        if self._stores is not None:
            stores, self._stores = self._stores, None
            stores.close()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self.close()


class EmbedderResource(dg.ConfigurableResource):
    """The embedder: the in-process CPU model (`local`) or a Triton server (`triton`)."""

    kind: str | None = None  # "local" | "triton" (validated by Settings)
    triton_url: str | None = None
    batch_size: int | None = None

    _embedder: Embedder | None = PrivateAttr(default=None)

    def settings(self) -> Settings:
        return Settings(**_overrides(embedder=self.kind, triton_url=self.triton_url, embed_batch_size=self.batch_size))

    def get(self) -> Embedder:
        """The embedder, built on first call (an unchanged re-ingest never loads a model)."""
        if self._embedder is None:
            from embedding import make_embedder

            self._embedder = make_embedder(self.settings())
        return self._embedder

    def factory(self) -> Callable[[], Embedder]:
        return self.get


class DropFolderResource(dg.ConfigurableResource):
    """Where exports are dropped: each top-level entry is one `sources` partition.

    `drop_dir` defaults to `GOVRAG_DROP_DIR`, else `<GOVRAG_HOME>/drop`. The sensor only
    picks up an entry when nothing under it changed for `settle_seconds` (a copy in progress
    is not ingested half-way).
    """

    drop_dir: str | None = None
    settle_seconds: float = 30.0

    def root(self) -> Path:
        if self.drop_dir:
            return Path(self.drop_dir).expanduser().resolve()
        env = os.environ.get(DROP_DIR_ENV)
        if env:
            return Path(env).expanduser().resolve()
        return Settings().resolved_home / "drop"

    def resolve(self, key: str) -> Path:
        """The export a partition key stands for."""
        from ingest.pipeline.drop_folder import resolve_source_key

        return resolve_source_key(self.root(), key)
