"""Right to be forgotten: ``govrag purge --subject PRINCIPAL``.

Documents the subject owns are purged. Documents they contributed to (a Slack thread they
wrote in) are re-indexed from the catalog's authored blocks without their blocks — a new
version, the old versions' text scrubbed, the old vectors deleted — and the subject is
recorded as forgotten so that no later ingest brings their words back. Legal holds win:
held documents are reported and left alone.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

from governance import audit
from governance.identity import parse_principal
from governance.purge import PurgeReport, purge_documents
from ingest.chunking import chunk_elements
from ingest.pipeline.prepare import Prepared
from ingest.pipeline.run import Ingestor
from ingest.pipeline.summary import IngestSummary
from ingest.sources.base import SourceItem, TextBlock


def pseudonym(subject: str) -> str:
    """A stable stand-in for a principal in records that must not name it."""
    return "subject-" + hashlib.sha256(subject.encode("utf-8")).hexdigest()[:16]


def forget_subject(ingestor: Ingestor, subject: str, *, dry_run: bool = False, actor: str | None = None) -> PurgeReport:
    """Erase everything ``subject`` (a principal such as ``user:jane@example.com``) wrote."""
    subject = parse_principal(subject)
    catalog, index = ingestor.stores.catalog, ingestor.stores.index
    selector = {"subject": subject}
    owned = catalog.documents.select_documents(author=subject)
    contributed = [d for d in catalog.documents.select_documents(contributor=subject) if d not in set(owned)]
    # The tombstones' reason names the erasure by a pseudonym, not the person; the subject
    # itself is kept only in the forgotten-subjects record and the audit log (documented).
    reason = f"right to be forgotten: {pseudonym(subject)}"
    report = purge_documents(catalog, index, owned, reason=reason, selector=selector, dry_run=dry_run, actor=actor)
    held = catalog.holds.held(contributed)
    report.held.update(held)
    todo = [d for d in contributed if d not in held]
    if dry_run:
        report.reindexed = todo
        return report
    if not any(h.startswith("subject:") and h == f"subject:{subject}" for h in report.held.values()):
        catalog.holds.forget_subject(subject)
    for doc_id in todo:
        if _reindex_without(ingestor, doc_id, subject):
            report.reindexed.append(doc_id)
        else:  # no authored blocks to separate: remove the whole document rather than keep their words
            report.documents += purge_documents(
                catalog, index, [doc_id], reason=reason, selector=selector, actor=actor
            ).documents
    if report.reindexed:  # their old versions' vectors were deleted: make it physical, too
        index.flush()
        report.compaction_requested = index.compact()
    audit.record(
        catalog,
        "forget_subject",
        actor,
        {"subject": subject, "purged": report.documents, "reindexed": report.reindexed, "held": report.held},
    )
    return report


def _reindex_without(ingestor: Ingestor, document_id: str, subject: str) -> bool:
    catalog = ingestor.stores.catalog
    version, blocks = catalog.documents.current_blocks(document_id)
    doc = catalog.documents.source_document(document_id)
    if version is None or not blocks or doc is None:
        return False
    kept = [b for b in blocks if b.get("author") != subject]
    if not kept:
        return False
    elements = [TextBlock(b["text"], govrag_author=b.get("author")) for b in kept]
    if elements and kept[0].get("author") is None:
        elements[0].category = "Title"
    cleaned = "\n\n".join(b["text"] for b in kept)
    texts = chunk_elements(elements, ingestor.max_chars)
    meta = doc.metadata
    new_version, chunks = catalog.documents.stage_version(
        doc,
        scope_id=meta["scope_id"],
        expires_at=meta["expires_at"],
        content_hash=hashlib.sha256(cleaned.encode()).hexdigest(),
        # Keep the raw fingerprint: the unchanged export must keep being skipped, not re-read.
        source_hash=meta["source_hash"],
        cleaned_text=cleaned,
        texts=texts,
        make_id=ingestor.chunk_id,
        ingested_at=datetime.now(UTC),
    )
    item = SourceItem(
        source=doc.source,
        path=Path(doc.path or doc.document_id),
        rel_path=doc.path or doc.document_id,
        document_id=document_id,
        fingerprint=lambda: meta["source_hash"] or "",
        parse=lambda: None,  # type: ignore[arg-type,return-value]
        origin=meta["origin"],
    )
    contributors = sorted({b["author"] for b in kept if b.get("author")})
    prepared = Prepared(
        item,
        doc,
        meta["scope_id"],
        meta["expires_at"],
        new_version,
        chunks,
        "changed",
        blocks=kept,
        contributors=contributors,
    )
    ingestor._write([prepared], IngestSummary(), lambda *_: None)
    catalog.documents.scrub_old_versions(document_id, keep_version=new_version)
    return True
