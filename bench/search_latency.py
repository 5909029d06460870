"""Search latency at N chunks on Milvus Lite: ACL-filtered (scope_id in [...] and not expired)
vs unfiltered, p50/p95, in one run so the ratio is fair on a noisy machine.

    python bench/search_latency.py [--rows 100000] [--queries 200] [--mode server|file]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import machine_details, percentile  # noqa: E402
from governance.milvus_local import ensure_server, stop_server  # noqa: E402
from governance.vector_index import NEVER_EXPIRES, VectorIndex, search_filter  # noqa: E402

DIM = 384
N_SCOPES = 10_000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--mode", choices=["server", "file"], default="server",
                    help="server: the embedded default (local milvus-lite server); file: in-process .db")
    ap.add_argument("--json", type=Path, help="also write results here")
    ap.add_argument("--scopes", type=int, nargs="+", default=[10, 100, 1000],
                    help="allowed-scope counts to measure (of 10,000 scopes)")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="govrag-bench-"))
    uri = ensure_server(tmp).uri if args.mode == "server" else str(tmp / "bench.db")
    ix = VectorIndex(uri, "bench")
    rng = np.random.default_rng(42)
    now = int(time.time())
    t0 = time.perf_counter()
    batch = 5000
    for start in range(0, args.rows, batch):
        n = min(batch, args.rows - start)
        vecs = rng.standard_normal((n, DIM), dtype=np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        scopes = rng.integers(0, N_SCOPES, n)
        expired = rng.random(n) < 0.05
        ix.upsert([{"id": start + i, "vector": vecs[i].tolist(), "document_id": f"d{(start + i) // 10}",
                    "source": "pdf", "source_version": 1, "scope_id": int(scopes[i]), "classification": "internal",
                    "expires_at": now - 10 if expired[i] else NEVER_EXPIRES, "title": "t", "uri": "u",
                    "text": "x" * 200} for i in range(n)])
    ix.flush()  # as an ingest run does at its end: searches then use the sealed HNSW index
    insert_s = time.perf_counter() - t0
    client = ix._client
    queries = rng.standard_normal((args.queries, DIM), dtype=np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    params = {"metric_type": "COSINE", "params": {"ef": 64}}

    def run(expr: str) -> tuple[list[float], float]:
        lat, got = [], 0
        for q in queries:
            t = time.perf_counter()
            res = client.search("bench", data=[q.tolist()], filter=expr, limit=10, search_params=params,
                                output_fields=["scope_id"])
            lat.append((time.perf_counter() - t) * 1000)
            got += len(res[0])
        return lat, got / len(queries)

    run("")  # warm-up
    results = {}
    # Interleave the variants in rounds so drift on a noisy machine hits them all alike.
    variants = {"unfiltered": ""}
    for n_allowed in args.scopes:
        allowed = sorted(rng.choice(N_SCOPES, n_allowed, replace=False).tolist())
        variants[f"filtered {n_allowed} scopes"] = search_filter(allowed, now)
    lat_all: dict[str, list[float]] = {k: [] for k in variants}
    hits_all: dict[str, float] = {}
    for _ in range(args.rounds):
        for name, expr in variants.items():
            lat, hits = run(expr)
            lat_all[name] += lat
            hits_all[name] = hits
    base = percentile(lat_all["unfiltered"], 50)
    for name, lat in lat_all.items():
        results[name] = {"p50_ms": round(percentile(lat, 50), 2), "p95_ms": round(percentile(lat, 95), 2),
                         "ratio_p50": round(percentile(lat, 50) / base, 2), "mean_hits": round(hits_all[name], 1)}
    out = {"rows": args.rows, "mode": args.mode, "insert_rows_per_s": round(args.rows / insert_s),
           "queries_per_variant": args.rounds * args.queries, "results": results, "machine": machine_details()}
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    ix.close()
    if args.mode == "server":
        stop_server(tmp)


if __name__ == "__main__":
    main()
