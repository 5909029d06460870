"""Shared deny lists on SQLite and (when configured) PostgreSQL: a deny list is stored once for
every scope that carries it, denies in every one of them, and goes when no scope carries it."""

from __future__ import annotations

import pytest
from sqlalchemy import func, insert, select

from governance.catalog.models import DenyList, DenyListPrincipal, Scope, ScopePrincipal
from governance.catalog.scopes import DENY_LAYER, PRINCIPALS_PER_QUERY
from governance.contracts import AccessScope

GONE = frozenset({"user:old@x.example", "user:older@x.example"})


def _conversation(i: int, deny: frozenset[str] = GONE) -> AccessScope:
    return AccessScope(key=f"slack:T1:channel:C{i}", layers=[["user:alice@x.example", "group:staff"]], deny=deny)


def _count(catalog, table) -> int:
    with catalog.session() as s:
        return int(s.scalar(select(func.count()).select_from(table)) or 0)


def test_a_deny_list_many_scopes_carry_is_stored_once(catalog):
    ids = [catalog.scopes.upsert_scope(_conversation(i))[0] for i in range(50)]
    assert _count(catalog, DenyList) == 1
    assert _count(catalog, DenyListPrincipal) == len(GONE)
    with catalog.session() as s:
        assert s.scalar(select(func.count()).where(ScopePrincipal.layer == DENY_LAYER)) == 0
    # every one of them denies the deactivated accounts, whatever else they hold
    assert catalog.scopes.allowed_scope_ids(["group:staff"]) == sorted(ids)
    assert catalog.scopes.allowed_scope_ids(["group:staff", "user:old@x.example"]) == []
    assert catalog.scopes.allowed_scope_ids(["user:alice@x.example", "user:older@x.example"], among=ids) == []
    # and reads back as the scope that was written
    assert catalog.scopes.scopes_by_keys(["slack:T1:channel:C7"])[0].deny == GONE
    assert catalog.scopes.scope_by_id(ids[0]).deny == GONE


def test_a_changed_deny_list_is_stored_anew_and_the_unused_one_goes(catalog):
    for i in range(3):
        catalog.scopes.upsert_scope(_conversation(i))
    more = GONE | {"user:new-leaver@x.example"}
    for i in range(3):
        assert catalog.scopes.upsert_scope(_conversation(i, more))[1]
    assert _count(catalog, DenyList) == 1 and _count(catalog, DenyListPrincipal) == len(more)
    assert catalog.scopes.allowed_scope_ids(["group:staff", "user:new-leaver@x.example"]) == []
    # reactivated: no deny list at all
    for i in range(3):
        catalog.scopes.upsert_scope(_conversation(i, frozenset()))
    assert _count(catalog, DenyList) == 0 and _count(catalog, DenyListPrincipal) == 0
    assert len(catalog.scopes.allowed_scope_ids(["group:staff", "user:new-leaver@x.example"])) == 3


def test_a_list_still_carried_by_another_scope_is_kept(catalog):
    a, _ = catalog.scopes.upsert_scope(_conversation(1))
    b, _ = catalog.scopes.upsert_scope(_conversation(2))
    catalog.scopes.upsert_scope(_conversation(1, frozenset()))
    assert _count(catalog, DenyList) == 1
    assert catalog.scopes.allowed_scope_ids(["group:staff", "user:old@x.example"]) == [a]
    assert catalog.scopes.scope_by_id(b).deny == GONE


def test_deny_rows_of_a_scope_written_before_lists_were_shared_still_deny(catalog):
    sid, _ = catalog.scopes.upsert_scope(_conversation(1, frozenset()))
    with catalog.session() as s:  # what earlier versions stored: the scope's own deny rows
        s.execute(insert(ScopePrincipal), [{"scope_id": sid, "layer": DENY_LAYER, "principal": "user:old@x.example"}])
    assert catalog.scopes.allowed_scope_ids(["group:staff", "user:old@x.example"]) == []
    assert catalog.scopes.scope_by_id(sid).deny == {"user:old@x.example"}
    # written again, the scope carries the shared list and its own deny rows are gone
    catalog.scopes.upsert_scope(_conversation(1, frozenset({"user:old@x.example"})))
    with catalog.session() as s:
        assert s.scalar(select(func.count()).where(ScopePrincipal.layer == DENY_LAYER)) == 0
        assert s.scalar(select(Scope.deny_list_id).where(Scope.id == sid)) is not None
    assert catalog.scopes.allowed_scope_ids(["group:staff", "user:old@x.example"]) == []


def test_a_caller_with_more_principals_than_one_statement_binds_is_denied_too(catalog):
    sid, _ = catalog.scopes.upsert_scope(_conversation(1))
    many = [f"group:g{i}" for i in range(PRINCIPALS_PER_QUERY + 5)]
    assert catalog.scopes.allowed_scope_ids([*many, "group:staff"]) == [sid]
    assert catalog.scopes.allowed_scope_ids([*many, "group:staff", "user:older@x.example"]) == []


@pytest.mark.parametrize("hostile", ["user:o'neil@x.example", 'user:"] or scope_id >= 0 or ["', "user:a\\b@x"])
def test_hostile_deny_principals_deny_only_themselves(catalog, hostile):
    sid, _ = catalog.scopes.upsert_scope(_conversation(1, frozenset({hostile})))
    assert catalog.scopes.allowed_scope_ids(["group:staff", hostile]) == []
    assert catalog.scopes.allowed_scope_ids(["group:staff", "user:someone@x.example"]) == [sid]


def test_a_catalog_of_the_previous_schema_keeps_its_scopes_and_deny_rows_when_upgraded(database_url):
    """The upgrade adds the shared lists beside the existing rows: nothing of a scope written
    by the previous schema is lost (a table copy on SQLite would have cascaded its rows away)."""
    from alembic import command
    from sqlalchemy import create_engine, text

    from governance.catalog import Catalog
    from governance.catalog.migrate import _config

    engine = create_engine(database_url)
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":  # as the catalog's own connections have it
            conn.exec_driver_sql("PRAGMA foreign_keys=ON")
        cfg = _config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0005")
        conn.execute(
            text(
                "INSERT INTO scopes (key, fingerprint, n_layers, description, updated_at) VALUES (:k, 'f', 1, '', :t)"
            ),
            {"k": "slack:T1:channel:C1", "t": "2026-01-01 00:00:00"},
        )
        sid = conn.execute(text("SELECT id FROM scopes WHERE key = 'slack:T1:channel:C1'")).scalar_one()
        conn.execute(
            text(
                "INSERT INTO scope_principals (scope_id, layer, principal) VALUES (:s, 0, 'group:staff'), (:s, -1, :d)"
            ),
            {"s": sid, "d": "user:old@x.example"},
        )
    engine.dispose()
    catalog = Catalog(database_url)  # migrates to head
    try:
        assert catalog.scopes.allowed_scope_ids(["group:staff"]) == [sid]
        assert catalog.scopes.allowed_scope_ids(["group:staff", "user:old@x.example"]) == []
        assert catalog.scopes.scope_by_id(sid).deny == {"user:old@x.example"}
    finally:
        catalog.dispose()


def test_a_list_dropped_between_reading_a_scope_and_its_list_denies(catalog):
    """The scope is read first, its list after: if the list went in between (the scope moved
    on to another one), that search is denied rather than judged on nothing."""
    from governance.catalog.scopes import _denying_lists

    sid, _ = catalog.scopes.upsert_scope(_conversation(1))
    with catalog.session() as s:
        (list_id,) = s.scalars(select(Scope.deny_list_id).where(Scope.id == sid))
        assert _denying_lists(s, ["group:staff"], {list_id}) == set()
        assert _denying_lists(s, ["group:staff", "user:old@x.example"], {list_id}) == {list_id}
        assert _denying_lists(s, ["group:staff"], {list_id + 1000}) == {list_id + 1000}


def test_a_dropped_lists_id_is_never_given_to_another_list(catalog):
    catalog.scopes.upsert_scope(_conversation(1))
    with catalog.session() as s:
        first = s.scalar(select(DenyList.id))
    catalog.scopes.upsert_scope(_conversation(1, frozenset()))  # reactivated: the list goes
    catalog.scopes.upsert_scope(_conversation(1, frozenset({"user:someone-else@x.example"})))
    with catalog.session() as s:
        assert s.scalar(select(DenyList.id)) > first
