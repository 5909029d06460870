"""The preparation stage stages versions a group at a time (one catalog transaction each):
a group never holds a document back behind a slow parse, and a document met twice in one run
ends as if each reading had been staged alone. A scope one export states for many documents
is written once per run, never hiding a change."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from governance.catalog.documents import DocumentRepository
from governance.catalog.scopes import ScopeRepository
from governance.contracts import AccessScope
from governance.stores import Stores
from ingest.sources.base import as_of_stamp
from testsupport.index_texts import index_texts
from testsupport.parse_faults import SCOPE, SlowParser, TextParser, item
from testsupport.store_settings import embedded_settings


@pytest.fixture
def stores(tmp_path: Path):
    opened = Stores.open(embedded_settings(tmp_path, collection="stage_groups"))
    yield opened
    opened.close()


def test_many_small_documents_are_staged_in_a_few_transactions(stores, embedder, make_ingestor, monkeypatch) -> None:
    calls: list[int] = []
    original = DocumentRepository.stage_versions

    def counted(self, stagings, make_id):
        calls.append(len(stagings))
        return original(self, stagings, make_id)

    monkeypatch.setattr(DocumentRepository, "stage_versions", counted)
    items = [item(f"thread{n}", TextParser(f"a short thread number {n} about the harbour")) for n in range(120)]
    summary = make_ingestor(stores, embedder, workers=0).ingest_items(items)
    assert summary.new == 120 and sum(calls) == 120
    assert len(calls) <= 4, f"staged in {len(calls)} transactions"


@pytest.mark.parametrize("workers", [0, 2])
def test_a_document_met_twice_in_one_run_ends_on_the_later_reading(stores, embedder, make_ingestor, workers) -> None:
    items = [
        item("same", TextParser("the earlier text of the page")),
        item("other", TextParser("another page")),
        item("same", TextParser("the later text of the page")),
    ]
    make_ingestor(stores, embedder, workers=workers).ingest_items(items)
    state = stores.catalog.documents.document_state("test:workers:same")
    assert state.current_version == 2 and not state.pending
    assert index_texts(stores)["test:workers:same"] == ["the later text of the page"]
    assert stores.catalog.chunks.superseded_chunk_ids() == [], "no vector of the earlier version is owed a delete"
    assert len(stores.index.rows_of_documents(["test:workers:same"], ["id"])) == 1


def test_a_document_ready_is_written_while_a_worker_is_still_on_a_slow_one(
    stores, embedder, make_ingestor, monkeypatch
) -> None:
    import ingest.pipeline.run as run_mod

    monkeypatch.setattr(run_mod, "MIN_EMBED_CHUNKS", 1)  # a batch of one document is embedded at once
    written: dict[str, float] = {}

    def progress(event, item_, chunks) -> None:
        if event == "document" and chunks:
            written[item_.document_id] = time.monotonic()

    items = [item("quick", TextParser("a quick page")), item("slow", SlowParser("a long report", seconds=8.0))]
    make_ingestor(stores, embedder, workers=2).ingest_items(items, progress)
    assert set(written) == {"test:workers:quick", "test:workers:slow"}
    assert written["test:workers:slow"] - written["test:workers:quick"] > 4.0, "the quick page waited for the slow one"


STAMP = as_of_stamp(datetime(2026, 12, 1, tzinfo=UTC))


def _count_scope_writes(monkeypatch) -> list[str]:
    calls: list[str] = []
    original = ScopeRepository.upsert_scope

    def counted(self, scope, **kwargs):
        calls.append(scope.key)
        return original(self, scope, **kwargs)

    monkeypatch.setattr(ScopeRepository, "upsert_scope", counted)
    return calls


def test_a_scope_many_documents_of_one_export_share_is_written_once(
    stores, embedder, make_ingestor, monkeypatch
) -> None:
    calls = _count_scope_writes(monkeypatch)
    items = [replace(item(f"msg{n}", TextParser(f"message {n}")), as_of=STAMP) for n in range(10)]
    assert make_ingestor(stores, embedder, workers=0).ingest_items(items).new == 10
    assert calls == [SCOPE.key]


def test_a_scope_whose_members_change_within_a_run_is_written_again(
    stores, embedder, make_ingestor, monkeypatch
) -> None:
    """The same key stated with other members by a later document of the same export: the
    later statement is stored, as when every document wrote its scope."""
    calls = _count_scope_writes(monkeypatch)
    bob = AccessScope(key=SCOPE.key, layers=[["user:bob@example.com"]])
    items = [
        replace(item("before", TextParser("before the change")), as_of=STAMP),
        replace(item("after", TextParser("after the change")), as_of=STAMP, scope=bob),
        replace(item("after-too", TextParser("after it again")), as_of=STAMP, scope=bob),
    ]
    make_ingestor(stores, embedder, workers=0).ingest_items(items)
    assert calls == [SCOPE.key, SCOPE.key]
    [stored] = stores.catalog.scopes.scopes_by_keys([SCOPE.key])
    assert stored.fingerprint() == bob.fingerprint()


def test_a_scope_stated_without_an_export_time_is_written_by_each_document(
    stores, embedder, make_ingestor, monkeypatch
) -> None:
    calls = _count_scope_writes(monkeypatch)
    items = [item(f"file{n}", TextParser(f"file {n}")) for n in range(3)]
    make_ingestor(stores, embedder, workers=0).ingest_items(items)
    assert calls == [SCOPE.key] * 3
