"""Leak fuzzing: random worlds and random operations over time, on the real stack.

The state machine (testsupport/leak_fuzz_machine.py, which describes the operations and the
checks) runs here with CI settings: every search is checked against the independent model
``testsupport.leak_model.LeakModel``, and one leak or one miss fails the test. Below it, the
fuzzer's findings pinned as plain tests. ``bench/leak_fuzz.py`` runs the same machine for long.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from testsupport.leak_fuzz_machine import FakeClock, machine_class, open_stores
from testsupport.leak_model import DAY, SLACK_CREATED, FuzzStats

CI_SETTINGS = settings(
    max_examples=16,
    stateful_step_count=24,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
    print_blob=True,
)


@pytest.fixture
def fake_clock(monkeypatch: pytest.MonkeyPatch):
    import importlib

    # ``retrieval.search`` the attribute is the function; the module is in sys.modules.
    monkeypatch.setattr(importlib.import_module("retrieval.search"), "datetime", FakeClock.datetime)
    yield FakeClock


def test_leak_fuzz_zero_leaks_zero_misses(tmp_path: Path, embedder, fake_clock) -> None:
    stores = open_stores(tmp_path)
    stats = FuzzStats()
    started = time.perf_counter()
    try:
        run_state_machine_as_test(
            machine_class(stores, embedder, stats, strict=True, workdir=tmp_path / "exports"), settings=CI_SETTINGS
        )
    finally:
        print(f"\n{stats.line()} in {time.perf_counter() - started:.1f} s; ops {dict(sorted(stats.ops.items()))}")
        stores.close()
    assert stats.leaks == 0, stats.findings
    assert stats.misses == 0, stats.findings
    assert stats.searches >= 50 and stats.hits_checked > 0, stats.line()


# -- findings of the fuzzer, pinned as plain tests ---------------------------------------------
def _one_channel(tmp_path: Path, embedder):
    from governance.contracts import AccessScope
    from governance.identity import User
    from governance.policy import Policy
    from ingest.pipeline.run import Ingestor
    from ingest.sources.base import Parsed, SourceItem, TextBlock
    from retrieval.search import Retriever

    stores = open_stores(tmp_path)
    stores.policy = Policy.model_validate(
        {"retention": [{"match": {"channel": "general"}, "keep_for": "90d", "from": "modified"}]}
    )
    scope = AccessScope(key="slack:T1:channel:C1", layers=[["user:alice@example.org"]])

    def item(doc_id: str, text: str, modified: datetime) -> SourceItem:
        return SourceItem(
            source="slack",
            path=Path(doc_id),
            rel_path=doc_id,
            document_id=doc_id,
            fingerprint=lambda: f"fp:{text}",
            parse=lambda: Parsed(elements=[TextBlock(text)], modified_at=modified),
            facts={"source": "slack", "channel": "general"},
            scope=scope,
            uri=f"x://{doc_id}",
            title=doc_id,
            modified_at=modified,
        )

    return (
        stores,
        Ingestor(stores, lambda: embedder),
        Retriever(stores, lambda: embedder),
        item,
        User(id="alice", email="alice@example.org"),
    )


def test_changed_text_past_retention_does_not_keep_old_version_searchable(tmp_path: Path, embedder) -> None:
    """A Slack thread whose newest remaining message is older than retention (its last reply
    was deleted): the re-export's text is past ``keep_for``, so the ingest skips it
    (``expired_skipped``) -- and the previous version, with the deleted text, stays searchable
    until the old expiry. The document as the source has it now is expired; nothing of it may
    be served. Found while writing the fuzzer's reference model (``source_expired`` in
    testsupport/leak_model.py); the fuzzer reaches it when a text edit and an expiry in the real
    past land in one ingest."""
    from datetime import timedelta

    stores, ingestor, retriever, item, alice = _one_channel(tmp_path, embedder)
    try:
        now = datetime.now(UTC)
        first = ingestor.ingest_items(
            [item("slack:T1:C1:t1", "deleted reply with the salary figures", now - timedelta(days=89))]
        )
        assert first.new == 1
        assert [h.document_id for h in retriever.search(alice, "salary figures", k=5)] == ["slack:T1:C1:t1"]
        second = ingestor.ingest_items([item("slack:T1:C1:t1", "thread opener only", now - timedelta(days=91))])
        assert second.expired_skipped == 1
        served = [h.text for h in retriever.search(alice, "salary figures", k=5)]
        assert served == [], f"expired document still served with its replaced text: {served}"
    finally:
        stores.close()


def test_document_is_found_until_its_expiry_not_a_second_before(tmp_path: Path, embedder, fake_clock) -> None:
    """Expiry times carry fractions of a second (Slack ``ts``, ``ingested`` retention). The
    vector's ``expires_at`` is truncated to whole seconds and the filter is ``expires_at >
    int(now)``, so in the last (fractional) second before its expiry a document the catalog
    post-check still allows is filtered out by Milvus: a miss, fail-closed, at most one second.
    The fuzzer draws whole-second expiries and so does not trip on this; this test pins it."""
    from datetime import timedelta

    stores, ingestor, retriever, item, alice = _one_channel(tmp_path, embedder)
    try:
        expiry = int(time.time()) + 3 * DAY + 0.5
        ingestor.ingest_items(
            [
                item(
                    "slack:T1:C1:t2",
                    "quarterly roadmap draft",
                    datetime.fromtimestamp(expiry, UTC) - timedelta(days=90),
                )
            ]
        )
        found = {}
        for before in (1.5, 0.75, 0.25):
            fake_clock.epoch = expiry - before  # type: ignore[assignment]
            found[before] = [h.document_id for h in retriever.search(alice, "quarterly roadmap draft", k=5)]
        fake_clock.epoch = expiry + 0.25  # type: ignore[assignment]
        assert retriever.search(alice, "quarterly roadmap draft", k=5) == []
        assert found == {b: ["slack:T1:C1:t2"] for b in found}, f"seconds before expiry -> hits: {found}"
    finally:
        stores.close()


def _private_channel_export(root: Path, serial: int, *, ann_active: bool, days: bool = True) -> Path:
    """Workspace TX, one private channel G1 (#secret) whose only member is ann; export
    ``serial`` is newer than every smaller one (users' ``updated``)."""
    path = root / f"export-{serial}"
    (path / "secret").mkdir(parents=True)
    (path / "users.json").write_text(
        json.dumps(
            [
                {
                    "id": "U1",
                    "team_id": "TX",
                    "name": "ann",
                    "deleted": not ann_active,
                    "updated": 1_750_000_000 + 1000 * serial,
                    "profile": {"display_name": "ann", "email": "ann@example.org"},
                }
            ]
        )
    )
    (path / "team_info.json").write_text(json.dumps({"team": {"id": "TX", "name": "x"}}))
    (path / "channels.json").write_text("[]")
    (path / "groups.json").write_text(
        json.dumps([{"id": "G1", "name": "secret", "created": SLACK_CREATED, "is_private": True, "members": ["U1"]}])
    )
    if days:
        (path / "secret" / "2024-01-02.json").write_text(
            json.dumps([{"type": "message", "user": "U1", "text": "amber apple zqka", "ts": "1704160800.000100"}])
        )
    return path


def test_acl_sync_of_export_where_private_channel_lost_its_last_member(tmp_path: Path, embedder) -> None:
    """Found by the leak fuzzer (``slack_*`` rules, sync): a private channel whose last active
    member is deactivated, in an export that still carries the channel's day files, whose
    documents were ingested earlier. The sync retires them and finishes (it used to stop
    half-way on the refused item's fingerprint)."""
    from governance.identity import User
    from ingest.pipeline.permission_sync import sync_permissions
    from ingest.pipeline.run import Ingestor
    from retrieval.search import Retriever

    stores = open_stores(tmp_path)
    try:
        ingestor, retriever = Ingestor(stores, lambda: embedder), Retriever(stores, lambda: embedder)
        assert ingestor.ingest_paths([_private_channel_export(tmp_path, 1, ann_active=True)]).new == 1
        sync_permissions(ingestor, [ingestor.open(_private_channel_export(tmp_path, 2, ann_active=False))])
        assert retriever.search(User(id="ann", email="ann@example.org"), "amber apple", k=5) == []
    finally:
        stores.close()


def test_older_export_refusal_does_not_retire_what_a_newer_export_allows(tmp_path: Path, embedder) -> None:
    """Found by the leak fuzzer (``slack_reapply_export``): export 2 (ann deactivated, so the
    private channel has no active member, with its day file) is ingested after export 3 (ann
    active again, no day file). Export 2's scope statement is ignored as stale, and so is its
    items' refusal (``empty_acl``): ann, who may read the document by the newest export, keeps
    it (it used to be tombstoned until an export with that day file came again)."""
    from governance.identity import User
    from ingest.pipeline.run import Ingestor
    from retrieval.search import Retriever

    stores = open_stores(tmp_path)
    try:
        ingestor, retriever = Ingestor(stores, lambda: embedder), Retriever(stores, lambda: embedder)
        ann = User(id="ann", email="ann@example.org")
        ingestor.ingest_paths([_private_channel_export(tmp_path, 1, ann_active=True)])
        older = _private_channel_export(tmp_path, 2, ann_active=False)
        ingestor.ingest_paths([_private_channel_export(tmp_path, 3, ann_active=True, days=False)])
        assert [h.document_id for h in retriever.search(ann, "amber apple", k=5)] == ["slack:TX:G1:day:2024-01-02"]
        ingestor.ingest_paths([older])
        assert [h.document_id for h in retriever.search(ann, "amber apple", k=5)] == ["slack:TX:G1:day:2024-01-02"]
    finally:
        stores.close()


def _private_channel_with_a_deactivated_member(tmp_path: Path) -> Path:
    """A Slack export: private channel G1 of ann (active) and old (deactivated), one message."""
    from testsupport.sources_fixtures import SConv, SUser, add_messages, msg, write_slack_export

    users = [SUser("U1", "ann", "ann@example.org"), SUser("U2", "old", "old@example.org", deleted=True)]
    secret = SConv("G1", "secret", "private", ["U1", "U2"])
    add_messages(secret, [msg("U1", "amber apple zqka", 0)])
    return write_slack_export(tmp_path / "export", users, [secret])


def test_deactivated_account_granted_a_members_principal_by_a_role_reads_nothing(tmp_path: Path, embedder) -> None:
    """Found by the leak fuzzer (``edit_policy`` after ``slack_*`` exports): a private channel
    of one active member; the workspace's other account is deactivated. A role grant added to
    the policy after the ingest hands the member's own ``user:`` principal to the deactivated
    person. She must still read nothing of the workspace: the channel's scope carries the deny
    list although its layer holds no shared principal (it used to carry none)."""
    from governance.identity import User
    from governance.policy import Policy
    from ingest.pipeline.run import Ingestor
    from retrieval.search import Retriever

    export = _private_channel_with_a_deactivated_member(tmp_path)
    stores = open_stores(tmp_path)
    try:
        ingestor, retriever = Ingestor(stores, lambda: embedder), Retriever(stores, lambda: embedder)
        assert ingestor.ingest_paths([export]).new == 1
        stores.policy = Policy(roles={"deputy": ["user:ann@example.org"]})
        old = User(id="old", email="old@example.org", roles=("deputy",))
        assert "user:ann@example.org" in old.principals(stores.policy.roles)
        assert retriever.search(old, "amber apple", k=5) == []
        ann = User(id="ann", email="ann@example.org")
        assert [h.document_id.split(":")[2] for h in retriever.search(ann, "amber apple", k=5)] == ["G1"]
    finally:
        stores.close()


def test_syncing_the_newest_export_again_puts_the_deny_list_on_a_catalog_written_without_it(
    tmp_path: Path, embedder
) -> None:
    """The upgrade step docs/sources.md names: a private channel's scope stored without the deny
    list (as earlier versions stored it) gets it when the same export is synced again."""
    from governance.contracts import AccessScope
    from governance.identity import User
    from governance.policy import Policy
    from ingest.pipeline.permission_sync import sync_permissions
    from ingest.pipeline.run import Ingestor
    from retrieval.search import Retriever

    export = _private_channel_with_a_deactivated_member(tmp_path)
    stores = open_stores(tmp_path)
    try:
        ingestor, retriever = Ingestor(stores, lambda: embedder), Retriever(stores, lambda: embedder)
        ingestor.ingest_paths([export])
        key = "slack:T0ACME:channel:G1"
        (stored,) = stores.catalog.scopes.scopes_by_keys([key])
        as_of = stores.catalog.scopes.scope_as_of(key)
        stores.catalog.scopes.upsert_scope(AccessScope(key=key, layers=stored.layers), as_of=as_of)  # the old rule
        stores.policy = Policy(roles={"deputy": ["user:ann@example.org"]})
        old = User(id="old", email="old@example.org", roles=("deputy",))
        assert retriever.search(old, "amber apple", k=5) != []  # what such a catalog allowed
        sync_permissions(ingestor, [ingestor.open(export)])
        assert stores.catalog.scopes.scopes_by_keys([key])[0].deny == {"user:old@example.org"}
        assert retriever.search(old, "amber apple", k=5) == []
    finally:
        stores.close()
