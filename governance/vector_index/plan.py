"""The search plan: how a search's scope check reaches Milvus, chosen per call.

A filtered search sends the caller's allowed scope ids as ``scope_id in [...]``. Milvus 2.3's
proxy parses such a list at ~5-13 us per id on one core whatever the data, so a caller with
thousands of scopes paid ~100 ms per search at 1M chunks (docs/benchmarks.md). Three plans
answer the same question; every other part of the filter (expiry, tenant) stays in Milvus in
all of them, and the caller's post-check (retrieval.search) is unchanged:

- ``filtered``: ``scope_id in [allowed]`` with the search cascade (index search; every IVF
  cluster; the exact scan of the matching rows) — what narrow readers get, and the fallback
  of the other two plans.
- ``complement``: ``scope_id not in [excluded]``, where *excluded* are the scopes the catalog
  knows to hold live chunks that the caller may not read, when that list is the shorter one.
- ``broad``: no scope list at all. Candidates come from the index with only the expiry/tenant
  filter; each is checked here against the allowed set (a candidate without a readable
  ``scope_id`` counts as not allowed: fail closed), and more are fetched until ``k`` allowed
  hits are certain. For readers of a large share of the collection.

Exactness (same rows as the filtered plan, same order). Write S for the rows the filter
without the scope list matches and A ⊆ S for those of allowed scopes; results are ordered by
score, best first, then by id. Assume the index search is exact (it is on small collections,
and the equivalence tests check it there); with an approximate index every plan is as
approximate as the index, and the benchmark measures recall against an exact scan.

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
- complement: the rows it matches are A plus rows of scopes the catalog does not list (none,
  unless the catalog and Milvus disagree). Its k+1 best are checked: if all of them are in A
  and the (k+1)-th does not tie the k-th, the first k are A's k best (fewer than k: A has no
  more); any hit outside A, or a tie at the boundary, and the search is redone with the
  filtered plan.

The choice uses numbers the catalog already keeps for the audit (live chunks per scope):
short lists stay filtered (cheap to parse); the complement when it is shorter than the
allowed list; broad when the caller's share of the live chunks is large enough that the
first fetch (``k / share × BROAD_MARGIN``) stays within ``BROAD_CHOSEN_LIMIT``; filtered
otherwise. On a server that takes filter templates (Milvus >= 2.5) the list is sent as data,
not parsed, and the filtered plan is kept (unmeasured: no such server ran these benchmarks).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

PlanName = Literal["filtered", "complement", "broad"]
PLANS: tuple[PlanName, ...] = ("filtered", "complement", "broad")

# Lists up to this many ids cost little to parse (~2 ms at 10 ids, 1M chunks, Milvus 2.3.5):
# they stay filtered, which is also the plan that finds every row of a narrow reader.
SHORT_LIST_IDS = 256
# The broad plan's first fetch is k / share × BROAD_MARGIN candidates, and it never asks for
# more than BROAD_MAX_LIMIT (Milvus's own ceiling is 16,384): past that the filtered plan runs.
BROAD_MARGIN = 2.0
BROAD_MAX_LIMIT = 4096
# The broad plan is chosen only when its first fetch is at most this many candidates: a
# 2,000-candidate search cost about as much as the filtered search of a 1,000-id list at 1M
# chunks on milvus-server 2.3.5 (docs/benchmarks.md).
BROAD_CHOSEN_LIMIT = 1024
# Up to this many candidates the broad plan asks for every output field with them (one round
# trip); past it, only their scope ids, and the k chosen rows are read back by primary key.
BROAD_INLINE_FIELDS = 256


class ScopeCounts:
    """Live chunks per scope id (from the catalog), with the totals a plan choice needs
    computed once: summing 100,000 counts on every search cost ~20 ms on 2 loaded cores."""

    def __init__(self, rows_by_scope: Mapping[int, int]) -> None:
        self.rows = rows_by_scope
        self.total = sum(rows_by_scope.values())
        self.nonempty = frozenset(s for s, n in rows_by_scope.items() if n > 0)

    @classmethod
    def of(cls, counts: ScopeCounts | Mapping[int, int] | None) -> ScopeCounts | None:
        """``counts`` as a ScopeCounts (a mapping is summed here: pass a ScopeCounts that lives
        as long as the counts do to sum them once)."""
        return counts if isinstance(counts, ScopeCounts) or counts is None else cls(counts)


@dataclass(frozen=True)
class PlanChoice:
    """A plan and what it needs: ``excluded`` (the complement's list, sorted) and
    ``first_limit`` (the broad plan's first fetch)."""

    plan: PlanName
    excluded: tuple[int, ...] = ()
    first_limit: int = 0


def broad_first_limit(k: int, share: float) -> int:
    """How many candidates the broad plan fetches first for ``k`` hits at this allowed share."""
    if share <= 0:
        return BROAD_MAX_LIMIT + 1
    return max(k + 1, math.ceil(k / share * BROAD_MARGIN))


def choose_plan(
    allowed: Collection[int],
    rows_by_scope: ScopeCounts | Mapping[int, int] | None,
    k: int,
    *,
    templated: bool = False,
    force: PlanName | None = None,
) -> PlanChoice:
    """The plan for a caller reading ``allowed`` scope ids (checked, distinct) among
    ``rows_by_scope`` (live chunks per scope id, from the catalog; None: unknown, so
    filtered). ``force`` picks a plan whatever the numbers (benchmarks, equivalence tests)."""
    if force is not None and force not in PLANS:
        raise ValueError(f"unknown search plan {force!r}; one of {', '.join(PLANS)}")
    census = ScopeCounts.of(rows_by_scope)
    if census is None or (force is None and len(allowed) <= SHORT_LIST_IDS) or force == "filtered":
        return PlanChoice("filtered")
    counts = census.rows
    allowed_set = allowed if isinstance(allowed, (set, frozenset)) else set(allowed)
    # O(allowed), in C: this runs on every search.
    readable_counts = list(filter(None, map(counts.get, allowed_set)))
    share = sum(readable_counts) / census.total if census.total else 0.0

    def excluded() -> tuple[int, ...]:
        return tuple(sorted(census.nonempty.difference(allowed_set)))

    if force == "complement":
        return PlanChoice("complement", excluded())
    if force == "broad":
        return PlanChoice("broad", first_limit=min(broad_first_limit(k, share), BROAD_MAX_LIMIT))
    if len(census.nonempty) - len(readable_counts) < len(allowed_set):  # the complement's length
        return PlanChoice("complement", excluded())
    if templated:
        return PlanChoice("filtered")
    first = broad_first_limit(k, share)
    if first <= BROAD_CHOSEN_LIMIT:
        return PlanChoice("broad", first_limit=first)
    return PlanChoice("filtered")


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
