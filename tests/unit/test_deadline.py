"""The parse deadline: raised inside the block that overran it, and never outside one."""

from __future__ import annotations

import multiprocessing
import threading
import time

import pytest

from ingest.parse.deadline import ParseTimeout, deadline


def _spin() -> None:
    while True:
        time.sleep(0.005)


def test_a_block_past_its_deadline_is_interrupted_with_parse_timeout() -> None:
    with pytest.raises(ParseTimeout), deadline(0.1):
        _spin()


def test_a_block_that_ended_in_time_is_never_interrupted_afterwards() -> None:
    for _ in range(50):
        with deadline(0.05):
            pass
    time.sleep(0.2)  # past every deadline set above: nothing may arrive now


def test_each_thread_gets_only_its_own_timeout() -> None:
    outcome: dict[str, str] = {}

    def slow() -> None:
        try:
            with deadline(0.1):
                _spin()
        except ParseTimeout:
            outcome["slow"] = "timeout"

    def quick() -> None:
        with deadline(5):
            time.sleep(0.3)
        outcome["quick"] = "done"

    threads = [threading.Thread(target=slow), threading.Thread(target=quick)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcome == {"slow": "timeout", "quick": "done"}


def _overrun_in_child(queue: multiprocessing.Queue) -> None:
    try:
        with deadline(0.1):
            _spin()
    except ParseTimeout:
        queue.put("timeout")


def test_a_forked_worker_gets_deadlines_of_its_own() -> None:
    with deadline(5):
        pass  # the parent's watchdog is running before the fork
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_overrun_in_child, args=(queue,), daemon=True)
    child.start()
    try:
        assert queue.get(timeout=30) == "timeout"
    finally:
        child.join(timeout=5)
        if child.is_alive():
            child.kill()
