"""The catalog on SQLite and (when configured) PostgreSQL: migrations, scopes, audit chain."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from governance import audit
from governance.catalog import Catalog
from governance.catalog.migrate import current_revision, head_revision
from governance.contracts import AccessScope


def test_migrations_reach_head_and_reopening_is_a_no_op(database_url):
    first = Catalog(database_url)
    assert current_revision(first.engine) == head_revision()
    first.dispose()
    again = Catalog(database_url)
    assert current_revision(again.engine) == head_revision()
    again.dispose()


def test_audit_event_ids_are_64_bit(catalog):
    from sqlalchemy import text

    from governance import audit

    big = 2**31 + 5
    if catalog.engine.dialect.name == "postgresql":
        with catalog.engine.begin() as conn:
            conn.execute(text(f"SELECT setval('audit_events_id_seq', {big})"))
    else:  # SQLite's INTEGER rowid alias: the next id follows the largest one
        with catalog.engine.begin() as conn:
            conn.execute(
                text(
                    f"INSERT INTO audit_events (id, seq, ts, kind, payload, prev_hash, hash) "
                    f"VALUES ({big}, -1, CURRENT_TIMESTAMP, 'x', '{{}}', '', '')"
                )
            )
    audit.record(catalog, "search", "a@x.io", {"n": 1})
    with catalog.engine.connect() as conn:
        assert conn.execute(text("SELECT max(id) FROM audit_events")).scalar() > 2**31


def test_user_must_match_every_layer_of_a_scope(catalog):
    sid, _ = catalog.scopes.upsert_scope(
        AccessScope(key="conf:ENG:42", layers=[["group:eng"], ["user:a@x.io", "group:leads"]])
    )
    assert catalog.scopes.allowed_scope_ids({"group:eng"}) == []
    assert catalog.scopes.allowed_scope_ids({"group:leads"}) == []
    assert catalog.scopes.allowed_scope_ids({"group:eng", "group:leads"}) == [sid]
    assert catalog.scopes.allowed_scope_ids({"group:eng", "user:a@x.io"}) == [sid]


def test_membership_change_updates_the_same_scope(catalog):
    sid, changed = catalog.scopes.upsert_scope(AccessScope(key="slack:T1:C1", layers=[["user:a@x.io"]]))
    assert changed
    assert catalog.scopes.upsert_scope(AccessScope(key="slack:T1:C1", layers=[["user:a@x.io"]])) == (sid, False)
    sid2, changed = catalog.scopes.upsert_scope(AccessScope(key="slack:T1:C1", layers=[["user:b@x.io"]]))
    assert (sid2, changed) == (sid, True)
    assert catalog.scopes.allowed_scope_ids({"user:a@x.io"}) == []
    assert catalog.scopes.allowed_scope_ids({"user:b@x.io"}) == [sid]


def test_no_principals_means_no_scopes(catalog):
    catalog.scopes.upsert_scope(AccessScope(key="k", layers=[["group:a"]]))
    assert catalog.scopes.allowed_scope_ids(set()) == []


@pytest.mark.parametrize("name", ['x" or "1"="1', "x' OR '1'='1", "x); DROP TABLE scopes; --", "%", "_", "a\\b", "*"])
def test_hostile_principal_strings_match_only_themselves(catalog, name):
    sid, _ = catalog.scopes.upsert_scope(AccessScope(key="k", layers=[[f"group:{name}"]]))
    other, _ = catalog.scopes.upsert_scope(AccessScope(key="other", layers=[["group:someone-else"]]))
    assert catalog.scopes.allowed_scope_ids({f"group:{name}"}) == [sid]
    assert catalog.scopes.allowed_scope_ids({"group:x"}) == []
    assert other not in catalog.scopes.allowed_scope_ids({f"group:{name}"})


def test_audit_chain_verifies_and_detects_an_edit(catalog):
    for i in range(5):
        audit.record(catalog, "search", "a@x.io", {"i": i})
    assert audit.verify(catalog) == []
    with catalog.engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE seq = 3"))
    problems = audit.verify(catalog)
    assert [p.seq for p in problems] == [3]


def test_audit_chain_detects_a_deleted_event(catalog):
    for i in range(4):
        audit.record(catalog, "search", None, {"i": i})
    with catalog.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE seq = 2"))
    assert any(p.seq == 3 for p in audit.verify(catalog))


def test_audit_chain_detects_a_deleted_tail(catalog):
    for i in range(3):
        audit.record(catalog, "search", None, {"i": i})
    with catalog.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE seq = 3"))
    assert audit.verify(catalog)


def test_a_changed_scope_is_an_audited_acl_change(catalog):
    catalog.scopes.upsert_scope(AccessScope(key="slack:T1:C7", layers=[["user:a@x.io"]]))
    assert audit.events(catalog, kind="acl_change") == []
    catalog.scopes.upsert_scope(AccessScope(key="slack:T1:C7", layers=[["user:a@x.io", "user:b@x.io"]]), actor="sync")
    [event] = audit.events(catalog, kind="acl_change")
    assert event["actor"] == "sync" and event["payload"]["scope"] == "slack:T1:C7"
