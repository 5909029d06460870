"""The search plan: how a search's scope check reaches Milvus, chosen per call.

A filtered search sends the caller's allowed scope ids as ``scope_id in [...]``. Milvus 2.3's
proxy parses such a list at ~5-13 us per id on one core whatever the data, so a caller with
thousands of scopes paid ~100 ms per search at 1M chunks (docs/benchmarks.md). Four plans
answer the same question; every other part of the filter (expiry, tenant) is checked in all
of them, and the caller's post-check (retrieval.search) is unchanged:

- ``filtered``: ``scope_id in [allowed]`` with the search cascade (index search; every IVF
  cluster; the exact scan of the matching rows) — what narrow readers get, and the fallback
  of the other two plans.
- ``complement``: ``scope_id not in [excluded]``, where *excluded* are the scopes the catalog
  knows to hold live chunks that the caller may not read, when that list is the shorter one.
- ``broad``: no scope list at all. Candidates come from the index with only the expiry/tenant
  filter; each is checked here against the allowed set (a candidate without a readable
  ``scope_id`` counts as not allowed: fail closed), and more are fetched until ``k`` allowed
  hits are certain. For readers of a large share of the collection.
- ``listed``: no vector index at all. The catalog lists the primary keys of the caller's
  searchable chunks (at most ``LISTED_MAX_ROWS``); their rows are read by primary key, each
  checked here (scope allowed, not expired, the tenant: fail closed) and scored exactly. For
  narrow readers on Milvus Lite: a filtered HNSW walk through a graph where almost no node
  matches misses rows (Milvus Lite 3.2.2: 1 of 4 matching rows found with ef 4,096), and the
  exact scan by filter that then answers costs a full scan there (~165 ms at 100k rows
  whatever the filter), where reading 100 rows by primary key costs ~10 ms. (A Milvus
  server's filtered search is cheaper than its reads by primary key: not chosen there.)

Exactness (same rows as the filtered plan, same order). Write S for the rows the filter
without the scope list matches and A ⊆ S for those of allowed scopes; results are ordered by
score, best first, then by id. Assume the index search is exact (it is on small collections,
and the equivalence tests check it there); with an approximate index every plan is as
approximate as the index, and the benchmark measures recall against an exact scan. On IVF the
filtered plan probes as many clusters as hold ~300 × k of the caller's live chunks
(:meth:`VectorIndexSpec.search_params`): every cluster, an exact search of the matching rows,
for a caller with few.

- broad: a search of S with limit L returns S's L best rows. If at least ``k`` of them are in
  A and the k-th of those scores *strictly* better than the L-th candidate, every row of S
  that was not returned scores at most the L-th candidate's score, so strictly below the k-th
  allowed hit: none of them can enter A's top k, and no tie at the boundary can reorder it.
  If the search returned fewer than L rows, it returned all of S, and A's best k (at least k
  of them) are simply the best k allowed candidates. Otherwise L grows (from the allowed
  share seen so far) up to ``BROAD_MAX_LIMIT``; past it,
  or with fewer than ``k`` allowed rows in sight, the search is redone with the filtered plan.
  Up to ``BROAD_INLINE_FIELDS`` candidates come with all their fields; past that only with
  their scope ids, and the k hits' fields are then read by primary key and checked again
  (scope allowed, not expired, the tenant): a row changed or deleted in between is dropped,
  never returned.
- listed: it scores exactly the listed rows that pass the same checks the filter makes. When
  the list holds every row of the allowed scopes, that is A, and its k best by (score, id) are
  the filtered plan's answer. The catalog lists the current versions of active, unexpired
  documents: rows Milvus holds beyond that (a version staged but not yet published, one
  replaced and owed a delete) are left out, and they are exactly the rows the post-check
  would drop from any plan's answer. More rows than the limit (the counts are up to seconds
  old), or no catalog to ask, and the filtered plan answers.
- complement: the rows it matches are A plus rows of scopes the catalog does not list (none,
  unless the catalog and Milvus disagree). Its k+1 best are checked: if all of them are in A
  and the (k+1)-th does not tie the k-th, the first k are A's k best (fewer than k: A has no
  more); any hit outside A, or a tie at the boundary, and the search is redone with the
  filtered plan.

The choice uses numbers the catalog already keeps for the audit (live chunks per scope):
short lists stay filtered (cheap to parse, and the filtered cascade finds every row of a
narrow reader); otherwise the plan with the lowest estimated cost (:func:`plan_costs`): the
ids a list makes Milvus parse (filtered, complement) against the candidates the broad plan's
first fetch (``k / share × BROAD_MARGIN``) brings back. On a server that takes filter
templates (Milvus >= 2.5) the list is sent as data, not parsed: the complement when it is the
shorter list, else the filtered plan (unmeasured: no such server ran these benchmarks).

What a choice derives from the caller's allowed scopes (their share of the live chunks, the
complement's list) is kept per :class:`~governance.scope_ids.ScopeIds` object by the
:class:`ScopeCounts` it came from: the same caller's next search, against the same counts,
does no work proportional to their scopes.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from weakref import WeakKeyDictionary

from governance.scope_ids import ScopeIds

PlanName = Literal["filtered", "complement", "broad", "listed"]
PLANS: tuple[PlanName, ...] = ("filtered", "complement", "broad", "listed")

# A caller with at most this many live chunks gets the listed plan (when the catalog can list
# them): reading them by primary key cost ~10 ms for 100 rows and ~118 ms for 945 on Milvus
# Lite 3.2.2 at 100k rows, against ~43 ms for an unfiltered search (docs/benchmarks.md).
LISTED_MAX_ROWS = 256
# Lists up to this many ids cost little to parse (~2 ms at 10 ids, 1M chunks, Milvus 2.3.5):
# they stay filtered, which is also the plan that finds every row of a narrow reader.
SHORT_LIST_IDS = 256
# The broad plan's first fetch is k / share × BROAD_MARGIN candidates, and it never asks for
# more than BROAD_MAX_LIMIT (Milvus's own ceiling is 16,384): past that the filtered plan runs.
BROAD_MARGIN = 2.0
BROAD_MAX_LIMIT = 4096
# Estimated costs of a search's parts in microseconds, to compare plans (not to predict a
# latency), measured on milvus-server 2.3.5 at 1M chunks on 2 cores (docs/benchmarks.md):
# Milvus parses a literal id list at ~8.5 us per id (10,000 ids ~87 ms on an empty
# collection); a broad candidate fetched with every output field (a 200-character text)
# added ~25 us (200 candidates: 13.2 ms against 8.1 ms for an unfiltered top 10), one with
# its scope id only ~6 us, and reading k hits back by primary key ~2 ms.
LIST_ID_US = 8.5
CANDIDATE_INLINE_US = 25.0
CANDIDATE_SCOPE_ONLY_US = 6.0
READ_BACK_US = 2000.0
# Up to this many candidates the broad plan asks for every output field with them (one round
# trip); past it, only their scope ids, and the k chosen rows are read back by primary key.
BROAD_INLINE_FIELDS = 256


@dataclass(frozen=True)
class Readable:
    """A caller's part of the live chunks: ``rows`` chunks in ``scopes`` allowed scopes."""

    rows: int
    scopes: int


class ScopeCounts:
    """Live chunks per scope id (from the catalog), with the totals a plan choice needs
    computed once: summing 100,000 counts on every search cost ~20 ms on 2 loaded cores.

    What is derived from a caller's :class:`~governance.scope_ids.ScopeIds` (:meth:`readable`,
    :meth:`excluded`) is kept per ScopeIds object for as long as both live: the counts are
    immutable once made (a retriever makes new ones when they are too old), and so is a
    ScopeIds. Other collections of ids are worked out on every call."""

    def __init__(self, rows_by_scope: Mapping[int, int]) -> None:
        self.rows = rows_by_scope
        self.total = sum(rows_by_scope.values())
        self.nonempty = frozenset(s for s, n in rows_by_scope.items() if n > 0)
        self._lock = threading.Lock()
        self._readable: WeakKeyDictionary[ScopeIds, Readable] = WeakKeyDictionary()
        self._excluded: WeakKeyDictionary[ScopeIds, tuple[int, ...]] = WeakKeyDictionary()

    @classmethod
    def of(cls, counts: ScopeCounts | Mapping[int, int] | None) -> ScopeCounts | None:
        """``counts`` as a ScopeCounts (a mapping is summed here: pass a ScopeCounts that lives
        as long as the counts do to sum them once)."""
        return counts if isinstance(counts, ScopeCounts) or counts is None else cls(counts)

    def readable(self, allowed: Collection[int]) -> Readable:
        """The live chunks, and the scopes holding them, among ``allowed`` scope ids."""
        if isinstance(allowed, ScopeIds):
            with self._lock:
                known = self._readable.get(allowed)
            if known is not None:
                return known
        # The intersection walks the smaller of the two sets, in C.
        held = self.nonempty.intersection(_as_set(allowed))
        found = Readable(sum(map(self.rows.__getitem__, held)), len(held))
        if isinstance(allowed, ScopeIds):
            with self._lock:
                self._readable[allowed] = found
        return found

    def excluded(self, allowed: Collection[int]) -> tuple[int, ...]:
        """The scopes holding live chunks that are not among ``allowed``, ascending: the
        complement plan's list."""
        if isinstance(allowed, ScopeIds):
            with self._lock:
                known = self._excluded.get(allowed)
            if known is not None:
                return known
        found = tuple(sorted(self.nonempty.difference(_as_set(allowed))))
        if isinstance(allowed, ScopeIds):
            with self._lock:
                self._excluded[allowed] = found
        return found


def _as_set(ids: Collection[int]) -> frozenset[int] | set[int] | Collection[int]:
    if isinstance(ids, ScopeIds):
        return ids.set
    return ids if isinstance(ids, (set, frozenset)) else set(ids)


@dataclass(frozen=True)
class PlanChoice:
    """A plan and what it needs: ``excluded`` (the complement's list, sorted),
    ``first_limit`` (the broad plan's first fetch), ``readable_rows`` (the caller's live
    chunks; None without counts) and ``total_rows`` (every scope's live chunks), which set
    the filtered search's IVF probes and HNSW ``ef``."""

    plan: PlanName
    excluded: tuple[int, ...] = ()
    first_limit: int = 0
    readable_rows: int | None = None
    total_rows: int | None = None


def broad_first_limit(k: int, share: float) -> int:
    """How many candidates the broad plan fetches first for ``k`` hits at this allowed share."""
    if share <= 0:
        return BROAD_MAX_LIMIT + 1
    return max(k + 1, math.ceil(k / share * BROAD_MARGIN))


def broad_cost_us(first_limit: int) -> float:
    """The estimated cost of the broad plan's first fetch of ``first_limit`` candidates."""
    if first_limit <= BROAD_INLINE_FIELDS:
        return first_limit * CANDIDATE_INLINE_US
    return first_limit * CANDIDATE_SCOPE_ONLY_US + READ_BACK_US


def plan_costs(allowed_ids: int, excluded_ids: int, first_limit: int) -> dict[PlanName, float]:
    """Estimated cost of each plan that may be chosen (microseconds, to compare them): a
    list's parse for the filtered plan (``allowed_ids``) and the complement
    (``excluded_ids``), the first fetch for the broad plan unless it would exceed
    ``BROAD_MAX_LIMIT`` candidates. Everything the plans share (the vector search itself,
    the expiry filter, k rows' fields) is left out."""
    costs: dict[PlanName, float] = {
        "filtered": allowed_ids * LIST_ID_US,
        "complement": excluded_ids * LIST_ID_US,
    }
    if first_limit <= BROAD_MAX_LIMIT:
        costs["broad"] = broad_cost_us(first_limit)
    return costs


def choose_plan(
    allowed: Collection[int],
    rows_by_scope: ScopeCounts | Mapping[int, int] | None,
    k: int,
    *,
    templated: bool = False,
    listable: bool = False,
    force: PlanName | None = None,
) -> PlanChoice:
    """The plan for a caller reading ``allowed`` scope ids (checked, distinct; a
    :class:`~governance.scope_ids.ScopeIds` lets the counts remember what is derived from it)
    among ``rows_by_scope`` (live chunks per scope id, from the catalog; None: unknown, so
    filtered). ``listable``: the caller's chunk ids can be listed (the listed plan, for a
    reader of at most ``LISTED_MAX_ROWS`` live chunks). ``force`` picks a plan whatever the
    numbers (benchmarks, equivalence tests). Ties go to the filtered plan, then the
    complement: the plans that fall back least."""
    if force is not None and force not in PLANS:
        raise ValueError(f"unknown search plan {force!r}; one of {', '.join(PLANS)}")
    census = ScopeCounts.of(rows_by_scope)
    if census is None:
        return PlanChoice("filtered")
    readable = census.readable(allowed)  # O(1) for a ScopeIds seen before, O(min(lengths)) else
    share = readable.rows / census.total if census.total else 0.0

    def choice(plan: PlanName, **needs: Any) -> PlanChoice:
        return PlanChoice(plan, readable_rows=readable.rows, total_rows=census.total, **needs)

    if force == "listed" or (force is None and listable and readable.rows <= LISTED_MAX_ROWS):
        return choice("listed")
    if (force is None and len(allowed) <= SHORT_LIST_IDS) or force == "filtered":
        return choice("filtered")
    if force == "complement":
        return choice("complement", excluded=census.excluded(allowed))
    if force == "broad":
        return choice("broad", first_limit=min(broad_first_limit(k, share), BROAD_MAX_LIMIT))
    excluded_ids = len(census.nonempty) - readable.scopes  # the complement's length, not built yet
    if templated:
        return (
            choice("complement", excluded=census.excluded(allowed))
            if excluded_ids < len(allowed)
            else choice("filtered")
        )
    first = broad_first_limit(k, share)
    costs = plan_costs(len(allowed), excluded_ids, first)
    best = min(costs, key=costs.__getitem__)  # dicts keep their order: filtered, complement, broad
    if best == "complement":
        return choice("complement", excluded=census.excluded(allowed))
    if best == "broad":
        return choice("broad", first_limit=first)
    return choice("filtered")


def next_broad_limit(limit: int, allowed_seen: int, k: int) -> int:
    """The broad plan's next fetch after ``limit`` candidates held ``allowed_seen`` allowed
    ones: enough for ``k`` at the share seen (with the margin), at least double."""
    if allowed_seen <= 0:
        return limit * 4
    return max(limit * 2, math.ceil(limit * k / allowed_seen * BROAD_MARGIN))


def first_k_certain(scores_allowed: Sequence[float], last_candidate_score: float, k: int, *, exhausted: bool) -> bool:
    """Whether the ``k`` best allowed candidates are the k best allowed rows: at least k of
    them, and either the search returned fewer candidates than asked (``exhausted``: every
    matching row was seen) or the k-th scores strictly better than the last candidate fetched
    (so no row left unfetched can reach or tie it)."""
    return len(scores_allowed) >= k and (exhausted or scores_allowed[k - 1] > last_candidate_score)
