"""The Milvus timeouts reach pymilvus: stores opened with GOVRAG_MILVUS_TIMEOUT_S and
GOVRAG_MILVUS_WRITE_TIMEOUT_S make a round trip on Milvus Lite (create, write, flush, search,
read, iterate, compact, delete, drop) through a recording pymilvus client, and every call
the client received carried ``timeout=``: the read budget on reads and searches, the write
budget on writes, loads, compactions and creation. (The production code is also scanned for
calls without one: tests/unit/test_milvus_timeouts.py.)"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from governance.vector_index import all_rows_filter, ids_filter
from testsupport.store_settings import embedded_settings
from testsupport.vector_rows import vector_row

READS = {
    "MilvusClient",  # connecting: the wait for the channel
    "get_server_version",
    "has_collection",
    "describe_collection",
    "describe_index",
    "list_indexes",
    "search",
    "query",
    "get",
    "query_iterator",
    "get_compaction_state",
}
WRITES = {
    "create_collection",
    "create_index",
    "load_collection",
    "upsert",
    "insert",
    "delete",
    "flush",
    "compact",
    "drop_collection",
}
LOCAL = {"close", "prepare_index_params"}  # no call to the server


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """Every call made on a pymilvus client from now on: (method, its ``timeout``)."""
    import pymilvus

    real = pymilvus.MilvusClient
    calls: list[tuple[str, Any]] = []
    missing = object()

    class Recording:
        create_schema = staticmethod(real.create_schema)

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            calls.append(("MilvusClient", kwargs.get("timeout", missing)))
            self._real = real(*args, **kwargs)

        def __getattr__(self, name: str) -> Any:
            attr = getattr(self._real, name)
            if name.startswith("_") or not callable(attr):
                return attr

            def call(*args: Any, **kwargs: Any) -> Any:
                calls.append((name, kwargs.get("timeout", missing)))
                return attr(*args, **kwargs)

            return call

    monkeypatch.setattr(pymilvus, "MilvusClient", Recording)
    return calls


def test_every_call_a_round_trip_makes_carries_its_budget(tmp_path, recorded):
    from governance.stores import Stores

    stores = Stores.open(embedded_settings(tmp_path, milvus_timeout_s=7, milvus_write_timeout_s=70))
    index = stores.index
    try:
        assert (index.milvus.timeout_s, index.milvus.write_timeout_s) == (7.0, 70.0)
        rows = [vector_row(id=i, scope_id=1, document_id=f"d{i}", vector=np.eye(384)[i]) for i in range(5)]
        index.upsert(rows)
        index.flush()
        assert index.search(np.eye(384)[2], k=3, scope_ids=[1], now_epoch=0)[0].id == 2
        assert index.count() == 5 and len(index.get([1, 2], ("id",))) == 2
        assert len(index.query(all_rows_filter(), fields=("id",))) == 5
        assert len(list(index.iter_rows(("document_id",), batch_size=2))) == 5
        assert index.index_types()["vector"] == "HNSW"
        index.wait_until_indexed(0, timeout_s=1)
        index.milvus.describe_collection()
        if index.compact():
            index.compaction_state()
        index.delete_ids([0, 1])
        index.milvus.insert([vector_row(id=99, scope_id=1).to_entity()])
        assert {int(r["id"]) for r in index.query(ids_filter([0, 1, 99]))} == {99}
        index.drop()
    finally:
        stores.close()

    made = {name for name, _ in recorded}
    assert made - LOCAL <= READS | WRITES, made - LOCAL - READS - WRITES  # a call this test does not know
    assert {"search", "query", "get", "upsert", "insert", "delete", "flush", "load_collection"} <= made, made
    without = [name for name, timeout in recorded if name not in LOCAL and not isinstance(timeout, (int, float))]
    assert without == [], f"pymilvus calls without a timeout: {without}"
    assert {name for name, t in recorded if name in READS and t != 7.0} == set()
    assert {name for name, t in recorded if name in WRITES and t != 70.0} == set()
