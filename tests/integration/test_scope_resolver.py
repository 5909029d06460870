"""The cached scope resolution: same answers as the catalog, and any ACL change — in this
process or another — is seen by the very next call."""

from __future__ import annotations

import pytest

from governance.catalog import Catalog
from governance.contracts import AccessScope
from governance.scope_resolver import ScopeResolver


def test_a_repeated_principal_set_is_answered_from_the_cache(database_url):
    catalog = Catalog(database_url)
    sid, _ = catalog.scopes.upsert_scope(AccessScope(key="s", layers=[["group:eng"]]))
    r = ScopeResolver(catalog)
    assert r.allowed({"group:eng"}) == [sid] and r.allowed({"group:eng"}) == [sid]
    assert (r.hits, r.misses) == (1, 1)
    catalog.dispose()


@pytest.fixture
def eng_catalog(database_url):
    """A catalog with one scope readable by ``group:eng``, and that scope's id."""
    catalog = Catalog(database_url)
    sid, _ = catalog.scopes.upsert_scope(AccessScope(key="s", layers=[["group:eng"]]))
    yield catalog, sid
    catalog.dispose()


def test_a_repeated_principal_set_gets_the_same_scope_ids_object(eng_catalog):
    catalog, sid = eng_catalog
    r = ScopeResolver(catalog)
    first = r.allowed_ids({"group:eng"})
    assert list(first) == [sid]
    assert r.allowed_ids({"group:eng"}) is first  # what a search derives from it is kept with it


def test_an_acl_change_gives_a_new_scope_ids_object(eng_catalog):
    catalog, sid = eng_catalog
    r = ScopeResolver(catalog)
    first = r.allowed_ids({"group:eng"})
    other, _ = catalog.scopes.upsert_scope(AccessScope(key="t", layers=[["group:eng"]]))
    second = r.allowed_ids({"group:eng"})
    assert second is not first
    assert list(second) == sorted([sid, other])


def test_a_membership_change_in_another_process_is_seen_on_the_next_call(database_url):
    mine, theirs = Catalog(database_url), Catalog(database_url)  # two engines: two processes' views
    sid, _ = theirs.scopes.upsert_scope(AccessScope(key="s", layers=[["group:eng"], ["user:a@x.io"]]))
    r = ScopeResolver(mine)
    assert r.allowed({"group:eng", "user:a@x.io"}) == [sid]
    theirs.scopes.upsert_scope(AccessScope(key="s", layers=[["group:eng"], ["user:b@x.io"]]))  # revoke a
    assert r.allowed({"group:eng", "user:a@x.io"}) == []
    theirs.scopes.upsert_scope(AccessScope(key="t", layers=[["user:a@x.io"]]))  # a new scope a can read
    assert len(r.allowed({"group:eng", "user:a@x.io"})) == 1
    mine.dispose()
    theirs.dispose()


def test_an_unchanged_rewrite_of_a_scope_keeps_the_cache(database_url):
    catalog = Catalog(database_url)
    scope = AccessScope(key="s", layers=[["group:eng"]])
    catalog.scopes.upsert_scope(scope)
    r = ScopeResolver(catalog)
    r.allowed({"group:eng"})
    catalog.scopes.upsert_scope(scope)  # same layers: not a change, no generation bump
    r.allowed({"group:eng"})
    assert r.hits == 1
    catalog.dispose()


def test_the_cache_is_bounded(database_url):
    catalog = Catalog(database_url)
    r = ScopeResolver(catalog, max_entries=3)
    for i in range(10):
        r.allowed({f"group:g{i}"})
    assert len(r._entries) == 3
    catalog.dispose()


def test_post_check_resolution_among_given_scopes(database_url):
    catalog = Catalog(database_url)
    a, _ = catalog.scopes.upsert_scope(AccessScope(key="a", layers=[["group:eng"]]))
    b, _ = catalog.scopes.upsert_scope(AccessScope(key="b", layers=[["group:eng"], ["group:leads"]]))
    c, _ = catalog.scopes.upsert_scope(AccessScope(key="c", layers=[["group:eng"]]))
    assert catalog.scopes.allowed_scope_ids({"group:eng"}, among=[a, b]) == [a]
    assert catalog.scopes.allowed_scope_ids({"group:eng"}, among=[]) == []
    assert catalog.scopes.allowed_scope_ids({"group:eng"}) == [a, c]
    catalog.dispose()
