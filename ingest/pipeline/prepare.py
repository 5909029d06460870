"""The preparation stage: one source item → parse → clean → redact → chunk → fingerprint
check → a pending version staged in the catalog, ready for the write stage.

:func:`read_text` does the text work and takes no catalog: the item, the policy, the chunk
size and the forgotten subjects are all it reads. :class:`Preparer` makes the catalog
decisions around it, one item at a time and in this order: the stored state (a newer export
wins), the scope, an unchanged fingerprint, the text, an unchanged text, the expiry; then
the versions decided are staged, several documents in one transaction
(:meth:`Preparer.stage`). Everything it needs is handed to it: no ``Ingestor``.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from governance.catalog import Catalog
from governance.catalog.documents import DocumentState, Staging
from governance.catalog.freshness import is_older
from governance.catalog.statuses import DocumentStatus
from governance.contracts import AccessScope, SourceDocument
from governance.errors import (
    CatalogError,
    ConfigError,
    EmbedderUnavailable,
    GovragError,
    IndexUnavailable,
    QuarantinedDocument,
)
from governance.policy import Policy
from governance.redaction import redact, redact_many
from governance.scope_rules import resolve_scope
from ingest.chunking import chunk_elements, clean_elements
from ingest.pipeline.summary import IngestSummary
from ingest.sources.base import Parsed, SourceItem, element_author, make_document

if TYPE_CHECKING:
    import numpy as np

    from ingest.pipeline.read_job import EarlyRead

ProgressFn = Callable[[str, SourceItem | None, int], None]


@dataclass
class Prepared:
    """A document whose new version is staged (pending): what the write stage embeds,
    upserts and publishes."""

    item: SourceItem
    doc: SourceDocument
    scope_id: int
    expires_at: datetime | None
    version: int
    chunks: list[tuple[int, str]]
    status: str  # new | changed
    blocks: list[dict] | None = None
    contributors: list[str] = field(default_factory=list)
    # The forgotten subjects its text was read with (None: the run's set when it is written,
    # as for an erasure's own re-index). Items are prepared ahead of the write, so a subject
    # forgotten in between is checked against this, not against what the run knows by then.
    read_with: frozenset[str] | None = None
    # Token ids of ``chunks`` made where the text was read (a worker), for an embedder that
    # takes ids; None: the write stage tokenizes or embeds the text itself.
    token_ids: list[np.ndarray] | None = None


@dataclass
class Decided:
    """A document whose new version is decided, not yet staged: :meth:`Preparer.stage`
    records it (pending) and makes it :class:`Prepared`."""

    item: SourceItem
    staging: Staging
    status: str  # new | changed
    blocks: list[dict[str, Any]]
    read_with: frozenset[str]
    token_ids: list[np.ndarray] | None

    @property
    def chunk_count(self) -> int:
        return len(self.staging.texts)


@dataclass
class ForgottenSubjects:
    """The subjects forgotten under the right to be forgotten, as one run knows them: read
    when the run starts, grown by the write stage when it finds an erasure that ran during
    the run. Shared by both stages: preparing drops their content, writing checks for more."""

    subjects: frozenset[str] = frozenset()


@dataclass
class ReadText:
    """One item's text, parsed, cleaned, redacted and chunked."""

    doc: SourceDocument
    classification: str  # "sensitive" when the redaction rule tagged it
    cleaned: str
    texts: list[str]
    content_hash: str
    blocks: list[dict[str, Any]]  # each element's author (None: unknown) and text
    read_with: frozenset[str] = frozenset()  # the forgotten subjects left out of it


def read_text(
    item: SourceItem,
    *,
    scope: AccessScope,
    classification: str,
    facts: dict[str, Any],
    policy: Policy,
    max_chars: int,
    forgotten: ForgottenSubjects,
    summary: IngestSummary,
) -> ReadText | None:
    """Parse, clean, redact and chunk ``item`` (None: it is owned by a forgotten subject).
    Adds its redactions and parse time to ``summary``. Raises :class:`QuarantinedDocument`
    when no text is left or the policy's redaction rule blocks it."""
    t = time.perf_counter()
    parsed = item.parse()
    gone = forgotten.subjects
    if (parsed.owner or item.owner) in gone:
        return None
    # Content by people erased under the right to be forgotten never comes back.
    elements = clean_elements([e for e in parsed.elements if element_author(e) not in gone])
    if not elements:
        raise QuarantinedDocument(
            f"{item.rel_path}: no text left after cleaning", reason="no_text", path=str(item.path)
        )
    classification = apply_redaction(item, elements, facts, classification, policy, summary, parsed)
    cleaned = "\n\n".join(e.text for e in elements)
    texts = chunk_elements(elements, max_chars)
    summary.parse_seconds += time.perf_counter() - t
    summary.chunks_parsed += len(texts)
    content_hash = hashlib.sha256(cleaned.encode()).hexdigest()
    doc = make_document(item, parsed, scope=scope, classification=classification)
    blocks = [{"author": element_author(e), "text": e.text} for e in elements]
    return ReadText(doc, classification, cleaned, texts, content_hash, blocks, read_with=gone)


def apply_redaction(
    item: SourceItem,
    elements: list,
    facts: dict,
    classification: str,
    policy: Policy,
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
    action = policy.redaction_action(facts)
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


@dataclass(frozen=True)
class Preparer:
    """Turns source items into staged versions against one catalog and policy.

    The catalog is read (the document's stored state, a scope's freshness) and written where
    preparing decides (the scope, the staged version, a refused document's last statement).
    The effects that reach past the catalog are the run's, handed in as functions.
    """

    catalog: Catalog
    policy: Policy
    max_chars: int
    make_id: Callable[[str, int, int], int]  # (document, version, ordinal) → chunk id
    forgotten: ForgottenSubjects
    # An unchanged document's new scope, expiry or classification: catalog and vectors.
    rewrite_access: Callable[[str, int, datetime | None, str], None]
    # Take a document out of search if it is in it (document id, reason) → documents retired.
    retire: Callable[[str, str], int]
    quarantine: Callable[[SourceItem, QuarantinedDocument, IngestSummary], None]
    # Scopes this run stated, by (key, fingerprint, export time): their ids.
    _stated: dict[tuple[str, str, str], int] = field(default_factory=dict, init=False, repr=False)

    def _scope_id(self, scope: AccessScope, as_of: str | None) -> int:
        """The scope stored (an ACL change is recorded and audited) and its id. A scope this
        run already stated with the same members and export time is not written again: its
        id never changes, and the row holds that statement or a newer export's (an older one
        cannot replace it). Without an export time each statement is written, as the last
        word."""
        stated = (scope.key, scope.fingerprint(), as_of) if as_of is not None else None
        if stated is not None and stated in self._stated:
            return self._stated[stated]
        scope_id, _ = self.catalog.scopes.upsert_scope(scope, as_of=as_of)
        if stated is not None:
            self._stated[stated] = scope_id
        return scope_id

    def stage(self, decided: Sequence[Decided]) -> list[Prepared]:
        """Stage the versions decided, in one catalog transaction, in order. The caller stages
        a document's earlier version before deciding its next: its state must show it."""
        staged = self.catalog.documents.stage_versions([d.staging for d in decided], self.make_id)
        return [
            Prepared(
                d.item,
                d.staging.doc,
                d.staging.scope_id,
                d.staging.expires_at,
                version,
                chunks,
                d.status,
                blocks=d.blocks if any(b["author"] for b in d.blocks) else None,
                contributors=sorted({b["author"] for b in d.blocks if b["author"]}),
                read_with=d.read_with,
                token_ids=d.token_ids if d.token_ids is not None and len(d.token_ids) == len(chunks) else None,
            )
            for d, (version, chunks) in zip(decided, staged, strict=True)
        ]

    def prepare(
        self, item: SourceItem, early: EarlyRead | None = None, *, summary: IngestSummary, progress: ProgressFn
    ) -> Decided | None:
        """The item's new version, decided (to :meth:`stage`); None when there is nothing to
        write (unchanged, stale, forgotten, expired, quarantined: counted in ``summary``).
        ``early``: the item fingerprinted and read ahead (by a worker process); used where
        reading it now would read the same, so the decisions are those of reading in order."""
        summary.documents_seen += 1
        catalog, policy = self.catalog, self.policy
        try:
            state = catalog.documents.document_state(item.document_id)
            if state is not None and state.status != DocumentStatus.PURGED and is_older(item.as_of, state.source_as_of):
                # A newer export already stated this document (its text, its place, its
                # access): an older export applied later changes nothing (invariant 7).
                summary.stale_skipped += 1
                progress("document", item, 0)
                return None
            scope, classification = resolve_scope(policy, item)
            scope_id = self._scope_id(scope, item.as_of)
            outcome = early.wait() if early is not None else None
            if outcome is not None and outcome.fingerprint_error is not None:
                raise outcome.fingerprint_error
            source_hash = outcome.source_hash if outcome is not None and outcome.source_hash else item.fingerprint()
            facts = {**item.facts, "classification": classification}

            if state and state.status == DocumentStatus.ACTIVE and state.current_source_hash == source_hash:
                self._unchanged(item, state, scope_id, classification, facts, item.modified_at, summary)
                progress("document", item, 0)
                return None

            ahead = (
                outcome
                if outcome is not None
                and early is not None
                and (outcome.read_done or outcome.read_error is not None)
                and early.job.asks(
                    scope=scope, classification=classification, facts=facts, forgotten=self.forgotten.subjects
                )
                else None
            )
            token_ids = None
            if ahead is not None:
                ahead.add_counts(summary)
                if ahead.read_error is not None:
                    raise ahead.read_error
                read, token_ids = ahead.read, ahead.token_ids
            else:
                read = read_text(
                    item,
                    scope=scope,
                    classification=classification,
                    facts=facts,
                    policy=policy,
                    max_chars=self.max_chars,
                    forgotten=self.forgotten,
                    summary=summary,
                )
            if read is None:
                summary.forgotten_skipped += 1
                progress("document", item, 0)
                return None
            classification = read.classification
            facts["classification"] = classification
            doc = read.doc

            if state and state.status == DocumentStatus.ACTIVE and state.current_hash == read.content_hash:
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
                    summary.tombstoned += self.retire(item.document_id, "its current text is past retention")
                progress("document", item, 0)
                return None
            # A pending version with the same text is a crashed earlier run: finish it.
            staging = Staging(
                doc,
                scope_id,
                expires_at,
                read.content_hash,
                source_hash,
                read.cleaned,
                read.texts,
                ingested_at,
                version=state.pending.get(read.content_hash) if state else None,
            )
            status = "changed" if state and state.current_version else "new"
            return Decided(item, staging, status, read.blocks, read.read_with, token_ids)
        except QuarantinedDocument as exc:
            if item.scope is not None and is_older(item.as_of, catalog.scopes.scope_as_of(item.scope.key)):
                # Refused for its access (no active member, permissions unknown...) by an
                # export older than the one that last stated that access: not this export's
                # call any more (found by the leak fuzzer).
                summary.stale_skipped += 1
                progress("document", item, 0)
                return None
            self.quarantine(item, exc, summary)
            summary.tombstoned += self.retire(item.document_id, exc.reason)
            # The refusal is this export's statement: an older export must not bring the
            # document back with the access it had then.
            catalog.documents.note_source(item.document_id, origin=None, source_as_of=item.as_of)
            progress("document", item, 0)
            return None
        except (IndexUnavailable, CatalogError, EmbedderUnavailable, ConfigError):
            raise  # infrastructure or setup broken: stop the run; the next run resumes
        except (GovragError, OSError) as exc:
            self.quarantine(
                item, QuarantinedDocument(f"{item.rel_path}: {exc}", reason="error", path=str(item.path)), summary
            )
            progress("document", item, 0)
            return None

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
        expires_at = self.policy.expires_at(facts, modified=modified, ingested=ingested)
        if (state.scope_id, state.expires_at, state.classification) != (scope_id, expires_at, classification):
            self.rewrite_access(item.document_id, scope_id, expires_at, classification)
            summary.access_updated += 1
        ancestry = "/".join(item.ancestry) if item.ancestry is not None else state.ancestry
        if (item.origin, item.as_of, ancestry) != (state.origin, state.source_as_of, state.ancestry):
            self.catalog.documents.note_source(
                item.document_id, origin=item.origin, source_as_of=item.as_of, ancestry=item.ancestry
            )
        summary.unchanged += 1
