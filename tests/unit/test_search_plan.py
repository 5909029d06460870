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
    SHORT_LIST_IDS,
    ScopeCounts,
    choose_plan,
    first_k_certain,
    next_broad_limit,
    plan_costs,
)
from governance.vector_index.planned import PlannedSearch
from governance.vector_index.schema import VectorIndexSpec

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


def test_an_hnsw_search_ignores_the_matching_rows():
    hnsw = VectorIndexSpec("HNSW")
    assert hnsw.search_params(10, matching_rows=5) == hnsw.search_params(10)


def test_the_plan_choice_carries_the_callers_live_chunks():
    assert choose_plan({1, 2}, ONE_ROW_EACH, 10).readable_rows == 2
    assert choose_plan({1, 2}, None, 10).readable_rows is None


class _IvfMilvus:
    """Stands in for MilvusCollection on a 2.3 server: records each search's probes and
    answers with fewer hits than asked, so the cascade goes on to its next step."""

    templates_filters = False

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
