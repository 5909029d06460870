"""Ingest throughput of a generated Slack export and Confluence space vs. the bare embedder.

    python bench/ingest_sources.py [--messages 50000] [--pages 2000] [--json out.json]

The Slack export (zip, 40 channels, 200 users, a fifth of the talk in threads, private
channels and DMs) and the Confluence space (XML export zip, nested restrictions) are
generated here. Each is ingested into fresh embedded stores (SQLite catalog, in-process
Milvus Lite) with the embedder already loaded; then the chunk texts the pipeline stored are
embedded again by the bare embedder. The ratio pipeline rate / embedder rate is the
issue's goal (≥ 80%). Discovery (zip extraction, JSON/XML reading, grouping) is inside the
pipeline time.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import machine_details
from embedding.local import LocalEmbedder
from governance.settings import Settings
from governance.stores import Stores
from ingest.pipeline.run import Ingestor
from testsupport.sources_fixtures import (
    CPage,
    CSpace,
    CUser,
    SConv,
    SUser,
    msg,
    write_confluence_xml,
    write_slack_export,
)

WORDS = (
    "deploy release database migration latency budget customer invoice roadmap incident review "
    "kubernetes cluster canary rollback alert dashboard metric quarterly revenue forecast hiring "
    "design document api schema token cache queue worker batch storage backup restore audit "
    "policy retention compliance security patch upgrade version branch merge test flaky build "
    "pipeline runner staging production region failover replica index query search vector"
).split()


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def slack_export(dest: Path, messages: int, rng: random.Random) -> Path:
    users = [SUser(f"U{i:04d}", f"user{i}", f"user{i}@corp.example", guest=(i % 50 == 0)) for i in range(200)]
    convs = [SConv(f"C{i:03d}", f"channel-{i}", "public", [u.id for u in rng.sample(users, 30)]) for i in range(30)]
    convs += [SConv(f"G{i:03d}", f"private-{i}", "private", [u.id for u in rng.sample(users, 8)]) for i in range(6)]
    convs += [SConv(f"D{i:03d}", f"D{i:03d}", "im", [u.id for u in rng.sample(users, 2)]) for i in range(4)]
    days = max(1, messages // 400)
    offset = 0.0
    n = 0
    while n < messages:
        conv = rng.choice(convs)
        day = rng.randrange(days)
        base = day * 86400 + rng.randrange(80000) + (offset := offset + 0.001)
        author = rng.choice(conv.members)
        ts = 1_760_000_000 + base
        if rng.random() < 0.2 and n + 4 <= messages:
            root = f"{ts:.6f}"
            thread = [msg(author, sentence(rng, 25), 0, thread_ts=root, reply_count=3)]
            thread += [msg(rng.choice(conv.members), sentence(rng, 20), 0, thread_ts=root) for _ in range(3)]
            for r, m in enumerate(thread):
                m["ts"] = f"{ts + 10 * r:.6f}"
                conv.days.setdefault(time.strftime("%Y-%m-%d", time.gmtime(float(m["ts"]))), []).append(m)
            n += 4
        else:
            m = msg(author, sentence(rng, 22), 0)
            m["ts"] = f"{ts:.6f}"
            conv.days.setdefault(time.strftime("%Y-%m-%d", time.gmtime(ts)), []).append(m)
            n += 1
    for c in convs:
        for msgs in c.days.values():
            msgs.sort(key=lambda m: float(m["ts"]))
    return write_slack_export(dest, users, convs, as_zip=True)


def confluence_export(dest: Path, pages: int, rng: random.Random) -> Path:
    users = [CUser(f"u{i}", f"user{i}", f"user{i}@corp.example") for i in range(50)]
    space = CSpace("BENCH", "Bench space", view_groups=["staff"])
    for i in range(pages):
        parent = str(1000 + rng.randrange(i)) if i else None
        restricted = rng.random() < 0.1
        body = "".join(
            f"<h2>{sentence(rng, 4)}</h2><p>{sentence(rng, 60)}</p><ul><li>{sentence(rng, 8)}</li>"
            f"<li>{sentence(rng, 8)}</li></ul>"
            for _ in range(3)
        )
        space.pages.append(
            CPage(str(1000 + i), f"Page {i}", body, parent=parent, read_groups=["leads"] if restricted else [])
        )
    return write_confluence_xml(dest, [space], users, as_zip=True)


def run(kind: str, path: Path, units: int, unit: str, embedder: LocalEmbedder, tmp: Path) -> dict:
    settings = Settings(
        home=tmp / f"home-{kind}",
        milvus_uri=str(tmp / f"{kind}.db"),
        policy=None,
        database_url=f"sqlite:///{tmp / f'{kind}.sqlite3'}",
        collection=f"bench_{kind}",
    )
    stores = Stores.open(settings)
    ingestor = Ingestor(stores, lambda: embedder)
    t = time.perf_counter()
    summary = ingestor.ingest_paths([path])
    pipeline_s = time.perf_counter() - t
    from sqlalchemy import select

    from governance.catalog.models import ChunkRow

    with stores.catalog.session() as s:
        texts = list(s.scalars(select(ChunkRow.text)))
    t = time.perf_counter()
    embedder.embed(texts)
    embed_s = time.perf_counter() - t
    stores.close()
    return {
        "source": kind,
        unit: units,
        "documents": summary.new,
        "quarantined": summary.quarantined,
        "chunks": len(texts),
        "pipeline_seconds": round(pipeline_s, 2),
        "pipeline_embed_seconds": round(summary.embed_seconds, 2),
        "pipeline_parse_seconds": round(summary.parse_seconds, 2),
        f"{unit}_per_second": round(units / pipeline_s, 1),
        "pipeline_chunks_per_second": round(len(texts) / pipeline_s, 1),
        "embedder_seconds": round(embed_s, 2),
        "embedder_chunks_per_second": round(len(texts) / embed_s, 1),
        "ratio_vs_embedder": round(embed_s / pipeline_s, 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=50_000)
    ap.add_argument("--pages", type=int, default=2_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument(
        "--min-chunks",
        type=int,
        default=None,
        help="override ingest.pipeline.run.MIN_EMBED_CHUNKS (smallest embed batch)",
    )
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    import ingest.pipeline.run as run_mod

    if args.min_chunks:
        run_mod.MIN_EMBED_CHUNKS = args.min_chunks
    rng = random.Random(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="govrag-sources-bench-"))
    t = time.perf_counter()
    slack_zip = slack_export(tmp / "slack", args.messages, rng)
    conf_zip = confluence_export(tmp / "confluence", args.pages, rng)
    gen_s = time.perf_counter() - t
    embedder = LocalEmbedder()
    embedder.embed(["warm up"])
    import os

    os.environ["GOVRAG_HOME"] = str(tmp / "home")  # zip work dirs
    results = [
        run("slack", slack_zip, args.messages, "messages", embedder, tmp),
        run("confluence", conf_zip, args.pages, "pages", embedder, tmp),
    ]
    out = {
        "machine": machine_details(),
        "load_average": os.getloadavg(),
        "embed_batch_chunks": [run_mod.MIN_EMBED_CHUNKS, run_mod.MAX_EMBED_CHUNKS],
        "generate_seconds": round(gen_s, 2),
        "results": results,
    }
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
