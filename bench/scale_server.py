"""Scale benchmark on a real milvus-server 2.3.5: ingest, index build, ACL-filtered vs
unfiltered search (p50/p95, recall@10 on a sample) and purge, at up to 1M chunks.

    python bench/scale_server.py --chunks 1000000 --index IVF_FLAT --nlist 1024 --nprobe 32 \\
        --scopes 10 1000 10000 --total-scopes 100000 --json bench/results/scale_server_1000000.json

Vectors are synthetic (384 dims like the default embedder; embedding 1M texts on CPU is not
what is measured here), ``--vectors clustered`` (a seeded Gaussian mixture, the default with
``--plans``) or ``uniform`` (random normal, normalised: IVF's worst case, the default
otherwise, as in the earlier runs); see bench/vectors.py. Rows are written through
``VectorIndex.upsert`` (the ingest path) in batches of 5,000, each with a scope drawn
uniformly from ``--total-scopes`` scopes, 5% already expired, a 200-character text.

Searches (k=10, Session consistency) are timed twice: ``raw`` is one ``MilvusClient.search``
with the index's search parameters (the filtered/unfiltered ratio), ``govrag`` is
``VectorIndex.search`` (the ACL + expiry filter, every output field, and the exact scan of
the matching rows when the index returns fewer than k hits). Variants are interleaved in
rounds so drift on a shared machine hits them all alike. Recall@10 is measured on
``--recall-queries`` queries against an exact (numpy) search over the same rows and filter.

``VectorIndex.search`` is timed twice: with ``search_fanout`` 1 (one expression) and with the
default fan-out (a long allowed-scope list split into concurrent searches, merged by score).
"filter floor" is the same filtered search on an *empty* collection: what parsing the
expression costs the server, whatever the data.

The server runs with segments of ``--segment-mb`` (sealed at that size), automatic
compaction off and two index builds in parallel, so a million rows are indexed once in a
few large segments instead of ~100 small ones re-indexed after every merge (docs/milvus.md).
The first ``--upsert-rows`` rows go through ``VectorIndex.upsert`` (the ingest path), the
rest through ``MilvusClient.insert`` (a bulk load); both rates are reported.

``--plans`` times the search plans instead of those variants (and skips the purge): each
plan forced and the chosen one, per reader (bench/plan_variants.py).

Purge: ``--purge`` rows (random primary keys) are deleted with ``VectorIndex.delete_ids``
(batches of 5,000), then a Strong query per 10,000 ids checks none is left; the rate counts
both.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import vectors as vector_options
from bench.machine import machine_details, percentile
from bench.plan_variants import measure_plans
from governance.vector_index import (
    NEVER_EXPIRES,
    SEARCH_FANOUT,
    VectorIndex,
    VectorRow,
    ids_filter,
    search_filter,
)
from testsupport.milvus_server import MilvusServer

DIM = 384
K = 10


def _rss_mib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total // 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chunks", type=int, default=1_000_000)
    ap.add_argument("--index", choices=["HNSW", "IVF_FLAT", "IVF_SQ8"], default="IVF_FLAT")
    ap.add_argument("--nlist", type=int, default=1024)
    ap.add_argument("--nprobe", type=int, default=32)
    ap.add_argument("--scopes", type=int, nargs="+", default=[10, 1000, 10_000], help="allowed scopes per user")
    ap.add_argument("--total-scopes", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--recall-queries", type=int, default=20)
    ap.add_argument("--purge", type=int, default=100_000)
    ap.add_argument("--index-timeout", type=float, default=3600)
    ap.add_argument("--upsert-rows", type=int, default=100_000, help="rows written through VectorIndex.upsert")
    ap.add_argument("--segment-mb", type=int, default=1024)
    ap.add_argument("--json", type=Path)
    ap.add_argument(
        "--plans",
        action="store_true",
        help="time the search plans (bench/plan_variants.py: each forced and the chosen one) "
        "instead of the raw/fan-out/floor variants",
    )
    vector_options.add_arguments(ap, "chunks")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="govrag-scale-"))
    t0 = time.perf_counter()
    milvus = MilvusServer(tmp / "milvus-server", config=server_config(args.segment_mb)).start()
    print(f"milvus-server ready at {milvus.uri} in {time.perf_counter() - t0:.1f}s", file=sys.stderr, flush=True)
    try:
        _run(args, milvus)
    finally:
        milvus.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def server_config(segment_mb: int) -> dict[str, object]:
    return {
        "dataCoord.segment.maxSize": segment_mb,
        "dataCoord.segment.sealProportion": 0.9,
        "dataCoord.compaction.enableAutoCompaction": False,
        "indexNode.scheduler.buildParallel": 2,
    }


def _exact_top(vectors: np.ndarray, q: np.ndarray, mask: np.ndarray | None) -> set[int]:
    scores = vectors @ q
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    top = np.argpartition(-scores, K)[:K]
    return {int(i) for i in top if np.isfinite(scores[i])}


def _run(args: argparse.Namespace, milvus: MilvusServer) -> None:
    log = lambda msg: print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)  # noqa: E731
    ix = VectorIndex(milvus.uri, "scale", index_type=args.index, nlist=args.nlist, nprobe=args.nprobe)
    rng = np.random.default_rng(42)
    now = int(time.time())
    n = args.chunks
    source = vector_options.source_for(args, DIM, n)
    vectors = np.empty((n, DIM), dtype=np.float32)  # kept for the exact (recall) search
    scopes = rng.integers(0, args.total_scopes, n)
    expired = rng.random(n) < 0.05
    batch = 5000
    upsert_rows = min(n, args.upsert_rows)
    t0 = time.perf_counter()
    upsert_s = 0.0
    for start, v in zip(range(0, n, batch), source.batches(n, batch), strict=True):
        m = len(v)
        vectors[start : start + m] = v
        rows = [
            {
                "id": start + i,
                "vector": v[i].tolist(),
                "document_id": f"d{(start + i) // 10}",
                "source": "pdf",
                "source_version": 1,
                "scope_id": int(scopes[start + i]),
                "classification": "internal",
                "expires_at": now - 10 if expired[start + i] else NEVER_EXPIRES,
                "title": "t",
                "uri": "u",
                "text": "x" * 200,
            }
            for i in range(m)
        ]
        if start < upsert_rows:
            ix.upsert([VectorRow(**r) for r in rows])
            if start + m >= upsert_rows:
                upsert_s = time.perf_counter() - t0
        else:
            ix.milvus.insert(rows)
        if (start // batch) % 20 == 0:
            log(
                f"inserted {start + m} rows, {(start + m) / (time.perf_counter() - t0):.0f} rows/s, "
                f"server RSS {_rss_mib(milvus.processes())} MiB"
            )
    ix.flush()
    insert_s = time.perf_counter() - t0
    log(f"insert+flush {insert_s:.0f}s; waiting for the {args.index} index")
    t0 = time.perf_counter()
    index_info = ix.wait_until_indexed(int(0.9 * n), args.index_timeout, poll_s=2)
    index_s = time.perf_counter() - t0
    log(f"index {index_s:.0f}s: {index_info}")
    rss_loaded = _rss_mib(milvus.processes())
    queries = source.sample(args.queries)  # from the stored vectors' distribution
    if args.plans:
        results = measure_plans(
            ix,
            vectors=vectors,
            scopes=scopes,
            expired=expired,
            total_scopes=args.total_scopes,
            readers=args.scopes,
            now=now,
            queries=queries,
            rounds=args.rounds,
            recall_queries=args.recall_queries,
            k=K,
            rng=rng,
            log=log,
        )
        out = {
            "rows": n,
            "backend": "server",
            "server_version": ix.server_version,
            "vectors": source.describe(),
            "vector_index": {"type": args.index, "nlist": args.nlist, "nprobe": args.nprobe},
            "total_scopes": args.total_scopes,
            "k": K,
            "insert_rows_per_s": round(n / insert_s),
            "index_build_s": round(index_s, 1),
            "server_rss_mib_after_load": rss_loaded,
            "queries_per_variant": args.rounds * args.queries,
            "recall_queries": args.recall_queries,
            "results": results,
            "machine": machine_details(),
        }
        print(json.dumps(out, indent=2))
        if args.json:
            args.json.write_text(json.dumps(out, indent=2))
        ix.close()
        return

    single = VectorIndex(
        milvus.uri, "scale", index_type=args.index, nlist=args.nlist, nprobe=args.nprobe, search_fanout=1
    )
    empty = VectorIndex(milvus.uri, "empty", index_type=args.index, nlist=args.nlist, nprobe=args.nprobe)
    params = {"metric_type": "COSINE", "params": ix.search_params(K)}
    allowed_sets = {s: sorted(rng.choice(args.total_scopes, s, replace=False).tolist()) for s in args.scopes}
    variants: dict[str, tuple[str, list[int] | None]] = {"unfiltered": ("raw", None)}
    for s, allowed in allowed_sets.items():
        variants[f"filtered {s} scopes"] = ("raw", allowed)
        variants[f"filtered {s} scopes (VectorIndex.search, one expression)"] = ("single", allowed)
        variants[f"filtered {s} scopes (VectorIndex.search, fan-out {SEARCH_FANOUT})"] = ("govrag", allowed)
        variants[f"filter floor {s} scopes (empty collection)"] = ("empty", allowed)

    def one(kind: str, allowed: list[int] | None, q: np.ndarray) -> list[int]:
        if kind in ("govrag", "single"):
            index = ix if kind == "govrag" else single
            return [h.id for h in index.search(q, k=K, scope_ids=allowed, now_epoch=now)]
        res = (empty if kind == "empty" else ix).milvus.search(  # Milvus's own search, no cascade
            [q.tolist()],
            filter=search_filter(allowed, now) if allowed else "",
            limit=K,
            search_params=params,
            output_fields=["scope_id"],
            consistency_level="Session",
        )
        return [int(h["id"]) for h in res[0]]

    for q in queries[:20]:  # warm-up
        one("raw", None, q)
    lat: dict[str, list[float]] = {k: [] for k in variants}
    hits: dict[str, list[int]] = {k: [] for k in variants}
    for r in range(args.rounds):
        for name, (kind, allowed) in variants.items():
            for q in queries:
                t = time.perf_counter()
                got = one(kind, allowed, q)
                lat[name].append((time.perf_counter() - t) * 1000)
                hits[name].append(len(got))
        log(f"search round {r + 1} done")
    base = percentile(lat["unfiltered"], 50)
    results = {}
    for name, (kind, allowed) in variants.items():
        if kind == "empty":
            p50 = percentile(lat[name], 50)
            results[name] = {
                "p50_ms": round(p50, 2),
                "p95_ms": round(percentile(lat[name], 95), 2),
                "ratio_p50": round(p50 / base, 2),
                "matching_rows": 0,
            }
            log(f"{name}: {results[name]}")
            continue
        mask = None
        if allowed is not None:
            mask = np.isin(scopes, allowed) & ~expired
        recalls = []
        for q in queries[: args.recall_queries]:
            truth = _exact_top(vectors, q, mask)
            got = set(one(kind, allowed, q))
            recalls.append(len(got & truth) / max(1, len(truth)))
        p50 = percentile(lat[name], 50)
        results[name] = {
            "p50_ms": round(p50, 2),
            "p95_ms": round(percentile(lat[name], 95), 2),
            "ratio_p50": round(p50 / base, 2),
            "mean_hits": round(float(np.mean(hits[name])), 1),
            "recall_at_10": round(float(np.mean(recalls)), 3),
            "matching_rows": int(mask.sum()) if mask is not None else int(n),
        }
        log(f"{name}: {results[name]}")

    purge_ids = sorted(rng.choice(n, min(args.purge, n), replace=False).tolist())
    t0 = time.perf_counter()
    ix.delete_ids(purge_ids)
    delete_s = time.perf_counter() - t0
    left = 0
    for i in range(0, len(purge_ids), 10_000):
        left += len(ix.query(ids_filter(purge_ids[i : i + 10_000]), limit=16384))
    purge_s = time.perf_counter() - t0
    count_after = ix.count()
    log(
        f"purge {len(purge_ids)} rows: delete {delete_s:.1f}s, +verify {purge_s:.1f}s, left {left}, count {count_after}"
    )

    out = {
        "rows": n,
        "backend": "server",
        "server_version": ix.server_version,
        "mode": "milvus-server on 127.0.0.1",
        "vectors": source.describe(),
        "index_types": ix.index_types(),
        "vector_index": {"type": args.index, "nlist": args.nlist, "nprobe": args.nprobe},
        "total_scopes": args.total_scopes,
        "search_consistency": "Session",
        "k": K,
        "server_config": server_config(args.segment_mb),
        "upsert_rows": upsert_rows,
        "upsert_rows_per_s": round(upsert_rows / upsert_s) if upsert_s else None,
        "insert_rows_per_s": round(n / insert_s),
        "insert_s": round(insert_s, 1),
        "index_build_s": round(index_s, 1),
        "index_info": {k: str(v) for k, v in index_info.items()},
        "server_rss_mib_after_load": rss_loaded,
        "queries_per_variant": args.rounds * args.queries,
        "recall_queries": args.recall_queries,
        "results": results,
        "purge": {
            "rows": len(purge_ids),
            "delete_s": round(delete_s, 2),
            "delete_and_verify_s": round(purge_s, 2),
            "rows_per_s": round(len(purge_ids) / purge_s),
            "left_after": left,
            "count_after": count_after,
        },
        "machine": machine_details(),
    }
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    for index in (ix, single, empty):
        index.close()


if __name__ == "__main__":
    main()
