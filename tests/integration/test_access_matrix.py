"""Access matrix: for every (user, document) pair, searching the document's unique phrase
returns it exactly when the ground truth says the user may read it. Zero leaks, zero misses.

One generated Slack export (public/private channels, DMs, group DMs, guests, a deleted user,
a user without email, a bot, an undescribed folder, a malformed day file) and Confluence
spaces in all three shapes (nested view restrictions, groups, an anonymous space, a PDF
attachment, history and drafts, a missing ancestor, a page saved without restrictions, an
HTML space covered by the policy and one that is not), ingested by the real pipeline with
the real MiniLM embedder and searched through the real retriever.
"""

from __future__ import annotations

import pytest

from governance.identity import User
from testsupport.sources_fixtures import (
    ACCESS_POLICY,
    GROUPS,
    PHRASES,
    SLACK_PEOPLE,
    confluence_world,
    slack_world,
)
from testsupport.store_settings import embedded_settings


def _people() -> dict[str, User]:
    people = dict(SLACK_PEOPLE)
    users = {}
    for key, p in people.items():
        users[key] = User(id=p.id, email=p.email, groups=p.groups + GROUPS.get(key, ()))
    users["victor"] = User(id="victor", groups=GROUPS["victor"])
    return users


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, embedder, make_ingestor):
    """Built once per module (ingest is the slow part); tests only read it, except the last."""
    from governance.settings import get_settings
    from governance.stores import Stores

    tmp_path = tmp_path_factory.mktemp("access")
    policy = tmp_path / "policy.yaml"
    policy.write_text(ACCESS_POLICY)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GOVRAG_HOME", str(tmp_path / "home"))
        mp.setenv("GOVRAG_POLICY", str(policy))  # discovery reads the process policy
        get_settings.cache_clear()
        slack_zip, slack_truth, slack_q = slack_world(tmp_path / "src", PHRASES[:12])
        paths, conf_truth, conf_q = confluence_world(tmp_path / "src", PHRASES[12:])
        settings = embedded_settings(tmp_path, policy=policy, collection="access_matrix")
        stores = Stores.open(settings)
        summary = make_ingestor(stores, embedder).ingest_paths([slack_zip, *paths])
    get_settings.cache_clear()
    yield stores, summary, {**slack_truth, **conf_truth}, slack_q | conf_q, tmp_path
    stores.close()


def test_access_matrix_zero_leaks_zero_misses(world, embedder, make_retriever) -> None:
    stores, summary, truth, expected_quarantine, _ = world
    quarantined_ids = {row for row in _quarantined_ids(stores)}
    assert expected_quarantine <= quarantined_ids, expected_quarantine - quarantined_ids
    assert summary.quarantined == len(quarantined_ids)
    retriever = make_retriever(stores, embedder)
    people = _people()
    leaks, misses = [], []
    for key, user in people.items():
        readable = {doc for doc, readers in truth.values() if key in readers}
        k = max(1, min(100, len(readable)))
        for phrase, (doc_id, readers) in truth.items():
            hits = retriever.search(user, phrase, k=k)
            got = {h.document_id for h in hits}
            leaks += [(key, d, phrase) for d in got - readable]
            if key in readers and doc_id not in got:
                misses.append((key, doc_id, phrase))
            if key not in readers and doc_id in got:
                leaks.append((key, doc_id, phrase))
    assert not leaks, f"leaks: {sorted(set(leaks))[:20]}"
    assert not misses, f"misses: {misses[:20]}"
    # sanity: the matrix is not trivial
    assert {k for k, u in people.items() if any(k in r for _, r in truth.values())} >= {
        "alice",
        "bob",
        "carol",
        "dave",
        "frank",
        "gina",
        "victor",
    }
    assert not any("erin" in r or "mallory" in r for _, r in truth.values())


def test_top_hit_is_the_document_for_readers(world, embedder, make_retriever) -> None:
    """The phrase search really finds the document (not only because k covers everything)."""
    stores, _, truth, _, _ = world
    retriever = make_retriever(stores, embedder)
    people = _people()
    wrong = []
    for phrase, (doc_id, readers) in truth.items():
        for key in sorted(readers):
            hits = retriever.search(people[key], phrase, k=3)
            if doc_id not in {h.document_id for h in hits}:
                wrong.append((key, doc_id))
    assert not wrong, wrong


def test_membership_change_needs_no_reembedding(world, embedder, make_ingestor, make_retriever) -> None:
    """Remove carol from #proj-secret: one scope row changes, nothing is embedded again."""
    import json
    import zipfile

    stores, _, truth, _, tmp_path = world
    phrase, (doc_id, _) = next((p, v) for p, v in truth.items() if ":G1:day:" in v[0])
    src = next((tmp_path / "src").glob("acme-slack.zip"))
    out = tmp_path / "changed.zip"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(out, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "groups.json":
                groups = json.loads(data)
                for g in groups:
                    if g["id"] == "G1":
                        g["members"] = [m for m in g["members"] if m != "U3"]
                data = json.dumps(groups).encode()
            zout.writestr(info, data)
    from ingest.sources import slack

    items = [i for i in slack.discover(out) if i.document_id.startswith("slack:T0ACME:G1:")]
    summary = make_ingestor(stores, embedder).ingest_items(items)
    assert summary.new == 0 and summary.changed == 0 and summary.chunks_written == 0
    carol = _people()["carol"]
    assert doc_id not in {h.document_id for h in make_retriever(stores, embedder).search(carol, phrase, k=20)}
    alice = _people()["alice"]
    assert doc_id in {h.document_id for h in make_retriever(stores, embedder).search(alice, phrase, k=20)}


def _quarantined_ids(stores) -> set[str]:
    from sqlalchemy import text

    with stores.catalog.session() as s:
        rows = s.execute(text("SELECT document_id FROM quarantine")).all()
    return {r[0] for r in rows if r[0]}
