"""Every filter expression sent to Milvus is built here, and only here.

Nothing a user or a document supplies is pasted into an expression. Search filters hold only
integers (scope ids and epoch seconds) checked here to be real ints; the string filters
(``document_id``, ``tenant``) are built by :func:`quote_string`, which rejects control
characters and escapes quotes and backslashes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from governance.scope_ids import ScopeIds, check_int64, checked_int64_set
from governance.tenancy import check_tenant as _check_tenant_name
from governance.vector_index.schema import TENANT_FIELD

MAX_FILTER_IDS = 100_000
# A search over a long allowed-scope list is split into shares of at least this many ids
# (see governance.vector_index.cascade.SEARCH_FANOUT). 1,000 ids went faster as one request
# than as two of 500 (milvus-server 2.3.5, 2 cores: 19.8 vs 26.1 ms at 1M chunks, 11.6 vs
# 16.8 ms at 200k; docs/benchmarks.md): each share is a whole search besides its parse.
FANOUT_MIN_IDS = 1000


def check_int(value: Any, what: str) -> int:
    """``value`` as an int64; bools, floats, strings and out-of-range numbers are refused."""
    return check_int64(value, what)


def checked_ints(values: Iterable[Any], what: str) -> list[int]:
    """The values as int64s, deduplicated and sorted (stable expressions), at most
    MAX_FILTER_IDS of them; anything else is refused. A :class:`ScopeIds` was checked when
    it was made: its sorted ids are taken as they are."""
    checked = list(values.ids) if isinstance(values, ScopeIds) else sorted({check_int(v, what) for v in values})
    _check_count(len(checked), what)
    return checked


def _check_count(count: int, what: str) -> None:
    if count > MAX_FILTER_IDS:
        raise ValueError(f"{count} {what}s in one filter (limit {MAX_FILTER_IDS})")


def checked_id_set(values: Iterable[Any], what: str) -> frozenset[int]:
    """The values as a set of int64s, at most MAX_FILTER_IDS, refused as :func:`checked_ints`
    refuses them; unsorted, so ~10x cheaper for ids that are already plain ints (the scope
    check of a search plan that sends no list), and free for a :class:`ScopeIds`."""
    ids = values.set if isinstance(values, ScopeIds) else checked_int64_set(values, what)
    _check_count(len(ids), what)
    return ids


def int_list(values: Iterable[Any], what: str) -> str:
    """``[1,2,3]`` from checked ints (deduplicated, sorted for stable expressions)."""
    return _int_literal(checked_ints(values, what))


def _int_literal(checked: Sequence[int]) -> str:
    return "[" + ",".join(map(str, checked)) + "]"


def quote_string(value: str) -> str:
    """A Milvus string literal for ``value``: double-quoted, ``\\`` and ``"`` escaped."""
    if not isinstance(value, str):
        raise TypeError(f"expected str, got {type(value).__name__}")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError(f"control characters are not allowed in a filter value: {value[:40]!r}")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def check_tenant(tenant: Any) -> str:
    """A usable tenant name: a non-empty string of at most 256 bytes, no control characters."""
    name = _check_tenant_name(tenant)
    quote_string(name)
    return name


def tenant_filter(tenant: str) -> str:
    """The rows of one tenant."""
    return f"{TENANT_FIELD} == {quote_string(check_tenant(tenant))}"


def within_tenant(expr: str, tenant: str) -> str:
    """``expr`` limited to ``tenant``'s rows."""
    return f"{tenant_filter(tenant)} and ({expr})"


def search_filter(scope_ids: Sequence[int], now_epoch: int, tenant: str | None = None) -> str:
    """The ACL + expiry filter of every search (and, with multi-tenancy, the caller's tenant,
    which a server also uses to search only that tenant's partitions). An empty scope list
    is refused: the caller must return no hits instead of searching (an empty ``in []``
    must never be relied on)."""
    if not scope_ids:
        raise ValueError("search_filter needs at least one allowed scope id")
    return checked_search_filter(checked_ints(scope_ids, "scope id"), check_int(now_epoch, "time"), tenant)


def checked_search_filter(checked_scope_ids: Sequence[int], checked_now: int, tenant: str | None) -> str:
    """:func:`search_filter` for ids and a time that already went through :func:`checked_ints`
    and :func:`check_int` (a search checks each once, not once per share: ~6 ms for 10,000
    ids)."""
    expr = f"scope_id in {_int_literal(checked_scope_ids)} and expires_at > {checked_now}"
    return expr if tenant is None else f"{tenant_filter(tenant)} and {expr}"


def templated_search_filter(
    checked_scope_ids: Sequence[int], checked_now: int, tenant: str | None, *, exclude: bool = False
) -> tuple[str, dict[str, Any]]:
    """The search filter as a Milvus >= 2.5 expression template and its values
    (``filter_params``): the server receives the id list as data and does not parse it, which
    is what a long literal list costs (see docs/benchmarks.md). ``exclude``: the rows whose
    scope is *not* among the ids (the complement plan). Inputs as for
    :func:`checked_search_filter`."""
    op = "not in" if exclude else "in"
    params: dict[str, Any] = {"scope_ids": list(checked_scope_ids), "now": checked_now}
    expr = f"scope_id {op} {{scope_ids}} and expires_at > {{now}}"
    if tenant is not None:
        params["tenant"] = check_tenant(tenant)
        expr = f"{TENANT_FIELD} == {{tenant}} and {expr}"
    return expr, params


def complement_search_filter(checked_excluded_ids: Sequence[int], checked_now: int, tenant: str | None) -> str:
    """The search filter naming the scopes a caller may *not* read (``scope_id not in
    [...]``): the complement plan, for a caller who reads nearly every scope. Rows of scopes
    missing from the list pass it, so its hits must be checked against the allowed scopes
    (governance.vector_index.plan). No excluded ids: only the expiry (and tenant) part."""
    expr = f"expires_at > {checked_now}"
    if checked_excluded_ids:
        expr = f"scope_id not in {_int_literal(checked_excluded_ids)} and {expr}"
    return expr if tenant is None else f"{tenant_filter(tenant)} and {expr}"


def unscoped_search_filter(checked_now: int, tenant: str | None) -> str:
    """Every other part of the search filter without the scope list (the broad plan, whose
    scope check happens in memory): not expired, and the caller's tenant."""
    expr = f"expires_at > {checked_now}"
    return expr if tenant is None else f"{tenant_filter(tenant)} and {expr}"


def scope_id_shares(scope_ids: Sequence[int], fanout: int, min_ids: int = FANOUT_MIN_IDS) -> list[list[int]]:
    """The allowed scope ids (checked, deduplicated, sorted) in at most ``fanout`` contiguous
    shares of at least ``min_ids`` ids each; one share when the list is short."""
    ids = checked_ints(scope_ids, "scope id")
    parts = max(1, min(fanout, len(ids) // max(1, min_ids)))
    size = math.ceil(len(ids) / parts) if ids else 0
    return [ids[i : i + size] for i in range(0, len(ids), size)] if ids else []


def all_rows_filter() -> str:
    """A filter every row matches. (Not ``id >= INT64_MIN``: Milvus 2.3's parser reads the
    minus sign apart and cannot parse 9223372036854775808.)"""
    return "id < 0 or id >= 0"


def ids_filter(ids: Sequence[int]) -> str:
    """The rows with these primary keys (checked ints)."""
    return f"id in {int_list(ids, 'chunk id')}"


def document_filter(document_id: str) -> str:
    """The rows of one document."""
    return f"document_id == {quote_string(document_id)}"


def documents_filter(document_ids: Sequence[str]) -> str:
    """The rows of these documents (at least one)."""
    if not document_ids:
        raise ValueError("documents_filter needs at least one document id")
    return "document_id in [" + ",".join(quote_string(d) for d in document_ids) + "]"


def expired_filter(now_epoch: int, exclude_documents: Sequence[str] = ()) -> str:
    """Rows expired at ``now_epoch``, except those of ``exclude_documents`` (legal holds)."""
    expr = f"expires_at <= {check_int(now_epoch, 'time')}"
    if exclude_documents:
        expr += " and not (" + documents_filter(exclude_documents) + ")"
    return expr
