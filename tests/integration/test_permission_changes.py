"""Permission-change matrix: export v1 → a change at the source → export v2 (ingested, or
applied with ``acl sync``) → who can read what, for Slack and Confluence, on Milvus Lite and
on the Milvus server.

Each test names one class of change in which a person could keep reading what the source no
longer lets them read. Exports are written by code (``testsupport.permission_exports``,
``testsupport.sources_fixtures``); every document holds a unique phrase; "can read" means a
search for the phrase returns it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from governance.errors import SourceError
from governance.identity import User
from testsupport.milvus_server import unique_collection
from testsupport.permission_exports import DAY, GENERAL, POLICY, SECRET, SHARED, conv, people, slack_export
from testsupport.sources_fixtures import (
    CPage,
    CSpace,
    CUser,
    SUser,
    add_messages,
    msg,
    storage_body,
    write_confluence_rest,
    write_confluence_xml,
    write_slack_export,
)
from testsupport.store_settings import embedded_settings

ALICE = User(id="alice", email="alice@corp.example", groups=("eng", "all-staff"))
BOB = User(id="bob", email="bob@corp.example", groups=("eng", "all-staff"))
CAROL = User(id="carol", email="carol@corp.example", groups=("all-staff",))
GUS = User(id="gus", email="gus@guest.example")
XENA = User(id="xena", email="xena@partner.example")


# -- the world: stores on one backend, an ingestor, a reader -------------------------------------
@dataclass
class World:
    stores: Any
    embedder: Any
    tmp: Path
    policy_path: Path
    sites: dict[str, str] = field(default_factory=dict)

    def ingest(self, *paths: Path, prune: bool = False, site: str | None = None):
        from ingest.pipeline.run import Ingestor

        return Ingestor(self.stores, lambda: self.embedder, site=site).ingest_paths(list(paths), prune=prune)

    def acl_sync(self, *paths: Path, site: str | None = None):
        from ingest.pipeline.permission_sync import sync_permissions
        from ingest.pipeline.run import Ingestor

        ingestor = Ingestor(self.stores, lambda: self.embedder, site=site)
        return sync_permissions(ingestor, [ingestor.open(p) for p in paths], actor="test")

    def apply(self, how: str, *paths: Path):
        return self.ingest(*paths) if how == "ingest" else self.acl_sync(*paths)

    def reads(self, user: User, phrase: str) -> set[str]:
        """The documents holding ``phrase`` that ``user``'s search returns."""
        from retrieval.search import Retriever

        hits = Retriever(self.stores, lambda: self.embedder).search(user, phrase, k=10)
        return {h.document_id for h in hits if phrase in h.text}

    def can_read(self, user: User, phrase: str, doc_prefix: str) -> bool:
        return any(d.startswith(doc_prefix) for d in self.reads(user, phrase))

    def vector_scope_ids(self) -> dict[int, int]:
        rows = self.stores.index.rows_of_documents(self.stores.catalog.documents.select_documents(), ["id", "scope_id"])
        return {int(r["id"]): int(r["scope_id"]) for r in rows}


@pytest.fixture
def world(request: pytest.FixtureRequest, backend: str, tmp_path: Path, embedder) -> Any:
    from governance.stores import Stores

    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    if backend == "server":
        server = request.getfixturevalue("milvus_server")
        uri, collection = server.uri, unique_collection("perm")
    else:
        uri, collection = str(tmp_path / "milvus.db"), "perm"
    stores = Stores.open(embedded_settings(tmp_path, milvus_uri=uri, policy=policy, collection=collection))
    yield World(stores, embedder, tmp_path, policy)
    if backend == "server":
        stores.index.drop()
    stores.close()


def set_policy(world: World, text: str) -> None:
    """Replace the world's policy (the stores read it once: reopen its policy)."""
    from governance.policy import load_policy

    world.policy_path.write_text(text)
    world.stores.policy = load_policy(world.policy_path)


# -- Slack exports -------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["ingest", "acl_sync"])
def test_slack_membership_from_metadata_without_messages(world: World, how: str) -> None:
    """A later export lists private G1 with fewer members and has no day files for it: the
    dropped member loses every G1 document ingested from the earlier export."""
    v1 = slack_export(world.tmp / "v1", [conv("G1", "secret", "private", ["U1", "U2", "U3"], SECRET)], at=0)
    world.ingest(v1)
    assert world.can_read(CAROL, SECRET, "slack:T0ACME:G1:")
    v2 = slack_export(
        world.tmp / "v2",
        [conv("G1", "secret", "private", ["U1", "U2"]), conv("C1", "general", "public", ["U1"], GENERAL, at=DAY)],
        at=DAY,
    )
    world.apply(how, v2)
    assert not world.can_read(CAROL, SECRET, "slack:T0ACME:G1:")
    assert world.can_read(ALICE, SECRET, "slack:T0ACME:G1:") and world.can_read(BOB, SECRET, "slack:T0ACME:G1:")


def test_slack_public_channel_becoming_private_rewrites_no_vector(world: World) -> None:
    """#general moves from channels.json to groups.json: earlier documents take the private
    access at once; the scope row changes, the vectors keep their scope id."""
    v1 = slack_export(world.tmp / "v1", [conv("C1", "general", "public", ["U1", "U2", "U3"], GENERAL)], at=0)
    world.ingest(v1)
    assert world.can_read(CAROL, GENERAL, "slack:T0ACME:C1:")
    before = world.vector_scope_ids()
    v2 = slack_export(world.tmp / "v2", [conv("C1", "general", "private", ["U1"])], at=DAY)
    summary = world.ingest(v2)
    assert not world.can_read(CAROL, GENERAL, "slack:T0ACME:C1:") and not world.can_read(
        BOB, GENERAL, "slack:T0ACME:C1:"
    )
    assert world.can_read(ALICE, GENERAL, "slack:T0ACME:C1:")
    assert world.vector_scope_ids() == before and summary.chunks_written == 0 and summary.access_updated == 0
    assert summary.scopes_changed >= 1


def test_slack_private_channel_becoming_public_opens_to_the_workspace(world: World) -> None:
    v1 = slack_export(world.tmp / "v1", [conv("G1", "secret", "private", ["U1"], SECRET)], at=0)
    world.ingest(v1)
    assert not world.can_read(CAROL, SECRET, "slack:T0ACME:G1:")
    world.ingest(slack_export(world.tmp / "v2", [conv("G1", "secret", "public", ["U1"])], at=DAY))
    assert world.can_read(CAROL, SECRET, "slack:T0ACME:G1:")
    assert not world.can_read(GUS, SECRET, "slack:T0ACME:G1:")  # guests are not the workspace


def test_slack_guest_leaving_a_public_channel_loses_it(world: World) -> None:
    v1 = slack_export(world.tmp / "v1", [conv("C2", "vendors", "public", ["U1", "U4"], SHARED)], at=0)
    world.ingest(v1)
    assert world.can_read(GUS, SHARED, "slack:T0ACME:C2:")
    world.acl_sync(slack_export(world.tmp / "v2", [conv("C2", "vendors", "public", ["U1"])], at=DAY))
    assert not world.can_read(GUS, SHARED, "slack:T0ACME:C2:")
    assert world.can_read(CAROL, SHARED, "slack:T0ACME:C2:")


def test_slack_deactivated_user_loses_everything_even_with_the_mapped_group(world: World) -> None:
    """The workspace is mapped to an IdP group; bob is deactivated in a later export but still
    holds the group: he reads nothing of the workspace, public or private."""
    set_policy(
        world, POLICY.replace("default: source-members", 'T0ACME: ["group:all-staff"]\n  default: source-members')
    )
    convs = [
        conv("C1", "general", "public", ["U1", "U2"], GENERAL),
        conv("G1", "secret", "private", ["U1", "U2"], SECRET),
    ]
    world.ingest(slack_export(world.tmp / "v1", convs, at=0))
    assert world.can_read(BOB, GENERAL, "slack:T0ACME:C1:") and world.can_read(BOB, SECRET, "slack:T0ACME:G1:")
    users = people()
    users[1].deleted = True
    world.ingest(
        slack_export(
            world.tmp / "v2",
            [conv("C1", "general", "public", ["U1", "U2"]), conv("G1", "secret", "private", ["U1", "U2"])],
            at=DAY,
            users=users,
        )
    )
    assert not world.can_read(BOB, GENERAL, "slack:T0ACME:C1:") and not world.can_read(BOB, SECRET, "slack:T0ACME:G1:")
    assert world.can_read(CAROL, GENERAL, "slack:T0ACME:C1:") and world.can_read(ALICE, SECRET, "slack:T0ACME:G1:")


def test_slack_channels_json_entry_marked_private_is_private(world: World) -> None:
    def mark(name: str, rows: list[dict]) -> None:
        for r in rows:
            if name == "channels.json" and r["id"] == "C9":
                r["is_private"] = True

    world.ingest(slack_export(world.tmp / "v1", [conv("C9", "leadership", "public", ["U1"], SECRET)], at=0, rows=mark))
    assert world.can_read(ALICE, SECRET, "slack:T0ACME:C9:")
    assert not world.can_read(CAROL, SECRET, "slack:T0ACME:C9:")


def test_slack_public_and_private_channel_sharing_a_folder_fail_closed(world: World) -> None:
    public, private = conv("C7", "plans", "public", ["U1", "U2", "U3"]), conv("G7", "plans", "private", ["U1"])
    add_messages(private, [msg("U1", SECRET, 0)])  # written to the one folder both names claim
    summary = world.ingest(slack_export(world.tmp / "v1", [public, private], at=0))
    assert {q.reason for q in summary.quarantine} == {"ambiguous_conversation"}
    assert not world.can_read(CAROL, SECRET, "slack:") and not world.can_read(ALICE, SECRET, "slack:")


def test_slack_accounts_of_another_team_are_not_everyone(world: World) -> None:
    world.ingest(
        slack_export(
            world.tmp / "v1",
            [
                conv("C1", "general", "public", ["U1", "U2"], GENERAL),
                conv("C2", "shared-partner", "public", ["U1", "U5"], SHARED),
            ],
            at=0,
        )
    )
    assert not world.can_read(XENA, GENERAL, "slack:T0ACME:C1:")  # Slack Connect account: not this workspace
    assert world.can_read(XENA, SHARED, "slack:T0ACME:C2:")  # but a member of the shared channel
    assert world.can_read(CAROL, GENERAL, "slack:T0ACME:C1:")


def test_slack_prune_by_workspace_identity_with_a_renamed_zip(world: World) -> None:
    """This month's full export arrives under another file name: --prune still tombstones what
    the workspace no longer has."""
    c1 = conv("C1", "general", "public", ["U1", "U2"], GENERAL)
    c2 = conv("C2", "random", "public", ["U1", "U2"], SHARED)
    v1 = slack_export(
        world.tmp / "a", [c1, c2], at=0, as_zip=True, zip_name="Acme Slack export Jan 1 2026 - Nov 1 2026.zip"
    )
    world.ingest(v1, prune=True)
    assert world.can_read(BOB, SHARED, "slack:T0ACME:C2:")
    v2 = slack_export(
        world.tmp / "b",
        [conv("C1", "general", "public", ["U1", "U2"], GENERAL)],
        at=DAY,
        as_zip=True,
        zip_name="Acme Slack export Jan 1 2026 - Dec 4 2026.zip",
    )
    summary = world.ingest(v2, prune=True)
    assert summary.tombstoned == 1
    assert not world.can_read(BOB, SHARED, "slack:T0ACME:C2:") and world.can_read(BOB, GENERAL, "slack:T0ACME:C1:")


@pytest.mark.parametrize("how", ["ingest", "acl_sync"])
def test_slack_older_export_never_overrides_a_newer_one(world: World, how: str) -> None:
    """Last month's export applied after this month's (the Dagster schedule re-syncs every
    partition): the removal in the newer one stands."""
    v1 = slack_export(world.tmp / "v1", [conv("G1", "secret", "private", ["U1", "U3"], SECRET)], at=0)
    v2 = slack_export(world.tmp / "v2", [conv("G1", "secret", "private", ["U1"])], at=DAY)
    world.ingest(v1)
    world.ingest(v2)
    assert not world.can_read(CAROL, SECRET, "slack:T0ACME:G1:")
    result = world.apply(how, v1)
    assert not world.can_read(CAROL, SECRET, "slack:T0ACME:G1:")
    assert world.can_read(ALICE, SECRET, "slack:T0ACME:G1:")
    assert result.scopes_stale >= 1


def test_slack_export_without_a_team_is_refused_unless_named(world: World) -> None:
    from ingest.sources import slack

    users = [SUser("U1", "alice", "alice@corp.example", team="")]
    path = write_slack_export(world.tmp / "noteam", users, [conv("C1", "general", "public", ["U1"], GENERAL)])
    for u in (data := json.loads((path / "users.json").read_text())):
        u.pop("team_id", None)
        u["profile"].pop("team", None)
    (path / "users.json").write_text(json.dumps(data))
    with pytest.raises(SourceError, match="states no team id") as refused:
        list(slack.discover(path, policy=world.stores.policy))
    assert "--site" in (refused.value.hint or "")
    assert {i.document_id.split(":")[1] for i in slack.discover(path, policy=world.stores.policy, site="T0NAMED")} == {
        "T0NAMED"
    }


# -- Confluence exports --------------------------------------------------------------------------
CUSERS = [
    CUser("alice", "alice", "alice@corp.example"),
    CUser("bob", "bob", "bob@corp.example"),
    CUser("carol", "carol", "carol@corp.example"),
]
SITE = "acme.atlassian.net"
PLAN = "the orchard expansion blueprint and its costs"
BANDS = "salary bands for the platform team"


def _xml(dest: Path, spaces: list[CSpace], *, at: str) -> Path:
    """An XML export made at ``at`` (the ``hibernate-generic`` datetime)."""
    root = write_confluence_xml(dest, spaces, CUSERS)
    xml = root / "entities.xml"
    xml.write_text(xml.read_text().replace('datetime="2026-10-01 12:00:00"', f'datetime="{at}"'))
    return root


def _rest(dest: Path, space: CSpace, *, when: str, edit: Callable[[dict], None] | None = None, **kw: Any) -> Path:
    root = write_confluence_rest(dest, space, CUSERS, **kw)
    for f in (root / "pages").glob("*.json"):
        page = json.loads(f.read_text())
        page["version"]["when"] = when
        if edit is not None:
            edit(page)
        f.write_text(json.dumps(page))
    return root


def test_confluence_rest_page_without_ancestors_is_quarantined(world: World) -> None:
    space = CSpace("ENG", "Eng", view_groups=["eng", "all-staff"])
    space.pages = [
        CPage("1", "Leads", storage_body("leads only"), read_users=["alice"]),
        CPage("2", "Bands", storage_body(BANDS), parent="1"),
    ]
    v1 = _rest(world.tmp / "v1", space, when="2026-10-01T12:00:00.000Z")
    world.ingest(v1)
    assert world.can_read(ALICE, BANDS, f"confluence:{SITE}:2") and not world.can_read(CAROL, BANDS, "confluence:")

    def drop_ancestors(page: dict) -> None:
        page.pop("ancestors", None)

    v2 = _rest(world.tmp / "v2", space, when="2026-11-01T12:00:00.000Z", edit=drop_ancestors)
    summary = world.ingest(v2)
    assert {q.reason for q in summary.quarantine} == {"permissions_incomplete"}
    assert any("expand=ancestors" in q.message or "ancestors" in q.message for q in summary.quarantine)
    assert not world.can_read(CAROL, BANDS, "confluence:") and not world.can_read(ALICE, BANDS, "confluence:")


@pytest.mark.parametrize("part", ["user", "group"])
def test_confluence_rest_unexpanded_read_restriction_is_quarantined(world: World, part: str) -> None:
    space = CSpace("ENG", "Eng", view_groups=["all-staff"])
    space.pages = [CPage("1", "Bands", storage_body(BANDS), read_users=["alice"], read_groups=["leads"])]

    def unexpand(page: dict) -> None:
        block = page["restrictions"]["read"]["restrictions"]
        block.pop(part)
        block["_expandable"] = {part: f"/rest/api/content/1/restriction/byOperation/read/{part}"}

    summary = world.ingest(_rest(world.tmp / "v1", space, when="2026-10-01T12:00:00.000Z", edit=unexpand))
    assert [q.reason for q in summary.quarantine] == ["permissions_incomplete"]
    assert not world.can_read(CAROL, BANDS, "confluence:") and not world.can_read(ALICE, BANDS, "confluence:")


def test_confluence_xml_viewspace_without_a_subject_is_not_anonymous(world: World) -> None:
    space = CSpace("ENG", "Eng", view_groups=[""])  # an empty group property: no grant, not "anonymous"
    space.pages = [CPage("1", "Plan", storage_body(PLAN))]
    root = write_confluence_xml(world.tmp / "x", [space], CUSERS)
    world.ingest(root)
    assert not world.can_read(CAROL, PLAN, "confluence:") and not world.can_read(ALICE, PLAN, "confluence:")


def test_confluence_xml_pre_5_3_username_grant_is_read(world: World) -> None:
    space = CSpace("ENG", "Eng")
    space.pages = [CPage("1", "Plan", storage_body(PLAN))]
    root = write_confluence_xml(world.tmp / "x", [space], CUSERS)
    xml = root / "entities.xml"
    # The old form: <property name="userName">bob</property> instead of a userSubject reference.
    grant = (
        '<object class="SpacePermission" package="com.atlassian.confluence.security"><id name="id">777</id>'
        '<property name="space" class="Space" package="com.atlassian.confluence.spaces"><id name="id">900001</id>'
        '</property><property name="type"><![CDATA[VIEWSPACE]]></property>'
        '<property name="userName"><![CDATA[bob]]></property></object>\n</hibernate-generic>'
    )
    xml.write_text(xml.read_text().replace("</hibernate-generic>", grant))
    world.ingest(root)
    assert world.can_read(BOB, PLAN, f"confluence:{SITE}:1")
    assert not world.can_read(CAROL, PLAN, "confluence:")


def test_confluence_workspaces_mapping_applies_per_space(world: World) -> None:
    set_policy(
        world,
        POLICY.replace("default: source-members", 'ENG: ["group:eng"]\n  HR: ["group:hr"]\n  default: source-members'),
    )
    eng, hr = CSpace("ENG", "Eng", anonymous=True), CSpace("HR", "HR", anonymous=True)
    eng.pages = [CPage("1", "Plan", storage_body(PLAN))]
    hr.pages = [CPage("2", "Bands", storage_body(BANDS))]
    world.ingest(write_confluence_xml(world.tmp / "x", [eng, hr], CUSERS))
    assert world.can_read(BOB, PLAN, f"confluence:{SITE}:1") and not world.can_read(BOB, BANDS, "confluence:")
    hr_reader = User(id="hank", email="hank@corp.example", groups=("hr",))
    assert world.can_read(hr_reader, BANDS, f"confluence:{SITE}:2") and not world.can_read(
        hr_reader, PLAN, "confluence:"
    )


def test_confluence_exports_without_a_site_are_refused_or_kept_apart(world: World) -> None:
    a, b = CSpace("ENG", "Eng", view_users=["alice"]), CSpace("ENG", "Eng", view_users=["carol"])
    a.pages = [CPage("1", "Plan", storage_body(PLAN))]
    b.pages = [CPage("1", "Plan", storage_body(BANDS))]  # same space key and page id on another site
    one = write_confluence_rest(world.tmp / "one", a, CUSERS, base="")
    two = write_confluence_rest(world.tmp / "two", b, CUSERS, base="")
    summary = world.ingest(one)
    assert [q.reason for q in summary.quarantine] == ["unreadable_source"] and "--site" in summary.quarantine[0].message
    world.ingest(one, site="one.example")
    world.ingest(two, site="two.example")
    assert world.reads(ALICE, PLAN) == {"confluence:one.example:1"}
    assert world.reads(CAROL, BANDS) == {"confluence:two.example:1"}
    assert not world.can_read(ALICE, BANDS, "confluence:") and not world.can_read(CAROL, PLAN, "confluence:")


def test_confluence_page_moving_to_another_space_leaves_no_old_copy(world: World) -> None:
    eng, ops = CSpace("ENG", "Eng", view_groups=["all-staff"]), CSpace("OPS", "Ops", view_users=["alice"])
    eng.pages = [CPage("1", "Plan", storage_body(PLAN))]
    ops.pages = [CPage("9", "Ops home", storage_body("ops home page"))]
    world.ingest(_xml(world.tmp / "v1", [eng, ops], at="2026-10-01 12:00:00"))
    assert world.can_read(CAROL, PLAN, f"confluence:{SITE}:1")
    eng2, ops2 = CSpace("ENG", "Eng", view_groups=["all-staff"]), CSpace("OPS", "Ops", view_users=["alice"])
    eng2.pages = [CPage("5", "Eng home", storage_body("eng home page"))]
    ops2.pages = [
        CPage("9", "Ops home", storage_body("ops home page")),
        CPage("1", "Plan", storage_body(PLAN), parent="9"),
    ]
    world.ingest(_xml(world.tmp / "v2", [eng2, ops2], at="2026-11-01 12:00:00"))
    assert not world.can_read(CAROL, PLAN, "confluence:")
    assert world.reads(ALICE, PLAN) == {f"confluence:{SITE}:1"}  # one copy, under its new parent


def test_confluence_page_moving_under_a_restricted_parent_takes_its_restriction(world: World) -> None:
    space = CSpace("ENG", "Eng", view_groups=["all-staff"])
    space.pages = [
        CPage("1", "Leads", storage_body("leads corner"), read_users=["alice"]),
        CPage("2", "Bands", storage_body(BANDS)),
    ]
    world.ingest(_xml(world.tmp / "v1", [space], at="2026-10-01 12:00:00"))
    assert world.can_read(CAROL, BANDS, f"confluence:{SITE}:2")
    space.pages[1].parent = "1"
    world.ingest(_xml(world.tmp / "v2", [space], at="2026-11-01 12:00:00"))
    assert not world.can_read(CAROL, BANDS, "confluence:") and world.can_read(ALICE, BANDS, f"confluence:{SITE}:2")


def test_confluence_narrowed_space_permission_reaches_pages_not_in_the_later_dump(world: World) -> None:
    """A REST dump of only some pages: the space permission it states still narrows the
    restricted-page scopes of pages ingested from the earlier, fuller dump."""
    space = CSpace("ENG", "Eng", view_groups=["all-staff"])
    space.pages = [
        CPage("1", "Leads", storage_body("leads corner"), read_users=["alice", "carol"]),
        CPage("2", "Bands", storage_body(BANDS), parent="1"),
        CPage("3", "Plan", storage_body(PLAN)),
    ]
    world.ingest(_rest(world.tmp / "v1", space, when="2026-10-01T12:00:00.000Z"))
    assert world.can_read(CAROL, BANDS, f"confluence:{SITE}:2")
    narrowed = CSpace("ENG", "Eng", view_users=["alice"])
    narrowed.pages = [CPage("3", "Plan", storage_body(PLAN))]
    world.acl_sync(_rest(world.tmp / "v2", narrowed, when="2026-11-01T12:00:00.000Z"))
    assert not world.can_read(CAROL, BANDS, "confluence:") and not world.can_read(CAROL, PLAN, "confluence:")
    assert world.can_read(ALICE, BANDS, f"confluence:{SITE}:2")


@pytest.mark.parametrize("how", ["ingest", "acl_sync"])
def test_confluence_older_export_never_overrides_a_newer_one(world: World, how: str) -> None:
    open_, closed = CSpace("ENG", "Eng", view_groups=["all-staff"]), CSpace("ENG", "Eng", view_users=["alice"])
    open_.pages = [CPage("1", "Plan", storage_body(PLAN))]
    closed.pages = [CPage("1", "Plan", storage_body(PLAN), read_users=["alice"])]
    old = _xml(world.tmp / "old", [open_], at="2026-10-01 12:00:00")
    new = _xml(world.tmp / "new", [closed], at="2026-11-01 12:00:00")
    world.ingest(new)
    assert not world.can_read(CAROL, PLAN, "confluence:")
    world.apply(how, old)
    assert not world.can_read(CAROL, PLAN, "confluence:") and world.can_read(ALICE, PLAN, f"confluence:{SITE}:1")


def test_confluence_prune_by_space_identity(world: World) -> None:
    space = CSpace("ENG", "Eng", view_groups=["all-staff"])
    space.pages = [CPage("1", "Plan", storage_body(PLAN)), CPage("2", "Bands", storage_body(BANDS))]
    world.ingest(_xml(world.tmp / "v1", [space], at="2026-10-01 12:00:00"), prune=True)
    space.pages = space.pages[:1]
    summary = world.ingest(_xml(world.tmp / "v2-renamed", [space], at="2026-11-01 12:00:00"), prune=True)
    assert summary.tombstoned == 1
    assert not world.can_read(CAROL, BANDS, "confluence:") and world.can_read(CAROL, PLAN, f"confluence:{SITE}:1")


def test_slack_documents_on_the_old_shared_public_key_follow_their_conversation(world: World) -> None:
    """Catalogs written before per-conversation keys put public channels on one shared
    ``slack:<team>:workspace`` scope: a later export that makes the channel private moves
    those documents to the channel's scope, even with no messages for it."""
    from governance.contracts import AccessScope
    from ingest.pipeline.write import rewrite_access

    world.ingest(slack_export(world.tmp / "v1", [conv("C1", "general", "public", ["U1", "U2", "U3"], GENERAL)], at=0))
    # Put the document where an earlier govrag would have: the shared workspace scope.
    legacy_id, _ = world.stores.catalog.scopes.upsert_scope(
        AccessScope(
            key="slack:T0ACME:workspace",
            layers=[{"user:alice@corp.example", "user:bob@corp.example", "user:carol@corp.example"}],
        )
    )
    for doc_id in world.stores.catalog.documents.select_documents():
        state = world.stores.catalog.documents.document_state(doc_id)
        rewrite_access(world.stores, doc_id, legacy_id, state.expires_at, state.classification)
    assert world.can_read(CAROL, GENERAL, "slack:T0ACME:C1:")
    world.ingest(
        slack_export(
            world.tmp / "v2",
            [conv("C1", "general", "private", ["U1"]), conv("C2", "random", "public", ["U1"], SHARED, at=DAY)],
            at=DAY,
        )
    )
    assert not world.can_read(CAROL, GENERAL, "slack:T0ACME:C1:") and world.can_read(ALICE, GENERAL, "slack:T0ACME:C1:")
    assert set(world.vector_scope_ids().values()).isdisjoint({legacy_id})


def test_confluence_restriction_added_to_a_parent_reaches_children_not_in_the_later_dump(world: World) -> None:
    """A REST dump of only the parent page, now restricted: its child, ingested from an
    earlier dump, takes the restriction too (its ancestry is recorded)."""
    space = CSpace("ENG", "Eng", view_groups=["all-staff"])
    space.pages = [
        CPage("1", "Plans", storage_body("plans overview")),
        CPage("2", "Bands", storage_body(BANDS), parent="1"),
    ]
    world.ingest(_rest(world.tmp / "v1", space, when="2026-10-01T12:00:00.000Z"))
    assert world.can_read(CAROL, BANDS, f"confluence:{SITE}:2")
    later = CSpace("ENG", "Eng", view_groups=["all-staff"])
    later.pages = [CPage("1", "Plans", storage_body("plans overview"), read_users=["alice"])]
    world.acl_sync(_rest(world.tmp / "v2", later, when="2026-11-01T12:00:00.000Z"))
    assert not world.can_read(CAROL, BANDS, "confluence:") and world.can_read(ALICE, BANDS, f"confluence:{SITE}:2")


def test_slack_deactivated_user_is_denied_in_conversations_the_later_export_omits(world: World) -> None:
    set_policy(
        world, POLICY.replace("default: source-members", 'T0ACME: ["group:all-staff"]\n  default: source-members')
    )
    world.ingest(slack_export(world.tmp / "v1", [conv("C5", "old-projects", "public", ["U1", "U2"], SHARED)], at=0))
    assert world.can_read(BOB, SHARED, "slack:T0ACME:C5:")
    users = people()
    users[1].deleted = True
    world.ingest(
        slack_export(world.tmp / "v2", [conv("C1", "general", "public", ["U1"], GENERAL, at=DAY)], at=DAY, users=users)
    )
    assert not world.can_read(BOB, SHARED, "slack:T0ACME:C5:") and world.can_read(CAROL, SHARED, "slack:T0ACME:C5:")


def test_slack_later_export_of_an_earlier_period_still_applies(world: World) -> None:
    """A date-ranged export made later holds only older messages (and nobody's profile
    changed): its member lists are still the newer state."""
    world.ingest(
        slack_export(
            world.tmp / "v1",
            [
                conv("G1", "secret", "private", ["U1", "U2"], SECRET, at=3 * DAY),
                conv("C1", "general", "public", ["U1"], GENERAL, at=3 * DAY),
            ],
            at=0,
        )
    )
    assert world.can_read(BOB, SECRET, "slack:T0ACME:G1:")
    summary = world.ingest(
        slack_export(
            world.tmp / "v2",
            [conv("G1", "secret", "private", ["U1"]), conv("C1", "general", "public", ["U1"], "older talk", at=0)],
            at=0,
        )
    )
    assert summary.scopes_stale == 0
    assert not world.can_read(BOB, SECRET, "slack:T0ACME:G1:") and world.can_read(ALICE, SECRET, "slack:T0ACME:G1:")
