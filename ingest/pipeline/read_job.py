"""One document's reading, as a job that can run ahead of the run's own order, in a worker
process: fingerprint the raw content and, unless it matches what the catalog holds, parse,
clean, redact and chunk it (:func:`ingest.pipeline.prepare.read_text`).

The job carries everything the reading needs (no catalog, no settings), so a worker process
started before the run's settings changed still reads with the run's policy and limits. Its
outcome is used only if the preparation stage, reaching the document in the run's order,
asks for exactly that reading (same scope, classification, facts and forgotten subjects):
reading ahead never changes what a run decides, only when the text work is done.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embedding.base import Tokenizer
from governance.contracts import AccessScope
from governance.errors import QuarantinedDocument
from governance.policy import Policy
from ingest.pipeline.prepare import ForgottenSubjects, ReadText, read_text
from ingest.pipeline.summary import IngestSummary
from ingest.sources.base import SourceItem


@dataclass(frozen=True)
class ReadJob:
    """What reading one item needs, as the run knew it when the job was made."""

    item: SourceItem
    known_hash: str | None  # the catalog's current source hash: an equal fingerprint needs no read
    scope: AccessScope
    classification: str
    facts: dict[str, Any]
    policy: Policy
    max_chars: int
    forgotten: frozenset[str]
    # The embedder's tokenizer when it takes token ids (Triton): the chunks are tokenized
    # here, where their text is, and only ids travel to the embedder.
    tokenizer: Tokenizer | None = None

    def asks(
        self, *, scope: AccessScope, classification: str, facts: dict[str, Any], forgotten: frozenset[str]
    ) -> bool:
        """Whether this job read the text the preparation stage now asks for."""
        return (scope, classification, facts, forgotten) == (
            self.scope,
            self.classification,
            self.facts,
            self.forgotten,
        )


@dataclass
class ReadOutcome:
    """What a job found: the fingerprint (or why it failed) and, when read, the text (or why
    reading failed), with the counts reading adds to a run's summary."""

    source_hash: str | None = None
    fingerprint_error: BaseException | None = None
    read_done: bool = False  # read_text ran: ``read`` None then means a forgotten owner
    read: ReadText | None = None
    read_error: BaseException | None = None
    token_ids: list[np.ndarray] | None = None  # per chunk of ``read``, when the job had a tokenizer
    redactions: dict[str, int] = field(default_factory=dict)
    tagged: int = 0
    parse_seconds: float = 0.0
    chunks_parsed: int = 0

    @classmethod
    def refused(cls, job: ReadJob, message: str, reason: str, hint: str) -> ReadOutcome:
        """The outcome of a job whose worker died or overran its limit: the document is
        quarantined with ``reason`` (the fingerprint is unknown, so nothing is skipped)."""
        item = job.item
        error = QuarantinedDocument(f"{item.rel_path}: {message}", reason=reason, path=str(item.path), hint=hint)
        return cls(fingerprint_error=error)

    def add_counts(self, summary: IngestSummary) -> None:
        """Add what reading counted (redactions, tags, parse time) to the run's summary."""
        for kind, n in self.redactions.items():
            summary.redactions[kind] = summary.redactions.get(kind, 0) + n
        summary.tagged += self.tagged
        summary.parse_seconds += self.parse_seconds
        summary.chunks_parsed += self.chunks_parsed


@dataclass(frozen=True)
class EarlyRead:
    """A job handed out ahead of the run's order, and how to wait for its outcome."""

    job: ReadJob
    wait: Callable[[], ReadOutcome]
    # Whether wait() would return at once, after waiting at most the seconds given.
    ready: Callable[[float], bool]


def run_job(job: ReadJob) -> ReadOutcome:
    """Fingerprint and, when the content changed, read ``job.item``. Errors are returned, not
    raised: the preparation stage raises them where reading in order would have."""
    outcome = ReadOutcome()
    try:
        outcome.source_hash = job.item.fingerprint()
    except Exception as exc:
        outcome.fingerprint_error = exc
        return outcome
    if outcome.source_hash == job.known_hash:
        return outcome  # unchanged: the run will not ask for the text
    counts = IngestSummary()
    try:
        outcome.read = read_text(
            job.item,
            scope=job.scope,
            classification=job.classification,
            facts=dict(job.facts),
            policy=job.policy,
            max_chars=job.max_chars,
            forgotten=ForgottenSubjects(job.forgotten),
            summary=counts,
        )
        outcome.read_done = True
        if job.tokenizer is not None and outcome.read is not None:
            outcome.token_ids = job.tokenizer(outcome.read.texts)
    except Exception as exc:
        outcome.read_error = exc
    outcome.redactions, outcome.tagged = counts.redactions, counts.tagged
    outcome.parse_seconds, outcome.chunks_parsed = counts.parse_seconds, counts.chunks_parsed
    return outcome
