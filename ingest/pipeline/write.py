"""The write stage: staged versions → embedded → vectors upserted → published → the versions
they replace deleted.

Crash safety (invariant 3) rests on this order. Vectors are upserted under deterministic
ids before the catalog makes their version current, so a run killed before publishing
leaves a pending version the next run finishes over the same ids; search shows only the
current version's chunks (the post-check), so vectors written early are never visible
twice. The replaced versions' chunk rows stay in the catalog until their vectors are
deleted, so a run killed after publishing leaves the next run a list of vectors it owes a
delete (:func:`delete_owed_vectors`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from embedding.base import Embedder, TokenEmbedder
from governance.catalog.documents import DocumentExtras, Publication
from governance.observability import metrics
from governance.stores import Stores
from governance.vector_index import VectorRow, expiry_epoch
from ingest.pipeline.prepare import ForgottenSubjects, Prepared, ProgressFn
from ingest.pipeline.summary import IngestSummary

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)


class VersionWriter:
    """Writes batches of prepared documents to the index and the catalog, in the
    crash-safe order, then erases what a subject forgotten during the run wrote."""

    def __init__(
        self,
        stores: Stores,
        embedder: Callable[[], Embedder],
        forgotten: ForgottenSubjects,
        forget_subject: Callable[[str], object],
    ) -> None:
        """``embedder`` is called only when there is text to embed (an unchanged re-ingest
        never loads the model); ``forget_subject`` erases one subject's words everywhere."""
        self.stores = stores
        self._embedder = embedder
        self._forgotten = forgotten
        self._forget_subject = forget_subject

    def write(self, prepared: list[Prepared], summary: IngestSummary, progress: ProgressFn) -> None:
        """Embed, upsert, publish and delete the replaced versions of one batch."""
        if prepared:
            self.store(prepared, self.embed(prepared, summary), summary, progress)

    def embed(self, prepared: list[Prepared], summary: IngestSummary) -> np.ndarray | list[np.ndarray]:
        """The batch's vectors, in chunk order (nothing is written): the part of
        :meth:`write` a run overlaps with storing the batch before."""
        if not any(p.chunks for p in prepared):
            return []
        t = time.perf_counter()
        vectors = self._embed(prepared)
        took = time.perf_counter() - t
        summary.embed_seconds += took
        kind = type(self._embedder()).__name__
        metrics.EMBED_SECONDS.labels(embedder=kind).observe(took)
        metrics.EMBED_BATCH_SIZE.labels(embedder=kind).observe(sum(len(p.chunks) for p in prepared))
        return vectors

    def store(
        self,
        prepared: list[Prepared],
        vectors: np.ndarray | list[np.ndarray],
        summary: IngestSummary,
        progress: ProgressFn,
    ) -> None:
        """Upsert a batch's vectors (from :meth:`embed`), publish its versions and delete the
        versions they replace, in the crash-safe order."""
        if not prepared:
            return
        started = time.perf_counter()
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
        # The batch is published in one transaction (all or none), then the versions it
        # replaced lose their vectors; a run killed in between leaves the catalog knowing
        # which vectors it owes a delete (delete_owed_vectors).
        replaced = self.stores.catalog.documents.publish_versions(
            [
                Publication(
                    p.doc,
                    p.version,
                    p.scope_id,
                    p.expires_at,
                    DocumentExtras(p.item.origin, tuple(p.contributors), p.blocks, p.item.as_of, p.item.ancestry),
                )
                for p in prepared
            ]
        )
        stale = [cid for ids in replaced for cid in ids]
        if stale:
            summary.vectors_deleted += self.stores.index.delete_ids(stale)
            self.stores.catalog.chunks.forget_chunks(stale)
        for p in prepared:
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
        summary.write_seconds += time.perf_counter() - started
        self._erase_late_forgotten(prepared)

    def _embed(self, prepared: list[Prepared]) -> np.ndarray:
        """The batch's vectors, in chunk order. An embedder that takes token ids gets the ids
        the workers made (documents read in this process are tokenized here)."""
        embedder = self._embedder()
        if not isinstance(embedder, TokenEmbedder) or all(p.token_ids is None for p in prepared):
            return embedder.embed([text for p in prepared for _, text in p.chunks])
        tokenize = embedder.tokenizer()
        ids = [
            one
            for p in prepared
            for one in (p.token_ids if p.token_ids is not None else tokenize([text for _, text in p.chunks]))
        ]
        return embedder.embed_ids(ids)

    def _erase_late_forgotten(self, prepared: list[Prepared]) -> None:
        """An erasure that ran while this ingest did: each document's text was read with the
        forgotten subjects known at that moment, so what was just published may carry words
        of a subject forgotten since. The erasure records the subject *before* it selects
        documents, so checking again after publishing closes the race: whatever it could not
        see, this finds. Documents are prepared ahead of the write (up to a queue's worth), so
        each is checked against the set *it* was read with, not the run's latest one: a
        document read before an erasure and written after the run learned of it is caught."""
        if not any(p.contributors or p.doc.author for p in prepared):
            return
        current = self.stores.catalog.holds.forgotten_subjects()
        known = self._forgotten.subjects
        late = {
            subject
            for p in prepared
            for subject in current - (known if p.read_with is None else p.read_with)
            if subject in p.contributors or subject == p.doc.author
        }
        # First: the erasure's own re-index publishes through this writer too.
        self._forgotten.subjects = known | current
        for subject in sorted(late):
            self._forget_subject(subject)


def delete_owed_vectors(stores: Stores, summary: IngestSummary) -> None:
    """Vectors of superseded versions that an earlier run published past but did not
    delete (Milvus went down, or the run was killed, in between): delete them first. The
    catalog keeps those chunk rows until the delete is done, so this costs one query when
    nothing is owed. (Without it an unchanged document would keep them: orphans.)"""
    owed = stores.catalog.chunks.superseded_chunk_ids()
    if owed:
        log.info(
            "deleting %d vectors of superseded versions left by an earlier run",
            len(owed),
            extra={"run_id": summary.run_id},
        )
        summary.vectors_deleted += stores.index.delete_ids(owed)
        stores.catalog.chunks.forget_chunks(owed)


def rewrite_access(
    stores: Stores, document_id: str, scope_id: int, expires_at: datetime | None, classification: str
) -> None:
    """An unchanged document moved to another scope or expiry: rewrite vector metadata
    (same vectors, no embedding)."""
    ids = stores.catalog.documents.update_document_access(
        document_id, scope_id=scope_id, expires_at=expires_at, classification=classification
    )
    if not ids:
        return
    fields = ["id", "vector", *[f for f in ("document_id", "source", "source_version", "title", "uri", "text")]]
    rows = stores.index.get(ids, fields)
    stores.index.upsert(
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
