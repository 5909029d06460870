"""Slack exports: reading, rendering, documents, scopes (generated fixtures and real samples)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from governance.errors import QuarantinedDocument, SourceError
from governance.policy import Policy
from ingest.chunking import chunk_elements, clean_elements
from ingest.sources import discover as discover_any
from ingest.sources import slack
from ingest.sources.slack.load import Conversation, SlackExport, clean_messages
from ingest.sources.slack.render import group_documents, render_message
from testsupport.sources_fixtures import (
    SConv,
    SUser,
    add_messages,
    date_of,
    msg,
    small_slack_export,
    ts_of,
    write_slack_export,
)


def _items(path: Path, policy: Policy | None = None) -> dict[str, object]:
    return {i.document_id: i for i in slack.discover(path, policy=policy or Policy())}


def test_detects_folder_and_zip(tmp_path: Path) -> None:
    folder = small_slack_export(tmp_path / "exp")
    z = small_slack_export(tmp_path / "exp2", as_zip=True)
    assert slack.detect(folder) and slack.detect(z)
    assert not slack.detect(tmp_path / "nothing")
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "a.pdf").write_bytes(b"%PDF")
    assert not slack.detect(tmp_path / "plain")
    # the generic dispatcher picks slack for both shapes
    assert {i.source for i in discover_any(z)} == {"slack"}


def test_documents_threads_days_and_text(tmp_path: Path) -> None:
    items = _items(small_slack_export(tmp_path / "exp"))
    day0 = f"slack:T0ACME:C1:day:{date_of(ts_of(0))}"
    day1 = f"slack:T0ACME:C1:day:{date_of(ts_of(86400))}"
    thread = f"slack:T0ACME:C1:{ts_of(20)}"
    assert {day0, day1, thread} <= set(items)
    t = items[thread].parse()
    texts = [e.text for e in t.elements]
    assert type(t.elements[0]).__name__ == "Title" and "thread" in texts[0]
    assert any("Postgres, as discussed with @bob" in x for x in texts)
    assert any("Agreed, broadcasting to #general" in x for x in texts)  # broadcast joined to its thread
    d = items[day0].parse()
    body = "\n".join(e.text for e in d.elements)
    assert "Kickoff for project falcon is @here on Monday, see the plan (https://wiki.example/falcon)" in body
    assert "has joined" not in body  # join noise skipped
    assert "secret draft" not in body  # deleted message skipped
    assert "final wording (edited)" in body  # latest edited text kept
    assert "Deploy 42" in body and "deploybot" in body  # bot message as text
    assert "[file: Falcon budget — falcon-budget.xlsx, Excel]" in body  # file as metadata only
    assert "Postgres" not in body  # thread replies are not day talk
    assert d.author == "alice" and d.owner == "user:alice@corp.example" and d.modified_at is not None
    # each message element carries its author's principal (erasure drops them); bots carry none
    authors = [getattr(e, "govrag_author", None) for e in d.elements]
    assert authors[0] is None and "user:bob@corp.example" in authors and authors.count(None) == 2
    d1 = "\n".join(e.text for e in items[day1].parse().elements)
    assert "old code and style & <tags>" in d1
    # chunk_by_title accepts the elements
    assert chunk_elements(clean_elements(d.elements), 1000)


def test_scopes_public_private_dm_and_guests(tmp_path: Path) -> None:
    items = _items(small_slack_export(tmp_path / "exp"))
    pub = items[f"slack:T0ACME:C1:day:{date_of(ts_of(0))}"].scope
    # carol is a guest member of #general: the channel gets its own scope = workspace ∪ carol
    assert pub.key == "slack:T0ACME:channel:C1"
    assert pub.layers == (
        frozenset({"user:alice@corp.example", "user:bob@corp.example", "user:carol@partner.example"}),
    )
    priv = next(i for i in items.values() if i.document_id.startswith("slack:T0ACME:G1:")).scope
    assert priv.key == "slack:T0ACME:channel:G1"
    assert priv.layers == (frozenset({"user:alice@corp.example", "user:carol@partner.example"}),)
    dm = next(i for i in items.values() if i.document_id.startswith("slack:T0ACME:D1:"))
    assert dm.scope.layers == (frozenset({"user:alice@corp.example", "user:bob@corp.example"}),)
    assert dm.facts == {"source": "slack", "workspace": "T0ACME", "channel": "D1", "path": dm.rel_path}


def test_workspace_scope_and_policy_mapping(tmp_path: Path) -> None:
    users = [
        SUser("U1", "alice", "alice@x.example"),
        SUser("U2", "bob"),
        SUser("U3", "gus", "g@x.example", ultra=True),
        SUser("U4", "old", "old@x.example", deleted=True),
    ]
    c = SConv("C9", "town-hall", "public", ["U1", "U2", "U4"])
    add_messages(c, [msg("U1", "hello all", 0)])
    path = write_slack_export(tmp_path / "w", users, [c])
    (item,) = slack.discover(path, policy=Policy())
    # every conversation has its own key, public channels too (no shared workspace key)
    assert item.scope.key == "slack:T0ACME:channel:C9"
    # source-members: full members only (no guest, no deleted); no email → slack id principal
    assert item.scope.layers == (frozenset({"user:alice@x.example", "user:slack:T0ACME:U2"}),)
    # a layer of members' own principals still carries the deny list (see below)
    assert item.scope.deny == frozenset({"user:old@x.example"})
    assert not item.scope.allows(frozenset({"user:old@x.example"}))
    (item,) = slack.discover(path, policy=Policy(workspaces={"T0ACME": ["group:all-staff"]}))
    assert item.scope.layers == (frozenset({"group:all-staff"}),) and item.scope.key == "slack:T0ACME:channel:C9"
    # a shared principal could: the deactivated account is denied, whatever group it still holds
    assert item.scope.deny == frozenset({"user:old@x.example"})
    assert item.scope.allows(frozenset({"group:all-staff"}))
    assert not item.scope.allows(frozenset({"group:all-staff", "user:old@x.example"}))
    (item,) = slack.discover(path, policy=Policy(workspaces={"default": "group:everyone"}))
    assert item.scope.layers == (frozenset({"group:everyone"}),)
    assert item.scope.deny == frozenset({"user:old@x.example"})


def test_deactivated_account_is_denied_in_every_conversation_of_the_workspace(tmp_path: Path) -> None:
    """A private channel, a DM and a group DM deny the deactivated account too: the policy's
    ``roles`` can grant a member's own ``user:`` principal to anybody, so a layer of members'
    principals does not keep a deactivated person out by itself."""
    users = [SUser("U1", "alice", "alice@x.example"), SUser("U4", "old", "old@x.example", deleted=True)]
    convs = [
        SConv("G1", "secret", "private", ["U1", "U4"]),
        SConv("D1", "", "im", ["U1", "U4"]),
        SConv("G2", "mpdm-alice--old-1", "mpim", ["U1", "U4"]),
    ]
    for c in convs:
        add_messages(c, [msg("U1", f"hello {c.id}", 0)])
    items = list(slack.discover(write_slack_export(tmp_path / "w", users, convs), policy=Policy()))
    assert len(items) == 3
    for item in items:
        assert item.scope.layers == (frozenset({"user:alice@x.example"}),)
        assert item.scope.deny == frozenset({"user:old@x.example"})
        # the deactivated person holding alice's principal (a role grant) is still denied
        assert not item.scope.allows(frozenset({"user:old@x.example", "user:alice@x.example"}))
        assert item.scope.allows(frozenset({"user:alice@x.example"}))


def test_conversations_a_later_export_does_not_list_get_the_deny_list_whatever_their_layers() -> None:
    from governance.contracts import AccessScope
    from ingest.sources.slack.permissions import WorkspaceDeny

    rebase = WorkspaceDeny("slack:T0ACME:", {"slack:T0ACME:channel:C1"}, frozenset({"user:old@x.example"}))
    members_only = AccessScope(key="slack:T0ACME:channel:G9", layers=[["user:alice@x.example"]])
    rebuilt = rebase.rebuild(members_only)
    assert rebuilt is not None and rebuilt.deny == frozenset({"user:old@x.example"})
    assert rebuilt.layers == members_only.layers
    assert rebase.rebuild(rebuilt) is None  # already denied: nothing to write
    nobody = AccessScope(key="slack:T0ACME:channel:G8", layers=[[]])
    assert rebase.rebuild(nobody) is None  # readable by nobody: no deny rows needed


def test_fingerprint_stable_and_changes_with_content(tmp_path: Path) -> None:
    a = _items(small_slack_export(tmp_path / "a"))
    b = _items(small_slack_export(tmp_path / "b", as_zip=True))
    assert {k: v.fingerprint() for k, v in a.items()} == {k: v.fingerprint() for k, v in b.items()}
    users = [SUser("U1", "alice", "a@x.example")]
    c = SConv("C1", "general", "public", ["U1"])
    add_messages(c, [msg("U1", "one", 0), msg("U1", "two", 10)])
    p1 = write_slack_export(tmp_path / "c1", users, [c])
    c.days[next(iter(c.days))][1]["text"] = "two, edited"
    p2 = write_slack_export(tmp_path / "c2", users, [c])
    (i1,), (i2,) = list(slack.discover(p1, policy=Policy())), list(slack.discover(p2, policy=Policy()))
    assert i1.document_id == i2.document_id and i1.fingerprint() != i2.fingerprint()


def test_bad_input_is_quarantined_per_document(tmp_path: Path) -> None:
    users = [SUser("U1", "alice", "a@x.example"), SUser("U9", "gone", "g@x.example", deleted=True)]
    good = SConv("C1", "general", "public", ["U1"])
    add_messages(good, [msg("U1", "fine", 0)])
    dead = SConv("G1", "dead", "private", ["U9"])
    add_messages(dead, [msg("U9", "nobody can read me", 0)])
    path = write_slack_export(
        tmp_path / "e",
        users,
        [good, dead],
        extra_files={
            f"general/{date_of(ts_of(86400 * 6))}.json": b"{broken",
            f"unlisted/{date_of(ts_of(0))}.json": [msg("U1", "who may read?", 5)],
        },
    )
    items = _items(path)
    ok = [
        i
        for i in items.values()
        if not i.document_id.endswith(date_of(ts_of(86400 * 6)))
        and "G1" not in i.document_id
        and "unlisted" not in i.document_id
    ]
    assert [i.parse().elements[1].text.endswith("fine") for i in ok] == [True]
    reasons = {}
    for doc_id, item in items.items():
        if item in ok:
            continue
        with pytest.raises(QuarantinedDocument) as exc:
            item.fingerprint()
        reasons[doc_id] = exc.value.reason
        if exc.value.reason != "malformed_json":  # a bad day file keeps its channel's scope
            assert not item.scope.allows(frozenset({"user:a@x.example", "user:g@x.example"}))
    assert sorted(reasons.values()) == ["empty_acl", "malformed_json", "unknown_conversation"]


def test_missing_users_file_is_a_source_error(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "channels.json").write_text("[]")
    with pytest.raises(SourceError, match="users.json"):
        list(slack.discover(tmp_path / "x", policy=Policy()))
    (tmp_path / "x" / "users.json").write_text("{not json")
    with pytest.raises(SourceError, match="unreadable"):
        list(slack.discover(tmp_path / "x", policy=Policy()))


# -- the real samples ----------------------------------------------------------------------------
def test_real_slack_export_viewer_archive(corpus: Path) -> None:
    base = corpus / "slack" / "slack-export-viewer"
    folder, zipped = _items(base / "testarchive"), _items(base / "testarchive.zip")
    assert folder.keys() == zipped.keys() and len(folder) == 17 - 1  # 17 day files, 16 with talk
    assert {i.fingerprint() for i in folder.values()} == {i.fingerprint() for i in zipped.values()}
    workspace_layers = {item.scope.layers for item in folder.values()}
    assert len(workspace_layers) == 1  # every public channel: the same workspace readers
    for item in folder.values():
        assert item.scope.key == f"slack:T0BMHLSRH:channel:{item.document_id.split(':')[2]}"
        parsed = item.parse()
        assert parsed.elements and parsed.title.startswith("#")
        text = "\n".join(e.text for e in parsed.elements)
        assert "<@U" not in text and "has joined the channel" not in text
    files = "\n".join(e.text for i in folder.values() for e in i.parse().elements)
    assert "[file: 100 cities — 100_cities.js, JavaScript/JSON]" in files
    assert "@abilinski: Created an issue for a setup.py" in files


def test_real_zulip_fixtures(corpus: Path, tmp_path: Path) -> None:
    z = corpus / "slack" / "zulip"
    fixtures = z / "exported_messages_fixtures"
    users = json.loads((fixtures / "users.json").read_text())
    channels = json.loads((z / "channels.json").read_text())
    export = SlackExport(
        root=tmp_path,
        display="zulip",
        team="T",
        team_names=[],
        domain=None,
        users={u["id"]: u for u in users},
        conversations={},
        by_id={},
    )
    for ch in channels:
        conv = Conversation(ch["id"], ch["name"], "public", ch.get("members", []), ch["name"])
        export.by_id[ch["id"]] = conv
    # threads: one reply older than its parent, broadcast with an embedded root
    thread = json.loads((fixtures / "thread_with_broadcast_reply.json").read_text())
    docs = group_documents(
        export.by_id.get("C061A0WJG") or Conversation("C", "random", "public", [], "random"),
        [("2015-06-12", clean_messages(thread))],
    )
    assert len(docs) == 1 and docs[0].is_thread and len(docs[0].messages) == 3
    normal = json.loads((fixtures / "normal_thread.json").read_text())
    for doc in group_documents(
        Conversation("C", "random", "public", [], "random"), [("2015-06-12", clean_messages(normal))]
    ):
        ts = [float(m["ts"]) for m in doc.messages]
        assert ts == sorted(ts)
    for name in (
        "message_with_user_mentions",
        "message_with_channel_mentions",
        "message_with_workspace_mentions",
        "message_with_emojis",
        "message_with_bullet_list",
        "message_with_inline_code",
        "message_with_variety_files_and_rich_text",
        "normal_messages",
    ):
        rows = json.loads((fixtures / f"{name}.json").read_text())
        rows = rows if isinstance(rows, list) else [rows]
        for m in clean_messages(rows):
            line = render_message(m, export)
            assert line and "<@" not in line and "<#" not in line and "<!" not in line, (name, line)
    # full users.json with non-ASCII names; the day files of the importer test have no
    # channels.json next to them: their permissions are unknown, so they are quarantined.
    items = list(slack.discover(z / "test_slack_importer", policy=Policy()))
    assert items and all(i.document_id.startswith("slack:") for i in items)
    for i in items:
        with pytest.raises(QuarantinedDocument, match="unknown permissions"):
            i.fingerprint()
