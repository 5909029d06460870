"""Opening the catalog, the vector index and the policy from settings."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import make_url

from governance.catalog import Catalog, catalog_exists
from governance.errors import ConfigError
from governance.milvus_process.local import resolve_uri
from governance.policy import Policy, load_policy
from governance.settings import Settings, get_settings
from governance.vector_index import VectorIndex


def _new_sqlite_file(settings: Settings, url: str) -> Path | None:
    """The SQLite file ``url`` names when it does not exist yet (None otherwise). A
    GOVRAG_DATABASE_URL whose folder does not exist is refused instead of created."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    path = Path(parsed.database)
    if settings.database_url:
        base = make_url(settings.database_url).database or ""
        if base and base != ":memory:" and not Path(base).parent.is_dir():
            raise ConfigError(
                f"the folder of the catalog {base} does not exist",
                hint="create it, or correct GOVRAG_DATABASE_URL (sqlite:////absolute/path/catalog.db)",
            )
    return None if path.exists() else path


MISSING_TENANT_RECHECK_S = 30.0  # a tenant's first ingest is visible to search within this


@dataclass
class Stores:
    """The catalog, the vector index and the policy a process works with.

    With multi-tenancy (``GOVRAG_MULTI_TENANT``) a ``Stores`` belongs to one ``tenant``: its
    catalog and policy are that tenant's own (:mod:`governance.tenancy`); the vector index is
    shared and every operation on it names the tenant. A process that serves many tenants
    (the search service) opens the shared stores with ``serve_tenants=True`` and asks
    :meth:`for_tenant` per caller.
    """

    settings: Settings
    catalog: Catalog
    index: VectorIndex
    policy: Policy
    tenant: str | None = None
    _tenants: dict[str, Stores] = field(default_factory=dict, repr=False)
    _tenants_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _owns_index: bool = field(default=True, repr=False)
    _missing_tenants: dict[str, float] = field(default_factory=dict, repr=False)

    @classmethod
    def open(
        cls, settings: Settings | None = None, *, dim: int = 384, tenant: str | None = None, serve_tenants: bool = False
    ) -> Stores:
        settings = settings or get_settings()
        home = settings.resolved_home
        home.mkdir(parents=True, exist_ok=True)
        tenant = (tenant or settings.tenant or None) if settings.multi_tenant else None
        if settings.multi_tenant and tenant is None and not serve_tenants:
            raise ConfigError(
                "GOVRAG_MULTI_TENANT is on, but no tenant is set: every tenant has a catalog of its own",
                hint="set GOVRAG_TENANT to the tenant this command works on",
            )
        # A multi-tenant server's own catalog (no tenant) holds no tenant's data: it only
        # answers readiness checks; its policy would be nobody's.
        policy = load_policy(settings.policy_for(tenant)) if tenant or not settings.multi_tenant else Policy()
        url = settings.catalog_url_for(tenant)
        fresh = _new_sqlite_file(settings, url)
        catalog = Catalog(url)
        try:
            uri = resolve_uri(settings.milvus_uri, home)
            index = VectorIndex(
                uri,
                settings.collection,
                dim=dim,
                token=settings.milvus_token,
                multi_tenant=settings.multi_tenant,
                tenant=tenant or "",
                index_type=settings.milvus_index,
                search_fanout=settings.search_fanout,
                timeout_s=settings.milvus_timeout_s,
                write_timeout_s=settings.milvus_write_timeout_s,
            )
        except BaseException:
            catalog.dispose()  # a service retrying readiness must not leak an engine per try
            raise
        stores = cls(settings=settings, catalog=catalog, index=index, policy=policy, tenant=tenant)
        if fresh and (tenant or not settings.multi_tenant):
            stores._refuse_new_catalog_beside_vectors(fresh)
        return stores

    def _refuse_new_catalog_beside_vectors(self, path: Path) -> None:
        """A catalog made just now next to an index that holds vectors is a catalog in the
        wrong place (a typo in GOVRAG_DATABASE_URL, a moved HOME): searches would find
        nothing and ``doctor --repair`` would delete every vector as an orphan."""
        try:
            held = self.index.count()
        except Exception:  # an index that cannot count will fail loudly on first use
            return
        if held:
            self.close()
            for leftover in ("", "-wal", "-shm", ".migrate.lock"):  # leave no empty catalog behind
                Path(f"{path}{leftover}").unlink(missing_ok=True)
            raise ConfigError(
                f"the catalog {path} did not exist, but the vector collection {self.index.collection!r} at "
                f"{self.index.uri} holds {held} vectors: this catalog is not the one that indexed them",
                hint="point GOVRAG_DATABASE_URL / GOVRAG_HOME at the catalog that indexed them, or drop the "
                "collection (GOVRAG_COLLECTION) to start over",
            )

    def for_tenant(self, tenant: str | None, *, create: bool = False) -> Stores | None:
        """The stores of ``tenant``: these stores without multi-tenancy; with it, the tenant's
        own catalog and policy over the shared index, opened once and kept. ``None`` when the
        tenant has no catalog yet and ``create`` is false (nothing was ever ingested for it;
        checked again after ``MISSING_TENANT_RECHECK_S``)."""
        if not self.settings.multi_tenant:
            return self
        if not tenant:
            raise ConfigError("multi-tenancy is on: a tenant is required")
        if tenant == self.tenant:
            return self
        with self._tenants_lock:
            found = self._tenants.get(tenant)
            if found is not None:
                return found
            url = self.settings.catalog_url_for(tenant)
            if not create:
                # A tenant nobody ingested for is asked about on every search it makes:
                # remember the miss for a while instead of probing the database each time.
                missed = self._missing_tenants.get(tenant)
                if missed is not None and time.monotonic() - missed < MISSING_TENANT_RECHECK_S:
                    return None
                if not catalog_exists(url):
                    self._missing_tenants[tenant] = time.monotonic()
                    return None
                self._missing_tenants.pop(tenant, None)
            policy = load_policy(self.settings.policy_for(tenant))
            child = Stores(
                settings=self.settings,
                catalog=Catalog(url),
                index=self.index.with_tenant(tenant),
                policy=policy,
                tenant=tenant,
                _owns_index=False,
            )
            self._tenants[tenant] = child
            return child

    def close(self) -> None:
        with self._tenants_lock:
            children, self._tenants = list(self._tenants.values()), {}
        for child in children:
            child.close()
        if self._owns_index:
            self.index.close()
        self.catalog.dispose()
