"""The Milvus collection, on Milvus Lite (in-process) and on a real milvus-server 2.3.5
(the session server of tests/milvus_server_fixtures.py): filtered search, deletes, upserts,
the exact-scan cascade and the fan-out (the filter builder and the row contract alone:
tests/unit/test_vector_index.py)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from governance.errors import IndexUnavailable
from governance.vector_index import (
    NEVER_EXPIRES,
    VectorIndex,
    VectorRow,
    document_filter,
    ids_filter,
    scope_id_shares,
)
from testsupport.vector_rows import vector_row


def _rows(n, scope_of, expires_of):
    rng = np.random.default_rng(0)
    return [
        VectorRow(
            id=i,
            vector=rng.random(384, dtype=np.float32).tolist(),
            document_id=f'doc"{i}\\',
            source="pdf",
            source_version=1,
            scope_id=scope_of(i),
            classification="internal",
            expires_at=expires_of(i),
            title="t",
            uri="u",
            text=f"text {i}",
        )
        for i in range(n)
    ]


@pytest.fixture
def index(backend, make_index) -> VectorIndex:
    """A fresh collection on each backend: Milvus Lite and the session's milvus-server."""
    return make_index(backend)


def test_search_returns_only_allowed_unexpired_rows(index):
    index.upsert(_rows(200, lambda i: i % 4, lambda i: 100 if i % 3 == 0 else NEVER_EXPIRES))
    hits = index.search(np.ones(384, dtype=np.float32), k=50, scope_ids=[1, 2], now_epoch=1000)
    assert hits
    assert all(h.fields["scope_id"] in (1, 2) and h.fields["expires_at"] > 1000 for h in hits)


def test_search_with_no_scopes_returns_nothing_without_querying(index):
    index.upsert(_rows(10, lambda i: 1, lambda i: NEVER_EXPIRES))
    assert index.search(np.ones(384), k=5, scope_ids=[], now_epoch=0) == []


def test_string_filters_match_literally_with_quotes_and_backslashes(index):
    index.upsert(_rows(5, lambda i: 1, lambda i: NEVER_EXPIRES))
    assert [r["id"] for r in index.query(document_filter('doc"3\\'))] == [3]


def test_delete_by_ids_is_seen_by_query(index):
    index.upsert(_rows(10, lambda i: 1, lambda i: NEVER_EXPIRES))
    index.delete_ids([1, 2, 3])
    assert index.count() == 7
    assert index.query(ids_filter([1, 2, 3, 4])) == [{"id": 4}]


def test_upsert_with_same_ids_overwrites(index):
    index.upsert(_rows(10, lambda i: 1, lambda i: NEVER_EXPIRES))
    index.upsert(_rows(10, lambda i: 2, lambda i: NEVER_EXPIRES))
    assert index.count() == 10
    assert {r["scope_id"] for r in index.query("id >= 0", fields=["scope_id"])} == {2}


def _count_calls(monkeypatch, index):
    calls = {"search": 0, "query": 0}  # calls to Milvus
    for name in calls:
        real = getattr(index.milvus, name)

        def counted(*args, _real=real, _name=name, **kwargs):
            calls[_name] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(index.milvus, name, counted)
    return calls


def test_a_filter_that_needed_the_exact_scan_starts_there_next_time(index, monkeypatch):
    rows = _rows(3000, lambda i: 7 if i % 1000 == 0 else 1, lambda i: NEVER_EXPIRES)
    index.upsert(rows)
    index.flush()
    q = np.asarray(rows[1000].vector, dtype=np.float32)
    first = index.search(q, k=10, scope_ids=[7], now_epoch=0)
    calls = _count_calls(monkeypatch, index)
    again = index.search(q, k=10, scope_ids=[7], now_epoch=1)
    assert [h.id for h in again] == [h.id for h in first] and len(first) == 3
    assert calls == {"search": 0, "query": 1}  # one exact scan, no index search before it


def test_a_remembered_exact_scan_goes_back_to_the_index_when_too_many_rows_match(index, monkeypatch):
    rows = _rows(60, lambda i: 7 if i < 3 else 1, lambda i: NEVER_EXPIRES)
    index.upsert(rows)
    index.flush()
    q = np.asarray(rows[0].vector, dtype=np.float32)
    assert len(index.search(q, k=10, scope_ids=[7], now_epoch=0)) == 3  # remembered: exact scan
    index.upsert([replace(r, scope_id=7) for r in rows[3:]])  # now 60 rows match
    monkeypatch.setattr("governance.vector_index.cascade.EXACT_SCAN_LIMIT", 20)  # more than a scan may hold
    hits = index.search(q, k=10, scope_ids=[7], now_epoch=1)
    assert len(hits) == 10 and hits[0].id == 0


def test_a_very_selective_filter_still_returns_every_matching_row(index):
    # 3 of 3000 rows are readable: the answer must hold all three, best first.
    rows = _rows(3000, lambda i: 7 if i % 1000 == 0 else 1, lambda i: NEVER_EXPIRES)
    index.upsert(rows)
    index.flush()
    q = np.asarray(rows[1000].vector, dtype=np.float32)
    hits = index.search(q, k=10, scope_ids=[7], now_epoch=0)
    assert {h.id for h in hits} == {0, 1000, 2000}
    assert hits[0].id == 1000 and hits[0].score > 0.99


def _one_row_per_scope(n):
    return [replace(r, document_id=f"d{r.id}") for r in _rows(n, lambda i: i, lambda i: NEVER_EXPIRES)]


def test_a_fanned_out_search_finds_the_best_allowed_rows_and_nothing_else(index):
    # 4,000 rows, each in its own scope; the even scopes (2,000 ids) are allowed, so the
    # filter is split into two concurrent searches whose answers are merged by score.
    rows = _one_row_per_scope(4000)
    index.upsert(rows)
    index.flush()
    allowed = list(range(0, 4000, 2))
    assert len(scope_id_shares(allowed, index.search_fanout)) == 2
    for target in (10, 3990):  # one in each share
        hits = index.search(np.asarray(rows[target].vector), k=10, scope_ids=allowed, now_epoch=0)
        assert hits[0].id == target
        assert len(hits) == 10 and all(h.fields["scope_id"] % 2 == 0 for h in hits)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    forbidden = index.search(np.asarray(rows[11].vector), k=10, scope_ids=allowed, now_epoch=0)
    assert 11 not in {h.id for h in forbidden}


def test_a_fanned_out_search_agrees_with_one_expression(index):
    rows = _one_row_per_scope(2400)
    index.upsert(rows)
    index.flush()
    allowed = list(range(0, 2400, 2))
    q = np.asarray(rows[500].vector) + np.asarray(rows[1800].vector)
    fanned = index.search(q, k=5, scope_ids=allowed, now_epoch=0)
    index.search_fanout = 1
    single = index.search(q, k=5, scope_ids=allowed, now_epoch=0)
    assert {500, 1800} <= {h.id for h in fanned}
    assert [h.id for h in fanned[:2]] == [h.id for h in single[:2]]


def test_a_failing_share_fails_the_whole_search(make_index, monkeypatch):
    index = make_index("lite")
    index.upsert(_one_row_per_scope(100))
    real_search, calls = index.milvus.search, []

    def second_share_breaks(*args, **kwargs):
        calls.append(kwargs["filter"])
        if "scope_id in [1000" in kwargs["filter"]:  # what MilvusCollection raises for a rejected call
            raise IndexUnavailable("injected: the server rejected the request")
        return real_search(*args, **kwargs)

    monkeypatch.setattr(index.milvus, "search", second_share_breaks)
    with pytest.raises(IndexUnavailable):
        index.search(np.ones(384), k=5, scope_ids=list(range(4000)), now_epoch=0)
    assert len(calls) == 4  # every share was asked once; no partial answer came back


# -- the row contract ---------------------------------------------------------------------
def test_upsert_takes_rows_not_dicts(make_index):
    index = make_index("lite")
    with pytest.raises(TypeError, match="VectorRow"):
        index.upsert([vector_row().to_entity()])
    index.upsert([vector_row()])
    assert index.count() == 1
