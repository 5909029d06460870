"""The filter builder and the Milvus collection, on Milvus Lite (in-process) and on a real
milvus-server 2.3.5 (the session server of tests/milvus_server_fixtures.py)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from governance.errors import IndexUnavailable
from governance.vector_index import (
    FANOUT_MIN_IDS,
    KEPT_CHARS,
    MAX_FILTER_IDS,
    MAX_TEXT,
    NEVER_EXPIRES,
    SCALAR_FIELDS,
    VectorIndex,
    VectorRow,
    document_filter,
    ids_filter,
    quote_string,
    scope_id_shares,
    search_filter,
)
from tests.milvus_server_fixtures import BACKENDS


def test_search_filter_holds_only_integers():
    assert search_filter([3, 1, 2, 2], 1700000000) == "scope_id in [1,2,3] and expires_at > 1700000000"


@pytest.mark.parametrize("bad", ["1) or (1==1", "1", 1.5, None, True, 2**64])
def test_search_filter_refuses_anything_but_int64(bad):
    with pytest.raises((TypeError, ValueError)):
        search_filter([bad], 0)


def test_search_filter_refuses_an_empty_scope_list():
    with pytest.raises(ValueError):
        search_filter([], 0)


def test_a_long_scope_list_is_split_into_contiguous_sorted_shares():
    ids = list(range(4000, 0, -2)) + [2, 2]  # unsorted, with a duplicate
    shares = scope_id_shares(ids, fanout=4, min_ids=500)
    assert len(shares) == 4 and all(len(s) == 500 for s in shares)
    assert [i for s in shares for i in s] == sorted(set(ids))


def test_a_short_scope_list_stays_one_share():
    assert scope_id_shares([5, 1, 3], fanout=4) == [[1, 3, 5]]
    assert len(scope_id_shares(range(FANOUT_MIN_IDS * 2 - 1), fanout=4)) == 1


def test_the_fanout_never_exceeds_its_setting():
    assert len(scope_id_shares(range(100_000), fanout=3)) == 3
    assert len(scope_id_shares(range(100_000), fanout=1)) == 1


@pytest.mark.parametrize("bad", ["1) or (1==1", 1.5, None, True, 2**64])
def test_scope_shares_refuse_anything_but_int64(bad):
    with pytest.raises((TypeError, ValueError)):
        scope_id_shares([1, bad], fanout=4)


def test_scope_shares_refuse_more_ids_than_one_search_may_list():
    with pytest.raises(ValueError):
        scope_id_shares(range(MAX_FILTER_IDS + 1), fanout=4)


@pytest.mark.parametrize("value, literal", [
    ('a"b', '"a\\"b"'), ("a\\b", '"a\\\\b"'), ("x' or '1'='1", "\"x' or '1'='1\""), ("日本", '"日本"'),
])
def test_quote_string_escapes_quotes_and_backslashes(value, literal):
    assert quote_string(value) == literal


@pytest.mark.parametrize("value", ["a\nb", "a\x00b", "\x7f"])
def test_quote_string_refuses_control_characters(value):
    with pytest.raises(ValueError):
        quote_string(value)


def _rows(n, scope_of, expires_of):
    rng = np.random.default_rng(0)
    return [VectorRow(id=i, vector=rng.random(384, dtype=np.float32).tolist(), document_id=f'doc"{i}\\',
                      source="pdf", source_version=1, scope_id=scope_of(i), classification="internal",
                      expires_at=expires_of(i), title="t", uri="u", text=f"text {i}") for i in range(n)]


@pytest.fixture(params=BACKENDS)
def index(request, make_index) -> VectorIndex:
    """A fresh collection on each backend: Milvus Lite and the session's milvus-server."""
    return make_index(request.param)


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
    # 2,400 rows, each in its own scope; the even scopes (1,200 ids) are allowed, so the
    # filter is split into two concurrent searches whose answers are merged by score.
    rows = _one_row_per_scope(2400)
    index.upsert(rows)
    index.flush()
    allowed = list(range(0, 2400, 2))
    assert len(scope_id_shares(allowed, index.search_fanout)) == 2
    for target in (10, 2390):  # one in each share
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
        index.search(np.ones(384), k=5, scope_ids=list(range(2000)), now_epoch=0)
    assert len(calls) == 4  # every share was asked once; no partial answer came back


# -- the row contract ---------------------------------------------------------------------
def _row(**changes):
    fields = dict(id=1, vector=[0.5] * 384, document_id="d", source="pdf", source_version=1, scope_id=1,
                  classification="internal", expires_at=NEVER_EXPIRES, title="t", uri="u", text="x")
    return VectorRow(**{**fields, **changes})


@pytest.mark.parametrize("field", ["id", "source_version", "scope_id", "expires_at"])
@pytest.mark.parametrize("bad", ["1", 1.5, None, True, 2**64])
def test_a_row_refuses_anything_but_int64_in_its_integer_fields(field, bad):
    with pytest.raises((TypeError, ValueError)):
        _row(**{field: bad})


def test_a_row_cuts_display_strings_to_what_the_collection_holds():
    row = _row(title="日" * 1000, uri="u" * 5000, text="x" * 9000)
    assert len(row.title.encode()) <= SCALAR_FIELDS["title"][1] and row.title == "日" * len(row.title)
    assert row.uri == "u" * KEPT_CHARS["uri"] and row.text == "x" * MAX_TEXT
    assert _row(title="t" * 1500).title == "t" * KEPT_CHARS["title"]


@pytest.mark.parametrize("field, value", [("document_id", "d" * 1025), ("source", "s" * 33),
                                          ("classification", "c" * 65), ("tenant", "a\nb"), ("text", b"x")])
def test_a_row_refuses_identities_it_would_have_to_cut(field, value):
    with pytest.raises((TypeError, ValueError)):
        _row(**{field: value})


def test_a_row_becomes_an_entity_with_a_tenant_only_when_asked():
    row = _row(vector=np.ones(384, dtype=np.float32), tenant="acme")
    assert row.vector == [1.0] * 384
    assert "tenant" not in row.to_entity() and row.to_entity(with_tenant=True)["tenant"] == "acme"
    assert _row(tenant="").tenant is None


def test_upsert_takes_rows_not_dicts(make_index):
    index = make_index("lite")
    with pytest.raises(TypeError, match="VectorRow"):
        index.upsert([_row().to_entity()])
    index.upsert([_row()])
    assert index.count() == 1


def test_filters_and_rows_load_without_pymilvus():
    # The filter builder and the row contract are pure: importing the package (as `govrag
    # --help` and the catalog-only commands do) must not pay for pymilvus.
    import subprocess
    import sys

    code = "import sys, governance.vector_index.filters, governance.vector_index.rows; print('pymilvus' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
