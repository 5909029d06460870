"""PDF ingest: bad inputs are quarantined with a reason, the rest lands, re-runs change nothing."""

from __future__ import annotations

import shutil

import pytest
from sqlalchemy import func, select

from governance.catalog.models import ChunkRow, Document, Quarantine, Version
from governance.errors import IndexUnavailable


class CountingEmbedder:
    """Wraps the real embedder to count what it is asked to embed."""

    def __init__(self, inner):
        self.inner, self.name, self.dim, self.texts = inner, inner.name, inner.dim, 0

    def embed(self, texts):
        self.texts += len(texts)
        return self.inner.embed(texts)


def _subset(corpus, tmp_path, folder):
    """A drop root holding only ``folder`` (paths stay relative to the root, as policy globs expect)."""
    shutil.copytree(corpus / folder, tmp_path / "subset" / folder)
    return tmp_path / "subset"


def _count(stores, model):
    with stores.catalog.session() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_sample_corpus_lands_and_bad_inputs_are_quarantined_with_reasons(
    stores, embedder, sample_corpus, make_ingestor
):
    summary = make_ingestor(stores, embedder).ingest_paths([sample_corpus])
    assert (summary.new, summary.quarantined, summary.documents_seen) == (5, 4, 9)
    reasons = {q.path: q.reason for q in summary.quarantine}
    assert reasons == {
        "finance/bad/encrypted-forecast.pdf": "encrypted",
        "finance/bad/corrupt-ledger.pdf": "corrupt",
        "finance/bad/scanned-receipt.pdf": "no_text_layer",
        "unfiled/board-minutes-draft.pdf": "no_access_rule",
    }
    assert _count(stores, Quarantine) == 4
    assert stores.index.count() == summary.chunks_written == _count(stores, ChunkRow)


def test_reingest_of_the_same_files_embeds_nothing_and_changes_nothing(stores, embedder, sample_corpus, make_ingestor):
    make_ingestor(stores, embedder).ingest_paths([sample_corpus])
    before = (stores.index.count(), _count(stores, Version), _count(stores, ChunkRow), _count(stores, Document))
    counting = CountingEmbedder(embedder)
    summary = make_ingestor(stores, counting).ingest_paths([sample_corpus])
    assert counting.texts == 0
    assert (summary.new, summary.changed, summary.unchanged, summary.chunks_written) == (0, 0, 5, 0)
    assert (stores.index.count(), _count(stores, Version), _count(stores, ChunkRow), _count(stores, Document)) == before


def test_changed_pdf_gets_a_new_version_and_old_vectors_are_deleted(
    stores, embedder, sample_corpus, tmp_path, make_ingestor
):
    from govrag.sample_corpus import DOCS, SampleDoc, _write_pdf

    corpus = tmp_path / "c"
    shutil.copytree(sample_corpus, corpus)
    ing = make_ingestor(stores, embedder)
    ing.ingest_paths([corpus])
    old_ids = {r["id"] for r in stores.index.query('document_id == "pdf:handbook/holidays-and-leave.pdf"')}
    doc = next(d for d in DOCS if d.path.startswith("handbook/"))
    _write_pdf(
        corpus / doc.path,
        SampleDoc(doc.path, doc.title, doc.sections + (("Sick leave", "Sick leave needs a note after three days."),)),
    )
    summary = ing.ingest_paths([corpus])
    assert (summary.changed, summary.unchanged) == (1, 4)
    new_ids = {
        r["id"]
        for r in stores.index.query(
            'document_id == "pdf:handbook/holidays-and-leave.pdf"', fields=["id", "source_version"]
        )
    }
    assert new_ids and not (new_ids & old_ids)
    assert {
        r["source_version"]
        for r in stores.index.query('document_id == "pdf:handbook/holidays-and-leave.pdf"', fields=["source_version"])
    } == {2}
    with stores.catalog.session() as s:
        assert s.get(Document, "pdf:handbook/holidays-and-leave.pdf").current_version == 2


@pytest.mark.corpus
def test_real_corpus_pdfs_good_ones_land_bad_ones_quarantined(sqlite_stores, embedder, corpus, tmp_path, make_ingestor):
    drop = tmp_path / "drop" / "finance"
    drop.mkdir(parents=True)
    for name in (
        "layout-parser-paper-fast.pdf",
        "copy-protected.pdf",
        "r6-user-password.pdf",
        "libreoffice-writer-password.pdf",
        "loremipsum-flat.pdf",
        "poppler-395-0-fuzzed.pdf",
        "single_table.pdf",
    ):
        shutil.copy(corpus / "pdf" / name, drop / name)
    summary = make_ingestor(sqlite_stores, embedder).ingest_paths([drop.parent])
    reasons = {q.path: q.reason for q in summary.quarantine}
    assert reasons["finance/r6-user-password.pdf"] == "encrypted"
    assert reasons["finance/libreoffice-writer-password.pdf"] == "encrypted"
    assert reasons["finance/loremipsum-flat.pdf"] == "no_text_layer"
    assert reasons["finance/single_table.pdf"] == "no_text_layer"
    assert reasons["finance/poppler-395-0-fuzzed.pdf"] in {"corrupt", "no_text", "parser_returned_nothing"}
    assert summary.new == 2  # the readable paper, and the copy-protected one (empty user password)
    assert sqlite_stores.index.count() == summary.chunks_written > 5


def test_pdf_with_a_text_layer_that_parses_to_nothing_is_an_error_not_an_empty_document(
    sqlite_stores, embedder, sample_corpus, monkeypatch, tmp_path, make_ingestor
):
    from ingest.parse import pdf_text

    monkeypatch.setattr(pdf_text, "pdf_elements", lambda path: [])  # a parser that silently fails
    # Parsed in this process (workers=0): the patch above does not reach worker processes.
    summary = make_ingestor(sqlite_stores, embedder, workers=0).ingest_paths(
        [_subset(sample_corpus, tmp_path, "engineering")]
    )
    assert summary.new == 0
    assert {q.reason for q in summary.quarantine} == {"parser_returned_nothing"}


def test_index_failure_stops_the_run_and_the_next_run_repairs(
    sqlite_stores, embedder, sample_corpus, monkeypatch, make_ingestor
):
    ing = make_ingestor(sqlite_stores, embedder)
    real_upsert = sqlite_stores.index.upsert

    def broken(rows, batch=2000):
        real_upsert(rows[: len(rows) // 2])  # half written, then the server "dies"
        raise IndexUnavailable("injected fault")

    monkeypatch.setattr(sqlite_stores.index, "upsert", broken)
    with pytest.raises(IndexUnavailable):
        ing.ingest_paths([sample_corpus])
    monkeypatch.setattr(sqlite_stores.index, "upsert", real_upsert)
    summary = ing.ingest_paths([sample_corpus])
    assert summary.new == 5
    with sqlite_stores.catalog.session() as s:
        assert s.scalar(select(func.count()).select_from(Version).where(Version.state == "pending")) == 0
        assert s.scalar(select(func.max(Version.version))) == 1  # the pending versions were reused
    assert sqlite_stores.index.count() == _count(sqlite_stores, ChunkRow)


def test_ingest_run_is_audited(stores, embedder, sample_corpus, tmp_path, make_ingestor):
    from governance import audit

    make_ingestor(stores, embedder).ingest_paths([_subset(sample_corpus, tmp_path, "handbook")])
    event = audit.events(stores.catalog, kind="ingest", limit=1)[0]
    assert event["payload"]["new"] == 1 and event["payload"]["status"] == "succeeded"
