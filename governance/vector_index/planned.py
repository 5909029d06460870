"""Running a search plan (:mod:`governance.vector_index.plan` says which and why each is
exact): the filtered plan is the cascade's search; the complement, broad and listed plans
check every hit against the allowed scopes here and fall back to the filtered plan whenever
they cannot be sure of returning exactly what it would."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from governance.scope_ids import ScopeIds
from governance.vector_index import plan
from governance.vector_index.cascade import SearchCascade, exact_top, ranked
from governance.vector_index.filters import (
    check_int,
    checked_id_set,
    checked_ints,
    complement_search_filter,
    templated_search_filter,
    unscoped_search_filter,
)
from governance.vector_index.plan import (
    PlanName,
    ScopeCounts,
    choose_plan,
    first_k_certain,
    next_broad_limit,
)
from governance.vector_index.rows import RawHit
from governance.vector_index.schema import TENANT_FIELD


@dataclass(frozen=True)
class _Query:
    """One search's checked inputs, as every plan uses them."""

    vector: np.ndarray
    k: int
    now: int
    tenant: str | None
    fields: Sequence[str]
    consistency: str
    ef: int | None


# A catalog's answer to "which chunk ids do these scopes hold" (at most ``limit`` of them;
# None: more than that): what the listed plan reads by primary key.
ChunkLister = Callable[[Collection[int], int], Sequence[int] | None]
# The listed plan reads rows by primary key in requests of at most this many ids.
GET_BATCH = 1024


def _scope_of(fields: Mapping[str, Any]) -> int | None:
    value = fields.get("scope_id")
    try:
        return check_int(value, "scope id")
    except (TypeError, ValueError):
        return None  # unreadable: treated as a scope nobody may read


class PlannedSearch:
    """Searches of one collection by plan, over a :class:`SearchCascade`."""

    def __init__(self, cascade: SearchCascade) -> None:
        self.cascade = cascade

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
        rows_by_scope: ScopeCounts | Mapping[int, int] | None = None,
        force: PlanName | None = None,
        list_ids: ChunkLister | None = None,
    ) -> tuple[list[RawHit], PlanName]:
        """The ``k`` nearest rows of ``scope_ids`` not expired at ``now_epoch`` (and of
        ``tenant``, unless None), best first, and the plan that produced them (``filtered``
        when another plan fell back to it). ``scope_ids`` as a
        :class:`~governance.scope_ids.ScopeIds` (what the scope resolver hands out) is
        checked once, when made, and its plan numbers are kept with ``rows_by_scope``.
        ``list_ids``: the catalog's list of the caller's chunk ids, for the listed plan."""
        allowed = ScopeIds.of(scope_ids)
        allowed_set = checked_id_set(allowed, "scope id")  # the filter's size limit
        now = check_int(now_epoch, "time")
        choice = choose_plan(
            allowed,
            rows_by_scope,
            k,
            templated=self.cascade.milvus.templates_filters,
            # Reading rows by primary key pays on Milvus Lite only (docs/milvus.md).
            listable=list_ids is not None and self.cascade.milvus.scans_filters_in_python,
            force=force,
        )
        q = _Query(vector, k, now, tenant, fields, consistency, ef)
        if choice.plan == "listed":
            listed = list_ids(allowed, plan.LISTED_MAX_ROWS) if list_ids is not None else None
            if listed is not None:
                return self._listed(q, allowed_set, checked_ints(listed, "chunk id")), "listed"
        elif choice.plan == "complement":
            hits = self._complement(q, allowed_set, checked_ints(choice.excluded, "scope id"))
            if hits is not None:
                return hits, "complement"
        elif choice.plan == "broad":
            hits = self._broad(q, allowed_set, choice.first_limit)
            if hits is not None:
                return hits, "broad"
        # A fallback too probes IVF clusters (HNSW: sets ef) by the caller's live chunks.
        return self._filtered(q, allowed, choice.readable_rows, choice.total_rows), "filtered"

    def _filtered(
        self, q: _Query, allowed: Sequence[int], readable_rows: int | None, total_rows: int | None
    ) -> list[RawHit]:
        return ranked(
            self.cascade.search(
                q.vector,
                k=q.k,
                scope_ids=allowed,
                now_epoch=q.now,
                tenant=q.tenant,
                fields=q.fields,
                consistency=q.consistency,
                ef=q.ef,
                matching_rows=readable_rows,
                total_rows=total_rows,
            )
        )

    def _complement(self, q: _Query, allowed: frozenset[int], excluded: Sequence[int]) -> list[RawHit] | None:
        """The complement plan's hits, or None where only the filtered plan can be sure."""
        params: dict[str, Any] | None = None
        if self.cascade.milvus.templates_filters:
            expr, params = templated_search_filter(excluded, q.now, q.tenant, exclude=True)
        else:
            expr = complement_search_filter(excluded, q.now, q.tenant)
        # One more than k: a tie between the k-th and the next would make the cut arbitrary.
        k = q.k
        hits = ranked(
            self.cascade.search_one(
                q.vector, k=k + 1, expr=expr, params=params, fields=q.fields, ef=q.ef, consistency=q.consistency
            )
        )
        if any(_scope_of(h.fields) not in allowed for h in hits):
            return None  # a scope the catalog did not list: the filtered plan decides
        if len(hits) > k and hits[k].score == hits[k - 1].score:
            return None
        return hits[:k]

    def _broad(self, q: _Query, allowed: frozenset[int], first_limit: int) -> list[RawHit] | None:
        """The broad plan's hits, or None where only the filtered plan can be sure."""
        expr = unscoped_search_filter(q.now, q.tenant)
        limit = max(q.k + 1, first_limit)
        while True:
            inline = limit <= plan.BROAD_INLINE_FIELDS
            probe_fields = list(q.fields) if inline else ["scope_id", *([TENANT_FIELD] if q.tenant else [])]
            params = self.cascade.spec.search_params(q.k, q.ef)
            if "ef" in params:  # HNSW returns at most ef rows
                params = {**params, "ef": max(params["ef"], limit)}
            candidates = ranked(
                self.cascade.ann_search(
                    q.vector, k=limit, expr=expr, fields=probe_fields, params=params, consistency=q.consistency
                )
            )
            chosen = [
                h
                for h in candidates
                if _scope_of(h.fields) in allowed and (q.tenant is None or h.fields.get(TENANT_FIELD) == q.tenant)
            ]
            exhausted = len(candidates) < limit
            last = candidates[-1].score if candidates else float("inf")
            if first_k_certain([h.score for h in chosen], last, q.k, exhausted=exhausted):
                return chosen[: q.k] if inline else self._read_back(q, chosen[: q.k], allowed)
            if exhausted or limit >= plan.BROAD_MAX_LIMIT:
                return None
            limit = min(plan.BROAD_MAX_LIMIT, next_broad_limit(limit, len(chosen), q.k))

    def _listed(self, q: _Query, allowed: frozenset[int], ids: Sequence[int]) -> list[RawHit]:
        """The listed plan's hits: the listed rows read by primary key, those the filter would
        let through kept (scope allowed, not expired, the tenant; a row missing or unreadable
        is dropped), scored exactly, the k best by score then id."""
        wanted = list(dict.fromkeys(["id", "vector", "scope_id", "expires_at", *q.fields]))
        rows = [
            row
            for i in range(0, len(ids), GET_BATCH)
            for row in self.cascade.milvus.get(list(ids[i : i + GET_BATCH]), wanted, consistency_level=q.consistency)
            if _passes_filter(row, allowed, q)
        ]
        return exact_top(q.vector, rows, q.k, q.fields)

    def _read_back(self, q: _Query, hits: list[RawHit], allowed: frozenset[int]) -> list[RawHit]:
        """The chosen hits with their fields, read by primary key and checked again: a row
        deleted, re-scoped, expired or moved to another tenant since the search is dropped."""
        wanted = list(dict.fromkeys(["id", "scope_id", "expires_at", *q.fields]))
        got = self.cascade.milvus.get([h.id for h in hits], wanted, consistency_level=q.consistency)
        rows = {int(r["id"]): r for r in got}
        return [
            RawHit(id=h.id, score=h.score, fields={f: row[f] for f in q.fields if f in row})
            for h in hits
            if (row := rows.get(h.id)) is not None and _passes_filter(row, allowed, q)
        ]


def _passes_filter(row: Mapping[str, Any], allowed: frozenset[int], q: _Query) -> bool:
    """Whether a row read by primary key is one the search filter would let through: its
    scope allowed, not expired, the caller's tenant. Anything unreadable fails (closed)."""
    if _scope_of(row) not in allowed:
        return False
    try:
        if check_int(row.get("expires_at"), "time") <= q.now:
            return False
    except (TypeError, ValueError):
        return False
    return q.tenant is None or row.get(TENANT_FIELD) == q.tenant
