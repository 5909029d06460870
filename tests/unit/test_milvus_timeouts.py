"""Every pymilvus call has a timeout, and one call's retries have a deadline: a timed-out
call is one line naming its budget and is not tried again; retries of an unreachable Milvus
stop at the deadline; a "server" that accepts connections and never answers (what a
SIGSTOPped Milvus is) fails a connect within its budget; and a scan of the production code
finds no pymilvus client call without ``timeout=``. (The same against a real milvus-server
and milvus-lite server, stopped with SIGSTOP mid-search: tests/system/test_faults.py.)"""

from __future__ import annotations

import ast
import inspect
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from governance.errors import IndexUnavailable
from testsupport.paths import REPO

DEADLINE_EXCEEDED = (
    "<_InactiveRpcError of RPC that terminated with:\n\tstatus = StatusCode.DEADLINE_EXCEEDED\n"
    '\tdetails = "Deadline Exceeded"\n\tdebug_error_string = "DEADLINE_EXCEEDED:Deadline Exceeded"\n>'
)
UNREACHABLE = "<MilvusException: (code=2, message=Fail connecting to server on 127.0.0.1:1, server unavailable)>"


class _Client:
    """What MilvusCollection holds instead of a pymilvus client (the calls are injected)."""

    def load_collection(self, collection: str, timeout: float | None = None) -> None:
        pass

    def close(self) -> None:
        pass


def _collection(monkeypatch: pytest.MonkeyPatch, **timeouts: float) -> Any:
    from governance.vector_index import client

    monkeypatch.setattr(client, "_connect", lambda cls, uri, token, timeout_s: (_Client(), "v2.3.5"))
    return client.MilvusCollection("http://127.0.0.1:1", "c", **timeouts)


def _one_line(exc: IndexUnavailable) -> str:
    message = str(exc)
    assert "\n" not in message and exc.hint and "\n" not in exc.hint, (message, exc.hint)
    return message


def test_a_timeout_is_one_line_naming_its_budget_and_is_not_tried_again(monkeypatch):
    milvus = _collection(monkeypatch, timeout_s=2.0)
    timeouts: list[float] = []

    def hung(timeout: float) -> None:
        timeouts.append(timeout)
        try:
            raise RuntimeError(DEADLINE_EXCEEDED)  # what grpc raises when the deadline passes
        except RuntimeError as grpc_error:
            raise RuntimeError("<MilvusException: (code=1, message=search failed)>") from grpc_error

    with pytest.raises(IndexUnavailable) as caught:
        milvus._call("search in 'c'", hung)
    message = _one_line(caught.value)
    assert timeouts == [2.0]  # its budget, once: the budget is spent, so no retry
    assert message == "Milvus at http://127.0.0.1:1: search in 'c' got no answer within 2s (GOVRAG_MILVUS_TIMEOUT_S)"
    assert "raise GOVRAG_MILVUS_TIMEOUT_S" in caught.value.hint and "check the server" in caught.value.hint


def test_a_write_gets_the_write_budget_and_names_its_setting(monkeypatch):
    milvus = _collection(monkeypatch, timeout_s=2.0, write_timeout_s=30.0)
    timeouts: list[float] = []

    def hung(timeout: float) -> None:
        timeouts.append(timeout)
        # pymilvus's own retries of an UNAVAILABLE server used up the call's timeout
        raise RuntimeError("<MilvusException: (code=2, message=[flush] Retry timeout: 30s, StatusCode.UNAVAILABLE)>")

    with pytest.raises(IndexUnavailable) as caught:
        milvus._call("flush of 'c'", hung, write=True)
    assert timeouts == [30.0]
    assert "got no answer within 30s (GOVRAG_MILVUS_WRITE_TIMEOUT_S)" in _one_line(caught.value)
    assert "raise GOVRAG_MILVUS_WRITE_TIMEOUT_S" in caught.value.hint


def test_the_deadline_stops_retries_that_would_go_on_for_minutes(monkeypatch):
    from governance.vector_index import client

    # Retries that would never end: an unreachable server each attempt waits for, and more
    # pauses than anybody would wait through. Only the deadline (2 x 0.5 s + 0.5 s) stops them.
    monkeypatch.setattr(client, "RETRY_DELAYS_S", (0.05,) * 1000)
    monkeypatch.setattr(client, "DEADLINE_SLACK_S", 0.5)
    milvus = _collection(monkeypatch, timeout_s=0.5)
    timeouts: list[float] = []

    def unreachable(timeout: float) -> None:
        timeouts.append(timeout)
        time.sleep(min(timeout, 0.3))  # the attempt waits, then the connection fails
        raise RuntimeError(UNREACHABLE)

    started = time.monotonic()
    with pytest.raises(IndexUnavailable) as caught:
        milvus._call("search in 'c'", unreachable)
    took = time.monotonic() - started
    assert took < 1.5 + 0.5, took  # the deadline, and at most one last short attempt past it
    assert 2 <= len(timeouts) < 10, timeouts  # it did retry, and then stopped
    assert all(t <= 0.5 for t in timeouts) and timeouts[-1] < 0.5  # the last attempt got what was left
    message = _one_line(caught.value)
    assert "server unavailable" in message and "retries stopped at the call's 1.5s deadline" in message
    assert caught.value.hint == client.UNREACHABLE_HINT


def test_reloading_a_released_collection_waits_only_for_what_is_left_of_the_call(monkeypatch):
    from governance.vector_index import client

    monkeypatch.setattr(client, "DEADLINE_SLACK_S", 0.5)
    milvus = _collection(monkeypatch, timeout_s=0.5, write_timeout_s=300.0)
    loads: list[float] = []

    def slow_load(collection: str, timeout: float | None = None) -> None:
        loads.append(timeout or 0.0)
        raise RuntimeError(DEADLINE_EXCEEDED)  # still loading when the load's timeout passed

    milvus._client.load_collection = slow_load

    def released(timeout: float) -> None:
        raise RuntimeError("<MilvusException: (code=101, message=failed to query: collection not loaded)>")

    with pytest.raises(IndexUnavailable) as caught:
        milvus._call("query on 'c'", released)
    assert len(loads) == 1 and loads[0] <= 1.5  # what is left of the read's 1.5 s deadline, not 300 s
    message = _one_line(caught.value)
    assert "collection not loaded" in message
    assert "loading it again did not finish within the call's 1.5s deadline" in message
    assert caught.value.hint == client.NOT_LOADED_HINT


def test_timeouts_are_recognised_through_the_exception_chain_and_nothing_else_is():
    from governance.vector_index.client import failure_kind, timed_out

    try:
        raise RuntimeError(DEADLINE_EXCEEDED)
    except RuntimeError as inner:
        try:
            raise RuntimeError("Fail connecting to server on 127.0.0.1:1, server unavailable") from inner
        except RuntimeError as outer:
            wrapped = outer
    assert failure_kind(wrapped) == "timeout"  # a hung server at connect time, not a dead one
    assert timed_out(TimeoutError())
    assert failure_kind(RuntimeError(UNREACHABLE)) == "unreachable"
    assert failure_kind(RuntimeError("collection not loaded")) == "not_loaded"
    assert failure_kind(RuntimeError("invalid expression")) is None
    looped_a, looped_b = RuntimeError("a"), RuntimeError("b")
    looped_a.__context__, looped_b.__context__ = looped_b, looped_a
    assert timed_out(looped_a) is False


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port whose listener never accepts nor answers: the kernel completes the TCP handshake,
    then nothing -- what a Milvus stopped with SIGSTOP looks like to a new client."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield int(listener.getsockname()[1])


def test_connecting_to_a_server_that_never_answers_fails_within_the_budget(silent_server):
    from governance.vector_index.client import MilvusCollection

    started = time.monotonic()
    with pytest.raises(IndexUnavailable) as caught:
        MilvusCollection(f"http://127.0.0.1:{silent_server}", "c", timeout_s=1.0)
    took = time.monotonic() - started
    assert took < 2 * 1.0 + 5, took  # without a timeout pymilvus waits 10 s, then fails the same way
    message = _one_line(caught.value)
    assert f"cannot connect to Milvus at http://127.0.0.1:{silent_server}" in message
    assert "no answer within 1s (GOVRAG_MILVUS_TIMEOUT_S)" in message


def test_the_settings_name_the_timeouts_and_default_to_the_clients():
    from governance.settings import Settings
    from governance.vector_index.client import READ_TIMEOUT_S, WRITE_TIMEOUT_S

    assert (Settings().milvus_timeout_s, Settings().milvus_write_timeout_s) == (READ_TIMEOUT_S, WRITE_TIMEOUT_S)
    assert (READ_TIMEOUT_S, WRITE_TIMEOUT_S) == (10.0, 300.0)


def test_the_timeouts_are_read_from_the_environment(monkeypatch):
    from pydantic import ValidationError

    from governance.settings import Settings

    monkeypatch.setenv("GOVRAG_MILVUS_TIMEOUT_S", "2.5")
    monkeypatch.setenv("GOVRAG_MILVUS_WRITE_TIMEOUT_S", "60")
    assert (Settings().milvus_timeout_s, Settings().milvus_write_timeout_s) == (2.5, 60.0)
    monkeypatch.setenv("GOVRAG_MILVUS_TIMEOUT_S", "0")  # no timeout is not a setting
    with pytest.raises(ValidationError):
        Settings()


# -- every pymilvus call in the production code passes timeout= ------------------------------
PRODUCTION = ("governance", "ingest", "retrieval", "govrag", "dagster_project", "embedding")
# MilvusClient methods that make no call to the server (they take no timeout).
LOCAL_METHODS = frozenset({"close", "create_schema", "prepare_index_params", "get_server_type", "session"})
# What a pymilvus client is called in the production code: ``self._client`` in
# MilvusCollection, ``client`` in governance.vector_index.collection; a client is made by
# ``MilvusClient(...)`` or, in _connect, ``client_class(...)``.
CLIENT_RECEIVERS = frozenset({"self._client", "client"})
CLIENT_CONSTRUCTORS = frozenset({"MilvusClient", "client_class"})


def client_methods() -> frozenset[str]:
    from pymilvus import MilvusClient

    public = {name for name, _ in inspect.getmembers(MilvusClient, inspect.isfunction) if not name.startswith("_")}
    return frozenset(public - LOCAL_METHODS)


def client_calls(source: str) -> Iterator[tuple[int, str, bool]]:
    """(line, call, has ``timeout=``) of every pymilvus client call in ``source``."""
    methods = client_methods()
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in methods and ast.unparse(func.value) in CLIENT_RECEIVERS:
            name = ast.unparse(func)
        elif isinstance(func, ast.Name) and func.id in CLIENT_CONSTRUCTORS:
            name = func.id
        else:
            continue
        yield node.lineno, name, any(k.arg == "timeout" for k in node.keywords)


def test_every_pymilvus_call_in_the_production_code_passes_a_timeout():
    found: dict[str, list[str]] = {}
    missing = []
    for package in PRODUCTION:
        for path in sorted((REPO / package).rglob("*.py")):
            rel = str(path.relative_to(REPO))
            for line, call, has_timeout in client_calls(path.read_text()):
                found.setdefault(rel, []).append(call)
                if not has_timeout:
                    missing.append(f"{rel}:{line}: {call}(...) without timeout=")
    assert missing == [], "\n".join(missing)
    # The scan sees the calls (not a rename that makes it look at nothing): search, writes,
    # loads and creation, in both modules that talk to pymilvus, and nowhere else.
    assert set(found) == {"governance/vector_index/client.py", "governance/vector_index/collection.py"}, found
    seen = {call.rpartition(".")[2] for calls in found.values() for call in calls}
    assert {"search", "query", "get", "upsert", "insert", "delete", "flush", "load_collection"} <= seen, seen
    assert {"create_collection", "create_index", "has_collection", "client_class"} <= seen, seen
    assert sum(len(calls) for calls in found.values()) >= 25


def test_the_scan_finds_a_call_without_a_timeout():
    planted = "def f(self, client):\n    self._client.search('c', data=[[0.0]], timeout=1)\n    client.flush('c')\n"
    assert list(client_calls(planted)) == [(2, "self._client.search", True), (3, "client.flush", False)]
    assert list(client_calls("client = MilvusClient(uri=u)\n")) == [(1, "MilvusClient", False)]


def test_the_production_code_reaches_pymilvus_only_through_the_vector_index_package():
    importers = []
    for package in PRODUCTION:
        for path in sorted((REPO / package).rglob("*.py")):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                names = (
                    [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else []
                )
                if any(n == "pymilvus" or n.startswith("pymilvus.") for n in names):
                    importers.append(str(path.relative_to(REPO)))
    # lite_compaction is the server side (Milvus Lite's servicer): it builds responses, calls nothing
    assert set(importers) <= {
        "governance/vector_index/client.py",
        "governance/vector_index/collection.py",
        "governance/milvus_process/lite_compaction.py",
    }, importers
