"""A wall-clock limit for parsers that can run away on hostile input (pdfminer's layout
analysis is quadratic in overlapping text lines: 1,000 of them on one page take ~40 s).

The parsers are pure Python and run in the ingest's parse thread, where no signal can reach
them; so the limit raises :class:`ParseTimeout` *inside* that thread with
``PyThreadState_SetAsyncExc`` (CPython raises it at the next bytecode boundary). It derives
from ``BaseException`` so that the parsers' own ``except Exception`` blocks do not swallow
it; :func:`deadline` makes sure it can never escape past the ``with`` block that set it.

    try:
        with deadline(60):
            elements = partition_pdf(...)
    except ParseTimeout:
        raise QuarantinedDocument(..., reason="timeout")

A call stuck in C code holding the GIL never reaches a bytecode boundary. In an ingest worker
process the run's process enforces the same limit from outside: :data:`deadline_listener`
tells it each limit as it is set, and it kills a worker that overruns it.
"""

from __future__ import annotations

import ctypes
import heapq
import itertools
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

# Told each limit as a parse sets it (seconds) and when its block ends (None); a worker
# process reports both to the run.
deadline_listener: ContextVar[Callable[[float | None], None] | None] = ContextVar("deadline_listener", default=None)


class ParseTimeout(BaseException):
    """A parse ran past its deadline (raised asynchronously in the parsing thread)."""


def _set_async_exc(tid: int, exc: type[BaseException] | None) -> int:
    return ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(tid), ctypes.py_object(exc) if exc is not None else None
    )


class _Pending:
    """One ``deadline`` block: fired at most once, and never after the block has ended."""

    __slots__ = ("active", "fired", "lock", "tid")

    def __init__(self, tid: int) -> None:
        self.tid = tid
        self.lock = threading.Lock()
        self.active = True
        self.fired = False

    def fire(self) -> None:
        with self.lock:
            if self.active:
                self.fired = True
                _set_async_exc(self.tid, ParseTimeout)


class _Watchdog:
    """One daemon thread per process that fires the pending deadlines as they fall due. A
    ``threading.Timer`` per block started a thread per parsed document (≈ 0.4 ms each, a
    tenth of a small Confluence page's parse)."""

    def __init__(self) -> None:
        self._reset()
        # A forked child has no watchdog thread and may have inherited a held lock: start over.
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Pending]] = []
        self._seq = itertools.count()
        self._pid = -1  # the process the thread runs in: a forked worker starts its own

    def add(self, seconds: float, pending: _Pending) -> None:
        with self._cond:
            if self._pid != os.getpid():
                self._pid, self._heap = os.getpid(), []
                threading.Thread(target=self._run, name="parse-deadlines", daemon=True).start()
            if len(self._heap) > 64 and sum(p.active for _, _, p in self._heap) * 2 < len(self._heap):
                self._heap = [e for e in self._heap if e[2].active]  # drop ended blocks
                heapq.heapify(self._heap)
            heapq.heappush(self._heap, (time.monotonic() + seconds, next(self._seq), pending))
            self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                while self._heap and (self._heap[0][0] <= now or not self._heap[0][2].active):
                    _, _, pending = heapq.heappop(self._heap)
                    pending.fire()
                self._cond.wait(self._heap[0][0] - now if self._heap else None)


_watchdog = _Watchdog()


@contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Raise :class:`ParseTimeout` in this thread if the block runs longer than ``seconds``
    (``None`` or ``<= 0``: no limit). Pure-Python code stops within a bytecode; a long call
    into C stops when it returns."""
    if not seconds or seconds <= 0:
        yield
        return
    listener = deadline_listener.get()
    if listener is not None:
        listener(seconds)
    pending = _Pending(threading.get_ident())
    _watchdog.add(seconds, pending)
    try:
        yield
    finally:
        with pending.lock:
            pending.active = False
        if pending.fired:
            _set_async_exc(pending.tid, None)  # not yet delivered: never let it escape this block
        if listener is not None:
            listener(None)
