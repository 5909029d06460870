"""The filtered vector search: a long allowed-scope list fanned out over concurrent searches,
and per filter a cascade of ever more complete searches (index search; for IVF, every
cluster; the exact scan of the matching rows), with a memory of where a filter's cascade
last ended."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from governance.vector_index.client import MilvusCollection
from governance.vector_index.filters import (
    check_int,
    checked_ints,
    checked_search_filter,
    scope_id_shares,
    templated_search_filter,
)
from governance.vector_index.rows import RawHit
from governance.vector_index.schema import OUTPUT_FIELDS, VectorIndexSpec

EXACT_SCAN_LIMIT = 4096
# Milvus 2.3's proxy parses a filter at ~8.5 us per listed id on a 2-core machine (measured
# on an empty collection: 10,000 ids ~87 ms, against ~1.4 ms for no filter;
# docs/benchmarks.md), and parses one request on one core. A user with thousands of allowed
# scopes is therefore served by up to SEARCH_FANOUT concurrent searches, each listing a
# contiguous share (no fewer than FANOUT_MIN_IDS ids) of the allowed scopes, merged by score:
# the same top-k, sooner.
SEARCH_FANOUT = 4
# Where a filter's search cascade (index search, all IVF clusters, exact scan) last ended is
# remembered per allowed-scope list of up to this many ids, for this long, for this many lists.
CASCADE_MEMO_MAX_IDS = 256
CASCADE_MEMO_S = 300.0
CASCADE_MEMO_SIZE = 4096


def ranked(hits: Sequence[RawHit]) -> list[RawHit]:
    """Best first, ties by id: the one order every plan returns."""
    return sorted(hits, key=lambda h: (-h.score, h.id))


def exact_top(vector: np.ndarray, rows: Sequence[dict[str, Any]], k: int, fields: Sequence[str]) -> list[RawHit]:
    """The ``k`` best of ``rows`` (each with its ``id`` and ``vector``) scored here by cosine
    similarity, the metric every collection uses; best first, ties by id."""
    if not rows:
        return []
    q = np.asarray(vector, dtype=np.float32)
    mat = np.asarray([r["vector"] for r in rows], dtype=np.float32)
    scores = mat @ q / (np.linalg.norm(mat, axis=1) * (np.linalg.norm(q) or 1.0) + 1e-12)
    hits = [
        RawHit(id=int(r["id"]), score=float(score), fields={f: r[f] for f in fields if f in r})
        for r, score in zip(rows, scores, strict=True)
    ]
    return ranked(hits)[:k]


class CascadeMemo:
    """Which cascade step a filter's last search ended at, for ``CASCADE_MEMO_S``; the
    least recently remembered filters are forgotten beyond ``CASCADE_MEMO_SIZE``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._steps: OrderedDict[Hashable, tuple[int, float]] = OrderedDict()

    def start(self, key: Hashable | None) -> int:
        """The step to start at (0: the index search)."""
        if key is None:
            return 0
        with self._lock:
            entry = self._steps.get(key)
        return entry[0] if entry is not None and entry[1] > time.monotonic() else 0

    def remember(self, key: Hashable | None, step: int) -> None:
        """Where the search of ``key`` ended (0: forget it)."""
        if key is None:
            return
        with self._lock:
            if step == 0:
                self._steps.pop(key, None)
                return
            self._steps[key] = (step, time.monotonic() + CASCADE_MEMO_S)
            self._steps.move_to_end(key)
            while len(self._steps) > CASCADE_MEMO_SIZE:
                self._steps.popitem(last=False)


class SearchCascade:
    """Filtered searches of one collection. ``fanout``: at most this many concurrent
    searches per request; ``spec``: the vector index searched."""

    def __init__(self, milvus: MilvusCollection, spec: VectorIndexSpec, fanout: int = SEARCH_FANOUT) -> None:
        self.milvus = milvus
        self.spec = spec
        self.fanout = max(1, int(fanout))
        self.memo = CascadeMemo()
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def search(
        self,
        vector: np.ndarray,
        *,
        k: int,
        scope_ids: Sequence[int],
        now_epoch: int,
        tenant: str | None,
        fields: Sequence[str],
        consistency: str,
        ef: int | None = None,
        matching_rows: int | None = None,
        total_rows: int | None = None,
    ) -> list[RawHit]:
        """The ``k`` nearest rows among those of ``scope_ids`` not expired at ``now_epoch``
        (and of ``tenant``, unless None): every share of the scope list must answer (a failed
        share fails the search, never a partial answer); the answers are merged by score.
        ``matching_rows``: the live rows these scopes hold, when known, of ``total_rows`` (they
        set an IVF search's probes and an HNSW search's ``ef``,
        :meth:`VectorIndexSpec.search_params`)."""
        now = check_int(now_epoch, "time")
        if self.milvus.templates_filters:
            # The ids travel as data and are not parsed, so one search, no fan-out.
            ids = checked_ints(scope_ids, "scope id")
            expr, params = templated_search_filter(ids, now, tenant)
            key = (tuple(ids), tenant, k, ef) if len(ids) <= CASCADE_MEMO_MAX_IDS else None
            return self.search_one(
                vector,
                k=k,
                expr=expr,
                params=params,
                fields=fields,
                ef=ef,
                consistency=consistency,
                key=key,
                matching_rows=matching_rows,
                total_rows=total_rows,
            )
        shares = scope_id_shares(scope_ids, self.fanout)
        # Each request's filter lets through about its part of the caller's rows.
        part = None if matching_rows is None else matching_rows // len(shares)

        def one(ids: list[int]) -> list[RawHit]:
            expr = checked_search_filter(ids, now, tenant)
            key = (tuple(ids), tenant, k, ef) if len(ids) <= CASCADE_MEMO_MAX_IDS else None
            return self.search_one(
                vector,
                k=k,
                expr=expr,
                fields=fields,
                ef=ef,
                consistency=consistency,
                key=key,
                matching_rows=part,
                total_rows=total_rows,
            )

        if len(shares) == 1:
            return one(shares[0])
        shares_hits = list(self._executor().map(one, shares))
        return sorted((h for share in shares_hits for h in share), key=lambda h: (-h.score, h.id))[:k]

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.fanout, thread_name_prefix="govrag-search")
            return self._pool

    def search_one(
        self,
        vector: np.ndarray,
        *,
        k: int,
        expr: str,
        fields: Sequence[str],
        ef: int | None,
        consistency: str,
        key: Hashable | None = None,
        params: dict[str, Any] | None = None,
        matching_rows: int | None = None,
        total_rows: int | None = None,
    ) -> list[RawHit]:
        """The cascade for one filter: the index search; for IVF, the same over every cluster;
        then the exact scan of the matching rows. Each step runs only when the one before
        returned fewer than k hits, and is at least as complete. Where the last search of the
        same filter (``key``) had to go down the cascade, this one starts where that one ended
        (for ``CASCADE_MEMO_S``): a user with few readable rows pays one round trip, not three.
        ``params``: the values of a templated ``expr`` (a Milvus >= 2.5 server); ``matching_rows``:
        how many rows ``expr`` lets through, when known, of ``total_rows`` (the index search's
        IVF probes, its HNSW ``ef``).
        """
        first = self.spec.search_params(k, ef, matching_rows, total_rows)
        steps: list[dict[str, int] | None] = [first]
        if not self.spec.probes_every_cluster and first.get("nprobe", 0) < self.spec.nlist:
            # IVF searches only nprobe clusters, so a selective filter leaves too few matching
            # rows in them. Searching every cluster scores only the rows the filter lets
            # through: ~4 ms at 300k rows where the exact scan cost 6-27 ms (measured).
            steps.append({"nprobe": self.spec.nlist})
        # Last: a very selective filter can starve the filtered index walk (Milvus Lite 3.2.2
        # HNSW: 4 of 10 hits with ~95 matching rows in 100k), and a segment not yet indexed is
        # searched through an interim index. When few rows match, scan them exactly, so a user
        # with few scopes never misses a document.
        steps.append(None)
        # A remembered step of a longer cascade (the index search no longer probing every
        # cluster on its own) starts at a step at least as complete.
        step = min(self.memo.start(key), len(steps) - 1)
        hits: list[RawHit] | None = None
        while True:
            search_params = steps[step]
            if search_params is None:
                exact = self.exact_search(
                    vector, k=k, expr=expr, fields=fields, consistency=consistency, filter_params=params
                )
                if exact is None:  # too many rows match to scan them
                    if hits is None:  # started here from memory, and the rows have grown since
                        step = 0
                        continue
                    step -= 1  # the index answer stands; next time, start there
                    break
                hits = exact
            else:
                hits = self.ann_search(
                    vector,
                    k=k,
                    expr=expr,
                    fields=fields,
                    params=search_params,
                    consistency=consistency,
                    filter_params=params,
                )
            if len(hits) >= k or step == len(steps) - 1:
                break
            step += 1
        self.memo.remember(key, step)
        return hits

    def ann_search(
        self,
        vector: np.ndarray,
        *,
        k: int,
        expr: str,
        fields: Sequence[str],
        params: dict[str, int],
        consistency: str,
        filter_params: dict[str, Any] | None = None,
    ) -> list[RawHit]:
        """One filtered search of the vector index with these search parameters."""
        res = self.milvus.search(
            [np.asarray(vector, dtype=np.float32).tolist()],
            filter=expr,
            limit=k,
            output_fields=list(fields),
            search_params={"metric_type": "COSINE", "params": params},
            consistency_level=consistency,
            filter_params=filter_params,
        )
        return [
            RawHit(id=int(h["id"]), score=float(h["distance"]), fields=dict(h.get("entity", {})))
            for h in (res[0] if res else [])
        ]

    def exact_search(
        self,
        vector: np.ndarray,
        *,
        k: int,
        expr: str,
        fields: Sequence[str] = tuple(OUTPUT_FIELDS),
        consistency: str = "Strong",
        filter_params: dict[str, Any] | None = None,
    ) -> list[RawHit] | None:
        """The ``k`` best of the rows ``expr`` matches, scored here; None when more than
        ``EXACT_SCAN_LIMIT`` match (not selective: the index answer stands)."""
        # The search's own consistency level: a Strong query costs a server's 200 ms time
        # tick (~400 ms measured on 2.3.5), a Session one a few ms.
        # The search filter already names the caller's tenant (not necessarily this index's).
        rows = self.milvus.query(
            expr, ("vector", *fields), EXACT_SCAN_LIMIT, consistency_level=consistency, filter_params=filter_params
        )
        if len(rows) >= EXACT_SCAN_LIMIT:
            return None
        return exact_top(vector, rows, k, fields)

    def close(self) -> None:
        """Stop the fan-out threads (waiting for searches in flight)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
