"""The filter builder and the Milvus collection, on Milvus Lite (in-process) and on a real
milvus-server 2.3.5 (the session server of tests/milvus_server_fixtures.py)."""

from __future__ import annotations

import numpy as np
import pytest

from governance.vector_index import (
    NEVER_EXPIRES,
    VectorIndex,
    document_filter,
    ids_filter,
    quote_string,
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
    return [dict(id=i, vector=rng.random(384, dtype=np.float32).tolist(), document_id=f'doc"{i}\\',
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


def test_a_very_selective_filter_still_returns_every_matching_row(index):
    # 3 of 3000 rows are readable: the answer must hold all three, best first.
    rows = _rows(3000, lambda i: 7 if i % 1000 == 0 else 1, lambda i: NEVER_EXPIRES)
    index.upsert(rows)
    index.flush()
    q = np.asarray(rows[1000]["vector"], dtype=np.float32)
    hits = index.search(q, k=10, scope_ids=[7], now_epoch=0)
    assert {h.id for h in hits} == {0, 1000, 2000}
    assert hits[0].id == 1000 and hits[0].score > 0.99
