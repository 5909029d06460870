"""Opening the catalog, the vector index and the policy from settings."""

from __future__ import annotations

from dataclasses import dataclass

from governance.catalog import Catalog
from governance.milvus_local import resolve_uri
from governance.policy import Policy, load_policy
from governance.settings import Settings, get_settings
from governance.vector_index import VectorIndex


@dataclass
class Stores:
    """The catalog, the vector index and the policy a process works with."""

    settings: Settings
    catalog: Catalog
    index: VectorIndex
    policy: Policy

    @classmethod
    def open(cls, settings: Settings | None = None, *, dim: int = 384) -> "Stores":
        settings = settings or get_settings()
        home = settings.resolved_home
        home.mkdir(parents=True, exist_ok=True)
        policy = load_policy(settings.policy)
        catalog = Catalog(settings.resolved_database_url)
        try:
            uri = resolve_uri(settings.milvus_uri, home)
            index = VectorIndex(uri, settings.collection, dim=dim, token=settings.milvus_token,
                                multi_tenant=settings.multi_tenant, tenant=settings.tenant,
                                index_type=settings.milvus_index, search_fanout=settings.search_fanout)
        except BaseException:
            catalog.dispose()  # a service retrying readiness must not leak an engine per try
            raise
        return cls(settings=settings, catalog=catalog, index=index, policy=policy)

    def close(self) -> None:
        self.index.close()
        self.catalog.dispose()
