"""Governance lifecycle: purge, legal hold, prune of full exports, fail-closed tombstones,
right to be forgotten."""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from governance import audit
from governance.catalog.models import ChunkRow, Document, Run, Version
from governance.contracts import AccessScope
from governance.identity import User
from governance.purge import purge_documents
from governance.purge import select as select_docs
from governance.vector_index import ROW_FIELDS, VectorRow
from ingest.pipeline.erasure import forget_subject
from ingest.sources.base import Parsed, SourceItem, TextBlock

BOB = User(id="bob@example.com", email="bob@example.com", groups=["eng"])
ENG = AccessScope(key="t:eng", layers=[["group:eng"]])


def _thread(doc_id: str, messages: list[tuple[str, str]], owner: str | None = None) -> SourceItem:
    """A Slack-like document: one block per (author principal, text)."""

    def parse() -> Parsed:
        return Parsed(
            elements=[TextBlock(f"thread {doc_id}", category="Title")]
            + [TextBlock(text, govrag_author=author) for author, text in messages],
            title=doc_id,
            owner=owner,
        )

    return SourceItem(
        source="slack",
        path=Path("/export") / doc_id,
        rel_path=doc_id,
        document_id=doc_id,
        fingerprint=lambda: str(hash((doc_id, tuple(messages)))),
        parse=parse,
        facts={"source": "slack"},
        scope=ENG,
        origin="slack:T1",
    )


def _texts(stores) -> list[str]:
    out = [r["text"] for r in stores.index.query("id >= 0", fields=["text"])]
    with stores.catalog.session() as s:
        out += [t for t in s.scalars(select(Version.cleaned_text)) if t]
        out += [t for t in s.scalars(select(ChunkRow.text)) if t]
    return out


def _expire(stores, doc_id: str) -> None:
    with stores.catalog.session() as s:
        s.get(Document, doc_id).expires_at = datetime.now(UTC) - timedelta(days=1)


@pytest.fixture
def indexed(stores, embedder, sample_corpus, make_ingestor):
    make_ingestor(stores, embedder).ingest_paths([sample_corpus])
    return stores


def test_purge_expired_removes_vectors_and_text_and_keeps_a_tombstone(indexed):
    doc = "pdf:engineering/deploy-runbook.pdf"
    _expire(indexed, doc)
    report = purge_documents(
        indexed.catalog,
        indexed.index,
        select_docs(indexed.catalog, expired=True),
        reason="expired",
        selector={"expired": True},
    )
    assert report.documents == [doc] and report.vectors_deleted > 0 and report.verified
    assert indexed.index.ids_of_document(doc) == []  # verified by query, not by search
    with indexed.catalog.session() as s:
        row = s.get(Document, doc)
        assert (row.status, row.status_reason) == ("purged", "expired")
        versions = list(s.scalars(select(Version).where(Version.document_id == doc)))
        assert versions and all(v.cleaned_text is None and len(v.content_hash) == 64 for v in versions)
    again = purge_documents(
        indexed.catalog,
        indexed.index,
        select_docs(indexed.catalog, expired=True),
        reason="expired",
        selector={"expired": True},
    )
    assert again.documents == [] and again.vectors_deleted == 0
    assert audit.events(indexed.catalog, kind="purge", limit=1)[0]["payload"]["documents"] == [doc]


def test_dry_run_changes_nothing(indexed):
    before = indexed.index.count()
    report = purge_documents(
        indexed.catalog,
        indexed.index,
        select_docs(indexed.catalog, source="pdf"),
        reason="x",
        selector={"source": "pdf"},
        dry_run=True,
    )
    assert len(report.documents) == 5 and indexed.index.count() == before


@pytest.mark.parametrize("kind, value", [("document", "pdf:engineering/deploy-runbook.pdf"), ("source", "pdf")])
def test_held_documents_are_never_purged_but_reported(indexed, embedder, kind, value, make_retriever):
    doc = "pdf:engineering/deploy-runbook.pdf"
    indexed.catalog.holds.add_hold(kind, value, "litigation 2026-17", actor="test")
    _expire(indexed, doc)
    report = purge_documents(
        indexed.catalog,
        indexed.index,
        select_docs(indexed.catalog, expired=True),
        reason="expired",
        selector={"expired": True},
    )
    assert report.documents == [] and report.held == {doc: f"{kind}:{value}"}
    assert indexed.index.ids_of_document(doc)
    # Held, but still obeys the rules: expired chunks never show up in search.
    assert doc not in {
        h.document_id for h in make_retriever(indexed, embedder).search(BOB, "granite-otter rollback", k=10)
    }
    indexed.catalog.holds.remove_hold(kind, value)
    assert purge_documents(
        indexed.catalog, indexed.index, select_docs(indexed.catalog, expired=True), reason="expired", selector={}
    ).documents == [doc]


def test_purge_by_source_takes_every_document_of_it(indexed):
    report = purge_documents(
        indexed.catalog,
        indexed.index,
        select_docs(indexed.catalog, source="pdf"),
        reason="source",
        selector={"source": "pdf"},
    )
    assert len(report.documents) == 5 and indexed.index.count() == 0


def test_prune_tombstones_documents_gone_from_a_full_export(
    stores, embedder, sample_corpus, tmp_path, make_ingestor, make_retriever
):
    corpus = tmp_path / "c"
    shutil.copytree(sample_corpus, corpus)
    ing = make_ingestor(stores, embedder)
    ing.ingest_paths([corpus])
    (corpus / "engineering" / "deploy-runbook.pdf").unlink()
    assert ing.ingest_paths([corpus]).tombstoned == 0  # an incremental run never prunes
    summary = ing.ingest_paths([corpus], prune=True)
    assert summary.tombstoned == 1
    assert stores.index.ids_of_document("pdf:engineering/deploy-runbook.pdf") == []
    hits = make_retriever(stores, embedder).search(BOB, "granite-otter rollback script canary", k=10)
    assert "pdf:engineering/deploy-runbook.pdf" not in {h.document_id for h in hits}


def test_document_no_rule_covers_any_more_is_taken_out_of_search(
    stores, embedder, sample_corpus, tmp_path, make_ingestor, make_retriever
):
    from governance.policy import load_policy

    make_ingestor(stores, embedder).ingest_paths([sample_corpus])
    narrowed = tmp_path / "p.yaml"
    narrowed.write_text(
        Path(stores.settings.policy).read_text().replace('path: "engineering/**"', 'path: "eng-archive/**"')
    )
    stores.policy = load_policy(narrowed)
    summary = make_ingestor(stores, embedder).ingest_paths([sample_corpus])
    assert summary.tombstoned == 2
    assert (
        make_retriever(stores, embedder)
        .search(BOB, "granite-otter rollback", k=10)[0]
        .document_id.startswith("pdf:handbook/")
    )


def test_right_to_be_forgotten_removes_their_words_everywhere_and_keeps_the_rest(
    sqlite_stores, embedder, make_ingestor, make_retriever
):
    jane, joe = "user:jane@example.com", "user:joe@example.com"
    items = [
        _thread(
            "slack:T1:C1:1",
            [
                (joe, "Joe asks about the cerulean-mongoose rollout."),
                (jane, "Jane says the vermilion-pelican password is in the vault."),
            ],
        ),
        _thread("slack:T1:C1:2", [(jane, "Jane's own thread about the saffron-iguana offsite.")], owner=jane),
        _thread("slack:T1:C1:3", [(joe, "Joe alone on the teal-armadillo migration.")]),
    ]
    ing = make_ingestor(sqlite_stores, embedder)
    ing.ingest_items(items)
    report = forget_subject(ing, jane)
    assert report.documents == ["slack:T1:C1:2"] and report.reindexed == ["slack:T1:C1:1"]
    texts = _texts(sqlite_stores)
    assert not any("vermilion-pelican" in t or "saffron-iguana" in t for t in texts)
    assert any("cerulean-mongoose" in t for t in texts) and any("teal-armadillo" in t for t in texts)
    hits = make_retriever(sqlite_stores, embedder).search(BOB, "cerulean-mongoose rollout", k=3)
    assert hits[0].document_id == "slack:T1:C1:1" and hits[0].source_version == 2
    # The unchanged export comes round again: her words do not come back.
    again = ing.ingest_items(items)
    assert again.new == 0 and not any("vermilion-pelican" in t for t in _texts(sqlite_stores))
    changed = [
        _thread(
            "slack:T1:C1:1",
            [
                (joe, "Joe asks about the cerulean-mongoose rollout, take two."),
                (jane, "Jane again: vermilion-pelican."),
            ],
        )
    ]
    ing.ingest_items(changed)
    assert not any("vermilion-pelican" in t for t in _texts(sqlite_stores))


def test_subject_under_legal_hold_is_not_erased(sqlite_stores, embedder, make_ingestor):
    jane = "user:jane@example.com"
    ing = make_ingestor(sqlite_stores, embedder)
    ing.ingest_items([_thread("slack:T1:C9:1", [(jane, "Jane on the umber-quokka contract.")], owner=jane)])
    sqlite_stores.catalog.holds.add_hold("subject", jane, "court order", actor="test")
    report = forget_subject(ing, jane)
    assert report.documents == [] and report.held == {"slack:T1:C9:1": f"subject:{jane}"}
    assert any("umber-quokka" in t for t in _texts(sqlite_stores))


def test_doctor_finds_and_repairs_orphan_missing_and_stale_vectors(indexed, embedder, make_ingestor):
    from ingest.pipeline.doctor import doctor

    ing = make_ingestor(indexed, embedder)
    rows = indexed.index.query(
        "id >= 0",
        fields=ROW_FIELDS,
    )
    orphan = {**rows[0], "id": 424242, "document_id": "pdf:ghost.pdf"}
    stale = {**rows[1], "scope_id": 999}
    indexed.index.upsert([VectorRow(**orphan), VectorRow(**stale)])
    indexed.index.delete_ids([rows[2]["id"]])
    before, result, after = doctor(ing, fix=True, scan_secrets=False)
    assert (before.orphan_vectors.count, before.stale_access.count, before.missing_vectors.count) == (1, 1, 1)
    assert (result.orphans_deleted, result.access_rewritten, result.missing_reembedded) == (1, 1, 1)
    assert after.agrees
    assert doctor(ing, fix=False, scan_secrets=False)[0].agrees


def _expire_vectors(stores, doc_id: str) -> list[dict]:
    """Give the document's vectors a past ``expires_at`` too (as a retention sweep would see them)."""
    rows = stores.index.rows_of_documents(
        [doc_id],
        ("vector", "document_id", "source", "source_version", "scope_id", "classification", "title", "uri", "text"),
    )
    past = int((datetime.now(UTC) - timedelta(days=1)).timestamp())
    rows = [{**r, "expires_at": past} for r in rows]
    stores.index.upsert([VectorRow(**r) for r in rows])
    return rows


@pytest.mark.parametrize("selector", ["expired", "document"])
def test_purge_sweeps_vectors_the_catalog_lost_track_of(indexed, selector):
    doc = "pdf:engineering/deploy-runbook.pdf"
    _expire(indexed, doc)
    rows = _expire_vectors(indexed, doc)
    orphan = {**rows[0], "id": 987_654_321, "expires_at": rows[0]["expires_at"] - 86_400 * 2}
    indexed.index.upsert([VectorRow(**orphan)])  # a vector no catalog chunk row names (as after a crash)
    ids = select_docs(indexed.catalog, expired=True) if selector == "expired" else [doc]
    report = purge_documents(indexed.catalog, indexed.index, ids, reason="t", selector={selector: True})
    assert report.orphans_deleted == 1 and report.verified
    assert report.vectors_deleted == len(rows) + 1
    assert indexed.index.ids_of_document(doc) == [] and indexed.index.get([987_654_321]) == []


def test_the_expired_sweep_leaves_held_documents_vectors_alone(indexed):
    held, gone = "pdf:engineering/deploy-runbook.pdf", "pdf:handbook/holidays-and-leave.pdf"
    for doc in (held, gone):
        _expire(indexed, doc)
        _expire_vectors(indexed, doc)
    indexed.catalog.holds.add_hold("document", held, "litigation", actor="test")
    report = purge_documents(
        indexed.catalog,
        indexed.index,
        select_docs(indexed.catalog, expired=True),
        reason="expired",
        selector={"expired": True},
    )
    assert report.documents == [gone] and report.verified and held in report.held
    assert indexed.index.ids_of_document(held) and not indexed.index.ids_of_document(gone)


def test_erasure_leaves_no_identifier_of_the_subject_in_the_catalog_but_the_kept_records(
    sqlite_stores, embedder, make_ingestor
):
    """After ``purge --subject``, her email is only in the forgotten-subjects record and the
    audit log (both documented as kept), not in documents, contributors, versions or chunks."""
    from sqlalchemy import inspect, text

    jane, joe = "user:jane@example.com", "user:joe@example.com"
    ing = make_ingestor(sqlite_stores, embedder)
    ing.ingest_items(
        [
            _thread(
                "slack:T1:C1:1",
                [(joe, "Joe asks about the cobalt-heron rollout."), (jane, "Jane answers for jane@example.com.")],
            ),
            _thread("slack:T1:C1:2", [(jane, "Jane's own thread, signed jane@example.com.")], owner=jane),
        ]
    )
    forget_subject(ing, jane)
    kept = {"forgotten_subjects", "audit_events", "audit_head", "alembic_version"}
    found = []
    with sqlite_stores.catalog.session() as s:
        for table in inspect(sqlite_stores.catalog.engine).get_table_names():
            if table in kept:
                continue
            for row in s.execute(text(f'SELECT * FROM "{table}"')):
                if any("jane@example.com" in str(v) for v in row):
                    found.append((table, row))
    assert not found, found[:5]


def test_a_hold_committed_while_a_purge_runs_wins(sqlite_stores, embedder, monkeypatch, make_ingestor):
    """The purge checks holds per batch, when it claims the batch: a hold added after the
    purge started (here: after its first batch) keeps its document."""
    from governance import purge

    ing = make_ingestor(sqlite_stores, embedder)
    ing.ingest_items([_thread(f"slack:T1:C2:{n}", [("user:joe@example.com", f"Joe on topic {n}.")]) for n in range(3)])
    monkeypatch.setattr(purge, "BATCH_DOCUMENTS", 1)
    targets = sorted(sqlite_stores.catalog.documents.select_documents())

    def hold_the_last(done: int, total: int) -> None:
        if done == 1:
            sqlite_stores.catalog.holds.add_hold("document", targets[-1], "court order", actor="test")

    report = purge.purge_documents(
        sqlite_stores.catalog,
        sqlite_stores.index,
        targets,
        reason="test",
        selector={"document": "all"},
        progress=hold_the_last,
    )
    assert report.documents == targets[:-1] and report.held == {targets[-1]: f"document:{targets[-1]}"}
    assert sqlite_stores.catalog.documents.document_state(targets[-1]).status == "active"
    assert sqlite_stores.index.ids_of_document(targets[-1]) != []


def test_a_hold_on_a_purged_document_is_refused(sqlite_stores, embedder, make_ingestor):
    from governance import purge
    from governance.errors import HoldRefused

    ing = make_ingestor(sqlite_stores, embedder)
    ing.ingest_items([_thread("slack:T1:C3:1", [("user:joe@example.com", "Joe on the amber topic.")])])
    purge.purge_documents(
        sqlite_stores.catalog,
        sqlite_stores.index,
        ["slack:T1:C3:1"],
        reason="test",
        selector={"document": "slack:T1:C3:1"},
    )
    with pytest.raises(HoldRefused, match="purged"):
        sqlite_stores.catalog.holds.add_hold("document", "slack:T1:C3:1", "too late", actor="test")
    assert sqlite_stores.catalog.holds.holds() == []


def test_an_ingest_running_during_an_erasure_does_not_bring_the_words_back(
    sqlite_stores, embedder, monkeypatch, make_ingestor
):
    """The ingest read the forgotten subjects before the erasure; the erasure finishes while
    the ingest is between embedding and publishing. What the ingest publishes is erased too."""
    jane, joe = "user:jane@example.com", "user:joe@example.com"
    catalog = sqlite_stores.catalog
    publish, erased = catalog.documents.publish_versions, []

    def publish_after_an_erasure(*args, **kwargs):
        if not erased:
            erased.append(forget_subject(make_ingestor(sqlite_stores, embedder), jane))
        return publish(*args, **kwargs)

    monkeypatch.setattr(catalog.documents, "publish_versions", publish_after_an_erasure)
    make_ingestor(sqlite_stores, embedder).ingest_items(
        [
            _thread(
                "slack:T1:C4:1", [(joe, "Joe on the indigo-walrus plan."), (jane, "Jane adds the ochre-lynx detail.")]
            )
        ]
    )
    assert erased
    texts = _texts(sqlite_stores)
    assert any("indigo-walrus" in t for t in texts) and not any("ochre-lynx" in t for t in texts)


def test_documents_prepared_before_an_erasure_and_written_after_it_lose_the_words_too(
    sqlite_stores, embedder, monkeypatch, make_ingestor
):
    """Documents are prepared ahead of the write. The erasure finishes at the first publish,
    after every document was read without knowing it; each later batch must still be
    checked against the set its text was read with, not the run's updated one."""
    import ingest.pipeline.prepare as prepare_mod
    import ingest.pipeline.run as run_mod

    jane, joe = "user:jane@example.com", "user:joe@example.com"
    monkeypatch.setattr(run_mod, "MIN_EMBED_CHUNKS", 1)  # one document per batch
    monkeypatch.setattr(run_mod, "MAX_EMBED_CHUNKS", 1)
    items = [
        _thread(f"slack:T1:C5:{n}", [(joe, f"Joe on plan-{n}-indigo."), (jane, f"Jane adds ochre-{n}-lynx.")])
        for n in range(4)
    ]
    read, real_read_text = [], prepare_mod.read_text

    def counting_read_text(item, **kwargs):
        out = real_read_text(item, **kwargs)
        read.append(item.document_id)
        return out

    monkeypatch.setattr(prepare_mod, "read_text", counting_read_text)
    catalog = sqlite_stores.catalog
    publish, erased = catalog.documents.publish_versions, []

    def publish_after_an_erasure(*args, **kwargs):
        if not erased:
            deadline = time.monotonic() + 30
            while len(read) < len(items) and time.monotonic() < deadline:  # all read before it
                time.sleep(0.01)
            assert len(read) == len(items)
            erased.append(forget_subject(make_ingestor(sqlite_stores, embedder), jane))
        return publish(*args, **kwargs)

    monkeypatch.setattr(catalog.documents, "publish_versions", publish_after_an_erasure)
    make_ingestor(sqlite_stores, embedder).ingest_items(items)
    assert erased
    texts = _texts(sqlite_stores)
    for n in range(4):
        assert any(f"plan-{n}-indigo" in t for t in texts), n
        assert not any(f"ochre-{n}-lynx" in t for t in texts), n


def test_batches_are_stored_in_order_on_the_write_thread_and_a_failed_store_stops_the_run(
    sqlite_stores, embedder, monkeypatch, make_ingestor
):
    """The main thread embeds the next batch while the write thread stores the one before;
    a store that fails leaves the batches before it published and none after it."""
    import threading

    import ingest.pipeline.run as run_mod
    from ingest.pipeline.write import VersionWriter

    monkeypatch.setattr(run_mod, "MIN_EMBED_CHUNKS", 1)  # one document per batch
    monkeypatch.setattr(run_mod, "MAX_EMBED_CHUNKS", 1)
    items = [_thread(f"slack:T1:C7:{n}", [("user:ann@example.com", f"Ann on plan-{n}-teal.")]) for n in range(5)]
    stored: list[tuple[str, str]] = []
    real_store = VersionWriter.store

    def store(self, prepared, vectors, summary, progress):
        stored.append((prepared[0].doc.document_id, threading.current_thread().name))
        if len(stored) == 3:
            raise RuntimeError("injected: the third batch's store fails")
        return real_store(self, prepared, vectors, summary, progress)

    monkeypatch.setattr(VersionWriter, "store", store)
    with pytest.raises(RuntimeError, match="third batch"):
        make_ingestor(sqlite_stores, embedder).ingest_items(items)
    assert [doc for doc, _ in stored] == [item.document_id for item in items[:3]]
    assert all(name.startswith("govrag-write") for _, name in stored)
    current = {
        item.document_id: (
            state.current_version
            if (state := sqlite_stores.catalog.documents.document_state(item.document_id))
            else None
        )
        for item in items
    }
    assert [current[item.document_id] for item in items] == [1, 1, None, None, None]
    with sqlite_stores.catalog.session() as s:
        assert s.scalars(select(Run.status).order_by(Run.id.desc())).first() == "failed"
