"""The hand-off queue between the parsing thread and the write stage: first in, first out,
bounded by the chunks it holds and by its items, never blocking on one oversized item."""

from __future__ import annotations

import threading

import pytest

from ingest.pipeline.handoff import ChunkBoundedQueue, Empty


def _put_in_thread(queue: ChunkBoundedQueue[str], item: str, chunks: int) -> threading.Thread:
    thread = threading.Thread(target=queue.put, args=(item, chunks), daemon=True)
    thread.start()
    return thread


def test_items_come_out_in_the_order_they_went_in():
    queue: ChunkBoundedQueue[str] = ChunkBoundedQueue(max_chunks=100, max_items=10)
    for name in ("a", "b", "c"):
        queue.put(name, 3)
    assert [queue.get() for _ in range(3)] == ["a", "b", "c"]


def test_a_put_waits_while_the_chunks_waiting_would_exceed_the_bound():
    queue: ChunkBoundedQueue[str] = ChunkBoundedQueue(max_chunks=10, max_items=10)
    queue.put("a", 6)
    blocked = _put_in_thread(queue, "b", 5)
    blocked.join(timeout=0.3)
    assert blocked.is_alive()  # 6 + 5 > 10
    assert queue.get() == "a"
    blocked.join(timeout=5)
    assert not blocked.is_alive()
    assert queue.get() == "b"


def test_a_put_waits_while_the_queue_holds_its_most_items():
    queue: ChunkBoundedQueue[str] = ChunkBoundedQueue(max_chunks=1000, max_items=2)
    queue.put("a", 0)
    queue.put("b", 0)
    blocked = _put_in_thread(queue, "c", 0)
    blocked.join(timeout=0.3)
    assert blocked.is_alive()
    queue.get()
    blocked.join(timeout=5)
    assert not blocked.is_alive()


def test_an_item_larger_than_the_bound_goes_in_when_the_queue_is_empty():
    queue: ChunkBoundedQueue[str] = ChunkBoundedQueue(max_chunks=10, max_items=10)
    queue.put("huge", 5000)
    assert queue.get() == "huge"


def test_an_empty_queue_says_so_without_waiting():
    queue: ChunkBoundedQueue[str] = ChunkBoundedQueue(max_chunks=10, max_items=10)
    assert queue.empty()
    with pytest.raises(Empty):
        queue.get(block=False)
    queue.put("a", 1)
    assert not queue.empty()
    assert queue.get(block=False) == "a"


def test_a_get_waits_for_the_next_item():
    queue: ChunkBoundedQueue[str] = ChunkBoundedQueue(max_chunks=10, max_items=10)
    got: list[str] = []
    waiting = threading.Thread(target=lambda: got.append(queue.get()), daemon=True)
    waiting.start()
    waiting.join(timeout=0.2)
    assert waiting.is_alive() and got == []
    queue.put("a", 1)
    waiting.join(timeout=5)
    assert got == ["a"]


def test_an_event_put_first_comes_out_before_everything_waiting_even_when_full():
    queue: ChunkBoundedQueue[str] = ChunkBoundedQueue(max_chunks=2, max_items=2)
    queue.put("a", 1)
    queue.put("b", 1)
    queue.put_first("failure")  # the queue is full: this must not wait
    assert [queue.get() for _ in range(3)] == ["failure", "a", "b"]
