"""Documents are read in worker processes (``GOVRAG_INGEST_WORKERS``): the run's decisions do
not depend on how many, and a worker that dies or hangs costs its document only."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
from sqlalchemy import select

from governance.catalog.models import Document
from governance.errors import QuarantinedDocument
from governance.stores import Stores
from testsupport.index_texts import index_texts
from testsupport.parse_faults import CrashingParser, HangingParser, StuckPastItsDeadlineParser, TextParser, item
from testsupport.sources_fixtures import ACCESS_POLICY, PHRASES, confluence_world, slack_world
from testsupport.store_settings import embedded_settings


@pytest.fixture
def open_stores(tmp_path: Path):
    opened: list[Stores] = []

    def open_(name: str, **overrides) -> Stores:
        stores = Stores.open(embedded_settings(tmp_path / name, collection=f"workers_{name}", **overrides))
        opened.append(stores)
        return stores

    yield open_
    for stores in opened:
        stores.close()


def test_documents_are_read_in_worker_processes(open_stores, embedder, make_ingestor) -> None:
    stores = open_stores("pids")
    items = [item(f"doc{n}", TextParser(f"document number {n} about harbour cranes", tell_pid=True)) for n in range(6)]
    summary = make_ingestor(stores, embedder, workers=2).ingest_items(items)
    assert summary.new == 6 and summary.parse_workers == 2
    pids = {text.rsplit("process ", 1)[1].rstrip(")") for ts in index_texts(stores).values() for text in ts}
    assert str(os.getpid()) not in pids and len(pids) >= 1


def test_workers_yield_the_cpu_to_the_run_by_the_configured_niceness(open_stores, embedder, make_ingestor) -> None:
    own = os.nice(0)
    for niceness in (0, 7):
        stores = open_stores(f"nice{niceness}", parse_niceness=niceness)
        items = [item(f"doc{n}", TextParser(f"niceness document {n}", tell_niceness=True)) for n in range(3)]
        make_ingestor(stores, embedder, workers=2).ingest_items(items)
        said = {t.rsplit("niceness ", 1)[1].rstrip(")") for ts in index_texts(stores).values() for t in ts}
        assert said == {str(min(own + niceness, 19))}
    assert os.nice(0) == own, "the run's own process keeps its priority"


def test_a_worker_that_dies_quarantines_its_document_and_the_run_goes_on(open_stores, embedder, make_ingestor) -> None:
    stores = open_stores("crash")
    items = [
        item("before", TextParser("the document before the crash")),
        item("crash", CrashingParser("the document that kills its parser")),
        item("after", TextParser("the document after the crash")),
        item("later", TextParser("a later document read by a fresh worker")),
    ]
    summary = make_ingestor(stores, embedder, workers=2).ingest_items(items)
    assert summary.new == 3 and summary.quarantined == 1
    (entry,) = summary.quarantine
    assert entry.reason == "parser_crashed" and entry.path == "crash.txt"
    assert "died while reading it (signal 9)" in entry.message
    assert set(index_texts(stores)) == {"test:workers:before", "test:workers:after", "test:workers:later"}


def test_a_worker_that_hangs_is_stopped_at_the_parse_timeout(open_stores, embedder, make_ingestor) -> None:
    stores = open_stores("hang", parse_timeout_s=2.0)
    items = [item("hangs", HangingParser("a document whose parser never returns"))]
    items += [item(f"fine{n}", TextParser(f"fine document {n}")) for n in range(3)]
    summary = make_ingestor(stores, embedder, workers=2).ingest_items(items)
    assert summary.new == 3
    assert [(q.path, q.reason) for q in summary.quarantine] == [("hangs.txt", "timeout")]
    assert "over its time limit" in summary.quarantine[0].message


def test_a_parser_stuck_past_its_own_deadline_is_stopped_by_the_run(
    open_stores, embedder, make_ingestor, monkeypatch
) -> None:
    from ingest.pipeline import parse_pool

    monkeypatch.setattr(parse_pool, "GRACE_SECONDS", 1.0)  # the run's side of the limit
    stores = open_stores("stuck")  # the default GOVRAG_PARSE_TIMEOUT_S (600 s) must not be what stops it
    items = [item("stuck", StuckPastItsDeadlineParser("stuck in C", seconds=0.5)), item("ok", TextParser("fine"))]
    summary = make_ingestor(stores, embedder, workers=2).ingest_items(items)
    assert summary.new == 1 and [(q.path, q.reason) for q in summary.quarantine] == [("stuck.txt", "timeout")]
    assert summary.seconds < 120


def test_unchanged_documents_are_not_read_again(open_stores, embedder, make_ingestor) -> None:
    stores = open_stores("unchanged")
    items = [item(f"doc{n}", TextParser(f"unchanged document {n}")) for n in range(4)]
    make_ingestor(stores, embedder, workers=2).ingest_items(items)
    again = make_ingestor(stores, embedder, workers=2).ingest_items(items)
    assert again.unchanged == 4 and again.chunks_parsed == 0 and again.chunks_written == 0


def test_a_govrag_error_survives_the_trip_from_a_worker() -> None:
    error = QuarantinedDocument("x.pdf: bad", reason="corrupt", path="/in/x.pdf", hint="export it again")
    back = pickle.loads(pickle.dumps(error))
    assert (type(back), str(back), back.reason, back.path, back.hint) == (
        QuarantinedDocument,
        "x.pdf: bad",
        "corrupt",
        "/in/x.pdf",
        "export it again",
    )


@pytest.mark.slow
def test_the_result_is_the_same_whatever_the_worker_count(
    tmp_path: Path, open_stores, embedder, make_ingestor, sample_corpus, monkeypatch
) -> None:
    """Slack, Confluence (XML, REST, HTML) and PDFs, hostile ones included: the catalog, the
    index and the summary are the same read in this process, in one worker or in two."""
    from governance.settings import get_settings

    policy = tmp_path / "policy.yaml"
    policy.write_text(ACCESS_POLICY)
    monkeypatch.setenv("GOVRAG_POLICY", str(policy))  # discovery reads the process policy
    get_settings.cache_clear()
    slack_zip, _, _ = slack_world(tmp_path / "src", PHRASES[:12])
    paths, _, _ = confluence_world(tmp_path / "src", PHRASES[12:])
    inputs = [slack_zip, *paths, sample_corpus]
    seen = []
    for workers in (0, 1, 2):
        stores = open_stores(f"w{workers}", policy=policy)
        summary = make_ingestor(stores, embedder, workers=workers).ingest_paths(inputs)
        with stores.catalog.session() as s:
            documents = sorted(
                tuple(row)
                for row in s.execute(
                    select(Document.id, Document.status, Document.current_version, Document.scope_id, Document.title)
                )
            )
        counts = summary.model_dump(
            exclude={"run_id", "seconds", "parse_seconds", "embed_seconds", "write_seconds", "parse_workers"}
        )
        seen.append((documents, index_texts(stores), counts))
        assert summary.parse_workers == workers
    get_settings.cache_clear()
    assert seen[0][2]["new"] > 20 and seen[0][2]["quarantined"] > 3
    assert seen[1] == seen[0]
    assert seen[2] == seen[0]


def test_a_failed_write_stops_the_run_without_waiting_for_a_slow_parse(
    open_stores, embedder, make_ingestor, monkeypatch
) -> None:
    """The write stage fails (Milvus down) while a worker is still on a document that takes
    minutes: the run reports the failure at once, not when that parse ends."""
    import time

    import ingest.pipeline.run as run_mod
    from governance.errors import IndexUnavailable

    stores = open_stores("stop")  # GOVRAG_PARSE_TIMEOUT_S 600 s: the slow parse would hold the run that long
    monkeypatch.setattr(run_mod, "MIN_EMBED_CHUNKS", 1)  # the first document is written alone

    def milvus_down(rows):
        raise IndexUnavailable("Milvus is down (injected)")

    monkeypatch.setattr(stores.index, "upsert", milvus_down)
    items = [item("first", TextParser("the first document")), item("slow", HangingParser("a slow one"))]
    started = time.monotonic()
    with pytest.raises(IndexUnavailable):
        make_ingestor(stores, embedder, workers=2).ingest_items(items)
    assert time.monotonic() - started < 120
