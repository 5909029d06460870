"""Catalog scope resolution at scale: ``ScopeRepository.allowed_scope_ids`` for users who
can read 10 / 1,000 / 10,000 of 100,000 scopes, with 1,000,000 documents in the catalog.
Goal: p50 <= 5 ms.

    python bench/scope_resolution.py [--scopes 100000] [--documents 1000000]
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/test] [--json out.json]

Without --database-url: SQLite in a temp dir. With a PostgreSQL URL a fresh database is
created next to the given one and dropped at the end. Rows are bulk-inserted with SQLAlchemy
Core (the catalog's own upsert path is measured by the tests, not here).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import make_url

from bench.machine import machine_details, percentile
from governance.catalog import Catalog
from governance.catalog.models import Document, Scope, ScopePrincipal
from governance.scope_resolver import ScopeResolver

USERS, GROUPS = 20_000, 20_000
READER_GROUPS = {10: "group:reads-10", 1_000: "group:reads-1k", 10_000: "group:reads-10k"}


def _populate(catalog: Catalog, n_scopes: int, n_docs: int, rng: random.Random) -> float:
    t = time.perf_counter()
    scopes, members = [], []
    for sid in range(1, n_scopes + 1):
        n_layers = rng.choice((1, 1, 2, 3))
        scopes.append(
            {
                "id": sid,
                "key": f"bench:{sid}",
                "fingerprint": hashlib.sha256(str(sid).encode()).hexdigest(),
                "n_layers": n_layers,
                "description": "",
            }
        )
        for layer in range(n_layers):
            principals = {f"user:u{rng.randrange(USERS)}@example.com" for _ in range(rng.randint(2, 5))}
            principals |= {f"group:g{rng.randrange(GROUPS)}" for _ in range(rng.randint(1, 3))}
            if layer == 0:
                principals |= {g for n, g in READER_GROUPS.items() if sid <= n}
            else:
                principals.add("group:everyone")
            members += [{"scope_id": sid, "layer": layer, "principal": p} for p in principals]
    with catalog.engine.begin() as conn:
        for i in range(0, len(scopes), 20_000):
            conn.execute(insert(Scope), scopes[i : i + 20_000])
        for i in range(0, len(members), 50_000):
            conn.execute(insert(ScopePrincipal), members[i : i + 50_000])
        for i in range(0, n_docs, 50_000):
            conn.execute(
                insert(Document),
                [
                    {
                        "id": f"pdf:bench/{d}.pdf",
                        "source": "pdf",
                        "uri": "u",
                        "title": "t",
                        "scope_id": 1 + d % n_scopes,
                        "current_version": 1,
                        "status": "active",
                    }
                    for d in range(i, min(n_docs, i + 50_000))
                ],
            )
    if catalog.engine.dialect.name == "postgresql":
        with catalog.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))
    return time.perf_counter() - t


def _measure(catalog: Catalog, reps: int, rng: random.Random) -> dict:
    """Uncached: ``ScopeRepository.allowed_scope_ids`` (the post-check's path and a cache miss).
    Cached: ``ScopeResolver.allowed`` with no ACL change in between (one generation read)."""
    out = {}
    for n, group in READER_GROUPS.items():
        # A reader: their own id, the group that opens n scopes' first layer, the group every
        # second/third layer lists (Confluence's "confluence-users"), and 20 ordinary groups.
        principals = {"user:reader@example.com", group, "group:everyone"} | {
            f"group:g{rng.randrange(GROUPS)}" for _ in range(20)
        }
        catalog.scopes.allowed_scope_ids(principals)  # warm
        lat, got = [], 0
        for _ in range(reps):
            t = time.perf_counter()
            got = len(catalog.scopes.allowed_scope_ids(principals))
            lat.append((time.perf_counter() - t) * 1000)
        resolver = ScopeResolver(catalog)
        resolver.allowed(principals)
        cached = []
        for _ in range(reps):
            t = time.perf_counter()
            resolver.allowed(principals)
            cached.append((time.perf_counter() - t) * 1000)
        out[f"reads_{n}"] = {
            "principals": len(principals),
            "allowed_scopes": got,
            "uncached_p50_ms": round(percentile(lat, 50), 2),
            "uncached_p95_ms": round(percentile(lat, 95), 2),
            "cached_p50_ms": round(percentile(cached, 50), 3),
            "cached_p95_ms": round(percentile(cached, 95), 3),
        }
    return out


def run(url: str, n_scopes: int, n_docs: int, reps: int) -> dict:
    rng = random.Random(0)
    catalog = Catalog(url)
    try:
        load_s = _populate(catalog, n_scopes, n_docs, rng)
        return {
            "backend": catalog.engine.dialect.name,
            "scopes": n_scopes,
            "documents": n_docs,
            "load_s": round(load_s, 1),
            **_measure(catalog, reps, rng),
        }
    finally:
        catalog.dispose()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scopes", type=int, default=100_000)
    ap.add_argument("--documents", type=int, default=1_000_000)
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--database-url", help="a PostgreSQL URL: a fresh database is made beside it")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        results.append(run(f"sqlite:///{tmp}/catalog.sqlite3", args.scopes, args.documents, args.reps))
    if args.database_url:
        admin = create_engine(args.database_url, isolation_level="AUTOCOMMIT")
        name = f"govrag_bench_{uuid.uuid4().hex[:8]}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            url = make_url(args.database_url).set(database=name).render_as_string(hide_password=False)
            results.append(run(url, args.scopes, args.documents, args.reps))
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    out = {"results": results, "machine": machine_details()}
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
