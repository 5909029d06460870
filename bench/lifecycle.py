"""Governance measurements, each in one process on one machine:

1. permission change -> visible in search: seconds, and vectors rewritten (goal < 1 s, 0);
2. unchanged re-ingest of a corpus: time relative to the first ingest (goal <= 5 %);
3. purge of N expired chunks on Milvus Lite (goal 100k in <= 60 s), with search latency
   measured by a second thread while it runs.

    python bench/lifecycle.py [--chunks 100000] [--copies 8]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import machine_details, percentile
from embedding.local import LocalEmbedder
from governance.catalog.models import ChunkRow, Document, Version
from governance.contracts import AccessScope
from governance.identity import User
from governance.purge import purge_documents, select
from governance.settings import Settings
from governance.stores import Stores
from governance.vector_index import NEVER_EXPIRES, VectorRow
from govrag.sample_corpus import SAMPLE_POLICY, write_sample_corpus
from ingest.pipeline.run import Ingestor
from retrieval.search import Retriever


def _stores(tmp: Path, name: str, mode: str) -> Stores:
    from governance.milvus_process.local import ensure_server

    uri = ensure_server(tmp / name).uri if mode == "server" else str(tmp / f"{name}.db")
    return Stores.open(
        Settings(home=tmp / name, milvus_uri=uri, policy=SAMPLE_POLICY, database_url=f"sqlite:///{tmp / name / 'c.db'}")
    )


def acl_and_reingest(tmp: Path, embedder: LocalEmbedder, copies: int, mode: str) -> dict:
    src = tmp / "sample"
    write_sample_corpus(src, with_bad_inputs=False)
    corpus = tmp / "corpus"
    for i in range(copies):
        for sub in ("finance", "engineering", "handbook"):
            shutil.copytree(src / sub, corpus / sub / f"copy{i}")
    stores = _stores(tmp, "acl", mode)
    ing = Ingestor(stores, lambda: embedder)
    t = time.perf_counter()
    first = ing.ingest_paths([corpus])
    first_s = time.perf_counter() - t
    t = time.perf_counter()
    again = ing.ingest_paths([corpus])
    again_s = time.perf_counter() - t
    retriever = Retriever(stores, lambda: embedder)
    eve = User(id="eve@example.com", groups=["marketing"])
    assert retriever.search(eve, "granite-otter rollback", k=5) == []
    vectors_before = {r["id"]: r["scope_id"] for r in stores.index.query("id >= 0", fields=["scope_id"])}
    t = time.perf_counter()
    stores.catalog.scopes.upsert_scope(
        AccessScope(key="policy:path=engineering/**,source=pdf", layers=[["group:eng", "group:marketing"]])
    )
    hits = retriever.search(eve, "granite-otter rollback", k=5)
    visible_s = time.perf_counter() - t
    vectors_after = {r["id"]: r["scope_id"] for r in stores.index.query("id >= 0", fields=["scope_id"])}
    rewritten = sum(1 for k, v in vectors_after.items() if vectors_before.get(k) != v)
    stores.close()
    return {
        "documents": first.new,
        "chunks": first.chunks_written,
        "first_ingest_s": round(first_s, 2),
        "unchanged_reingest_s": round(again_s, 3),
        "reingest_ratio": round(again_s / first_s, 4),
        "unchanged_embedded": again.chunks_written,
        "acl_change_visible_s": round(visible_s, 3),
        "acl_change_visible_hits": len(hits),
        "vectors_rewritten": rewritten,
    }


def purge_bench(tmp: Path, n_chunks: int, mode: str) -> dict:
    stores = _stores(tmp, "purge", mode)
    catalog, index = stores.catalog, stores.index
    scope_id, _ = catalog.scopes.upsert_scope(AccessScope(key="bench", layers=[["group:bench"]]))
    per_doc, now = 10, datetime.now(UTC)
    n_docs = n_chunks // per_doc
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    for start in range(0, n_docs, 1000):
        docs = range(start, min(n_docs, start + 1000))
        expired = now - timedelta(days=1)
        with catalog.session() as s:
            s.add_all(
                Document(
                    id=f"d{d}",
                    source="pdf",
                    uri="u",
                    title="t",
                    scope_id=scope_id,
                    current_version=1,
                    expires_at=expired,
                    status="active",
                    origin="bench",
                )
                for d in docs
            )
            s.flush()
            s.add_all(
                Version(document_id=f"d{d}", version=1, content_hash="0" * 64, cleaned_text="x", state="current")
                for d in docs
            )
            s.add_all(
                ChunkRow(id=d * per_doc + c, document_id=f"d{d}", version=1, ordinal=c, text="x")
                for d in docs
                for c in range(per_doc)
            )
        vecs = rng.standard_normal((len(docs) * per_doc, 384), dtype=np.float32)
        index.upsert(
            [
                VectorRow(
                    id=d * per_doc + c,
                    vector=vecs[(d - start) * per_doc + c].tolist(),
                    document_id=f"d{d}",
                    source="pdf",
                    source_version=1,
                    scope_id=scope_id,
                    classification="internal",
                    expires_at=int(expired.timestamp()),
                    title="t",
                    uri="u",
                    text="x",
                )
                for d in docs
                for c in range(per_doc)
            ]
        )
    # A few live rows so the concurrent searches have something to find.
    index.upsert(
        [
            VectorRow(
                id=10**12 + i,
                vector=rng.standard_normal(384).tolist(),
                document_id=f"live{i}",
                source="pdf",
                source_version=1,
                scope_id=scope_id,
                classification="internal",
                expires_at=NEVER_EXPIRES,
                title="t",
                uri="u",
                text="x",
            )
            for i in range(100)
        ]
    )
    index.flush()  # as an ingest run leaves it (sealed segments; see the search section)
    load_s = time.perf_counter() - t
    lat: list[float] = []
    stop = threading.Event()

    def searcher() -> None:
        q = rng.standard_normal(384).astype(np.float32)
        while not stop.is_set():
            t0 = time.perf_counter()
            index.search(q, k=10, scope_ids=[scope_id], now_epoch=int(time.time()))
            lat.append((time.perf_counter() - t0) * 1000)

    idle = []
    for _ in range(30):
        t0 = time.perf_counter()
        index.search(
            rng.standard_normal(384).astype(np.float32), k=10, scope_ids=[scope_id], now_epoch=int(time.time())
        )
        idle.append((time.perf_counter() - t0) * 1000)
    th = threading.Thread(target=searcher)
    th.start()
    t = time.perf_counter()
    report = purge_documents(
        catalog, index, select(catalog, expired=True), reason="expired", selector={"expired": True}
    )
    purge_s = time.perf_counter() - t
    stop.set()
    th.join()
    left = index.count()
    stores.close()
    return {
        "chunks": n_chunks,
        "documents": n_docs,
        "load_s": round(load_s, 1),
        "purge_s": round(purge_s, 1),
        "purged_documents": len(report.documents),
        "vectors_deleted": report.vectors_deleted,
        "orphans_deleted": report.orphans_deleted,
        "vectors_left": left,
        "verified": report.verified,
        "search_p50_idle_ms": round(percentile(idle, 50), 1),
        "search_p50_during_ms": round(percentile(lat, 50), 1) if lat else None,
        "search_p95_during_ms": round(percentile(lat, 95), 1) if lat else None,
        "searches_during": len(lat),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chunks", type=int, default=100_000)
    ap.add_argument("--copies", type=int, default=8)
    ap.add_argument("--mode", choices=["server", "file"], default="file")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="govrag-lifecycle-"))
    embedder = LocalEmbedder()
    out = {
        "mode": args.mode,
        "acl_and_reingest": acl_and_reingest(tmp, embedder, args.copies, args.mode),
        "purge": purge_bench(tmp, args.chunks, args.mode),
        "machine": machine_details(),
    }
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    if args.mode == "server":
        from governance.milvus_process.local import stop_server

        for name in ("acl", "purge"):
            stop_server(tmp / name)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
