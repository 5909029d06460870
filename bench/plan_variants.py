"""The search plans timed on a loaded collection: for each reader (10, 1,000, 10,000 ...
allowed scopes), ``VectorIndex.search_with_plan`` with each plan forced and with the plan it
chooses, against the unfiltered search with the same output fields; p50/p95, the ratio to
unfiltered, recall@k against an exact numpy search over the same rows and filter, and which
plan answered. Used by bench/search_latency.py (Milvus Lite) and bench/scale_server.py
(milvus-server). Variants are interleaved in rounds so drift on a shared machine hits them
all alike."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np

from bench.machine import percentile
from governance.scope_ids import ScopeIds
from governance.vector_index import OUTPUT_FIELDS, VectorIndex
from governance.vector_index.filters import scope_id_shares
from governance.vector_index.plan import PLANS, ScopeCounts

# A forced plan whose scope list would be longer than this is not timed (a 90,000-id literal
# list costs about a second per search on Milvus 2.3.5: the reason the plans exist).
MAX_FORCED_LIST = 20_000
SINGLE = "filtered, search_fanout 1"


def _exact_top(vectors: np.ndarray, q: np.ndarray, mask: np.ndarray | None, k: int) -> set[int]:
    scores = vectors @ q
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    top = np.argpartition(-scores, k)[:k]
    return {int(i) for i in top if np.isfinite(scores[i])}


def measure_plans(
    ix: VectorIndex,
    *,
    vectors: np.ndarray,
    scopes: np.ndarray,
    expired: np.ndarray,
    total_scopes: int,
    readers: list[int],
    now: int,
    queries: np.ndarray,
    rounds: int,
    recall_queries: int,
    k: int,
    rng: np.random.Generator,
    log: Callable[[str], None],
) -> dict[str, dict[str, Any]]:
    """``{variant: {p50_ms, p95_ms, ratio_p50, mean_hits, recall_at_k, plans}}``; ``vectors``,
    ``scopes``, ``expired``: what the collection holds, row i with primary key i."""
    live = np.bincount(scopes[~expired], minlength=total_scopes)
    # What the catalog counts, summed once (retrieval.search keeps it for 10 s).
    rows_by_scope = ScopeCounts({int(s): int(n) for s, n in enumerate(live) if n})
    params = {"metric_type": "COSINE", "params": ix.search_params(k)}
    variants: dict[str, tuple[str | None, ScopeIds | None]] = {"unfiltered": (None, None)}
    skipped: dict[str, str] = {}
    for n_allowed in readers:
        allowed = ScopeIds(rng.choice(total_scopes, n_allowed, replace=False).tolist())
        excluded = len(rows_by_scope.excluded(allowed))
        for plan in PLANS:
            name = f"{n_allowed} scopes, {plan} (forced)"
            listed = {"filtered": n_allowed, "complement": excluded, "broad": 0, "listed": 0}[plan]
            if listed > MAX_FORCED_LIST:
                skipped[name] = f"its list would hold {listed:,} ids"
                continue
            variants[name] = (plan, allowed)
            if plan == "filtered" and len(scope_id_shares(allowed, ix.search_fanout)) > 1:
                # The same list in one request instead of the fan-out's concurrent shares.
                variants[f"{n_allowed} scopes, filtered, one request (forced)"] = (SINGLE, allowed)
        variants[f"{n_allowed} scopes, chosen"] = ("chosen", allowed)

    used: dict[str, Counter[str]] = {name: Counter() for name in variants}
    requests = _RequestCounter(ix)

    def list_ids(allowed: Any, limit: int) -> list[int] | None:
        # Stands in for the catalog's list (live rows of the allowed scopes), worked out on
        # each call as the catalog's query would be.
        ids = np.flatnonzero(np.isin(scopes, np.asarray(list(allowed))) & ~expired)
        return None if len(ids) > limit else ids.tolist()

    def one(name: str, q: np.ndarray) -> list[int]:
        plan, allowed = variants[name]
        if allowed is None:
            res = ix.milvus.search(
                [q.tolist()],
                filter="",
                limit=k,
                search_params=params,
                output_fields=list(OUTPUT_FIELDS),
                consistency_level="Session",
            )
            return [int(h["id"]) for h in res[0]]
        fanout = ix.search_fanout
        if plan == SINGLE:
            ix.search_fanout = 1
        try:
            hits, answered = ix.search_with_plan(
                q,
                k=k,
                scope_ids=allowed,
                now_epoch=now,
                rows_by_scope=rows_by_scope,
                force_plan=None if plan == "chosen" else "filtered" if plan == SINGLE else plan,  # type: ignore[arg-type]
                list_ids=list_ids,
            )
        finally:
            ix.search_fanout = fanout
        used[name][str(answered)] += 1
        return [h.id for h in hits]

    for q in queries[:10]:  # warm-up
        one("unfiltered", q)
    lat: dict[str, list[float]] = {name: [] for name in variants}
    hits: dict[str, list[int]] = {name: [] for name in variants}
    calls: Counter[str] = Counter()
    for r in range(rounds):
        for name in variants:
            for q in queries:
                before = requests.count
                t = time.perf_counter()
                got = one(name, q)
                lat[name].append((time.perf_counter() - t) * 1000)
                calls[name] += requests.count - before
                hits[name].append(len(got))
        log(f"plan round {r + 1} of {rounds} done")
    base = percentile(lat["unfiltered"], 50)
    timed_plans = {name: dict(c) for name, c in used.items()}  # before the recall searches
    results: dict[str, dict[str, Any]] = {}
    for name, (_plan, allowed) in variants.items():
        # The unfiltered search does not drop expired rows either.
        mask = None if allowed is None else np.isin(scopes, np.asarray(allowed.ids)) & ~expired
        recalls = []
        for q in queries[:recall_queries]:
            truth = _exact_top(vectors, q, mask, k)
            recalls.append(len(set(one(name, q)) & truth) / max(1, len(truth)))
        p50 = percentile(lat[name], 50)
        results[name] = {
            "p50_ms": round(p50, 2),
            "p95_ms": round(percentile(lat[name], 95), 2),
            "ratio_p50": round(p50 / base, 2),
            "mean_hits": round(float(np.mean(hits[name])), 1),
            f"recall_at_{k}": round(float(np.mean(recalls)), 3),
            "matching_rows": int(mask.sum()) if mask is not None else len(scopes),
            "plans": timed_plans[name],
            "milvus_requests_per_search": round(calls[name] / len(lat[name]), 2),
        }
        log(f"{name}: {results[name]}")
    for name, why in skipped.items():
        results[name] = {"skipped": why}
    return results


class _RequestCounter:
    """Counts the searches, queries and reads by primary key ``ix`` sends to Milvus (the
    cascade's extra steps, a fan-out's shares, the broad plan's extra fetches and read-back)."""

    def __init__(self, ix: VectorIndex) -> None:
        self.count = 0
        self._lock = threading.Lock()  # a fan-out's shares are sent from several threads
        for method in ("search", "query", "get"):
            setattr(ix.milvus, method, self._counted(getattr(ix.milvus, method)))

    def _counted(self, call: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.count += 1
            return call(*args, **kwargs)

        return counted
