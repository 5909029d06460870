"""The hand-off between the parsing thread and the write stage: prepared documents waiting to
be embedded, bounded by the chunks they hold rather than by their number.

A bound by documents alone either starves the embedder of small documents or lets large
ones pile up: 256 Slack threads are ~330 chunks, 256 long PDFs tens of thousands. The
embedder wants large batches (it sorts a batch's texts by length, so a larger batch pads
less: all-MiniLM-L6-v2 on CPU embedded the Slack benchmark's chunks at 43.4 chunks/s in
batches of 330, 46.3 in batches of 1,024 and 48.3 in one call; docs/benchmarks.md), and
memory wants a bound on the text held.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class Empty(Exception):
    """Nothing is waiting (``get(block=False)``)."""


class ChunkBoundedQueue(Generic[T]):
    """A FIFO queue of items, each with a chunk count, holding at most ``max_chunks`` chunks
    and ``max_items`` items. An item larger than the bound on its own is let in when the queue
    is empty, so one huge document never blocks the run."""

    def __init__(self, max_chunks: int, max_items: int) -> None:
        self.max_chunks = max_chunks
        self.max_items = max_items
        self._items: deque[tuple[T, int]] = deque()
        self._chunks = 0
        self._changed = threading.Condition()

    def put(self, item: T, chunks: int = 0) -> None:
        """Add ``item`` (holding ``chunks`` chunks), waiting for room."""
        with self._changed:
            self._changed.wait_for(lambda: not self._items or self._fits(chunks))
            self._items.append((item, chunks))
            self._chunks += chunks
            self._changed.notify_all()

    def put_first(self, item: T) -> None:
        """Put ``item`` first in line, whatever the bounds: an event the consumer must see
        before anything else waiting (a failure elsewhere), never blocking its sender."""
        with self._changed:
            self._items.appendleft((item, 0))
            self._changed.notify_all()

    def get(self, block: bool = True) -> T:
        """The oldest item; without ``block``, :class:`Empty` when there is none."""
        with self._changed:
            if not block and not self._items:
                raise Empty
            self._changed.wait_for(lambda: bool(self._items))
            item, chunks = self._items.popleft()
            self._chunks -= chunks
            self._changed.notify_all()
            return item

    def empty(self) -> bool:
        """Whether nothing is waiting now."""
        with self._changed:
            return not self._items

    def _fits(self, chunks: int) -> bool:
        return len(self._items) < self.max_items and self._chunks + chunks <= self.max_chunks
