"""The tenant filter the Milvus server path relies on quotes hostile tenant names (the
server itself: tests/system/test_milvus_server.py)."""

from __future__ import annotations

import pytest

from governance.vector_index import quote_string, search_filter, tenant_filter


def test_tenant_filter_quotes_hostile_names():
    assert (
        search_filter([2, 1], 5, tenant='a" or tenant != "')
        == 'tenant == "a\\" or tenant != \\"" and scope_id in [1,2] and expires_at > 5'
    )
    for bad in ("", "a\nb", "x" * 257, None, 3):
        with pytest.raises((ValueError, TypeError)):
            tenant_filter(bad)


def test_quote_string_is_what_the_tenant_filter_uses():
    assert tenant_filter('a"b') == "tenant == " + quote_string('a"b')
