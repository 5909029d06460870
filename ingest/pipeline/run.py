"""The ingest pipeline: source item → parse → clean → chunk → version → embed → index.

:class:`Ingestor` runs the stages over a run's items: an export's permission state, moves
and prune (:mod:`ingest.pipeline.reconcile`); each item prepared on a parsing thread
(:mod:`ingest.pipeline.prepare`) and handed over in a chunk-bounded queue
(:mod:`ingest.pipeline.handoff`); batches embedded on the main thread while the next items
are parsed and the batch before is stored on a write thread (:mod:`ingest.pipeline.write`,
which holds the crash-safe order: stage → upsert → publish → delete); the run, its
quarantine records and its audit record here.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from embedding.base import Embedder, TokenEmbedder, Tokenizer
from governance import audit
from governance.catalog.statuses import RunStatus
from governance.errors import QuarantinedDocument, SourceError
from governance.observability import metrics
from governance.stores import Stores
from ingest.chunking import chunk_id
from ingest.pipeline import reconcile
from ingest.pipeline.handoff import ChunkBoundedQueue, Empty
from ingest.pipeline.parse_pool import ParsePool, PoolStopped
from ingest.pipeline.permission_state import AppliedState
from ingest.pipeline.prepare import ForgottenSubjects, Prepared, Preparer, ProgressFn
from ingest.pipeline.read_ahead import ReadAhead
from ingest.pipeline.summary import IngestSummary, QuarantineEntry
from ingest.pipeline.write import VersionWriter, delete_owed_vectors, rewrite_access
from ingest.sources import open_source
from ingest.sources.archive import clean_work
from ingest.sources.base import SourceExport, SourceItem

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

MIN_EMBED_CHUNKS = 64
# An embed batch takes what is ready up to this many chunks: the embedder sorts a batch by
# length, so small documents (Slack threads) embed faster in large batches (ingest.pipeline.handoff).
MAX_EMBED_CHUNKS = 1024
# Prepared documents wait for the write stage up to this many chunks and documents.
MAX_AHEAD_CHUNKS = 2048
MAX_AHEAD_DOCUMENTS = 2048

__all__ = [
    "MAX_AHEAD_CHUNKS",
    "MAX_AHEAD_DOCUMENTS",
    "MAX_EMBED_CHUNKS",
    "MIN_EMBED_CHUNKS",
    "Ingestor",
    "ProgressFn",
    "ingest",
]


class Ingestor:
    """Runs ingest over source items with one catalog, one index and one embedder."""

    def __init__(
        self,
        stores: Stores,
        embedder_factory: Callable[[], Embedder],
        *,
        site: str | None = None,
        workers: int | None = None,
    ) -> None:
        """``workers``: parse processes (None: ``GOVRAG_INGEST_WORKERS``, one per core by
        default; 0: parse in this process)."""
        self.stores = stores
        self.site = site  # Confluence site / Slack team for exports that do not state theirs
        self.workers = stores.settings.parse_workers if workers is None else workers
        self.running: IngestSummary | None = None  # the summary of the run under way, for progress displays
        self._embedder_factory = embedder_factory
        self._embedder: Embedder | None = None
        self._forgotten = ForgottenSubjects()
        self._writer = VersionWriter(stores, lambda: self.embedder, self._forgotten, self._forget_late)
        self.max_chars = stores.settings.chunk_max_characters

    def chunk_id(self, document_id: str, version: int, ordinal: int) -> int:
        """The Milvus primary key of a chunk (namespaced by the tenant with multi-tenancy)."""
        return chunk_id(document_id, version, ordinal, tenant=self.stores.tenant)

    @property
    def embedder(self) -> Embedder:
        # Loaded on first need: an unchanged re-ingest never loads the model.
        if self._embedder is None:
            self._embedder = self._embedder_factory()
        return self._embedder

    # -- entry point ------------------------------------------------------------------------
    def open(self, path: Path) -> SourceExport:
        """One input opened with this run's policy and site: its items (origin set: the
        source identity, or the input's path for sources without one) and permission state."""
        export = open_source(Path(path), policy=self.stores.policy, site=self.site)
        for item in export.items:
            item.origin = item.origin or f"path:{Path(path).resolve()}"
        return export

    def discover(self, path: Path) -> list[SourceItem]:
        """The items of :meth:`open` (documents only)."""
        return self.open(path).items

    def ingest_paths(
        self, paths: Sequence[Path], progress: ProgressFn | None = None, *, prune: bool = False
    ) -> IngestSummary:
        """Ingest files, folders and exports. ``prune``: the paths are fresh *full* exports,
        so documents of the same source identity that are no longer in them are tombstoned
        (a policy ``sources`` rule with ``full_export: true`` says so per export, too)."""
        exports: list[SourceExport] = []
        refused: list[tuple[Path, SourceError]] = []
        clean_work()  # extractions a crashed or killed run left behind
        try:
            for p in paths:
                try:
                    exports.append(self.open(Path(p)))
                except SourceError as exc:
                    if not Path(p).exists():  # a usage error (discover says so), not bad input: stop
                        raise
                    # A hostile or unreadable export is bad input like any other: quarantined with
                    # its reason, and the other paths of the run go on (invariant 4).
                    refused.append((Path(p), exc))
            return self.ingest_exports(exports, progress, prune=prune, refused=refused)
        finally:
            for export in exports:  # extracted archives hold the source's text in clear
                export.close()

    def ingest_exports(
        self,
        exports: Sequence[SourceExport],
        progress: ProgressFn | None = None,
        *,
        prune: bool = False,
        refused: Sequence[tuple[Path, SourceError]] = (),
    ) -> IngestSummary:
        """Apply each export's permission state, then ingest its documents; with ``prune``
        (or ``full_export`` in the policy) tombstone what a full export no longer has."""
        applied = [self.apply_state(e) for e in exports]
        items = [item for e in exports for item in e.items]
        summary = self.ingest_items(items, progress, refused=refused)
        summary.scopes_changed += sum(a.scopes_changed for a in applied)
        summary.scopes_stale += sum(a.scopes_stale for a in applied)
        for export in exports:
            if prune or self.stores.policy.full_export(export.path):
                summary.tombstoned += self.prune(export)
        return summary

    def apply_state(self, export: SourceExport, actor: str | None = None) -> AppliedState:
        """The export's permission state into the catalog, and documents it knows under
        former ids (an earlier govrag's) taken out of search: they would keep old access."""
        return reconcile.apply_state(self.stores, export, actor=actor)

    def prune(self, export: SourceExport) -> int:
        """Tombstone active documents of this export's source identities that it no longer
        holds (never those a newer export stated)."""
        return reconcile.prune(self.stores, export)

    def ingest_items(
        self,
        items: Sequence[SourceItem],
        progress: ProgressFn | None = None,
        *,
        refused: Sequence[tuple[Path, SourceError]] = (),
    ) -> IngestSummary:
        """Ingest these items as one run; ``refused``: inputs that could not be opened, each
        recorded as quarantined."""
        progress = progress or (lambda *_: None)
        catalog = self.stores.catalog
        run_id = catalog.runs.start_run("ingest")
        summary = IngestSummary(run_id=run_id, parse_workers=self._pool_size(items))
        self.running = summary
        self._forgotten.subjects = catalog.holds.forgotten_subjects()
        preparer = self._preparer()
        started = time.perf_counter()
        for path, exc in refused:
            self._refuse_input(path, exc, summary)
        progress("start", None, len(items))
        status = RunStatus.FAILED
        queue: ChunkBoundedQueue[object] = ChunkBoundedQueue(MAX_AHEAD_CHUNKS, MAX_AHEAD_DOCUMENTS)
        done = object()
        stop = threading.Event()

        def produce() -> None:
            # Parsing runs on this thread (and in worker processes, reading ahead) while the
            # main thread embeds and writes: torch releases the GIL, so the run's own parsing
            # overlaps embedding instead of adding to it.
            try:
                pool = self._pool(items, stop)
                reader = ReadAhead(self.stores, pool, self._forgotten, self.max_chars, self._worker_tokenizer)
                try:
                    for prepared in reader.prepared(items, preparer, summary, progress, stop):
                        queue.put(prepared, len(prepared.chunks))
                except PoolStopped:
                    return  # the main thread stopped the run and reports why
                finally:
                    if pool is not None:
                        pool.close()
                queue.put(done)
            except BaseException as exc:  # handed to the main thread, which re-raises it
                queue.put(exc)

        producer = threading.Thread(target=produce, name="govrag-parse", daemon=True)
        producer.start()
        # One batch is stored (upsert → publish → delete) on this thread while the next is
        # embedded on the main one; batches are stored one at a time, in order, each in the
        # crash-safe order, and a failed store stops the run at the next hand-off.
        storer = ThreadPoolExecutor(1, thread_name_prefix="govrag-write")
        storing: Future[None] | None = None
        store_failed = object()

        def store(batch: list[Prepared], vectors: np.ndarray | list[np.ndarray]) -> None:
            try:
                self._writer.store(batch, vectors, summary, progress)
            except BaseException:
                # The main thread may be waiting for documents behind a slow parse: wake it.
                queue.put_first(store_failed)
                raise

        try:
            delete_owed_vectors(self.stores, summary)
            finished = False
            while not finished:
                batch: list[Prepared] = []
                chunks = 0
                # Embed in batches of at least MIN_EMBED_CHUNKS chunks across documents (many
                # small documents, such as Slack threads, would otherwise run tiny batches),
                # taking what is ready up to MAX_EMBED_CHUNKS.
                while True:
                    got = (
                        queue.get()
                        if chunks < MIN_EMBED_CHUNKS
                        else queue.get(block=False)
                        if not queue.empty()
                        else None
                    )
                    if got is None:
                        break
                    if got is store_failed:
                        assert storing is not None
                        storing.result()  # raises what the store raised
                    if got is done:
                        finished = True
                        break
                    if isinstance(got, BaseException):
                        raise got
                    assert isinstance(got, Prepared)
                    batch.append(got)
                    chunks += len(got.chunks)
                    if chunks >= MAX_EMBED_CHUNKS:
                        break
                if not batch:
                    continue
                vectors = self._writer.embed(batch, summary)
                if storing is not None:
                    storing.result()
                storing = storer.submit(store, batch, vectors)
            if storing is not None:
                storing.result()
            if summary.chunks_written or summary.vectors_deleted:
                self.stores.index.flush()
            status = RunStatus.SUCCEEDED
        finally:
            stop.set()
            storer.shutdown(wait=True)  # a batch being stored finishes (or fails) first
            while producer.is_alive():  # unblock a producer waiting on a full queue
                try:
                    queue.get(block=False)
                except Empty:
                    producer.join(timeout=0.1)
            summary.seconds = round(time.perf_counter() - started, 3)
            summary.note_outcome(policy_set=self.stores.settings.policy is not None)
            for outcome in ("new", "changed", "unchanged", "quarantined", "tombstoned"):
                metrics.INGEST_DOCUMENTS.labels(outcome=outcome).inc(getattr(summary, outcome))
            metrics.INGEST_CHUNKS.inc(summary.chunks_written)
            log.info(
                "ingest run %s %s",
                summary.run_id,
                status,
                extra={
                    "run_id": summary.run_id,
                    "status": status,
                    "documents": summary.documents_seen,
                    "chunks": summary.chunks_written,
                    "quarantined": summary.quarantined,
                    "seconds": summary.seconds,
                },
            )
            catalog.runs.finish_run(run_id, status, summary.model_dump(exclude={"quarantine"}))
            audit.record(
                catalog,
                "ingest",
                None,
                {"run_id": summary.run_id, "status": status, **summary.model_dump(exclude={"quarantine", "run_id"})},
            )
            progress("end", None, 0)
        return summary

    def _refuse_input(self, path: Path, exc: SourceError, summary: IngestSummary) -> None:
        """A whole input (an export, an archive) that could not be opened safely."""
        message = str(exc) + (f" ({exc.hint})" if exc.hint else "")
        self._record_quarantine(
            summary,
            source="export",
            path=str(path),
            document_id=None,
            reason=getattr(exc, "reason", None) or "unreadable_source",
            message=message,
        )

    # -- per document ---------------------------------------------------------------------
    def _quarantine(self, item: SourceItem, exc: QuarantinedDocument, summary: IngestSummary) -> None:
        self._record_quarantine(
            summary,
            source=item.source,
            path=item.rel_path,
            document_id=item.document_id,
            reason=exc.reason,
            message=str(exc),
        )

    def _record_quarantine(
        self, summary: IngestSummary, *, source: str, path: str, document_id: str | None, reason: str, message: str
    ) -> None:
        """One quarantined input: the run summary, the catalog, the metric and one log line."""
        summary.quarantined += 1
        summary.quarantine.append(QuarantineEntry(path=path, reason=reason, message=message))
        self.stores.catalog.runs.quarantine(
            run_id=summary.run_id, source=source, path=path, document_id=document_id, reason=reason, message=message
        )
        metrics.QUARANTINED.labels(reason=reason).inc()
        log.info("quarantined %s: %s", path, reason, extra={"run_id": summary.run_id, "path": path, "reason": reason})

    def _preparer(self) -> Preparer:
        """This run's preparation stage: the catalog, the policy and the effects it hands back."""
        return Preparer(
            catalog=self.stores.catalog,
            policy=self.stores.policy,
            max_chars=self.max_chars,
            make_id=self.chunk_id,
            forgotten=self._forgotten,
            rewrite_access=lambda *access: rewrite_access(self.stores, *access),
            retire=lambda document_id, reason: reconcile.retire_if_indexed(self.stores, document_id, reason),
            quarantine=self._quarantine,
        )

    def _pool_size(self, items: Sequence[SourceItem]) -> int:
        """How many parse processes a run of ``items`` gets: 0 (parse in this process) with
        ``workers`` 0 or a single item, where starting a process costs more than it saves."""
        return 0 if self.workers < 1 or len(items) < 2 else min(self.workers, len(items))

    def _pool(self, items: Sequence[SourceItem], stop: threading.Event) -> ParsePool | None:
        """This run's parse processes (None: parse in this process)."""
        size = self._pool_size(items)
        settings = self.stores.settings
        return (
            ParsePool(size, job_seconds=settings.parse_timeout_s, stop=stop, niceness=settings.parse_niceness)
            if size
            else None
        )

    def _worker_tokenizer(self) -> Tokenizer | None:
        """The tokenizer workers run on the chunks they read, when the embedder takes token
        ids (Triton with client-side tokens). Only that embedder is made to find out: it loads
        no weights, where the local model would cost seconds an unchanged re-ingest never needs."""
        settings = self.stores.settings
        if settings.embedder != "triton" or settings.triton_tokenize != "client":
            return None
        embedder = self.embedder
        return embedder.tokenizer() if isinstance(embedder, TokenEmbedder) else None

    def _write(self, prepared: list[Prepared], summary: IngestSummary, progress: ProgressFn) -> None:
        """One batch through the write stage (an erasure's re-index goes through it too)."""
        self._writer.write(prepared, summary, progress)

    def _forget_late(self, subject: str) -> None:
        """Erase a subject forgotten while this run was under way (found by the write stage)."""
        from ingest.pipeline.erasure import forget_subject

        forget_subject(self, subject, actor="ingest:late-erasure")


def ingest(
    paths: Iterable[Path | str],
    stores: Stores | None = None,
    embedder: Embedder | None = None,
    progress: ProgressFn | None = None,
) -> IngestSummary:
    """Ingest PDF files or folders with the settings' stores and embedder."""
    from embedding import make_embedder

    own = stores is None
    stores = stores or Stores.open()
    try:
        ingestor = Ingestor(
            stores, (lambda: embedder) if embedder is not None else (lambda: make_embedder(stores.settings))
        )
        return ingestor.ingest_paths([Path(p) for p in paths], progress)
    finally:
        if own:
            stores.close()
