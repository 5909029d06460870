"""Choosing a search plan from the catalog's counts, the broad plan's stopping rule, and the
templated filter a Milvus >= 2.5 server is sent (checked on a fake client for the request
alone: no such server runs here). That every plan returns what the filtered search returns
is tests/integration/test_search_plans.py."""

from __future__ import annotations

import gc
import weakref
from typing import Any

import numpy as np
import pytest

from governance.scope_ids import ScopeIds
from governance.vector_index.cascade import SearchCascade
from governance.vector_index.client import MilvusCollection, parse_version
from governance.vector_index.filters import checked_id_set
from governance.vector_index.plan import (
    BROAD_MAX_LIMIT,
    LISTED_MAX_ROWS,
    SHORT_LIST_IDS,
    ScopeCounts,
    choose_plan,
    first_k_certain,
    next_broad_limit,
    plan_costs,
)
from governance.vector_index.planned import PlannedSearch
from governance.vector_index.schema import HNSW_MAX_FILTERED_EF, VectorIndexSpec

SCOPES = 10_000
ONE_ROW_EACH = dict.fromkeys(range(SCOPES), 1)


def test_no_counts_keeps_the_filtered_plan():
    assert choose_plan(set(range(5000)), None, 10).plan == "filtered"


def test_a_short_scope_list_keeps_the_filtered_plan():
    assert choose_plan(set(range(SHORT_LIST_IDS)), ONE_ROW_EACH, 10).plan == "filtered"


def test_a_reader_of_nearly_everything_gets_the_complement_when_its_list_costs_less_than_the_broad_fetch():
    # k 100: the broad plan would fetch 203 candidates with their fields; 100 excluded ids parse sooner.
    choice = choose_plan(set(range(100, SCOPES)), ONE_ROW_EACH, 100)
    assert choice.plan == "complement"
    assert choice.excluded == tuple(range(100))


def test_a_reader_of_nearly_everything_gets_the_broad_plan_when_its_fetch_costs_less_than_the_complement():
    # k 10: 21 candidates, against parsing 100 excluded ids.
    choice = choose_plan(set(range(100, SCOPES)), ONE_ROW_EACH, 10)
    assert choice.plan == "broad"
    assert choice.first_limit == 21


def test_the_complement_leaves_out_scopes_without_live_chunks():
    counts = {**ONE_ROW_EACH, 5: 0}
    assert 5 not in choose_plan(set(range(10, SCOPES)), counts, 10, force="complement").excluded


def test_the_plan_costs_weigh_parsed_ids_against_broad_candidates():
    assert plan_costs(1000, 90_000, 2000)["filtered"] < plan_costs(1000, 90_000, 2000)["broad"]
    assert plan_costs(10_000, 90_000, 200)["broad"] < plan_costs(10_000, 90_000, 200)["filtered"]
    assert "broad" not in plan_costs(10, 99_990, BROAD_MAX_LIMIT + 1)


def test_a_reader_of_a_large_share_gets_the_broad_plan_with_a_first_fetch_for_k():
    choice = choose_plan(set(range(1000)), ONE_ROW_EACH, 10)  # 10 % of the chunks
    assert choice.plan == "broad"
    assert choice.first_limit == 200  # k / share x margin 2


def test_a_long_list_over_a_small_share_stays_filtered():
    counts = {**ONE_ROW_EACH, SCOPES: 10_000_000}  # one huge scope the reader cannot read
    assert choose_plan(set(range(1000)), counts, 10).plan == "filtered"


def test_a_server_that_templates_filters_keeps_the_filtered_plan_for_broad_readers():
    assert choose_plan(set(range(1000)), ONE_ROW_EACH, 10, templated=True).plan == "filtered"


def test_a_server_that_templates_filters_gets_the_complement_when_it_is_the_shorter_list():
    assert choose_plan(set(range(100, SCOPES)), ONE_ROW_EACH, 10, templated=True).plan == "complement"


def test_counts_work_out_a_scope_ids_share_and_complement_once():
    counts = ScopeCounts({**ONE_ROW_EACH, 3: 5})
    allowed = ScopeIds(range(3, SCOPES))
    assert counts.readable(allowed).rows == SCOPES - 3 + 4
    assert counts.readable(allowed) is counts.readable(allowed)
    assert counts.excluded(allowed) == (0, 1, 2)
    assert counts.excluded(allowed) is counts.excluded(allowed)


def test_counts_work_out_other_id_collections_on_every_call():
    counts = ScopeCounts(ONE_ROW_EACH)
    assert counts.readable([1, 2, 20_000]).rows == 2
    assert counts.excluded({*range(1, SCOPES)}) == (0,)


def test_counts_do_not_keep_a_scope_ids_alive():
    counts = ScopeCounts(ONE_ROW_EACH)
    allowed = ScopeIds(range(SCOPES // 2))
    counts.readable(allowed)
    counts.excluded(allowed)
    ref = weakref.ref(allowed)
    del allowed
    gc.collect()
    assert ref() is None


def test_a_forced_plan_is_taken_whatever_the_numbers():
    assert choose_plan({1}, ONE_ROW_EACH, 10, force="broad").plan == "broad"
    assert choose_plan({1}, ONE_ROW_EACH, 10, force="broad").first_limit == BROAD_MAX_LIMIT
    assert choose_plan(set(range(5000)), ONE_ROW_EACH, 10, force="filtered").plan == "filtered"


def test_an_unknown_forced_plan_is_refused():
    with pytest.raises(ValueError, match="unknown search plan"):
        choose_plan({1}, ONE_ROW_EACH, 10, force="everything")  # type: ignore[arg-type]


def test_k_allowed_hits_are_certain_only_when_the_kth_beats_the_last_candidate():
    assert first_k_certain([0.9, 0.8], 0.7, 2, exhausted=False)
    assert not first_k_certain([0.9, 0.7], 0.7, 2, exhausted=False)  # a tie may hide a row
    assert not first_k_certain([0.9], 0.1, 2, exhausted=False)


def test_k_allowed_hits_are_certain_when_every_row_was_fetched():
    assert first_k_certain([0.9, 0.7], 0.7, 2, exhausted=True)
    assert not first_k_certain([0.9], 0.7, 2, exhausted=True)


def test_the_broad_fetch_at_least_doubles_and_follows_the_share_seen():
    assert next_broad_limit(100, 0, 10) == 400
    assert next_broad_limit(100, 50, 10) == 200
    assert next_broad_limit(100, 1, 10) == 2000


def test_scope_id_sets_refuse_what_is_not_an_int64():
    assert checked_id_set([3, 1, 3], "scope id") == frozenset({1, 3})
    for bad in (True, "1", 1.0, 2**63):
        with pytest.raises((TypeError, ValueError)):
            checked_id_set([1, bad], "scope id")


@pytest.mark.parametrize(
    ("reported", "templates"),
    [("milvus_lite-3.2.2", False), ("v2.3.5-lite", False), ("v2.4.9", False), ("v2.5.0", True), ("v2.6.11", True)],
)
def test_only_a_milvus_server_from_2_5_on_gets_templated_filters(reported, templates):
    collection = object.__new__(MilvusCollection)  # the detection alone, no connection
    collection.backend, collection.version = parse_version(reported)
    assert collection.templates_filters is templates


class _RecordingMilvus:
    """Stands in for MilvusCollection on a Milvus 2.6 server: records the requests."""

    templates_filters = True
    scans_filters_in_python = False

    def __init__(self) -> None:
        self.searches: list[dict[str, Any]] = []

    def search(self, data: Any, **request: Any) -> list[list[dict[str, Any]]]:
        self.searches.append(request)
        return [[{"id": i, "distance": 1.0 - i / 100, "entity": {"scope_id": 7}} for i in range(request["limit"])]]


def test_a_templating_server_is_sent_the_scope_ids_as_filter_params_not_in_the_expression():
    milvus = _RecordingMilvus()
    cascade = SearchCascade(milvus, VectorIndexSpec("HNSW"))  # type: ignore[arg-type]
    cascade.search(
        np.ones(4),
        k=3,
        scope_ids=list(range(5000, 0, -1)),
        now_epoch=99,
        tenant="acme",
        fields=["scope_id"],
        consistency="Session",
    )
    (request,) = milvus.searches  # one search: nothing to fan out when nothing is parsed
    assert request["filter"] == "tenant == {tenant} and scope_id in {scope_ids} and expires_at > {now}"
    assert request["filter_params"] == {"scope_ids": list(range(1, 5001)), "now": 99, "tenant": "acme"}


def test_a_templating_server_is_sent_the_complement_as_filter_params():
    milvus = _RecordingMilvus()
    planned = PlannedSearch(SearchCascade(milvus, VectorIndexSpec("HNSW")))  # type: ignore[arg-type]
    counts = {s: 1 for s in range(1, 1001)}
    hits, plan = planned.search(
        np.ones(4),
        k=3,
        scope_ids=[7, *range(3, 1001)],
        now_epoch=99,
        tenant=None,
        fields=["scope_id"],
        consistency="Session",
        rows_by_scope=counts,
    )
    assert plan == "complement"
    assert [h.id for h in hits] == [0, 1, 2]
    (request,) = milvus.searches
    assert request["filter"] == "scope_id not in {scope_ids} and expires_at > {now}"
    assert request["filter_params"] == {"scope_ids": [1, 2], "now": 99}


def test_an_ivf_search_probes_clusters_holding_three_hundred_matching_rows_per_hit():
    spec = VectorIndexSpec("IVF_FLAT", nlist=1024, nprobe=32)
    assert spec.search_params(10) == {"nprobe": 32}  # matching rows unknown
    assert spec.search_params(10, matching_rows=9_600) == {"nprobe": 320}  # 1 % of 1M chunks
    assert spec.search_params(10, matching_rows=95_000) == {"nprobe": 33}  # 10 %


def test_an_ivf_search_never_probes_fewer_than_nprobe_clusters():
    assert VectorIndexSpec("IVF_FLAT", nlist=1024, nprobe=32).search_params(10, matching_rows=10**7) == {"nprobe": 32}


def test_an_ivf_search_of_a_filter_letting_through_few_rows_probes_every_cluster():
    spec = VectorIndexSpec("IVF_FLAT", nlist=1024, nprobe=32)
    assert spec.search_params(10, matching_rows=1_850) == {"nprobe": 1024}  # 1 % of 200k
    assert spec.search_params(10, matching_rows=0) == {"nprobe": 1024}


def test_an_hnsw_search_without_the_share_of_matching_rows_keeps_the_default_ef():
    hnsw = VectorIndexSpec("HNSW")
    assert hnsw.search_params(10) == {"ef": 64}
    assert hnsw.search_params(10, matching_rows=5) == {"ef": 64}  # of how many: unknown
    assert hnsw.search_params(10, matching_rows=5, total_rows=0) == {"ef": 64}


def test_an_hnsw_search_widens_ef_as_the_share_of_matching_rows_narrows():
    hnsw = VectorIndexSpec("HNSW")
    assert hnsw.search_params(10, matching_rows=100_000, total_rows=100_000) == {"ef": 64}  # everything
    assert hnsw.search_params(10, matching_rows=50_000, total_rows=100_000) == {"ef": 64}  # 2.5 x 10 / 0.5 = 50
    assert hnsw.search_params(10, matching_rows=10_000, total_rows=100_000) == {"ef": 250}  # 10 %
    assert hnsw.search_params(10, matching_rows=1_000, total_rows=100_000) == {"ef": 2_500}  # 1 %
    assert hnsw.search_params(50, matching_rows=10_000, total_rows=100_000) == {"ef": 1_250}  # more hits wanted


def test_an_hnsw_search_of_a_tiny_share_stops_at_the_largest_filtered_ef():
    hnsw = VectorIndexSpec("HNSW")
    assert hnsw.search_params(10, matching_rows=10, total_rows=1_000_000) == {"ef": HNSW_MAX_FILTERED_EF}
    assert hnsw.search_params(10, matching_rows=0, total_rows=1_000_000) == {"ef": HNSW_MAX_FILTERED_EF}


def test_an_hnsw_search_never_lowers_the_ef_its_caller_asked_for():
    hnsw = VectorIndexSpec("HNSW")
    assert hnsw.search_params(10, ef=9_000, matching_rows=1_000, total_rows=100_000) == {"ef": 9_000}
    assert hnsw.search_params(10, ef=500, matching_rows=90_000, total_rows=100_000) == {"ef": 500}


def test_the_plan_choice_carries_the_callers_live_chunks_and_the_collections():
    choice = choose_plan({1, 2}, ONE_ROW_EACH, 10)
    assert (choice.readable_rows, choice.total_rows) == (2, sum(ONE_ROW_EACH.values()))
    unknown = choose_plan({1, 2}, None, 10)
    assert (unknown.readable_rows, unknown.total_rows) == (None, None)


class _IvfMilvus:
    """Stands in for MilvusCollection on a 2.3 server: records each search's probes and
    answers with fewer hits than asked, so the cascade goes on to its next step."""

    templates_filters = False
    scans_filters_in_python = False

    def __init__(self) -> None:
        self.steps: list[object] = []

    def search(self, data: Any, **request: Any) -> list[list[dict[str, Any]]]:
        self.steps.append(request["search_params"]["params"]["nprobe"])
        return [[{"id": 1, "distance": 0.5, "entity": {"scope_id": 7}}]]

    def query(self, expr: str, fields: Any, limit: int, **kw: Any) -> list[dict[str, Any]]:
        self.steps.append("exact scan")
        return [{"id": 1, "vector": [1.0, 0.0], "scope_id": 7}]


def _cascade_steps(matching_rows: int | None) -> list[object]:
    milvus = _IvfMilvus()
    cascade = SearchCascade(milvus, VectorIndexSpec("IVF_FLAT", nlist=64, nprobe=8))  # type: ignore[arg-type]
    cascade.search(
        np.ones(2),
        k=5,
        scope_ids=[7],
        now_epoch=99,
        tenant=None,
        fields=["scope_id"],
        consistency="Session",
        matching_rows=matching_rows,
    )
    return milvus.steps


def test_the_filtered_cascade_probes_by_matching_rows_then_every_cluster_then_scans():
    assert _cascade_steps(None) == [8, 64, "exact scan"]
    assert _cascade_steps(24_000) == [8, 64, "exact scan"]  # 4 of 64 clusters hold 300 x k (5) of them
    assert _cascade_steps(6_000) == [16, 64, "exact scan"]


def test_the_filtered_cascade_skips_the_every_cluster_step_when_its_index_search_already_probes_them_all():
    assert _cascade_steps(1_000) == [64, "exact scan"]


class _HnswMilvus(_IvfMilvus):
    """The same stand-in for an HNSW collection: records each search's ef."""

    def search(self, data: Any, **request: Any) -> list[list[dict[str, Any]]]:
        self.steps.append(request["search_params"]["params"]["ef"])
        return [[{"id": 1, "distance": 0.5, "entity": {"scope_id": 7}}]]


def test_a_planned_hnsw_search_sets_ef_from_the_callers_share_of_the_live_chunks():
    milvus = _HnswMilvus()
    planned = PlannedSearch(SearchCascade(milvus, VectorIndexSpec("HNSW")))  # type: ignore[arg-type]
    counts = {7: 10, **{s: 1 for s in range(100, 1_090)}}  # the caller's 10 rows of 1,000
    planned.search(
        np.ones(2),
        k=10,
        scope_ids=[7],
        now_epoch=99,
        tenant=None,
        fields=["scope_id"],
        consistency="Session",
        rows_by_scope=counts,
    )
    assert milvus.steps[0] == 2_500  # 2.5 x 10 hits / 1 %


def test_a_narrow_reader_gets_the_listed_plan_when_the_catalog_can_list_their_chunks():
    assert choose_plan(set(range(LISTED_MAX_ROWS)), ONE_ROW_EACH, 10, listable=True).plan == "listed"
    assert choose_plan(set(range(LISTED_MAX_ROWS)), ONE_ROW_EACH, 10).plan == "filtered"  # nothing to list with


def test_a_reader_of_more_chunks_than_the_listed_plan_reads_gets_another_plan():
    assert choose_plan(set(range(LISTED_MAX_ROWS + 1)), ONE_ROW_EACH, 10, listable=True).plan == "filtered"
    assert choose_plan(set(range(1000)), ONE_ROW_EACH, 10, listable=True).plan == "broad"


def test_the_listed_plan_needs_counts_to_know_a_reader_is_narrow():
    assert choose_plan({1}, None, 10, listable=True).plan == "filtered"


class _ListedMilvus:
    """Stands in for MilvusCollection: rows by primary key (``get``), and a record of every
    index search (there should be none while the listed plan answers). Milvus Lite: a
    filtered query scans every row, so the listed plan is chosen."""

    templates_filters = False
    scans_filters_in_python = True

    def __init__(self, rows: dict[int, dict[str, Any]]) -> None:
        self.rows = rows
        self.searches = 0

    def get(self, ids: list[int], fields: list[str], **kw: Any) -> list[dict[str, Any]]:
        return [{"id": i, **self.rows[i]} for i in ids if i in self.rows]

    def search(self, data: Any, **request: Any) -> list[list[dict[str, Any]]]:
        self.searches += 1
        return [[]]

    def query(self, expr: str, fields: Any, limit: int, **kw: Any) -> list[dict[str, Any]]:
        return []


def _row(vector: list[float], scope: Any = 7, expires_at: Any = 2**40, **extra: Any) -> dict[str, Any]:
    return {"vector": vector, "scope_id": scope, "expires_at": expires_at, "text": "t", **extra}


def _listed_search(
    milvus: _ListedMilvus, listed: list[int] | None, *, k: int = 5, tenant: str | None = None, force: Any = None
):
    planned = PlannedSearch(SearchCascade(milvus, VectorIndexSpec("HNSW")))  # type: ignore[arg-type]
    asked: list[tuple[list[int], int]] = []

    def list_ids(scopes: Any, limit: int) -> list[int] | None:
        asked.append((sorted(scopes), limit))
        return listed

    hits, plan = planned.search(
        np.array([1.0, 0.0]),
        k=k,
        scope_ids=[7, 8],
        now_epoch=1000,
        tenant=tenant,
        fields=["scope_id", "text"],
        consistency="Session",
        rows_by_scope={7: 3, 8: 1, 9: 500},
        list_ids=list_ids,
        force=force,
    )
    return hits, plan, asked


def test_the_listed_plan_scores_the_listed_rows_exactly_best_first_then_by_id():
    milvus = _ListedMilvus(
        {1: _row([0.0, 1.0]), 2: _row([1.0, 0.0]), 3: _row([1.0, 0.0], scope=8), 4: _row([1.0, 1.0])}
    )
    hits, plan, asked = _listed_search(milvus, [1, 2, 3, 4], k=3)
    assert plan == "listed"
    assert asked == [([7, 8], LISTED_MAX_ROWS)]
    assert [h.id for h in hits] == [2, 3, 4]
    assert [h.score for h in hits] == pytest.approx([1.0, 1.0, 0.7071], abs=1e-4)
    assert hits[0].fields == {"scope_id": 7, "text": "t"}
    assert milvus.searches == 0


def test_the_listed_plan_drops_listed_rows_the_filter_would_not_let_through():
    milvus = _ListedMilvus(
        {
            1: _row([1.0, 0.0], scope=9),  # the catalog listed a row Milvus holds in another scope
            2: _row([1.0, 0.0], expires_at=1000),  # expired at the search's time
            3: _row([1.0, 0.0], expires_at=None),  # unreadable expiry
            4: _row([1.0, 0.0], scope="7 or true"),  # unreadable scope
            5: _row([1.0, 0.0], scope=None),
            6: _row([0.5, 0.5]),  # the only one the filter lets through
        }
    )
    hits, plan, _ = _listed_search(milvus, [1, 2, 3, 4, 5, 6, 7])  # 7: listed, not in Milvus
    assert plan == "listed"
    assert [h.id for h in hits] == [6]


def test_the_listed_plan_keeps_only_the_callers_tenant():
    milvus = _ListedMilvus({1: _row([1.0, 0.0], tenant="globex"), 2: _row([0.5, 0.5], tenant="acme")})
    hits, _, _ = _listed_search(milvus, [1, 2], tenant="acme")
    assert [h.id for h in hits] == [2]


def test_the_listed_plan_falls_back_to_the_filtered_search_when_the_catalog_lists_too_many():
    milvus = _ListedMilvus({1: _row([1.0, 0.0])})
    hits, plan, _ = _listed_search(milvus, None)
    assert plan == "filtered"
    assert milvus.searches == 1


def test_the_listed_plan_refuses_a_listed_id_that_is_not_an_int64():
    milvus = _ListedMilvus({1: _row([1.0, 0.0])})
    with pytest.raises((TypeError, ValueError)):
        _listed_search(milvus, [1, 2**63])  # type: ignore[list-item]


class _ServerListedMilvus(_ListedMilvus):
    """The same rows on a Milvus server, whose filtered search beats reading by primary key."""

    scans_filters_in_python = False


def test_a_milvus_server_keeps_the_filtered_plan_for_a_narrow_reader():
    milvus = _ServerListedMilvus({1: _row([1.0, 0.0])})
    _, plan, asked = _listed_search(milvus, [1])
    assert plan == "filtered"
    assert asked == []  # the catalog was not even asked
    assert milvus.searches >= 1


def test_the_listed_plan_forced_runs_on_a_milvus_server_too():
    milvus = _ServerListedMilvus({1: _row([1.0, 0.0])})
    hits, plan, _ = _listed_search(milvus, [1], force="listed")
    assert plan == "listed"
    assert [h.id for h in hits] == [1]
