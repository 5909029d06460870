"""The ingest pipeline: source item → parse → clean → chunk → version → embed → index.

Crash safety (invariant 3): a new version is staged in the catalog as *pending*, its vectors
are upserted with deterministic ids, then one catalog transaction makes it current, then the
old version's vectors are deleted. Search only shows chunks of the current version (the
post-check), so a crash at any point leaves nothing visible twice, and the next run re-uses
the pending version and overwrites the same ids.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from queue import Empty, Queue
from typing import TYPE_CHECKING

from embedding.base import Embedder
from governance import audit
from governance.catalog.documents import DocumentState
from governance.catalog.freshness import is_older
from governance.catalog.statuses import DocumentStatus, RunStatus
from governance.contracts import AccessScope, SourceDocument
from governance.errors import (
    CatalogError,
    ConfigError,
    EmbedderUnavailable,
    GovragError,
    IndexUnavailable,
    QuarantinedDocument,
    SourceError,
)
from governance.observability import metrics
from governance.redaction import redact, redact_many
from governance.scope_rules import POLICY_SEP, resolve_scope
from governance.stores import Stores
from governance.vector_index import VectorRow, expiry_epoch
from ingest.chunking import chunk_elements, chunk_id, clean_elements
from ingest.pipeline.permission_state import AppliedState, apply_permission_state
from ingest.pipeline.summary import IngestSummary, QuarantineEntry
from ingest.sources import open_source
from ingest.sources.archive import clean_work
from ingest.sources.base import (
    Parsed,
    SourceExport,
    SourceItem,
    element_author,
    make_document,
)

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

MIN_EMBED_CHUNKS = 64
MAX_EMBED_CHUNKS = 512
MAX_AHEAD_DOCUMENTS = 256

ProgressFn = Callable[[str, SourceItem | None, int], None]


@dataclass
class _Prepared:
    item: SourceItem
    doc: SourceDocument
    scope_id: int
    expires_at: datetime | None
    version: int
    chunks: list[tuple[int, str]]
    status: str  # new | changed
    blocks: list[dict] | None = None
    contributors: list[str] = field(default_factory=list)


class Ingestor:
    """Runs ingest over source items with one catalog, one index and one embedder."""

    def __init__(self, stores: Stores, embedder_factory: Callable[[], Embedder], *, site: str | None = None) -> None:
        self.stores = stores
        self.site = site  # Confluence site / Slack team for exports that do not state theirs
        self._embedder_factory = embedder_factory
        self._embedder: Embedder | None = None
        self._forgotten: frozenset[str] = frozenset()
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
        from governance.purge import tombstone_documents

        aliases = sorted({a for item in export.items for a in item.aliases if a != item.document_id})
        if aliases:
            info = self.stores.catalog.documents.documents_info(aliases)
            live = [a for a in aliases if info.get(a, {}).get("status") == DocumentStatus.ACTIVE]
            if live:
                tombstone_documents(
                    self.stores.catalog,
                    self.stores.index,
                    live,
                    reason="renamed: the document is now known by its source identity",
                )
        if export.state is None:
            return AppliedState(identity=str(export.path))
        applied = apply_permission_state(self.stores.catalog, export.state, actor=actor)
        applied.documents_moved = self._move_documents(export)
        return applied

    def _move_documents(self, export: SourceExport) -> int:
        """Documents this export does not hold whose scope it changes: those an earlier
        govrag put on a key no export states any more (``state.legacy``), and pages below
        pages it holds (``state.descendants``). Each gets its current scope, its vectors'
        metadata rewritten once (nothing embedded)."""
        state, catalog = export.state, self.stores.catalog
        assert state is not None
        stored: dict[str, AccessScope] = {}

        def lookup(key: str) -> AccessScope | None:
            if key not in stored:
                stored.update((sc.key, sc) for sc, _ in catalog.scopes.scopes_with_prefix(key))
            return stored.get(key)

        moves: list[tuple[str, str, AccessScope]] = []  # (document, its scope key, its new source scope)
        if state.legacy is not None:
            for doc_id, old_key in catalog.documents.active_documents_on_scopes(state.legacy.keys):
                base = state.legacy.key_for(doc_id)
                target = lookup(base) if base is not None else None
                if target is not None:  # else this export did not state the conversation / space
                    moves.append((doc_id, old_key, target))
        if state.descendants is not None:
            held = {item.document_id for item in export.items}
            below = catalog.documents.documents_below(state.descendants.id_prefix, state.descendants.page_ids)
            for doc_id, ancestry, old_key in below:
                current = lookup(old_key.partition(POLICY_SEP)[0])
                if doc_id in held or current is None:
                    continue
                target = state.descendants.rescope(doc_id, ancestry, current)
                if target is not None and target.key != current.key:
                    moves.append((doc_id, old_key, target))
        for doc_id, old_key, target in moves:
            old_base, sep, rule = old_key.partition(POLICY_SEP)
            if sep and (narrowed := lookup(old_key)) is not None:  # keep the policy rule's layers after the source's
                n = len(base_scope.layers) if (base_scope := lookup(old_base)) is not None else 1
                target = AccessScope(
                    key=target.key + POLICY_SEP + rule,
                    deny=target.deny,
                    description=narrowed.description,
                    layers=(*target.layers, *narrowed.layers[n:]),
                )
            scope_id, _ = catalog.scopes.upsert_scope(target, as_of=state.as_of)
            doc = catalog.documents.document_state(doc_id)
            if doc is not None and doc.scope_id != scope_id:
                self._rewrite_access(doc_id, scope_id, doc.expires_at, doc.classification)
        return len(moves)

    def prune(self, export: SourceExport) -> int:
        """Tombstone active documents of this export's source identities that it no longer
        holds (never those a newer export stated)."""
        from governance.purge import tombstone_documents

        seen: dict[str, set[str]] = {}
        for item in export.items:
            seen.setdefault(item.origin or "", set()).add(item.document_id)
        origins = set(seen) | {f"path:{export.path.resolve()}"}  # what earlier versions recorded
        as_of = next((i.as_of for i in export.items if i.as_of), None)
        all_seen = set().union(*seen.values()) if seen else set()
        if export.state is not None:  # a space or workspace whose documents are all gone
            origins |= set(export.state.origins)
        documents = self.stores.catalog.documents
        gone = sorted({d for o in origins for d in documents.active_ids_by_origin(o, not_newer_than=as_of)} - all_seen)
        done = tombstone_documents(
            self.stores.catalog, self.stores.index, gone, reason=f"gone from full export {export.path.name}"
        )
        for doc_id in gone:  # an older export must not bring them back
            documents.note_source(doc_id, origin=None, source_as_of=as_of)
        return done

    def ingest_items(
        self,
        items: Sequence[SourceItem],
        progress: ProgressFn | None = None,
        *,
        refused: Sequence[tuple[Path, SourceError]] = (),
    ) -> IngestSummary:
        progress = progress or (lambda *_: None)
        catalog = self.stores.catalog
        run_id = catalog.runs.start_run("ingest")
        summary = IngestSummary(run_id=run_id)
        self._forgotten = catalog.holds.forgotten_subjects()
        started = time.perf_counter()
        for path, exc in refused:
            self._refuse_input(path, exc, summary)
        progress("start", None, len(items))
        status = RunStatus.FAILED
        queue: Queue[object] = Queue(maxsize=MAX_AHEAD_DOCUMENTS)
        done = object()
        stop = threading.Event()

        def produce() -> None:
            # Parsing runs on this thread while the main thread embeds: torch releases the
            # GIL, so parsing (pdfminer, spaCy, JSON) overlaps embedding instead of adding to it.
            try:
                for item in items:
                    if stop.is_set():
                        return
                    prepared = self._prepare(item, summary, progress)
                    if prepared is not None:
                        queue.put(prepared)
                queue.put(done)
            except BaseException as exc:  # handed to the main thread, which re-raises it
                queue.put(exc)

        producer = threading.Thread(target=produce, name="govrag-parse", daemon=True)
        producer.start()
        try:
            self._delete_owed_vectors(summary)
            finished = False
            while not finished:
                batch: list[_Prepared] = []
                chunks = 0
                # Embed in batches of at least MIN_EMBED_CHUNKS chunks across documents (many
                # small documents, such as Slack threads, would otherwise run tiny batches),
                # taking what is ready up to MAX_EMBED_CHUNKS.
                while True:
                    got = (
                        queue.get() if chunks < MIN_EMBED_CHUNKS else queue.get_nowait() if not queue.empty() else None
                    )
                    if got is None:
                        break
                    if got is done:
                        finished = True
                        break
                    if isinstance(got, BaseException):
                        raise got
                    assert isinstance(got, _Prepared)
                    batch.append(got)
                    chunks += len(got.chunks)
                    if chunks >= MAX_EMBED_CHUNKS:
                        break
                self._write(batch, summary, progress)
            if summary.chunks_written or summary.vectors_deleted:
                self.stores.index.flush()
            status = RunStatus.SUCCEEDED
        finally:
            stop.set()
            while producer.is_alive():  # unblock a producer waiting on a full queue
                try:
                    queue.get_nowait()
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

    def _delete_owed_vectors(self, summary: IngestSummary) -> None:
        """Vectors of superseded versions that an earlier run published past but did not
        delete (Milvus went down, or the run was killed, in between): delete them first. The
        catalog keeps those chunk rows until the delete is done, so this costs one query when
        nothing is owed. (Without it an unchanged document would keep them: orphans.)"""
        owed = self.stores.catalog.chunks.superseded_chunk_ids()
        if owed:
            log.info(
                "deleting %d vectors of superseded versions left by an earlier run",
                len(owed),
                extra={"run_id": summary.run_id},
            )
            summary.vectors_deleted += self.stores.index.delete_ids(owed)
            self.stores.catalog.chunks.forget_chunks(owed)

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

    def _prepare(self, item: SourceItem, summary: IngestSummary, progress: ProgressFn) -> _Prepared | None:
        summary.documents_seen += 1
        catalog, policy = self.stores.catalog, self.stores.policy
        try:
            state = catalog.documents.document_state(item.document_id)
            if state is not None and state.status != DocumentStatus.PURGED and is_older(item.as_of, state.source_as_of):
                # A newer export already stated this document (its text, its place, its
                # access): an older export applied later changes nothing (invariant 7).
                summary.stale_skipped += 1
                progress("document", item, 0)
                return None
            scope, classification = resolve_scope(policy, item)
            scope_id, _ = catalog.scopes.upsert_scope(scope, as_of=item.as_of)
            source_hash = item.fingerprint()
            facts = {**item.facts, "classification": classification}

            if state and state.status == DocumentStatus.ACTIVE and state.current_source_hash == source_hash:
                self._unchanged(item, state, scope_id, classification, facts, item.modified_at, summary)
                progress("document", item, 0)
                return None

            t = time.perf_counter()
            parsed = item.parse()
            if (parsed.owner or item.owner) in self._forgotten:
                summary.forgotten_skipped += 1
                progress("document", item, 0)
                return None
            # Content by people erased under the right to be forgotten never comes back.
            elements = clean_elements([e for e in parsed.elements if element_author(e) not in self._forgotten])
            if not elements:
                raise QuarantinedDocument(
                    f"{item.rel_path}: no text left after cleaning", reason="no_text", path=str(item.path)
                )
            classification = self._apply_redaction(item, elements, facts, classification, summary, parsed)
            facts["classification"] = classification
            cleaned = "\n\n".join(e.text for e in elements)
            texts = chunk_elements(elements, self.max_chars)
            summary.parse_seconds += time.perf_counter() - t
            content_hash = hashlib.sha256(cleaned.encode()).hexdigest()
            doc = make_document(item, parsed, scope=scope, classification=classification)

            if state and state.status == DocumentStatus.ACTIVE and state.current_hash == content_hash:
                # Same text from different bytes (a re-saved file): nothing to embed.
                self._unchanged(item, state, scope_id, classification, facts, doc.modified_at, summary)
                progress("document", item, 0)
                return None

            ingested_at = datetime.now(UTC)
            expires_at = policy.expires_at(facts, modified=doc.modified_at, ingested=ingested_at)
            if expires_at is not None and expires_at <= ingested_at:
                summary.expired_skipped += 1  # would be invisible and purged at once
                if state and state.status == DocumentStatus.ACTIVE:
                    # The source's current text is already past retention: the previous
                    # version must not stay searchable under its old expiry (found by the
                    # leak fuzzer). Record the new expiry, so `purge --expired` takes the
                    # document, and take it out of search now.
                    catalog.documents.update_document_access(
                        item.document_id, scope_id=scope_id, expires_at=expires_at, classification=classification
                    )
                    self._retire_if_indexed(item, "its current text is past retention", summary)
                progress("document", item, 0)
                return None
            # A pending version with the same text is a crashed earlier run: finish it.
            version, chunks = catalog.documents.stage_version(
                doc,
                scope_id=scope_id,
                expires_at=expires_at,
                content_hash=content_hash,
                source_hash=source_hash,
                cleaned_text=cleaned,
                texts=texts,
                make_id=self.chunk_id,
                ingested_at=ingested_at,
                version=state.pending.get(content_hash) if state else None,
            )
            blocks = [{"author": element_author(e), "text": e.text} for e in elements]
            return _Prepared(
                item,
                doc,
                scope_id,
                expires_at,
                version,
                chunks,
                "changed" if state and state.current_version else "new",
                blocks=blocks if any(b["author"] for b in blocks) else None,
                contributors=sorted({b["author"] for b in blocks if b["author"]}),
            )
        except QuarantinedDocument as exc:
            if item.scope is not None and is_older(item.as_of, catalog.scopes.scope_as_of(item.scope.key)):
                # Refused for its access (no active member, permissions unknown...) by an
                # export older than the one that last stated that access: not this export's
                # call any more (found by the leak fuzzer).
                summary.stale_skipped += 1
                progress("document", item, 0)
                return None
            self._quarantine(item, exc, summary)
            self._retire_if_indexed(item, exc.reason, summary)
            # The refusal is this export's statement: an older export must not bring the
            # document back with the access it had then.
            catalog.documents.note_source(item.document_id, origin=None, source_as_of=item.as_of)
            progress("document", item, 0)
            return None
        except (IndexUnavailable, CatalogError, EmbedderUnavailable, ConfigError):
            raise  # infrastructure or setup broken: stop the run; the next run resumes
        except (GovragError, OSError) as exc:
            self._quarantine(
                item, QuarantinedDocument(f"{item.rel_path}: {exc}", reason="error", path=str(item.path)), summary
            )
            progress("document", item, 0)
            return None

    def _retire_if_indexed(self, item: SourceItem, reason: str, summary: IngestSummary) -> None:
        """A document that was searchable and is now refused (no access rule covers it any
        more, or it became unreadable) must not stay visible with its old access: fail closed."""
        state = self.stores.catalog.documents.document_state(item.document_id)
        if state is not None and state.status == DocumentStatus.ACTIVE:
            from governance.purge import tombstone_documents

            summary.tombstoned += tombstone_documents(
                self.stores.catalog, self.stores.index, [item.document_id], reason=f"refused on re-ingest: {reason}"
            )

    def _apply_redaction(
        self,
        item: SourceItem,
        elements: list,
        facts: dict,
        classification: str,
        summary: IngestSummary,
        parsed: Parsed | None = None,
    ) -> str:
        """Policy ``redaction``: redact values in place, block (quarantine) the document, or
        tag its classification. Returns the (possibly tagged) classification. The title is
        stored like the text (catalog, index), so it is redacted with it: a Slack thread's
        title quotes its root message."""
        redacted, counts = redact_many([e.text for e in elements])
        title = (parsed.title or item.title) if parsed is not None else None
        safe_title, title_counts = redact(title) if title else (title, Counter[str]())
        counts = counts or title_counts  # a title the text repeats (a Title element) counts once
        if not counts:
            return classification
        action = self.stores.policy.redaction_action(facts)
        kinds = ", ".join(f"{k} x{n}" for k, n in sorted(counts.items()))
        if action == "block":
            raise QuarantinedDocument(
                f"{item.rel_path}: contains sensitive data ({kinds})",
                reason="sensitive_content",
                path=str(item.path),
                hint="the policy's redaction rule blocks it; redact the source or change the rule",
            )
        if action == "tag":
            summary.tagged += 1
            return "sensitive"
        for el, text in zip(elements, redacted, strict=True):
            el.text = text
        if title_counts and parsed is not None:
            parsed.title = safe_title
        for kind, n in counts.items():
            summary.redactions[kind] = summary.redactions.get(kind, 0) + n
        return classification

    def _unchanged(
        self,
        item: SourceItem,
        state: DocumentState,
        scope_id: int,
        classification: str,
        facts: dict,
        modified: datetime | None,
        summary: IngestSummary,
    ) -> None:
        """Content unchanged: only scope, expiry or classification may need updating."""
        if state.classification == "sensitive":  # tagged by redaction when its text was read
            classification, facts = "sensitive", {**facts, "classification": "sensitive"}
        ingested = state.current_created_at or datetime.now(UTC)
        expires_at = self.stores.policy.expires_at(facts, modified=modified, ingested=ingested)
        if (state.scope_id, state.expires_at, state.classification) != (scope_id, expires_at, classification):
            self._rewrite_access(item.document_id, scope_id, expires_at, classification)
            summary.access_updated += 1
        ancestry = "/".join(item.ancestry) if item.ancestry is not None else state.ancestry
        if (item.origin, item.as_of, ancestry) != (state.origin, state.source_as_of, state.ancestry):
            self.stores.catalog.documents.note_source(
                item.document_id, origin=item.origin, source_as_of=item.as_of, ancestry=item.ancestry
            )
        summary.unchanged += 1

    def _write(self, prepared: list[_Prepared], summary: IngestSummary, progress: ProgressFn) -> None:
        if not prepared:
            return
        texts = [text for p in prepared for _, text in p.chunks]
        t = time.perf_counter()
        vectors: np.ndarray | list[np.ndarray] = self.embedder.embed(texts) if texts else []
        took = time.perf_counter() - t
        summary.embed_seconds += took
        if texts:
            kind = type(self.embedder).__name__
            metrics.EMBED_SECONDS.labels(embedder=kind).observe(took)
            metrics.EMBED_BATCH_SIZE.labels(embedder=kind).observe(len(texts))
        rows: list[VectorRow] = []
        n = 0
        for p in prepared:
            for cid, text in p.chunks:
                rows.append(
                    VectorRow(
                        id=cid,
                        vector=vectors[n].tolist(),
                        document_id=p.doc.document_id,
                        source=p.doc.source,
                        source_version=p.version,
                        scope_id=p.scope_id,
                        classification=p.doc.classification,
                        expires_at=expiry_epoch(p.expires_at),
                        title=p.doc.title,
                        uri=p.doc.uri,
                        text=text,
                    )
                )
                n += 1
        self.stores.index.upsert(rows)
        documents = self.stores.catalog.documents
        for p in prepared:
            stale = documents.publish_version(p.doc, p.version, scope_id=p.scope_id, expires_at=p.expires_at)
            documents.set_document_extras(
                p.doc.document_id,
                origin=p.item.origin,
                version=p.version,
                contributors=p.contributors,
                blocks=p.blocks,
                source_as_of=p.item.as_of,
                ancestry=p.item.ancestry,
            )
            if stale:
                summary.vectors_deleted += self.stores.index.delete_ids(stale)
                self.stores.catalog.chunks.forget_chunks(stale)
            summary.chunks_written += len(p.chunks)
            setattr(summary, p.status, getattr(summary, p.status) + 1)
            progress("document", p.item, len(p.chunks))
        # Vectors of other versions of these documents that the catalog no longer knows
        # (a run killed between publishing and deleting): remove them now, by query.
        published = {p.doc.document_id: p.version for p in prepared}
        leftovers = [
            int(r["id"])
            for r in self.stores.index.rows_of_documents(list(published), ["document_id", "source_version"])
            if r["source_version"] != published[r["document_id"]]
        ]
        if leftovers:
            summary.vectors_deleted += self.stores.index.delete_ids(leftovers)
        self._erase_late_forgotten(prepared)

    def _erase_late_forgotten(self, prepared: list[_Prepared]) -> None:
        """An erasure that ran while this ingest did: this run read the forgotten subjects
        when it started, so what it just published may carry words of a subject forgotten
        since. The erasure records the subject *before* it selects documents, so checking
        again after publishing closes the race: whatever it could not see, this finds."""
        if not any(p.contributors or p.doc.author for p in prepared):
            return
        late = self.stores.catalog.holds.forgotten_subjects() - self._forgotten
        if not late:
            return
        from ingest.pipeline.erasure import forget_subject

        self._forgotten |= late  # first: the erasure's own re-index publishes through here too
        for subject in sorted(late):
            if any(subject in p.contributors or subject == p.doc.author for p in prepared):
                forget_subject(self, subject, actor="ingest:late-erasure")

    def _rewrite_access(
        self, document_id: str, scope_id: int, expires_at: datetime | None, classification: str
    ) -> None:
        """An unchanged document moved to another scope or expiry: rewrite vector metadata
        (same vectors, no embedding)."""
        ids = self.stores.catalog.documents.update_document_access(
            document_id, scope_id=scope_id, expires_at=expires_at, classification=classification
        )
        if not ids:
            return
        fields = ["id", "vector", *[f for f in ("document_id", "source", "source_version", "title", "uri", "text")]]
        rows = self.stores.index.get(ids, fields)
        self.stores.index.upsert(
            [
                VectorRow(
                    **{
                        **r,
                        "scope_id": scope_id,
                        "expires_at": expiry_epoch(expires_at),
                        "classification": classification,
                    }
                )
                for r in rows
            ]
        )


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
