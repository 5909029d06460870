"""Confluence: REST dumps, XML space exports (folder and zip), HTML space exports —
generated fixtures and the real samples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from governance.errors import QuarantinedDocument, SourceError
from governance.policy import Policy
from governance.scope_rules import resolve_scope
from ingest.chunking import chunk_elements, clean_elements
from ingest.sources import confluence
from ingest.sources import discover as discover_any
from ingest.sources.confluence import html_export, rest_dump, xml_entities, xml_export
from ingest.sources.confluence.render import html_elements, storage_to_html
from testsupport.sources_fixtures import (
    CONFLUENCE_USERS,
    CPage,
    CSpace,
    storage_body,
    write_confluence_html,
    write_confluence_rest,
    write_confluence_xml,
)

A, B, C, V = "user:alice@corp.example", "user:bob@corp.example", "user:carol@partner.example", "user:victor"
SITE = "acme.atlassian.net"  # the site the generated REST / XML exports state (their base URL)


def _space() -> CSpace:
    s = CSpace("ENG", "Engineering", view_users=["carol"], view_groups=["eng"])
    s.pages = [
        CPage("1", "Home", storage_body("home phrase")),
        CPage("2", "Leads", storage_body("leads phrase"), parent="1", read_groups=["leads"], read_users=["carol"]),
        CPage(
            "3",
            "Bands",
            storage_body("bands phrase"),
            parent="2",
            read_users=["bob", "alice"],
            pdf=("bands.pdf", "Attachment about salary bands."),
        ),
        CPage("4", "Appendix", storage_body("appendix phrase"), parent="3"),
        CPage("5", "News", storage_body("news phrase"), kind="blogpost"),
    ]
    return s


def _by_id(items) -> dict:
    return {i.document_id: i for i in items}


def _check_eng_scopes(items: dict) -> None:
    space_layer = frozenset({"group:eng", C})
    home = items["confluence:acme.atlassian.net:1"].scope
    assert home.layers == (space_layer,) and home.key == f"confluence:{SITE}:ENG:space"
    assert items["confluence:acme.atlassian.net:5"].scope == home  # blog post: space permission only
    leads = items["confluence:acme.atlassian.net:2"].scope
    assert leads.layers == (space_layer, frozenset({"group:leads", C}))
    bands = items["confluence:acme.atlassian.net:3"].scope
    # every restricted ancestor is a layer of its own: bob is listed on page 3 but not on 2
    assert bands.layers == (space_layer, frozenset({"group:leads", C}), frozenset({A, B}))
    assert not bands.allows(frozenset({B, "group:eng"}))
    assert bands.allows(frozenset({A, "group:eng", "group:leads"}))
    appendix = items["confluence:acme.atlassian.net:4"].scope
    assert appendix == bands and appendix.key == f"confluence:{SITE}:ENG:restricted:2/3"  # shares the chain's scope
    att = items["confluence:acme.atlassian.net:3:attachment:bands.pdf"]
    assert att.scope == bands and att.facts["space"] == "ENG"


def _check_eng_text(items: dict) -> None:
    parsed = items["confluence:acme.atlassian.net:1"].parse()
    kinds = [type(e).__name__ for e in parsed.elements]
    text = "\n".join(e.text for e in parsed.elements)
    assert kinds[0] == "Title" and parsed.title == "Home"
    assert "ListItem" in kinds and "Table" in kinds
    assert "Note: home phrase." in text and "first point" in text
    assert "make deploy && echo <done>" in text  # code macro kept, CDATA decoded
    assert "Info:" in text and "Remember the checklist." in text  # panel macro body kept
    assert "See Home for more." in text  # ac:link → its target's title
    assert "ac:" not in text and "language" not in text
    assert chunk_elements(clean_elements(parsed.elements), 1000)


def test_rest_dump(tmp_path: Path) -> None:
    path = write_confluence_rest(tmp_path / "rest", _space(), CONFLUENCE_USERS)
    assert confluence.detect(path) and rest_dump.detect(path) and not xml_export.detect(path)
    items = _by_id(confluence.discover(path, policy=Policy()))
    assert len(items) == 6
    _check_eng_scopes(items)
    _check_eng_text(items)
    home = items["confluence:acme.atlassian.net:1"]
    assert home.uri == "https://acme.atlassian.net/wiki/spaces/ENG/pages/1"
    assert home.facts == {"source": "confluence", "space": "ENG", "workspace": "acme.atlassian.net", "path": "Home"}
    assert items["confluence:acme.atlassian.net:4"].facts["path"] == "Home/Leads/Bands/Appendix"
    assert home.parse().owner == "user:alice@corp.example" and home.parse().author == "Alice"
    pdf = items["confluence:acme.atlassian.net:3:attachment:bands.pdf"].parse()
    assert "salary bands" in " ".join(e.text for e in pdf.elements)


def test_rest_fails_closed(tmp_path: Path) -> None:
    s = _space()
    s.pages.append(CPage("9", "Orphan", storage_body("orphan"), parent="77"))
    path = write_confluence_rest(tmp_path / "rest", s, CONFLUENCE_USERS, without_restrictions=["2"])
    (path / "pages" / "8.json").write_text("{not json")
    items = _by_id(confluence.discover(path, policy=Policy()))
    reasons = {}
    for doc_id in (
        "confluence:acme.atlassian.net:2",
        "confluence:acme.atlassian.net:3",
        "confluence:acme.atlassian.net:4",
        "confluence:acme.atlassian.net:9",
        "confluence:acme.atlassian.net:8",
        "confluence:acme.atlassian.net:3:attachment:bands.pdf",
    ):
        with pytest.raises(QuarantinedDocument) as exc:
            items[doc_id].fingerprint()
        reasons[doc_id] = exc.value.reason
        assert not items[doc_id].scope.allows(frozenset({A, B, C, "group:eng", "group:leads"}))
    assert reasons["confluence:acme.atlassian.net:8"] == "unreadable_page"
    assert (
        reasons["confluence:acme.atlassian.net:2"]
        == reasons["confluence:acme.atlassian.net:4"]
        == "permissions_unknown"
    )
    items["confluence:acme.atlassian.net:1"].fingerprint()  # the rest of the space goes on
    # a space saved without permissions: every page is refused
    raw = json.loads((path / "space.json").read_text())
    del raw["permissions"]
    (path / "space.json").write_text(json.dumps(raw))
    for item in confluence.discover(path, policy=Policy()):
        with pytest.raises(QuarantinedDocument):
            item.fingerprint()


@pytest.mark.parametrize("as_zip", [False, True])
def test_xml_export(tmp_path: Path, as_zip: bool) -> None:
    opened = CSpace("OPEN", "Company", anonymous=True, pages=[CPage("20", "Welcome", storage_body("welcome"))])
    path = write_confluence_xml(
        tmp_path / "xml",
        [_space(), opened],
        CONFLUENCE_USERS,
        as_zip=as_zip,
        history=[("99", "1", storage_body("old text"))],
        drafts=[("98", "1", storage_body("draft"))],
    )
    assert confluence.detect(path) and xml_export.detect(path)
    items = _by_id(confluence.discover(path, policy=Policy()))
    assert set(items) == {f"confluence:acme.atlassian.net:{i}" for i in "12345"} | {
        "confluence:acme.atlassian.net:20",
        "confluence:acme.atlassian.net:3:attachment:bands.pdf",
    }
    _check_eng_scopes(items)
    _check_eng_text(items)
    assert items["confluence:acme.atlassian.net:2"].parse().owner == "user:alice@corp.example"
    welcome = items["confluence:acme.atlassian.net:20"].scope
    # an open space keeps its own space key (no shared site-wide key)
    assert welcome.key == "confluence:acme.atlassian.net:OPEN:space"
    assert welcome.layers == (frozenset({A, B, C, V}),)  # source-members: every user in the export
    mapped = _by_id(confluence.discover(path, policy=Policy(workspaces={"acme.atlassian.net": ["group:staff"]})))
    assert mapped["confluence:acme.atlassian.net:20"].scope.layers == (frozenset({"group:staff"}),)
    # the workspaces mapping is per space: "<site>:<space>" and "<space>" win over the site
    per_space = _by_id(
        confluence.discover(
            path,
            policy=Policy(
                workspaces={"acme.atlassian.net": ["group:staff"], "acme.atlassian.net:OPEN": ["group:open"]}
            ),
        )
    )
    assert per_space["confluence:acme.atlassian.net:20"].scope.layers == (frozenset({"group:open"}),)
    by_key = _by_id(
        confluence.discover(path, policy=Policy(workspaces={"OPEN": ["group:open-key"], "default": "group:x"}))
    )
    assert by_key["confluence:acme.atlassian.net:20"].scope.layers == (frozenset({"group:open-key"}),)
    assert (
        mapped["confluence:acme.atlassian.net:1"].scope.layers == items["confluence:acme.atlassian.net:1"].scope.layers
    )  # not open: unchanged
    fp = items["confluence:acme.atlassian.net:1"].fingerprint()
    assert fp == _by_id(confluence.discover(path, policy=Policy()))["confluence:acme.atlassian.net:1"].fingerprint()


def test_xml_restriction_change_keeps_keys_and_fingerprints(tmp_path: Path) -> None:
    s = _space()
    a = _by_id(confluence.discover(write_confluence_xml(tmp_path / "a", [s], CONFLUENCE_USERS), policy=Policy()))
    s.pages[1].read_users = []  # carol loses access to Leads (and below)
    b = _by_id(confluence.discover(write_confluence_xml(tmp_path / "b", [s], CONFLUENCE_USERS), policy=Policy()))
    assert a["confluence:acme.atlassian.net:3"].scope.key == b["confluence:acme.atlassian.net:3"].scope.key
    assert a["confluence:acme.atlassian.net:3"].scope.layers != b["confluence:acme.atlassian.net:3"].scope.layers
    assert a["confluence:acme.atlassian.net:3"].fingerprint() == b["confluence:acme.atlassian.net:3"].fingerprint()


def test_html_export_scope_from_policy(tmp_path: Path) -> None:
    s = _space()
    path = write_confluence_html(tmp_path / "html", "ENG", "Engineering", s.pages)
    assert confluence.detect(path) and html_export.detect(path)
    # an HTML export states no site: refused unless one is given (else two exports could share ids)
    with pytest.raises(SourceError, match="which site"):
        list(confluence.discover(path, policy=Policy()))
    with pytest.raises(SourceError, match="which site"):
        list(discover_any(path, policy=Policy()))
    assert {i.source for i in discover_any(path, policy=Policy(), site="docs.example")} == {"confluence"}
    # ... or a policy `sources` rule names it by the export's path
    by_rule = Policy.model_validate({"sources": [{"match": {"path": f"{path.resolve()}"}, "site": "docs.example"}]})
    assert {i.document_id for i in discover_any(path, policy=by_rule)} == {
        i.document_id for i in discover_any(path, policy=Policy(), site="docs.example")
    }
    items = _by_id(confluence.discover(path, policy=Policy(), site="docs.example"))
    assert set(items) == {f"confluence:docs.example:{i}" for i in "12345"} | {
        "confluence:docs.example:3:attachment:bands.pdf"
    }
    assert all(i.scope is None for i in items.values())
    assert {i.origin for i in items.values()} == {"confluence:docs.example:ENG"}
    appendix = items["confluence:docs.example:4"]
    assert appendix.facts["path"] == "Home/Leads/Bands/Appendix" and appendix.facts["space"] == "ENG"
    parsed = appendix.parse()
    assert parsed.title == "Appendix" and parsed.author == "Bob"
    assert "Note: appendix phrase." in "\n".join(e.text for e in parsed.elements)
    policy = Policy.model_validate(
        {
            "access": [
                {
                    "match": {"source": "confluence", "space": "ENG", "path": "Home/Leads/**"},
                    "allow": [["group:leads"]],
                },
                {"match": {"source": "confluence", "space": "ENG"}, "allow": [["group:eng"]]},
            ]
        }
    )
    assert resolve_scope(policy, appendix)[0].layers == (frozenset({"group:leads"}),)
    assert resolve_scope(policy, items["confluence:docs.example:1"])[0].layers == (frozenset({"group:eng"}),)
    with pytest.raises(QuarantinedDocument, match="no access rule"):
        resolve_scope(Policy(), appendix)


# -- real samples ----------------------------------------------------------------------------------
def test_real_html_space_export(corpus: Path) -> None:
    path = corpus / "confluence" / "html-space-export-meridius"
    assert confluence.detect(path)
    items = _by_id(confluence.discover(path, policy=Policy(), site="meridius.example"))
    assert set(items) == {
        "confluence:meridius.example:9568346",
        "confluence:meridius.example:9568537",
        "confluence:meridius.example:9273401",
        "confluence:meridius.example:9273380",
    }
    czech = items["confluence:meridius.example:9273380"]
    assert czech.title == "Zprovoznění" and czech.facts["path"] == "My article/Webclient/Zprovoznění"
    for item in items.values():
        assert item.scope is None and item.facts["space"] == "My article"
        parsed = item.parse()
        assert parsed.elements and type(parsed.elements[0]).__name__ == "Title"
    js = "\n".join(e.text for e in items["confluence:meridius.example:9273401"].parse().elements)
    assert "Zakladni info" in js and "js je psan v coffee a require" in js


def test_real_xml_fragment(corpus: Path, tmp_path: Path) -> None:
    path = corpus / "confluence" / "xml-export-entities-tiklab"
    assert confluence.detect(path)
    objs = xml_entities.read_objects(path / "entities.xml")
    (page,) = objs["Page"]
    assert page["props"]["contentStatus"].strip() == "draft" and page["props"]["originalVersion"][0] == "ref"
    # the fragment has no exportDescriptor.properties (no base URL): the site must be given
    with pytest.raises(SourceError, match="which site"):
        list(confluence.discover(path, policy=Policy()))
    # a draft only: nothing current to ingest
    assert list(confluence.discover(path, policy=Policy(), site="tiklab.example")) == []
    (body,) = objs["BodyContent"]
    html = storage_to_html(body["props"]["body"])
    text = "\n".join(e.text for e in html_elements(html, "sward"))
    assert "马斯洛" in text and "心理学" in text


def test_real_rest_responses(corpus: Path) -> None:
    base = corpus / "confluence" / "rest-api-json-go-atlassian"
    content = json.loads((base / "get-content.json").read_text())
    page = rest_dump.parse_page(content, "DUMMY", None)
    assert page.id == "64290828" and page.title == "Confluence Page Title"
    assert not page.restrictions_known  # restrictions not expanded → unknown → quarantined
    assert page.uri == "https://ctreminiom.atlassian.net/wiki/spaces/DUMMY/pages/64290828/Confluence+Page+Title"
    for raw in json.loads((base / "get-contents.json").read_text())["results"]:
        assert rest_dump.parse_page(raw, "X", None).id == raw["id"]
    # schema examples (placeholders): the restriction block shape is understood
    by_op = json.loads((base / "get-content-restriction-by-operation.json").read_text())
    assert rest_dump._subjects(by_op["operationType"]["restrictions"]) == {"group:<string>"}


def test_real_cloud_pages_and_their_permissions(corpus: Path, tmp_path: Path) -> None:
    base = corpus / "confluence" / "unstructured-ingest-cloud-pages"
    for f in sorted((base / "downloads").glob("*.html")):
        meta = json.loads((base / "file_data" / f"{f.stem}.json").read_text())
        elements = html_elements(f.read_text(encoding="utf-8"), meta["display_name"])
        assert len(elements) > 1 and elements[0].text == meta["display_name"]
        # Build the REST shape from the connector's permission data; the extracted read layer
        # must be exactly its users and groups.
        read = next(p["read"] for p in meta["metadata"]["permissions_data"] if "read" in p)
        raw = {
            "id": f.stem,
            "title": meta["display_name"],
            "type": "page",
            "restrictions": {
                "read": {
                    "restrictions": {
                        "user": {"results": [{"accountId": u} for u in read["users"]]},
                        "group": {"results": [{"name": g} for g in read["groups"]]},
                    }
                }
            },
        }
        page = rest_dump.parse_page(raw, meta["additional_metadata"]["space_key"], None)
        assert page.read == frozenset({f"user:{u}" for u in read["users"]} | {f"group:{g}" for g in read["groups"]})
    text = "\n".join(e.text for e in html_elements((base / "downloads" / "196722.html").read_text()))
    assert "Confluence" in text
