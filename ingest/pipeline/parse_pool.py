"""Worker processes that read documents for one ingest run (``GOVRAG_INGEST_WORKERS``).

Parsing is CPU work in pure Python (``unstructured``, pdfminer, HTML, JSON): one process
reads at one core's pace whatever the machine has. The pool runs the reading
(:func:`ingest.pipeline.read_job.run_job`) in N processes, each kept for the whole run; the
run's own process keeps the catalog, the version bookkeeping and the Milvus writes, so every
invariant of the write path holds as with one process.

One job per worker at a time, so a worker that dies or overruns is known by its document:
- a worker that dies (a crash in C code, the kernel's OOM killer) quarantines its document
  (``parser_crashed``) and is replaced; the run goes on;
- a worker past its document's time limit is killed, its document quarantined (``timeout``)
  and the worker replaced. The limit is the one the parser sets itself
  (:mod:`ingest.parse.deadline`, reported by the worker as it is set) plus a grace, so a
  parser stuck in C code that never sees its own deadline still stops; documents whose
  parser sets none get ``GOVRAG_PARSE_TIMEOUT_S``.

Workers are forked from a ``forkserver`` that imported the parsers once: safe with the
run's threads (gRPC, the parse thread), and each worker starts warm.
"""

from __future__ import annotations

import contextlib
import io
import logging
import multiprocessing
import pickle
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from ingest.pipeline.read_job import ReadJob, ReadOutcome
from ingest.sources.base import SharedState

log = logging.getLogger(__name__)

# Past a parser's own deadline, how long before its worker is killed: the parser's own
# timeout (a clean quarantine inside the worker) should win whenever it can.
GRACE_SECONDS = 15.0
STOP_CHECK_SECONDS = 0.5
CRASH_HINT = (
    "the parser died on this file (a crash in native code or out of memory); the run went on without it. "
    "If the file is genuine, try it alone with GOVRAG_INGEST_WORKERS=0 to see the error"
)
TIMEOUT_HINT = (
    "the parser did not finish within its time limit and was stopped; if the document is genuine, raise "
    "GOVRAG_PARSE_TIMEOUT_S (or the parser's limit named in docs/hostile_inputs.md)"
)


class PoolStopped(Exception):
    """The run stopped while its parse thread waited on a worker."""


class JobPickler(pickle.Pickler):
    """Pickles a job, leaving a reference (and noting it) for each :class:`SharedState`."""

    def __init__(self, file: io.BytesIO, keep: dict[int, Any]) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._keep = keep
        self.refs: list[int] = []

    def persistent_id(self, obj: Any) -> Any:
        if isinstance(obj, SharedState):
            key = id(obj)
            self._keep[key] = obj  # alive for the pool's life: ids stay unique
            self.refs.append(key)
            return key
        return None


@dataclass(eq=False)
class Ticket:
    """One job handed to the pool; :meth:`ParsePool.outcome` waits for it."""

    job: ReadJob
    payload: bytes
    refs: list[int]
    outcome: ReadOutcome | None = None


@dataclass(eq=False)
class _Worker:
    process: Any  # multiprocessing's Process of the context
    conn: Connection
    shared: set[int] = field(default_factory=set)
    ticket: Ticket | None = None
    started: float = 0.0
    limit: float = 0.0  # monotonic time past which the worker is killed


class ParsePool:
    """N worker processes reading documents; used from one thread (the run's parse thread)."""

    def __init__(
        self, workers: int, *, job_seconds: float, stop: threading.Event | None = None, niceness: int = 0
    ) -> None:
        """``workers`` processes; ``job_seconds``: the limit of a document whose parser sets
        none; ``stop``: set when the run stops, so waiting on a worker gives up;
        ``niceness``: the CPU priority the workers give up (``GOVRAG_PARSE_NICENESS``)."""
        if workers < 1:
            raise ValueError("a parse pool needs at least one worker")
        self.size = workers
        self._stop = stop
        self.job_seconds = job_seconds
        self.niceness = niceness
        self._ctx = multiprocessing.get_context("forkserver")
        self._ctx.set_forkserver_preload(["ingest.pipeline.parse_preload"])
        self._keep: dict[int, Any] = {}
        self._pending: deque[Ticket] = deque()
        self._workers: list[_Worker] = [self._start() for _ in range(workers)]
        self.crashed = 0
        self.timed_out = 0

    # -- the pool's use ------------------------------------------------------------------------
    def submit(self, job: ReadJob) -> Ticket | None:
        """Queue ``job``; None when it cannot travel to a process (a parser built from a
        lambda, as tests and erasure re-reads do): the run reads it itself."""
        buffer = io.BytesIO()
        pickler = JobPickler(buffer, self._keep)
        try:
            pickler.dump(job)
        except (pickle.PicklingError, TypeError, AttributeError):
            return None
        ticket = Ticket(job, buffer.getvalue(), pickler.refs)
        self._pending.append(ticket)
        self._dispatch()
        return ticket

    def outcome(self, ticket: Ticket) -> ReadOutcome:
        """Wait for ``ticket``'s outcome (serving the other workers meanwhile). Raises
        :class:`PoolStopped` when the run stops meanwhile (its write stage failed, Ctrl-C):
        a long parse must not hold up the run's error."""
        while ticket.outcome is None:
            if self._stop is not None and self._stop.is_set():
                raise PoolStopped
            self._dispatch()
            self._serve(until=ticket)
        return ticket.outcome

    def ready(self, ticket: Ticket, within: float = 0.0) -> bool:
        """Whether ``ticket``'s outcome is in, waiting for it at most ``within`` seconds
        (serving the other workers meanwhile)."""
        deadline = time.monotonic() + within
        while ticket.outcome is None and any(w.ticket is not None for w in self._workers):
            self._dispatch()
            self._serve(until=ticket, wait_s=max(0.0, deadline - time.monotonic()))
            if time.monotonic() >= deadline:
                break
        return ticket.outcome is not None

    def close(self) -> None:
        """Stop the workers (a worker still reading is killed: the run is over)."""
        for worker in self._workers:
            with contextlib.suppress(OSError):
                worker.conn.send(("stop",))
        for worker in self._workers:
            worker.process.join(timeout=2 if worker.ticket is None else 0)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.conn.close()
        self._workers.clear()
        self._keep.clear()

    def __enter__(self) -> ParsePool:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- inside ----------------------------------------------------------------------------------
    def _start(self) -> _Worker:
        from ingest.pipeline.parse_worker import serve

        ours, theirs = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(target=serve, args=(theirs, self.niceness), name="govrag-parse-worker", daemon=True)
        process.start()
        theirs.close()
        return _Worker(process, ours)

    def _dispatch(self) -> None:
        for worker in self._workers:
            if not self._pending:
                return
            if worker.ticket is None:
                self._hand(worker, self._pending.popleft())

    def _hand(self, worker: _Worker, ticket: Ticket) -> None:
        try:
            for key in ticket.refs:
                if key not in worker.shared:
                    worker.conn.send(("share", key, pickle.dumps(self._keep[key], protocol=pickle.HIGHEST_PROTOCOL)))
                    worker.shared.add(key)
            worker.conn.send(("job", ticket.payload))
        except OSError:  # it died while idle: replace it and try again
            self._replace(worker)
            self._pending.appendleft(ticket)
            return
        worker.ticket = ticket
        worker.started = time.monotonic()
        worker.limit = worker.started + self.job_seconds

    def _serve(self, until: Ticket, wait_s: float | None = None) -> None:
        busy = [w for w in self._workers if w.ticket is not None]
        if not busy:
            raise RuntimeError("parse pool: waiting on a job no worker holds")
        # Woken at least every STOP_CHECK_SECONDS to see whether the run stopped.
        timeout = max(0.0, min([STOP_CHECK_SECONDS, *(w.limit - time.monotonic() for w in busy)]))
        if wait_s is not None:
            timeout = min(timeout, wait_s)
        ready = wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout=timeout)
        for worker in busy:
            if worker.conn in ready or worker.process.sentinel in ready:
                self._receive(worker)
        now = time.monotonic()
        for worker in busy:
            if worker.ticket is not None and now >= worker.limit:
                self._give_up(worker, "timeout")

    def _receive(self, worker: _Worker) -> None:
        while worker.ticket is not None:
            try:
                if not worker.conn.poll():
                    if not worker.process.is_alive():
                        self._give_up(worker, "parser_crashed")
                    return
                message = worker.conn.recv()
            except (EOFError, OSError):
                self._give_up(worker, "parser_crashed")
                return
            if message[0] == "deadline":
                # The parser's own limit replaces the default while it runs (a 3,000-page PDF
                # may take longer, an HTML page less), plus a grace for the parser to
                # quarantine cleanly itself; after it, the rest of the job gets the default.
                seconds = message[1]
                worker.limit = time.monotonic() + (
                    self.job_seconds if seconds is None else float(seconds) + GRACE_SECONDS
                )
            elif message[0] == "done":
                worker.ticket.outcome = message[1]
                worker.ticket = None

    def _give_up(self, worker: _Worker, reason: str) -> None:
        ticket = worker.ticket
        assert ticket is not None
        worker.ticket = None
        seconds = time.monotonic() - worker.started
        if reason == "timeout":
            self.timed_out += 1
            message = f"parsing was stopped after {seconds:.0f} s (over its time limit)"
            hint = TIMEOUT_HINT
        else:
            self.crashed += 1
            worker.process.join(timeout=5)  # its pipe closes a moment before it is reaped
            code = worker.process.exitcode
            how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            message = f"the parser process died while reading it ({how})"
            hint = CRASH_HINT
        log.warning("parse worker: %s: %s", ticket.job.item.rel_path, message)
        ticket.outcome = ReadOutcome.refused(ticket.job, message, reason, hint)
        self._replace(worker)

    def _replace(self, worker: _Worker) -> None:
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join()
        worker.conn.close()
        fresh = self._start()
        worker.process, worker.conn, worker.shared = fresh.process, fresh.conn, set()
        worker.ticket = None
