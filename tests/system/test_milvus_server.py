"""The Milvus server path: a real milvus-server 2.3.5 on 127.0.0.1 (tests/milvus_server_fixtures.py).

Indexes, Strong reads after deletes, compaction after a purge, multi-tenant partition-key
isolation with hostile tenant names, an end-to-end ingest + search, and a server that leaves
no process behind. Where the same behaviour matters on Milvus Lite, tests run on both.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from governance.errors import AccessDenied, ConfigError, IndexSchemaMismatch, MilvusServerError
from governance.identity import User
from governance.vector_index import (
    NEVER_EXPIRES,
    TENANT_FIELD,
    VectorIndex,
    VectorRow,
    all_rows_filter,
    document_filter,
    tenant_filter,
)
from testsupport.milvus_server import unique_collection
from testsupport.store_settings import embedded_settings

server = pytest.mark.milvus_server
slow = pytest.mark.slow

HOSTILE_TENANTS = ["acme", 'acme" or tenant != "', "globex", "globex\\", 'x" || "1"=="1', "日本", "a' or '1'='1"]


def _rows(ids, scope=1, tenant=None, seed=0):
    rng = np.random.default_rng(seed)
    return [
        VectorRow(
            id=i,
            vector=rng.random(384, dtype=np.float32).tolist(),
            document_id=f"doc{i // 10}",
            source="pdf",
            source_version=1,
            scope_id=scope,
            classification="internal",
            expires_at=NEVER_EXPIRES,
            title="t",
            uri="u",
            text=f"text {i}",
            tenant=tenant,
        )
        for i in ids
    ]


# -- the server process -------------------------------------------------------------------
def _listening_inodes() -> dict[int, str]:
    """inode -> local address of every listening TCP socket in this network namespace."""
    out = {}
    for name, family in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 6)):
        try:
            lines = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if parts[3] != "0A":  # LISTEN
                continue
            addr, port = parts[1].split(":")
            if family == 4:
                host = socket.inet_ntop(socket.AF_INET, bytes.fromhex(addr)[::-1])
            else:
                raw = bytes.fromhex(addr)
                host = socket.inet_ntop(socket.AF_INET6, b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4)))
            out[int(parts[9])] = f"{host}:{int(port, 16)}"
    return out


def _socket_inodes(pid: int) -> set[int]:
    out = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                out.add(int(link[8:-1]))
    except OSError:
        pass
    return out


@server
@slow
def test_server_is_reachable_on_loopback_only(milvus_server):
    pids = milvus_server.processes()
    assert milvus_server.pid in pids and len(pids) >= 2  # the forwarder and milvus itself
    listening = _listening_inodes()
    ours = {listening[i] for pid in pids for i in _socket_inodes(pid) if i in listening}
    # In this (the host's) namespace the server listens on exactly one address.
    assert ours == {f"127.0.0.1:{milvus_server.port}"}
    # Milvus itself runs in a namespace whose only interface is the loopback.
    milvus_pid = next(p for p in pids if p != milvus_server.pid)
    assert os.readlink(f"/proc/{milvus_pid}/ns/net") != os.readlink("/proc/self/ns/net")
    ifaces = [line.split(":")[0].strip() for line in Path(f"/proc/{milvus_pid}/net/dev").read_text().splitlines()[2:]]
    assert ifaces == ["lo"]
    # Config, logs and data live in the given directory.
    assert (milvus_server.data_dir / "data" / "etcd.data").is_dir()
    assert milvus_server.log_file.is_file()


@server
@slow
@pytest.mark.parametrize("how", ["stop", "leader killed first"])
def test_stop_leaves_no_process_behind(tmp_path, how):
    from testsupport.milvus_server import MilvusServer, unavailable_reason

    if unavailable_reason():
        pytest.skip(unavailable_reason())
    with MilvusServer(tmp_path / "m") as srv:
        pids = srv.processes()
        assert len(pids) >= 2
        if how == "leader killed first":
            # What the upstream launcher's SIGTERM does: the parent goes, Milvus may stay.
            os.kill(srv.pid, signal.SIGKILL)
            time.sleep(0.5)
    assert srv.processes() == []
    for pid in pids:
        state = None
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            pass
        assert state in (None, "Z", "X"), f"pid {pid} still running"
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", srv.port)) != 0
    shutil.rmtree(tmp_path / "m", ignore_errors=True)  # a few hundred MB


@server
@slow
def test_a_server_that_is_not_ready_in_time_is_stopped_and_the_error_names_the_log(tmp_path):
    from testsupport.milvus_server import MilvusServer, unavailable_reason

    if unavailable_reason():
        pytest.skip(unavailable_reason())
    srv = MilvusServer(tmp_path / "m", start_timeout_s=0.5)
    with pytest.raises(MilvusServerError) as err:
        srv.start()
    assert str(srv.log_file) in str(err.value)
    assert srv.processes() == []
    shutil.rmtree(tmp_path / "m", ignore_errors=True)


# -- schema and indexes -------------------------------------------------------------------
def test_collection_has_hnsw_and_scalar_indexes(make_index, backend):
    ix = make_index(backend, multi_tenant=True, tenant="acme")
    types = ix.index_types()
    if backend == "server":  # Milvus 2.3: no INVERTED; STL_SORT for numbers, Trie for strings
        assert types == {
            "vector": "HNSW",
            "scope_id": "STL_SORT",
            "expires_at": "STL_SORT",
            "document_id": "Trie",
            "tenant": "Trie",
        }
    else:
        assert types == {
            "vector": "HNSW",
            "scope_id": "INVERTED",
            "expires_at": "INVERTED",
            "document_id": "INVERTED",
            "tenant": "INVERTED",
        }
    vector = ix.milvus.describe_index("vector")
    assert vector["metric_type"] == "COSINE" and int(vector["M"] if "M" in vector else 16) == 16
    desc = ix.milvus.describe_collection()
    assert desc["consistency_level_name"] == "Strong"
    tenant = next(f for f in desc["fields"] if f["name"] == TENANT_FIELD)
    assert tenant.get("is_partition_key") is True


def test_an_existing_collection_made_with_other_settings_is_refused(make_index, backend):
    plain = make_index(backend)
    name, uri = plain.collection, plain.uri
    plain.close()
    with pytest.raises(IndexSchemaMismatch, match="GOVRAG_MULTI_TENANT") as err:
        VectorIndex(uri, name, multi_tenant=True, tenant="acme")
    assert "GOVRAG_COLLECTION" in err.value.hint
    with pytest.raises(IndexSchemaMismatch, match="dimensions"):
        VectorIndex(uri, name, dim=768)
    tenanted = make_index(
        backend, collection=unique_collection() if backend == "server" else "t2", multi_tenant=True, tenant="acme"
    )
    tenanted.close()
    with pytest.raises(IndexSchemaMismatch, match="multi-tenancy is off"):
        VectorIndex(uri, tenanted.collection)


# -- consistency and compaction -----------------------------------------------------------
@server
@slow
def test_a_delete_is_seen_at_once_by_query_search_and_count(make_index):
    ix = make_index("server")
    ix.upsert(_rows(range(3000)))
    ix.flush()  # sealed segments: deletes must reach them too
    ix.upsert(_rows(range(3000, 3100)))  # and a growing one
    doomed = [i for i in range(0, 3100, 7)]
    ix.delete_ids(doomed)
    assert ix.count() == 3100 - len(doomed)
    assert ix.get(doomed) == []
    assert ix.query(document_filter("doc0"), fields=("id",)) == [{"id": i} for i in range(1, 10) if i % 7]
    q = np.asarray(_rows([7])[0].vector, dtype=np.float32)  # the deleted row's own vector
    hits = ix.search(q, k=20, scope_ids=[1], now_epoch=0)
    assert hits and not {h.id for h in hits} & set(doomed)


def test_compaction_makes_deletes_physical_on_lite_and_is_requested_on_a_server(make_index, backend, tmp_path):
    ix = make_index(backend)
    ix.upsert(_rows(range(200)))
    ix.flush()
    ix.delete_ids(range(100))
    ix.flush()
    if backend == "lite":  # govrag's Lite compaction rewrites the data files before it answers
        import pyarrow.parquet as pq

        assert ix.compact() is True and ix.last_compaction_id
        on_disk = [i for f in (tmp_path / "m.db").rglob("data_*.parquet") for i in pq.read_table(f)["id"].to_pylist()]
        assert sorted(on_disk) == list(range(100, 200))
        assert len(ix.query(all_rows_filter(), limit=1000)) == 100
        return
    assert ix.compact() is True
    assert ix.last_compaction_id and ix.compaction_state() in ("Executing", "Completed")
    assert len(ix.query(all_rows_filter(), limit=1000)) == 100


# -- multi-tenancy ------------------------------------------------------------------------
def test_a_tenant_never_sees_another_tenants_rows(make_index, backend):
    ix = make_index(backend, multi_tenant=True, tenant="acme")
    expected = {}
    for t, tenant in enumerate(HOSTILE_TENANTS):
        ids = list(range(t * 100, t * 100 + 20))
        expected[tenant] = set(ids)
        ix.upsert(_rows(ids, tenant=None if tenant == "acme" else tenant, seed=t))  # acme: the default
    # Overwrite every row once more: on Milvus 2.3 a plain upsert would misfile rows
    # (milvus-io/milvus#30607) and partition-pruned searches would miss them.
    for t, tenant in enumerate(HOSTILE_TENANTS):
        ix.upsert(_rows(sorted(expected[tenant]), tenant=tenant, seed=t))
    assert ix.count() == 20  # maintenance reads see this index's tenant only
    assert sum(ix.with_tenant(t).count() for t in HOSTILE_TENANTS) == 20 * len(HOSTILE_TENANTS)
    q = np.ones(384, dtype=np.float32)
    for tenant in HOSTILE_TENANTS:
        assert ix.query(tenant_filter(tenant), fields=("id",)) == ([] if tenant != "acme" else ix.query("id >= 0"))
        rows = ix.with_tenant(tenant).query("id >= 0", fields=("id", TENANT_FIELD), limit=1000)
        assert {r["id"] for r in rows} == expected[tenant], tenant
        assert {r[TENANT_FIELD] for r in rows} == {tenant}
        everything = ix.search(q, k=50, scope_ids=[1], now_epoch=0, tenant=tenant)
        assert {h.id for h in everything} == expected[tenant], tenant
        top = ix.search(q, k=5, scope_ids=[1], now_epoch=0, tenant=tenant)
        assert len(top) == 5 and {h.id for h in top} <= expected[tenant]
        assert all(h.fields[TENANT_FIELD] == tenant for h in top)
    assert ix.search(q, k=5, scope_ids=[1], now_epoch=0, tenant="initech") == []
    with pytest.raises(AccessDenied):
        ix.search(q, k=5, scope_ids=[1], now_epoch=0)
    with pytest.raises(AccessDenied):
        ix.search(q, k=5, scope_ids=[1], now_epoch=0, tenant="acme\n")


def test_multi_tenant_rows_need_a_tenant(tmp_path):
    ix = VectorIndex(str(tmp_path / "m.db"), "t", multi_tenant=True)
    try:
        with pytest.raises(ConfigError, match="GOVRAG_TENANT"):
            ix.upsert(_rows([1]))
    finally:
        ix.close()
    with pytest.raises(ConfigError):
        VectorIndex(str(tmp_path / "m2.db"), "t", multi_tenant=True, tenant="bad\x00tenant")


# -- end to end: the Ingestor and the Retriever on the server ------------------------------
ALICE = User(id="alice@example.com", email="alice@example.com", groups=["finance"], tenant="acme")
BOB = User(id="bob@example.com", email="bob@example.com", groups=["eng"], tenant="acme")


def _server_stores(tmp_path, milvus_server, **settings):
    from governance.stores import Stores

    return Stores.open(
        embedded_settings(tmp_path, milvus_uri=milvus_server.uri, collection=unique_collection("e2e"), **settings)
    )


@server
@slow
def test_ingest_then_search_on_the_server_two_users_see_different_documents(
    tmp_path, milvus_server, embedder, sample_corpus, make_ingestor, make_retriever
):
    stores = _server_stores(tmp_path, milvus_server)
    try:
        assert stores.index.backend == "server"
        summary = make_ingestor(stores, embedder).ingest_paths([sample_corpus])
        assert summary.new == 5
        r = make_retriever(stores, embedder)
        query = "revenue budget forecast deployment rollback"
        alice = {h.document_id for h in r.search(ALICE, query, k=20)}
        bob = {h.document_id for h in r.search(BOB, query, k=20)}
        assert {"pdf:finance/q3-revenue-report.pdf", "pdf:finance/budget-2027.pdf"} <= alice
        assert not any(d.startswith("pdf:engineering/") for d in alice)
        assert "pdf:engineering/deploy-runbook.pdf" in bob
        assert not any(d.startswith("pdf:finance/") for d in bob)
        assert "pdf:handbook/holidays-and-leave.pdf" in alice & bob
        # Re-running changes nothing (upserts on the server are idempotent too).
        assert make_ingestor(stores, embedder).ingest_paths([sample_corpus]).unchanged == 5
        assert stores.index.count() == summary.chunks_written
        # The doctor's full scan (query iterator over all_rows_filter) works on the server.
        from governance.consistency import check_consistency

        report = check_consistency(stores.catalog, stores.index)
        assert report.agrees and report.vectors == summary.chunks_written
    finally:
        stores.index.drop()
        stores.close()


@server
@slow
def test_purge_on_the_server_deletes_verifies_and_requests_compaction(
    tmp_path, milvus_server, embedder, sample_corpus, make_ingestor, make_retriever
):
    from governance.purge import purge_documents

    stores = _server_stores(tmp_path, milvus_server)
    try:
        make_ingestor(stores, embedder).ingest_paths([sample_corpus])
        doc = "pdf:finance/budget-2027.pdf"
        assert stores.index.ids_of_document(doc)
        report = purge_documents(stores.catalog, stores.index, [doc], reason="test", selector={"document": doc})
        assert report.verified and report.vectors_deleted > 0
        assert report.compaction_requested is True
        assert stores.index.compaction_state() in ("Executing", "Completed")
        assert stores.index.ids_of_document(doc) == []  # Strong: seen at once
        hits = make_retriever(stores, embedder).search(ALICE, "budget 2027 forecast", k=20)
        assert doc not in {h.document_id for h in hits}
    finally:
        stores.index.drop()
        stores.close()


@server
@slow
def test_multi_tenant_ingest_is_seen_by_its_tenant_only(
    tmp_path, milvus_server, embedder, sample_corpus, make_ingestor, make_retriever
):
    stores = _server_stores(tmp_path, milvus_server, multi_tenant=True, tenant="acme")
    try:
        make_ingestor(stores, embedder).ingest_paths([sample_corpus])
        rows = stores.index.query(all_rows_filter(), fields=("id", TENANT_FIELD), limit=1000)
        assert rows and {r[TENANT_FIELD] for r in rows} == {"acme"}
        r = make_retriever(stores, embedder)
        assert r.search(ALICE, "revenue budget", k=5)
        for other in ("globex", 'acme" or tenant != "', "acme\\"):
            assert r.search(ALICE.model_copy(update={"tenant": other}), "revenue budget", k=5) == []
        with pytest.raises(AccessDenied):
            r.search(ALICE.model_copy(update={"tenant": None}), "revenue budget", k=5)
    finally:
        stores.index.drop()
        stores.close()


# -- vector index type --------------------------------------------------------------------
def test_an_ivf_index_is_built_on_a_server_and_refused_on_lite(make_index, backend, tmp_path):
    if backend == "lite":
        with pytest.raises(ConfigError, match="needs a Milvus server"):
            VectorIndex(str(tmp_path / "ivf.db"), "t", index_type="IVF_FLAT")
        with pytest.raises(ConfigError, match="unknown vector index type"):
            VectorIndex(str(tmp_path / "ivf.db"), "t", index_type="DISKANN")  # type: ignore[arg-type]
        return
    ix = make_index(backend, index_type="IVF_FLAT", nlist=16, nprobe=16)
    assert ix.index_types()["vector"] == "IVF_FLAT"
    assert int(ix.milvus.describe_index("vector")["nlist"]) == 16
    assert ix.search_params(10) == {"nprobe": 16}
    ix.upsert(_rows(range(3000)) + _rows(range(3000, 3010), scope=2))
    ix.flush()
    q = np.asarray(_rows(range(6))[5].vector, dtype=np.float32)  # row 5's own vector
    hits = ix.search(q, k=5, scope_ids=[1], now_epoch=0)
    assert hits[0].id == 5 and len(hits) == 5  # nprobe == nlist: an exact answer
    assert {h.id for h in ix.search(q, k=20, scope_ids=[2], now_epoch=0)} == set(range(3000, 3010))
    reopened = VectorIndex(ix.uri, ix.collection)  # HNSW asked: the collection's IVF_FLAT is used
    try:
        assert (reopened.index_type, reopened.search_params(10)) == ("IVF_FLAT", {"nprobe": 32})
        assert reopened.search(q, k=5, scope_ids=[1], now_epoch=0)[0].id == 5
    finally:
        reopened.close()


def test_a_selective_filter_on_ivf_searches_every_cluster_and_finds_the_exact_top_k(make_index, monkeypatch):
    ix = make_index("server", index_type="IVF_FLAT", nlist=32, nprobe=1)
    rows = _rows(range(4000)) + _rows(range(4000, 4012), scope=2)
    spread = np.random.default_rng(3).standard_normal((len(rows), 384)).astype(np.float32)
    # balanced clusters: ~125 rows each, 12 readable in all
    rows = [replace(row, vector=vector.tolist()) for row, vector in zip(rows, spread)]
    readable = rows[4000:]
    ix.upsert(rows)
    ix.flush()
    info = ix.wait_until_indexed(len(rows), timeout_s=120)
    assert int(info["indexed_rows"]) >= len(rows), f"the vector index was not built in 120 s: {info}"
    real_search, nprobes = ix.milvus.search, []

    def starved_when_probing_one_cluster(*args, **kwargs):
        # Injected: what a 1M-row collection does (the probed clusters hold 3 of 10 readable
        # rows; docs/benchmarks.md), which this small one does not reproduce by itself.
        nprobe = kwargs["search_params"]["params"]["nprobe"]
        nprobes.append(nprobe)
        res = real_search(*args, **kwargs)
        return [res[0][:3]] if nprobe == 1 else res

    monkeypatch.setattr(ix.milvus, "search", starved_when_probing_one_cluster)
    monkeypatch.setattr(ix.cascade, "exact_search", lambda *a, **kw: pytest.fail("the all-cluster search sufficed"))
    rng = np.random.default_rng(7)
    mat = np.asarray([r.vector for r in readable], dtype=np.float32)
    mat /= np.linalg.norm(mat, axis=1, keepdims=True)
    for _ in range(5):
        q = rng.standard_normal(384).astype(np.float32)
        truth = [readable[i].id for i in np.argsort(-(mat @ (q / np.linalg.norm(q))))[:10]]
        assert [h.id for h in ix.search(q, k=10, scope_ids=[2], now_epoch=0)] == truth
    # The first search went down the cascade; the same filter then starts where it ended.
    assert nprobes == [1, 32, 32, 32, 32, 32]
