"""The loop an ingest worker process runs: receive a job, read the document, send the
outcome back; keep parsers, NLP models and the state shared between documents (a Slack
export's users) warm for the whole run.

Messages from the run (``multiprocessing`` connection, pickled):
``("share", key, payload)`` an object many jobs refer to, sent once; ``("job", payload)`` a
:class:`ReadJob` pickled with references to shared objects; ``("stop",)``.
Messages to the run: ``("deadline", seconds)`` when a parser sets its own time limit (the
run enforces it from outside, see :mod:`ingest.parse.deadline`); ``("done", outcome)``.
"""

from __future__ import annotations

import io
import os
import pickle
import signal
import traceback
from multiprocessing.connection import Connection
from typing import Any

from ingest.parse.deadline import deadline_listener
from ingest.pipeline.read_job import ReadJob, ReadOutcome, run_job


class SharedUnpickler(pickle.Unpickler):
    """Resolves the references :class:`ingest.pipeline.parse_pool.JobPickler` leaves."""

    def __init__(self, payload: bytes, shared: dict[int, Any]) -> None:
        super().__init__(io.BytesIO(payload))
        self._shared = shared

    def persistent_load(self, pid: Any) -> Any:
        return self._shared[pid]


def _portable(outcome: ReadOutcome) -> ReadOutcome:
    """``outcome`` with any error that cannot be pickled replaced by one that can."""
    for name in ("fingerprint_error", "read_error"):
        error = getattr(outcome, name)
        if error is None:
            continue
        try:
            pickle.dumps(error)
        except Exception:
            text = "".join(traceback.format_exception_only(type(error), error)).strip()
            setattr(outcome, name, RuntimeError(text))
    return outcome


def serve(conn: Connection, niceness: int = 0) -> None:
    """Run jobs until the run says stop or goes away, ``niceness`` lower in CPU priority."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the run's to handle; it stops us
    # One core per worker: the tokenizer's own threads would oversubscribe the cores the
    # other workers use.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if niceness:
        # The embedder is the slowest stage when it shares the cores: parsing yields to it.
        os.nice(niceness)
    shared: dict[int, Any] = {}
    deadline_listener.set(lambda seconds: conn.send(("deadline", seconds)))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return  # the run ended or was killed
        kind = message[0]
        if kind == "stop":
            return
        if kind == "share":
            shared[message[1]] = pickle.loads(message[2])
            continue
        job: ReadJob = SharedUnpickler(message[1], shared).load()
        outcome = _portable(run_job(job))
        del job
        conn.send(("done", outcome))


def warm() -> None:
    """Import the parsers once in the process workers are forked from, so each worker
    starts with them loaded (pdfium and pypdf for PDFs, unstructured's HTML partitioner and
    chunker; no NLP model: no parser loads one)."""
    import pypdf  # noqa: F401
    import pypdfium2  # noqa: F401
    import unstructured.chunking.title
    import unstructured.partition.html  # noqa: F401

    import ingest.sources  # noqa: F401  (the sources and their parsers)
    from ingest.parse.offline import prepare_unstructured

    prepare_unstructured()


if __name__ == "__main__":  # pragma: no cover - started through multiprocessing only
    raise SystemExit("started by the ingest run's parse pool, not by hand")
