"""ACL-filtered semantic search.

Order of operations, each a guard on its own: claims → principals → allowed scope ids
(catalog, bound parameters; cached per principal set until the catalog's ACL generation
moves — :mod:`governance.scope_resolver`) → Milvus search with the scope/expiry filter built
by ``governance.vector_index``, by the plan its share of the live chunks calls for
(:mod:`governance.vector_index.plan`) → post-check of every hit against the catalog (active, current
version, not expired, and its scope re-resolved for this user from the ACL tables, uncached)
→ audit event → hits.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from typing import Any

from embedding.base import Embedder
from governance import audit
from governance.contracts import Hit
from governance.errors import AccessDenied, ConfigError
from governance.identity import User, as_user
from governance.observability import metrics
from governance.scope_resolver import ScopeResolver
from governance.settings import get_settings
from governance.stores import Stores
from governance.vector_index import RawHit
from governance.vector_index.plan import ScopeCounts

MAX_K = 100
MAX_QUERY_CHARS = 4096
OVERFETCH = 10  # extra candidates so hits the post-check drops can be replaced
# Counting live chunks per scope costs ~100 ms at 100k chunks on SQLite (2 cores), so the
# audit's "excluded by the filter" figure comes from a per-scope count at most this old.
SCOPE_COUNTS_MAX_AGE_S = 10.0


class _TenantSearch:
    """What searching one tenant's documents needs: its stores, its scope cache, its counts
    (without multi-tenancy there is one)."""

    def __init__(self, stores: Stores) -> None:
        self.stores = stores
        self.scopes = ScopeResolver(stores.catalog)
        self.counts_lock = threading.Lock()
        self.counts: tuple[float, ScopeCounts] = (float("-inf"), ScopeCounts({}))


class Retriever:
    """Search bound to one set of stores and one embedder (thread-safe). With
    multi-tenancy each caller is searched against their tenant's own catalog and policy."""

    def __init__(self, stores: Stores, embedder_factory: Callable[[], Embedder]) -> None:
        self.stores = stores
        self._embedder_factory = embedder_factory
        self._embedder: Embedder | None = None
        self._lock = threading.Lock()
        self._own = _TenantSearch(stores)
        self._tenants: dict[str, _TenantSearch] = {}

    @property
    def scopes(self) -> ScopeResolver:
        return self._own.scopes

    @property
    def embedder(self) -> Embedder:
        with self._lock:
            if self._embedder is None:
                self._embedder = self._embedder_factory()
            return self._embedder

    def search(self, user: User | Mapping[str, Any], query: str, k: int = 10) -> list[Hit]:
        """The ``k`` best chunks ``user`` may read for ``query``, best first."""
        caller = as_user(user)
        if not isinstance(query, str) or not query.strip():
            raise ValueError("query must be a non-empty string")
        if len(query) > MAX_QUERY_CHARS:
            raise ValueError(f"query longer than {MAX_QUERY_CHARS} characters")
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise ValueError(f"k must be an int between 1 and {MAX_K}")

        started = time.perf_counter()
        try:
            hits = self._search(caller, query, k)
        except Exception:
            metrics.SEARCH_SECONDS.labels(outcome="error").observe(time.perf_counter() - started)
            raise
        metrics.SEARCH_SECONDS.labels(outcome="ok").observe(time.perf_counter() - started)
        metrics.SEARCH_HITS.inc(len(hits))
        return hits

    def _tenant(self, caller: User) -> _TenantSearch | None:
        """The caller's tenant's search state; None when that tenant has no catalog (nothing
        was ever ingested for it, so there is nothing to find and nothing is created)."""
        if not self.stores.settings.multi_tenant:
            return self._own
        if not caller.tenant:
            raise AccessDenied("multi-tenancy is on and the caller has no tenant claim (`tenant` or `tid`)")
        if caller.tenant == self.stores.tenant:
            return self._own
        with self._lock:
            found = self._tenants.get(caller.tenant)
        if found is not None:
            return found
        try:
            stores = self.stores.for_tenant(caller.tenant)
        except ConfigError as exc:
            raise AccessDenied(f"the caller's tenant cannot be served: {exc}") from exc
        if stores is None:
            return None
        with self._lock:
            return self._tenants.setdefault(caller.tenant, _TenantSearch(stores))

    def _search(self, caller: User, query: str, k: int) -> list[Hit]:
        tenant = self._tenant(caller)
        if tenant is None:
            return []
        catalog, policy = tenant.stores.catalog, tenant.stores.policy
        principals = caller.principals(policy.roles)
        allowed = tenant.scopes.allowed_ids(principals)  # the same object until an ACL changes
        now = datetime.now(UTC)
        raw: list[RawHit] = []
        plan: str | None = None
        if allowed:
            vector = self.embedder.embed([query])[0]
            # The plan (scope list, its complement, or no list and an in-memory check) is
            # chosen from the caller's share of the live chunks; every plan returns the same.
            raw, plan = self.stores.index.search_with_plan(
                vector,
                k=k + OVERFETCH,
                scope_ids=allowed,
                now_epoch=int(now.timestamp()),
                tenant=caller.tenant,
                rows_by_scope=self._live_counts(tenant),
                # A narrow reader's chunks are listed by the catalog and read by primary key.
                list_ids=lambda scopes, limit: catalog.chunks.live_chunk_ids(scopes, now, limit),
            )
            metrics.SEARCH_PLANS.labels(plan=plan or "none").inc()
        visible = catalog.chunks.visible_chunks([h.id for h in raw], allowed_scope_ids=allowed.set, now=now)
        if visible:
            # Second, uncached opinion: the scopes of what is about to be returned, resolved
            # from the ACL tables now (the filter above used the resolver's cached answer).
            confirmed = set(catalog.scopes.allowed_scope_ids(principals, among={v.scope_id for v in visible.values()}))
            visible = {cid: v for cid, v in visible.items() if v.scope_id in confirmed}
        hits: list[Hit] = []
        for h in raw:
            v = visible.get(h.id)
            if v is None:
                continue
            hits.append(
                Hit(
                    chunk_id=h.id,
                    document_id=v.document_id,
                    source=v.source,
                    title=v.title,
                    uri=v.uri,
                    text=str(h.fields.get("text", "")),
                    score=h.score,
                    source_version=v.version,
                    expires_at=v.expires_at,
                )
            )
            if len(hits) == k:
                break
        excluded = self._excluded_by_filter(tenant, allowed)
        dropped = len(raw) - len(visible)
        metrics.SEARCH_EXCLUDED.observe(excluded)
        if dropped:
            metrics.SEARCH_POSTCHECK_DROPPED.inc(dropped)
        payload: dict[str, Any] = {
            "query_sha256": hashlib.sha256(query.encode()).hexdigest(),
            "k": k,
            "allowed_scopes": len(allowed),
            "plan": plan,
            "candidates": len(raw),
            "excluded_by_filter": excluded,
            "dropped_by_postcheck": dropped,
            "returned": [h.chunk_id for h in hits],
        }
        if policy.audit.store_query_text:
            payload["query"] = query
        audit.record(catalog, "search", caller.email or caller.id, payload)
        return hits

    def excluded_by_filter(self, allowed_scope_ids: Collection[int]) -> int:
        """Searchable chunks the caller's ACL filter kept out of the vector query: every
        live chunk minus those in the caller's scopes (counts at most
        ``SCOPE_COUNTS_MAX_AGE_S`` old)."""
        return self._excluded_by_filter(self._own, allowed_scope_ids)

    @staticmethod
    def _live_counts(tenant: _TenantSearch) -> ScopeCounts:
        """Live chunks per scope id, at most ``SCOPE_COUNTS_MAX_AGE_S`` old (the audit's
        figure and the search plan's share; neither decides what a caller may read)."""
        with tenant.counts_lock:
            at, counts = tenant.counts
            if time.monotonic() - at > SCOPE_COUNTS_MAX_AGE_S:
                counts = ScopeCounts(tenant.stores.catalog.chunks.live_chunks_by_scope(datetime.now(UTC)))
                tenant.counts = (time.monotonic(), counts)
        return counts

    @classmethod
    def _excluded_by_filter(cls, tenant: _TenantSearch, allowed_scope_ids: Collection[int]) -> int:
        counts = cls._live_counts(tenant)
        # Kept with the counts per ScopeIds (a search's plan choice already worked it out).
        return max(0, counts.total - counts.readable(allowed_scope_ids).rows)

    def close(self) -> None:
        self.stores.close()


_default: Retriever | None = None
_default_lock = threading.Lock()


def default_retriever() -> Retriever:
    """The process's retriever, opened from ``GOVRAG_*`` settings on first use."""
    global _default
    with _default_lock:
        if _default is None or _default.stores.settings is not get_settings():
            from embedding import make_embedder

            stores = Stores.open(serve_tenants=True)
            _default = Retriever(stores, lambda: make_embedder(stores.settings))
        return _default


def search(user: User | Mapping[str, Any], query: str, k: int = 10) -> list[Hit]:
    """Search as ``user`` (a :class:`User` or OIDC claims) — every hit is one they may read."""
    return default_retriever().search(user, query, k)


__all__ = ["AccessDenied", "Retriever", "default_retriever", "search"]
