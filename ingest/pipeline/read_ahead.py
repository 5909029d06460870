"""Reading ahead: the run's items prepared in order while parse workers read the next ones.

Jobs (:class:`ingest.pipeline.read_job.ReadJob`) are handed to the pool up to
``READ_AHEAD_PER_WORKER`` per worker ahead of the item being prepared, each made with what
the catalog says when it is handed out. :meth:`Preparer.prepare` then takes the items in the
run's order and uses a job's outcome only where reading in order would read the same, so
which worker read what, and when, never changes a decision.

The versions decided are staged a group at a time, in one catalog transaction each
(:meth:`Preparer.stage`): many small documents (Slack threads) would otherwise pay a commit,
a sync to disk on SQLite, each. A group is staged once it holds ``STAGE_GROUP_CHUNKS`` chunks
or ``STAGE_GROUP_DOCUMENTS`` documents; when a worker's next document is not in within
``STAGE_GROUP_WAIT_S`` (staged documents must not wait behind a slow parse); before a
document already in it is decided again (its state must show the version it staged); and at
the end.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from embedding.base import Tokenizer
from governance.catalog.freshness import is_older
from governance.catalog.statuses import DocumentStatus
from governance.errors import GovragError
from governance.scope_rules import resolve_scope
from governance.stores import Stores
from ingest.pipeline.parse_pool import ParsePool
from ingest.pipeline.prepare import Decided, ForgottenSubjects, Prepared, Preparer, ProgressFn
from ingest.pipeline.read_job import EarlyRead, ReadJob
from ingest.pipeline.summary import IngestSummary
from ingest.sources.base import SourceItem

READ_AHEAD_PER_WORKER = 4  # jobs handed to each parse worker ahead of the run's order
STAGE_GROUP_CHUNKS = 64  # the write stage's smallest embed batch (ingest.pipeline.run.MIN_EMBED_CHUNKS)
STAGE_GROUP_DOCUMENTS = 64
# How long a group waits for a worker's next document before it is staged without it.
STAGE_GROUP_WAIT_S = 0.05


@dataclass(frozen=True)
class ReadAhead:
    """One run's preparation over a parse pool (None: every item read by the run itself)."""

    stores: Stores
    pool: ParsePool | None
    forgotten: ForgottenSubjects
    max_chars: int
    tokenizer: Callable[[], Tokenizer | None]  # the embedder's, when it takes token ids

    def prepared(
        self,
        items: Sequence[SourceItem],
        preparer: Preparer,
        summary: IngestSummary,
        progress: ProgressFn,
        stop: threading.Event,
    ) -> Iterator[Prepared]:
        """Each item prepared, in the run's order, while the workers read the next ones."""
        pool = self.pool
        window = READ_AHEAD_PER_WORKER * pool.size if pool is not None else 0
        ahead: deque[tuple[SourceItem, EarlyRead | None]] = deque()
        group = _StageGroup(preparer)
        for item in items:
            if stop.is_set():
                return
            ahead.append((item, self._hand_out(pool, item) if pool is not None else None))
            while len(ahead) > window:
                yield from group.take(*ahead.popleft(), summary=summary, progress=progress)
        while ahead and not stop.is_set():
            yield from group.take(*ahead.popleft(), summary=summary, progress=progress)
        if not stop.is_set():
            yield from group.flush()

    def _hand_out(self, pool: ParsePool, item: SourceItem) -> EarlyRead | None:
        """Hand ``item``'s reading to a worker with what the catalog says now (None: the
        item is read in order, by the run, if at all: a stale item, one whose scope the
        policy refuses, one whose parser cannot travel to a process)."""
        catalog, policy = self.stores.catalog, self.stores.policy
        try:
            state = catalog.documents.document_state(item.document_id)
            if state is not None and state.status != DocumentStatus.PURGED and is_older(item.as_of, state.source_as_of):
                return None
            scope, classification = resolve_scope(policy, item)
        except GovragError:
            return None  # the preparation stage meets it again, in order, and says why
        known = state.current_source_hash if state is not None and state.status == DocumentStatus.ACTIVE else None
        job = ReadJob(
            item,
            known,
            scope,
            classification,
            {**item.facts, "classification": classification},
            policy,
            self.max_chars,
            self.forgotten.subjects,
            tokenizer=self.tokenizer(),
        )
        ticket = pool.submit(job)
        if ticket is None:
            return None
        return EarlyRead(job, lambda: pool.outcome(ticket), lambda within: pool.ready(ticket, within))


class _StageGroup:
    """Versions decided and not yet staged, in the run's order."""

    def __init__(self, preparer: Preparer) -> None:
        self._preparer = preparer
        self._decided: list[Decided] = []
        self._documents: set[str] = set()
        self._chunks = 0

    def take(
        self, item: SourceItem, early: EarlyRead | None, *, summary: IngestSummary, progress: ProgressFn
    ) -> Iterator[Prepared]:
        """Decide ``item``; yields what is staged meanwhile (the group, when it is due)."""
        if item.document_id in self._documents or (
            self._decided and early is not None and not early.ready(STAGE_GROUP_WAIT_S)
        ):
            yield from self.flush()
        decided = self._preparer.prepare(item, early, summary=summary, progress=progress)
        if decided is None:
            return
        self._decided.append(decided)
        self._documents.add(item.document_id)
        self._chunks += decided.chunk_count
        if self._chunks >= STAGE_GROUP_CHUNKS or len(self._decided) >= STAGE_GROUP_DOCUMENTS:
            yield from self.flush()

    def flush(self) -> Iterator[Prepared]:
        """Stage the group (one transaction) and yield its documents, in order."""
        if not self._decided:
            return
        decided, self._decided, self._documents, self._chunks = self._decided, [], set(), 0
        yield from self._preparer.stage(decided)
