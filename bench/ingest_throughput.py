"""Ingest throughput of the sample corpus vs. the bare embedder on the same chunk texts.

    python bench/ingest_throughput.py [--copies 8]

The corpus is the generated sample (good PDFs only), copied ``--copies`` times under
distinct folders so there is enough text to time. Both numbers come from one process, the
embedder already loaded, so the ratio compares pipeline overhead (parse, clean, chunk,
catalog, Milvus) with embedding alone.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import machine_details
from embedding.local import LocalEmbedder
from governance.settings import Settings
from governance.stores import Stores
from govrag.sample_corpus import SAMPLE_POLICY, write_sample_corpus
from ingest.pipeline.run import Ingestor


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--copies", type=int, default=8)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="govrag-ingest-bench-"))
    src = tmp / "sample"
    write_sample_corpus(src, with_bad_inputs=False)
    corpus = tmp / "corpus"
    for i in range(args.copies):
        for sub in ("finance", "engineering", "handbook"):
            shutil.copytree(src / sub, corpus / sub / f"copy{i}")
    embedder = LocalEmbedder()
    embedder.embed(["warm up"])
    settings = Settings(
        home=tmp / "home", milvus_uri=str(tmp / "m.db"), policy=SAMPLE_POLICY, database_url=f"sqlite:///{tmp / 'c.db'}"
    )
    stores = Stores.open(settings)
    ingestor = Ingestor(stores, lambda: embedder)
    t = time.perf_counter()
    summary = ingestor.ingest_paths([corpus])
    pipeline_s = time.perf_counter() - t
    with stores.catalog.session() as s:
        from sqlalchemy import select

        from governance.catalog.models import ChunkRow

        texts = list(s.scalars(select(ChunkRow.text)))
    t = time.perf_counter()
    embedder.embed(texts)
    embed_s = time.perf_counter() - t
    stores.close()
    pipe_rate, emb_rate = summary.chunks_written / pipeline_s, len(texts) / embed_s
    out = {
        "documents": summary.new,
        "chunks": summary.chunks_written,
        "pipeline_chunks_per_s": round(pipe_rate, 1),
        "embedder_chunks_per_s": round(emb_rate, 1),
        "pipeline_vs_embedder": round(pipe_rate / emb_rate, 3),
        "parse_seconds": round(summary.parse_seconds, 2),
        "embed_seconds_in_pipeline": round(summary.embed_seconds, 2),
        "pipeline_seconds": round(pipeline_s, 2),
        "machine": machine_details(),
    }
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
