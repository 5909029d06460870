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
import threading
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
    tid = threading.get_ident()
    lock = threading.Lock()
    state = {"active": True, "fired": False}

    def fire() -> None:
        with lock:
            if state["active"]:
                state["fired"] = True
                _set_async_exc(tid, ParseTimeout)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        with lock:
            state["active"] = False
        timer.cancel()
        if state["fired"]:
            _set_async_exc(tid, None)  # not yet delivered: never let it escape this block
        if listener is not None:
            listener(None)
