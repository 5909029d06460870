"""The filter builder and the row contract, without a collection: every value in a filter
is an int64 or a quoted string, scope lists split into shares, rows checked against the
schema (the collection itself, on Milvus Lite and a milvus-server:
tests/integration/test_vector_index.py)."""

from __future__ import annotations

import numpy as np
import pytest

from governance.vector_index import (
    FANOUT_MIN_IDS,
    KEPT_CHARS,
    MAX_FILTER_IDS,
    MAX_TEXT,
    SCALAR_FIELDS,
    quote_string,
    scope_id_shares,
    search_filter,
)
from testsupport.vector_rows import vector_row


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


@pytest.mark.parametrize(
    "value, literal",
    [
        ('a"b', '"a\\"b"'),
        ("a\\b", '"a\\\\b"'),
        ("x' or '1'='1", "\"x' or '1'='1\""),
        ("日本", '"日本"'),
    ],
)
def test_quote_string_escapes_quotes_and_backslashes(value, literal):
    assert quote_string(value) == literal


@pytest.mark.parametrize("value", ["a\nb", "a\x00b", "\x7f"])
def test_quote_string_refuses_control_characters(value):
    with pytest.raises(ValueError):
        quote_string(value)


# -- the row contract ---------------------------------------------------------------------
@pytest.mark.parametrize("field", ["id", "source_version", "scope_id", "expires_at"])
@pytest.mark.parametrize("bad", ["1", 1.5, None, True, 2**64])
def test_a_row_refuses_anything_but_int64_in_its_integer_fields(field, bad):
    with pytest.raises((TypeError, ValueError)):
        vector_row(**{field: bad})


def test_a_row_cuts_display_strings_to_what_the_collection_holds():
    row = vector_row(title="日" * 1000, uri="u" * 5000, text="x" * 9000)
    assert len(row.title.encode()) <= SCALAR_FIELDS["title"][1] and row.title == "日" * len(row.title)
    assert row.uri == "u" * KEPT_CHARS["uri"] and row.text == "x" * MAX_TEXT
    assert vector_row(title="t" * 1500).title == "t" * KEPT_CHARS["title"]


@pytest.mark.parametrize(
    "field, value",
    [
        ("document_id", "d" * 1025),
        ("source", "s" * 33),
        ("classification", "c" * 65),
        ("tenant", "a\nb"),
        ("text", b"x"),
    ],
)
def test_a_row_refuses_identities_it_would_have_to_cut(field, value):
    with pytest.raises((TypeError, ValueError)):
        vector_row(**{field: value})


def test_a_row_becomes_an_entity_with_a_tenant_only_when_asked():
    row = vector_row(vector=np.ones(384, dtype=np.float32), tenant="acme")
    assert row.vector == [1.0] * 384
    assert "tenant" not in row.to_entity() and row.to_entity(with_tenant=True)["tenant"] == "acme"
    assert vector_row(tenant="").tenant is None


class _CalmDownThenServe:
    """A stand-in MilvusClient whose first ``failures`` connections fail the way pymilvus
    reports a connection the server closed with GOAWAY "too_many_pings"."""

    failures = 1
    made = 0

    def __init__(self, uri: str, token: str, timeout: float | None = None) -> None:
        type(self).made += 1
        if type(self).made <= type(self).failures:
            try:
                raise RuntimeError("<_InactiveRpcError: status = StatusCode.UNAVAILABLE, details = 'Too many pings'>")
            except RuntimeError as grpc_error:
                raise RuntimeError("Fail connecting to server on 127.0.0.1:1, server unavailable") from grpc_error

    def get_server_version(self, timeout: float | None = None) -> str:
        return "v2.3.5"


def test_a_connection_closed_for_too_many_pings_is_opened_again():
    from governance.vector_index.client import _connect

    _CalmDownThenServe.made, _CalmDownThenServe.failures = 0, 1
    client, version = _connect(_CalmDownThenServe, "http://127.0.0.1:1", "")
    assert version == "v2.3.5" and _CalmDownThenServe.made == 2


def test_any_other_connection_failure_is_reported_at_once():
    from governance.vector_index.client import _connect

    class Refused:
        made = 0

        def __init__(self, uri: str, token: str, timeout: float | None = None) -> None:
            type(self).made += 1
            raise RuntimeError("Fail connecting to server on 127.0.0.1:1, connection refused")

    with pytest.raises(RuntimeError, match="connection refused"):
        _connect(Refused, "http://127.0.0.1:1", "")
    assert Refused.made == 1


def test_an_exception_chain_that_loops_is_read_to_its_end_not_forever():
    from governance.vector_index.client import _told_to_calm_down

    first, second = RuntimeError("fail connecting"), RuntimeError("server unavailable")
    first.__context__, second.__context__ = second, first
    assert _told_to_calm_down(first) is False
