"""retrieval.search: users see exactly what they may read, whatever their names contain."""

from __future__ import annotations

from contextlib import ExitStack
from datetime import UTC, datetime, timedelta

import pytest

from governance import audit
from governance.catalog.models import Document
from governance.contracts import AccessScope
from governance.errors import AccessDenied
from governance.identity import User
from governance.vector_index import ROW_FIELDS, VectorRow
from ingest.sources.base import Parsed, SourceItem, TextBlock
from testsupport.store_settings import embedded_settings, sqlite_url

ALICE = User(id="alice@example.com", email="alice@example.com", groups=["finance"])
BOB = User(id="bob@example.com", email="bob@example.com", groups=["eng"])
NOBODY = User(id="eve@example.com", email="eve@example.com", groups=["marketing"])


@pytest.fixture
def indexed(stores, embedder, sample_corpus, make_ingestor):
    summary = make_ingestor(stores, embedder).ingest_paths([sample_corpus])
    assert summary.new == 5
    return stores


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def shared(request, tmp_path_factory, embedder, sample_corpus, make_ingestor, pg_database):
    """One indexed sample corpus per backend for the tests that only read."""
    from governance.stores import Stores

    tmp = tmp_path_factory.mktemp("shared")
    with ExitStack() as stack:
        url = sqlite_url(tmp) if request.param == "sqlite" else stack.enter_context(pg_database())
        stores = Stores.open(embedded_settings(tmp, database_url=url))
        make_ingestor(stores, embedder).ingest_paths([sample_corpus])
        yield stores
        stores.close()


def _docs(hits):
    return {h.document_id for h in hits}


def test_two_users_with_different_groups_get_different_correct_hits(shared, embedder, make_retriever):
    r = make_retriever(shared, embedder)
    alice = _docs(r.search(ALICE, "revenue budget forecast deployment rollback", k=20))
    bob = _docs(r.search(BOB, "revenue budget forecast deployment rollback", k=20))
    assert {"pdf:finance/q3-revenue-report.pdf", "pdf:finance/budget-2027.pdf"} <= alice
    assert not any(d.startswith("pdf:engineering/") for d in alice)
    assert {"pdf:engineering/deploy-runbook.pdf"} <= bob
    assert not any(d.startswith("pdf:finance/") for d in bob)
    assert "pdf:handbook/holidays-and-leave.pdf" in alice & bob


def test_hits_are_best_first_and_carry_the_contract_fields(shared, embedder, make_retriever):
    hits = make_retriever(shared, embedder).search(BOB, "granite-otter rollback script", k=3)
    assert hits[0].document_id == "pdf:engineering/deploy-runbook.pdf"
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    top = hits[0]
    assert top.source == "pdf" and top.title == "Deployment Runbook" and top.source_version == 1
    assert top.uri.startswith("file://") and "granite-otter" in top.text


def test_a_user_with_no_matching_principal_gets_nothing(shared, embedder, make_retriever):
    assert make_retriever(shared, embedder).search(NOBODY, "annual leave", k=10) == []


def test_role_claim_expanded_by_policy_grants_access(shared, embedder, make_retriever):
    cfo = User(id="carol@example.com", roles=["cfo"])
    assert "pdf:finance/budget-2027.pdf" in _docs(
        make_retriever(shared, embedder).search(cfo, "amber-falcon reserve", k=5)
    )


def test_claims_dict_is_accepted(shared, embedder, make_retriever):
    hits = make_retriever(shared, embedder).search(
        {"sub": "bob", "groups": ["eng"]}, "database ran out of disk space, write-ahead log archiving stopped", k=3
    )
    assert hits[0].document_id == "pdf:engineering/incidents/2026-10-database-outage.pdf"


def test_quarantined_uncovered_pdf_is_never_returned(shared, embedder, make_retriever):
    for user in (ALICE, BOB):
        assert "pdf:unfiled/board-minutes-draft.pdf" not in _docs(
            make_retriever(shared, embedder).search(user, "quartz-badger draft board minutes", k=50)
        )


def test_an_expired_chunk_is_never_returned_even_before_a_sweep(indexed, embedder, make_retriever):
    r = make_retriever(indexed, embedder)
    doc_id = "pdf:engineering/deploy-runbook.pdf"
    assert doc_id in _docs(r.search(BOB, "granite-otter rollback", k=5))
    with indexed.catalog.session() as s:  # the catalog says it expired a second ago
        s.get(Document, doc_id).expires_at = datetime.now(UTC) - timedelta(seconds=1)
    assert doc_id not in _docs(r.search(BOB, "granite-otter rollback", k=50))


def test_expiry_in_the_index_alone_also_hides_the_chunk(stores, embedder, make_ingestor, make_retriever):
    item = _item("pdf:x/expiring.pdf", "The zebra-quasar memo expires soon.")
    ing = make_ingestor(stores, embedder)
    scope = AccessScope(key="t:expiring", layers=[["group:eng"]])
    item.scope = scope
    ing.ingest_items([item])
    ids = [r["id"] for r in stores.index.query("id >= 0", fields=["id"])]
    rows = stores.index.get(ids, ROW_FIELDS)
    for row in rows:
        row["expires_at"] = 1  # 1970: expired
    stores.index.upsert([VectorRow(**r) for r in rows])
    assert make_retriever(stores, embedder).search(BOB, "zebra-quasar memo", k=5) == []


def _item(doc_id: str, text: str) -> SourceItem:
    from pathlib import Path

    return SourceItem(
        source="pdf",
        path=Path("/nonexistent") / doc_id,
        rel_path=doc_id,
        document_id=doc_id,
        fingerprint=lambda: str(hash(text)),
        parse=lambda: Parsed(elements=[TextBlock(text)], title=doc_id),
        facts={"source": "test"},
    )


HOSTILE = [
    '"',
    "'",
    "]",
    "\\",
    ") or (1==1",
    '" or true or "',
    "x or true",
    'a\\" or 1==1',
    "[1,2,3]",
    "日本語のグループ",
    "x" * 500,
    "scope_id >= 0",
    "*",
]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_group_names_never_widen_access(shared, embedder, name, make_retriever):
    try:  # either refused with a clear error, or matched literally (and so matching nothing)
        user = User(id=f"u{name}", email=None, groups=[name, f"{name} or group:finance"])
    except AccessDenied:
        return
    assert make_retriever(shared, embedder).search(user, "revenue", k=20) == []


@pytest.mark.parametrize("name", ['x"y', "a]b", "back\\slash", ") or (1==1", "tab or true"])
def test_hostile_group_names_match_literally(sqlite_stores, embedder, name, make_ingestor, make_retriever):
    item = _item(f"pdf:hostile/{len(name)}.pdf", "The obsidian-walrus note is for the odd group.")
    item.scope = AccessScope(key=f"t:{name}", layers=[[f"group:{name}"]])
    make_ingestor(sqlite_stores, embedder).ingest_items([item])
    r = make_retriever(sqlite_stores, embedder)
    assert _docs(r.search(User(id="m", groups=[name]), "obsidian-walrus note", k=3)) == {item.document_id}
    assert r.search(User(id="n", groups=[name + "x"]), "obsidian-walrus note", k=3) == []


@pytest.mark.parametrize(
    "claims", [{"sub": "a", "groups": ["x\ny"]}, {"sub": "a\x00"}, {"sub": "a", "groups": "x" * 1000}]
)
def test_malformed_claims_are_rejected_with_access_denied(shared, embedder, claims, make_retriever):
    with pytest.raises(AccessDenied):
        make_retriever(shared, embedder).search(claims, "revenue")


@pytest.mark.parametrize("k", [0, -1, 101, True, 2.5])
def test_k_outside_1_to_100_is_rejected(shared, embedder, k, make_retriever):
    with pytest.raises(ValueError):
        make_retriever(shared, embedder).search(ALICE, "revenue", k=k)


def test_every_search_lands_in_the_audit_log_without_query_text(shared, embedder, make_retriever):
    make_retriever(shared, embedder).search(ALICE, "secret revenue question", k=2)
    event = audit.events(shared.catalog, kind="search", limit=1)[0]
    assert event["actor"] == "alice@example.com"
    assert "query" not in event["payload"] and len(event["payload"]["query_sha256"]) == 64
    assert len(event["payload"]["returned"]) == 2
    assert audit.verify(shared.catalog) == []


def test_the_search_audit_counts_the_chunks_the_filter_excluded(shared, embedder, make_retriever):
    from datetime import datetime

    counts = shared.catalog.chunks.live_chunks_by_scope(datetime.now(UTC))
    r = make_retriever(shared, embedder)
    for user in (ALICE, BOB, NOBODY):
        r.search(user, "revenue budget rollback", k=3)
        event = audit.events(shared.catalog, kind="search", limit=1)[0]
        mine = sum(counts.get(s, 0) for s in shared.catalog.scopes.allowed_scope_ids(user.principals({})))
        assert event["payload"]["excluded_by_filter"] == sum(counts.values()) - mine
        assert event["payload"]["dropped_by_postcheck"] == 0
    assert sum(counts.values()) > mine == 0  # NOBODY: everything was excluded


@pytest.mark.parametrize("user", [ALICE, BOB], ids=["alice", "bob"])
def test_every_search_plan_gives_a_reader_the_same_hits_and_the_audit_names_the_plan(
    shared, embedder, make_retriever, monkeypatch, user
):
    r = make_retriever(shared, embedder)
    query = "revenue budget forecast deployment rollback holidays"

    def hits_by(expected_plans: tuple[str, ...]) -> list[tuple[int, float]]:
        hits = [(h.chunk_id, h.score) for h in r.search(user, query, k=10)]
        assert audit.events(shared.catalog, kind="search", limit=1)[0]["payload"]["plan"] in expected_plans
        return hits

    # The sample corpus is small: each reader's chunks are listed by the catalog.
    listed = hits_by(("listed",))
    monkeypatch.setattr("governance.vector_index.plan.LISTED_MAX_ROWS", -1)
    filtered = hits_by(("filtered",))
    # It has a handful of scopes; treat every list as long, so the plan follows the reader's
    # share of the chunks (complement or broad) instead of listing their scopes.
    monkeypatch.setattr("governance.vector_index.plan.SHORT_LIST_IDS", 0)
    unlisted = hits_by(("complement", "broad"))
    for other in (listed, unlisted):
        assert [c for c, _ in other] == [c for c, _ in filtered]
        assert [s for _, s in other] == pytest.approx([s for _, s in filtered], abs=1e-5)


def test_access_change_in_catalog_takes_effect_on_next_search_without_reindexing(indexed, embedder, make_retriever):
    r = make_retriever(indexed, embedder)
    assert r.search(NOBODY, "deployment runbook canary", k=5) == []
    before = indexed.index.count()
    indexed.catalog.scopes.upsert_scope(
        AccessScope(key="policy:path=engineering/**,source=pdf", layers=[["group:eng", "group:marketing"]])
    )
    assert "pdf:engineering/deploy-runbook.pdf" in _docs(r.search(NOBODY, "deployment runbook canary", k=5))
    assert indexed.index.count() == before
