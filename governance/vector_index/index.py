# VectorIndex keeps the 22 methods its callers used before the package was split; each is a
# few lines over filters, client (MilvusCollection) or cascade (SearchCascade).
"""``VectorIndex``: the collection as govrag's callers use it, limited to one tenant's rows
when multi-tenancy is on."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from governance.errors import AccessDenied, ConfigError
from governance.vector_index.cascade import SEARCH_FANOUT, SearchCascade
from governance.vector_index.client import READ_TIMEOUT_S, WRITE_TIMEOUT_S, MilvusCollection
from governance.vector_index.filters import (
    all_rows_filter,
    check_tenant,
    document_filter,
    documents_filter,
    expired_filter,
    ids_filter,
    tenant_filter,
    within_tenant,
)
from governance.vector_index.plan import PlanName, ScopeCounts
from governance.vector_index.planned import ChunkLister, PlannedSearch
from governance.vector_index.rows import RawHit, VectorRow
from governance.vector_index.schema import (
    CONSISTENCY_LEVELS,
    DEFAULT_DIM,
    IVF_NLIST,
    IVF_NPROBE,
    OUTPUT_FIELDS,
    TENANT_FIELD,
    VECTOR_INDEX_TYPES,
    VectorIndexSpec,
    VectorIndexType,
)


class VectorIndex:
    """A Milvus collection of chunk vectors with ACL, version and expiry metadata.

    ``multi_tenant`` adds a ``tenant`` field (a partition key, so a server keeps each
    tenant's rows in their own partitions) and makes every search carry the caller's
    tenant; ``tenant`` is what rows without one get.

    Consistency: the collection is made with ``consistency`` (Strong), and the reads that
    must see what was just written or deleted (``query``, ``get``, ``count``: purge
    verification, recovery, the doctor) ask for Strong explicitly. Searches use
    ``search_consistency`` (Session): they see this process's own writes, and do not wait
    for the server's next time tick otherwise — on milvus-server 2.3 a Strong search costs
    ~200 ms (the 200 ms time tick) against ~3.5 ms for Session at 20k rows. Another
    process's latest deletes can be a few ms late in a Session search; the catalog
    post-check of every hit (retrieval.search) is what keeps them out of results.

    Every call to Milvus has a timeout: ``timeout_s`` for reads and searches,
    ``write_timeout_s`` for writes, flushes, loads, compactions and creating the collection
    (``GOVRAG_MILVUS_TIMEOUT_S`` / ``GOVRAG_MILVUS_WRITE_TIMEOUT_S``); a hung Milvus fails
    a call with :class:`IndexUnavailable` after it.

    ``milvus`` (:class:`MilvusCollection`) makes the calls to Milvus and ``cascade``
    (:class:`SearchCascade`) runs the searches; neither limits anything to a tenant, so
    callers use this class's methods.
    """

    def __init__(
        self,
        uri: str,
        collection: str,
        dim: int = DEFAULT_DIM,
        token: str | None = None,
        *,
        multi_tenant: bool = False,
        tenant: str = "",
        consistency: str = "Strong",
        search_consistency: str = "Session",
        index_type: VectorIndexType = "HNSW",
        nlist: int = IVF_NLIST,
        nprobe: int = IVF_NPROBE,
        search_fanout: int = SEARCH_FANOUT,
        timeout_s: float = READ_TIMEOUT_S,
        write_timeout_s: float = WRITE_TIMEOUT_S,
    ) -> None:
        if index_type not in VECTOR_INDEX_TYPES:
            raise ConfigError(f"unknown vector index type {index_type!r}; one of {', '.join(VECTOR_INDEX_TYPES)}")
        for level in (consistency, search_consistency):
            if level not in CONSISTENCY_LEVELS:
                raise ConfigError(f"unknown consistency level {level!r}; one of {', '.join(CONSISTENCY_LEVELS)}")
        if multi_tenant and tenant:
            try:
                check_tenant(tenant)
            except ValueError as exc:
                raise ConfigError(f"GOVRAG_TENANT is unusable: {exc}") from exc
        self.uri = uri
        self.collection = collection
        self.dim = dim
        self.multi_tenant = multi_tenant
        self.tenant = tenant
        self.consistency = consistency
        self.search_consistency = search_consistency
        self.milvus = MilvusCollection(uri, collection, token, timeout_s=timeout_s, write_timeout_s=write_timeout_s)
        self.server_version = self.milvus.server_version
        self.backend, self.version = self.milvus.backend, self.milvus.version
        self.cascade = SearchCascade(self.milvus, VectorIndexSpec(index_type, nlist, nprobe), search_fanout)
        self.planned = PlannedSearch(self.cascade)
        if self.backend == "lite" and index_type != "HNSW":
            self.close()
            raise ConfigError(
                f"vector index {index_type} needs a Milvus server; Milvus Lite ({self.server_version}) "
                "is used with HNSW",
                hint="unset GOVRAG_MILVUS_INDEX, or point GOVRAG_MILVUS_URI at a Milvus server",
            )
        try:
            self.ensure_collection()
        except BaseException:
            self.close()  # an in-process Milvus Lite file stays locked while a client is open
            raise

    # -- settings read from the collection ------------------------------------------------
    @property
    def index_type(self) -> str:
        """The vector index type searched: the one the collection was made with."""
        return self.cascade.spec.index_type

    @property
    def nlist(self) -> int:
        """IVF clusters per segment (the collection's, when it has an IVF index)."""
        return self.cascade.spec.nlist

    @property
    def nprobe(self) -> int:
        """IVF clusters a search probes before the every-cluster step."""
        return self.cascade.spec.nprobe

    @property
    def search_fanout(self) -> int:
        """At most this many concurrent searches per request."""
        return self.cascade.fanout

    @search_fanout.setter
    def search_fanout(self, value: int) -> None:
        self.cascade.fanout = max(1, int(value))

    @property
    def last_compaction_id(self) -> int | None:
        """The job of the last compaction :meth:`compact` asked for."""
        return self.milvus.last_compaction_id

    # -- the collection -------------------------------------------------------------------
    def ensure_collection(self) -> None:
        """Open the collection, checking it was made with these settings, or create it with
        its vector index and the scalar indexes this backend supports; then load it."""
        self.cascade.spec = self.milvus.prepare(
            self.cascade.spec, dim=self.dim, multi_tenant=self.multi_tenant, consistency=self.consistency
        )

    def wait_until_indexed(self, rows: int, timeout_s: float, poll_s: float = 1.0) -> dict[str, Any]:
        """See :meth:`MilvusCollection.wait_until_indexed`."""
        return self.milvus.wait_until_indexed(rows, timeout_s, poll_s)

    def index_types(self) -> dict[str, str]:
        """Field name -> index type of every index on the collection."""
        return self.milvus.index_types()

    def search_params(self, k: int, ef: int | None = None) -> dict[str, int]:
        """The vector index's search parameters: ``ef`` (HNSW) or ``nprobe`` (IVF)."""
        return self.cascade.spec.search_params(k, ef)

    # -- tenants --------------------------------------------------------------------------
    def with_tenant(self, tenant: str) -> VectorIndex:
        """This index (same connection) writing and maintaining ``tenant``'s rows; closing
        the original closes both."""
        if not self.multi_tenant:
            return self
        try:
            check_tenant(tenant)
        except ValueError as exc:
            raise ConfigError(f"unusable tenant: {exc}") from exc
        view = copy.copy(self)
        view.tenant = tenant
        return view

    def own_rows(self, expr: str) -> str:
        """``expr`` limited to this index's tenant when multi-tenancy is on: every maintenance
        read and delete (purge, sweeps, repair) touches one tenant's rows, never another's."""
        if not self.multi_tenant:
            return expr
        if not self.tenant:
            raise ConfigError(
                "multi-tenancy is on, but GOVRAG_TENANT is empty: maintenance works on one tenant",
                hint="set GOVRAG_TENANT to the tenant to work on",
            )
        return within_tenant(expr, self.tenant)

    # -- writes ---------------------------------------------------------------------------
    def upsert(self, rows: Sequence[VectorRow], batch: int = 2000) -> None:
        """Insert or overwrite rows (primary keys are deterministic, so a retry is harmless).
        With multi-tenancy, rows without a ``tenant`` get this index's ``tenant``."""
        entities = [self._entity(row) for row in rows]
        self.milvus.upsert(entities, partition_key=self.multi_tenant, batch=batch)

    def _entity(self, row: VectorRow) -> dict[str, Any]:
        if not isinstance(row, VectorRow):
            raise TypeError(f"upsert takes VectorRow rows, got {type(row).__name__} (build one with VectorRow(**row))")
        if not self.multi_tenant:
            return row.to_entity()
        tenant = row.tenant or self.tenant
        if not tenant:
            raise ConfigError(
                "multi-tenancy is on, but a row carries no tenant and GOVRAG_TENANT is empty",
                hint="set GOVRAG_TENANT to the tenant this ingest writes",
            )
        try:
            return row.with_tenant(check_tenant(tenant)).to_entity(with_tenant=True)
        except ValueError as exc:
            raise ConfigError(f"unusable tenant: {exc}") from exc

    def delete_ids(self, ids: Sequence[int], batch: int = 5000) -> int:
        """Delete these vectors (of this index's tenant); how many ids were asked."""
        ids = list(ids)
        for i in range(0, len(ids), batch):
            self.milvus.delete(self.own_rows(ids_filter(ids[i : i + batch])), rows=len(ids))
        return len(ids)

    # -- reads ----------------------------------------------------------------------------
    def search(
        self,
        vector: np.ndarray,
        *,
        k: int,
        scope_ids: Sequence[int],
        now_epoch: int,
        ef: int | None = None,
        tenant: str | None = None,
        consistency: str | None = None,
        rows_by_scope: ScopeCounts | Mapping[int, int] | None = None,
    ) -> list[RawHit]:
        """Nearest chunks among those whose scope is allowed and which have not expired
        (and, on a multi-tenant index, of ``tenant``: a caller without one is refused), best
        first. ``rows_by_scope`` (live chunks per scope id, from the catalog; a
        :class:`~governance.vector_index.plan.ScopeCounts` sums them once) lets the search
        choose its plan (:mod:`governance.vector_index.plan`); without it the scope list is
        sent as a filter."""
        return self.search_with_plan(
            vector,
            k=k,
            scope_ids=scope_ids,
            now_epoch=now_epoch,
            ef=ef,
            tenant=tenant,
            consistency=consistency,
            rows_by_scope=rows_by_scope,
        )[0]

    def search_with_plan(
        self,
        vector: np.ndarray,
        *,
        k: int,
        scope_ids: Sequence[int],
        now_epoch: int,
        ef: int | None = None,
        tenant: str | None = None,
        consistency: str | None = None,
        rows_by_scope: ScopeCounts | Mapping[int, int] | None = None,
        force_plan: PlanName | None = None,
        list_ids: ChunkLister | None = None,
    ) -> tuple[list[RawHit], PlanName | None]:
        """:meth:`search`, and the plan that answered (None: no allowed scope, no search).
        ``force_plan`` runs one plan whatever the numbers (benchmarks and the equivalence
        tests); a plan that cannot be sure of its answer still falls back to ``filtered``.
        ``list_ids(scope_ids, limit)``: the primary keys of the live rows of these scopes
        (None: more than ``limit``), from the catalog; with it a narrow reader's rows are read
        by primary key and scored exactly (the listed plan)."""
        if not scope_ids:
            return [], None
        if self.multi_tenant:
            if not tenant:
                raise AccessDenied(
                    "this index is multi-tenant and the caller carries no tenant",
                    hint="give the user a tenant (the `tenant` or `tid` claim)",
                )
            try:
                check_tenant(tenant)
            except ValueError as exc:
                raise AccessDenied(f"unusable tenant: {exc}") from exc
        hits, plan = self.planned.search(
            vector,
            k=k,
            scope_ids=scope_ids,
            now_epoch=now_epoch,
            ef=ef,
            tenant=tenant if self.multi_tenant else None,
            fields=[*OUTPUT_FIELDS, TENANT_FIELD] if self.multi_tenant else OUTPUT_FIELDS,
            consistency=consistency or self.search_consistency,
            rows_by_scope=rows_by_scope,
            force=force_plan,
            list_ids=list_ids,
        )
        if self.multi_tenant:  # defence in depth: the filter already holds the tenant
            hits = [h for h in hits if h.fields.get(TENANT_FIELD) == tenant]
        return hits, plan

    def query(
        self, expr: str, fields: Sequence[str] = ("id",), limit: int = 16384, *, consistency: str = "Strong"
    ) -> list[dict[str, Any]]:
        """Rows of this index's tenant (:meth:`own_rows`) matching an expression built by
        :mod:`governance.vector_index.filters` (Strong by default: a query right after a
        delete must not see the deleted rows)."""
        return self.milvus.query(self.own_rows(expr), fields, limit, consistency_level=consistency)

    def iter_rows(self, fields: Sequence[str], batch_size: int = 2000) -> Iterator[dict[str, Any]]:
        """Every row of this index's tenant (all rows without multi-tenancy) with ``fields``
        (``id`` always), in batches, with pymilvus's query iterator (no 16k offset window)."""
        yield from self.milvus.iter_rows(
            self.own_rows(all_rows_filter()), list(dict.fromkeys(["id", *fields])), batch_size
        )

    def get(
        self, ids: Sequence[int], fields: Sequence[str] = ("id",), *, consistency: str = "Strong"
    ) -> list[dict[str, Any]]:
        """The rows of this index's tenant with these ids."""
        if not ids:
            return []
        own = self.tenant if self.multi_tenant and self.tenant else None
        wanted = list(dict.fromkeys([*fields, TENANT_FIELD])) if own else list(fields)
        rows = self.milvus.get(ids, wanted, consistency_level=consistency)
        return [r for r in rows if r.get(TENANT_FIELD) == own] if own else rows

    def count(self) -> int:
        """Rows in the collection; with multi-tenancy and a tenant set, that tenant's rows."""
        return self.milvus.count(tenant_filter(self.tenant) if self.multi_tenant and self.tenant else "")

    def expired_rows(
        self, now_epoch: int, *, exclude_documents: Sequence[str] = (), limit: int = 16384
    ) -> list[dict[str, Any]] | None:
        """``id`` and ``document_id`` of expired rows (an integer filter the scalar index
        answers), or None when there are more than ``limit`` (the caller must then query by
        document instead)."""
        rows = self.query(expired_filter(now_epoch, exclude_documents), fields=("id", "document_id"), limit=limit)
        return None if len(rows) >= limit else rows

    def ids_of_document(self, document_id: str) -> list[int]:
        """Ids of every vector of a document, by query (not by search)."""
        return [int(r["id"]) for r in self.query(document_filter(document_id), fields=("id",))]

    def ids_of_documents(self, document_ids: Sequence[str], batch: int = 200) -> list[int]:
        """Ids of every vector of these documents, by query, a few queries in all."""
        return [int(r["id"]) for r in self.rows_of_documents(document_ids, ("id",), batch)]

    def rows_of_documents(
        self, document_ids: Sequence[str], fields: Sequence[str], batch: int = 200
    ) -> list[dict[str, Any]]:
        """``id`` and ``fields`` of every vector of these documents, ``batch`` documents a query."""
        out: list[dict[str, Any]] = []
        ids = list(document_ids)
        for i in range(0, len(ids), batch):
            out += self.query(
                documents_filter(ids[i : i + batch]), fields=tuple(dict.fromkeys(["id", *fields])), limit=16384
            )
        return out

    # -- maintenance ----------------------------------------------------------------------
    def flush(self) -> None:
        """Seal what was written so searches use the built vector index. Measured on Milvus
        Lite 3.2.2 (20k rows, 2 cores): ~900 ms per search before a flush, ~60 ms after."""
        self.milvus.flush()

    def compact(self) -> bool:
        """Ask the server to compact, so deleted rows are physically removed; True once the
        server has accepted the request and knows the job (:attr:`last_compaction_id`).
        Milvus Lite's own compaction does nothing (job 0, so False); govrag's Lite servers
        rewrite the data files that hold deleted rows before they answer
        (``governance.milvus_process.lite_compaction``)."""
        return self.milvus.compact()

    def compaction_state(self, job_id: int | None = None) -> str:
        """``Executing`` or ``Completed`` for a compaction job (default: the last one asked)."""
        return self.milvus.compaction_state(job_id)

    def drop(self) -> None:
        """Drop the collection (every tenant's rows)."""
        self.milvus.drop()

    def close(self) -> None:
        """Stop the search threads and close the connection."""
        self.cascade.close()
        self.milvus.close()
