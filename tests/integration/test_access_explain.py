"""``access explain`` / ``access who`` agree with search: for every caller, the documents
explain calls readable are exactly the documents search returns, and a document explain
calls unreadable says why."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from governance.access_explain import explain, who
from governance.identity import User
from testsupport.permission_exports import POLICY, conv, people, slack_export
from testsupport.sources_fixtures import CPage, CSpace, CUser, storage_body, write_confluence_xml
from testsupport.store_settings import embedded_settings

NOW = datetime.now(UTC)
CALLERS = {
    "alice": User(id="alice", email="alice@corp.example", groups=("all-staff",)),
    "bob": User(id="bob", email="bob@corp.example", groups=("all-staff",)),  # deactivated: denied
    "carol": User(id="carol", email="carol@corp.example", groups=("all-staff",)),
    "gus": User(id="gus", email="gus@guest.example"),
    "nobody": User(id="nobody", email="nobody@corp.example"),
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, embedder, make_ingestor):
    from governance.stores import Stores

    tmp = tmp_path_factory.mktemp("explain")
    policy = tmp / "policy.yaml"
    policy.write_text(
        POLICY.replace("default: source-members", 'T0ACME: ["group:all-staff"]\n  default: source-members')
    )
    users = people()
    users[1].deleted = True
    slack = slack_export(
        tmp / "slack",
        [
            conv("C1", "general", "public", ["U1", "U2", "U4"], "general talk about lunch"),
            conv("G1", "secret", "private", ["U1", "U3"], "the private plan"),
        ],
        at=0,
        users=users,
    )
    space = CSpace("ENG", "Eng", view_groups=["all-staff"])
    space.pages = [
        CPage("1", "Leads", storage_body("leads corner"), read_users=["alice"]),
        CPage("2", "Open page", storage_body("open engineering notes")),
    ]
    xml = write_confluence_xml(
        tmp / "xml",
        [space],
        [CUser("alice", "alice", "alice@corp.example"), CUser("carol", "carol", "carol@corp.example")],
    )
    stores = Stores.open(embedded_settings(tmp, policy=policy, collection="explain"))
    make_ingestor(stores, embedder).ingest_paths([slack, xml])
    yield stores
    stores.close()


@pytest.mark.parametrize("name", sorted(CALLERS))
def test_explain_lists_exactly_what_search_returns(world, embedder, name: str, make_retriever) -> None:
    caller = CALLERS[name]
    explained = explain(world.catalog, caller.principals(world.policy.roles), now=NOW)
    searched = {h.document_id for h in make_retriever(world, embedder).search(caller, "notes plan talk corner", k=100)}
    assert {d.document_id for d in explained.documents} == searched
    for d in explained.documents:  # every layer names the principal that matched it
        assert d.readable and d.layers and all(m.matched for m in d.layers)


def test_explain_says_why_a_document_is_not_readable(world) -> None:
    bob = CALLERS["bob"]
    doc = next(d for d in world.catalog.documents.select_documents() if d.startswith("slack:T0ACME:C1:"))
    (access,) = explain(world.catalog, bob.principals(), now=NOW, document_id=doc).documents
    assert not access.readable and access.denied_by == ["user:bob@corp.example"] and "deny" in access.why
    (access,) = explain(
        world.catalog, CALLERS["carol"].principals(), now=NOW, document_id="confluence:acme.atlassian.net:1"
    ).documents
    assert not access.readable and "layer 1" in access.why
    assert [m.matched for m in access.layers] == [["group:all-staff"], []]


def test_who_lists_layers_and_deny(world) -> None:
    doc = next(d for d in world.catalog.documents.select_documents() if d.startswith("slack:T0ACME:C1:"))
    readers = who(world.catalog, doc, now=NOW)
    assert readers.readable_by_anyone and readers.layers == [["group:all-staff", "user:gus@guest.example"]]
    assert readers.deny == ["user:bob@corp.example"]
    assert who(world.catalog, "no-such-doc", now=NOW).status == "unknown"


def test_access_cli_explain_and_who_as_json(world, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from governance.settings import get_settings
    from govrag.cli.main import app

    s = world.settings
    monkeypatch.setenv("GOVRAG_HOME", str(s.home))
    monkeypatch.setenv("GOVRAG_DATABASE_URL", s.resolved_database_url)
    monkeypatch.setenv("GOVRAG_POLICY", str(s.policy))
    get_settings.cache_clear()
    runner = CliRunner()
    out = runner.invoke(app, ["access", "explain", "--user", "carol@corp.example", "--group", "all-staff", "--json"])
    assert out.exit_code == 0, out.output
    docs = {d["document_id"] for d in json.loads(out.output)["documents"]}
    assert "confluence:acme.atlassian.net:2" in docs and "confluence:acme.atlassian.net:1" not in docs
    out = runner.invoke(app, ["access", "who", "--document", "confluence:acme.atlassian.net:1", "--json"])
    assert out.exit_code == 0 and json.loads(out.output)["layers"][1] == ["user:alice@corp.example"]
    assert runner.invoke(app, ["access", "who", "--document", "nope"]).exit_code == 2
