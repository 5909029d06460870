"""Ingest throughput by source, and the pipeline's own ceiling, with 0, 1 and 2 parse workers.

    python bench/ingest_pipeline.py [--messages 10000] [--pages 500] [--pdf-pages 300]
                                    [--workers 0 1 2] [--repeat 3] [--json out.json]

Inputs, generated here unless named: a Slack export (zip, ``--messages``), a Confluence XML
space export (``--pages``), and PDFs: every readable PDF of ``--pdf-corpus`` (if given) plus
generated multi-page reports (``--pdf-pages`` pages in all, headings, paragraphs, lists).

Two measurements per source, each into fresh embedded stores (SQLite, Milvus Lite):

1. **end to end** with the real local embedder (all-MiniLM-L6-v2 on CPU) and the default
   parse workers, against the bare embedder on the same chunk texts:
   ``ratio = bare embedder seconds / pipeline seconds`` (1.0: the pipeline costs nothing
   beyond embedding);
2. **the pipeline's ceiling**: the same input with a stand-in embedder that returns fixed
   vectors at once, chunks/s for each worker count in ``--workers``: parsing, the catalog and
   the Milvus writes are all that is left.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ingest_sources import confluence_export, sentence, slack_export
from bench.machine import machine_details
from embedding.local import LocalEmbedder
from governance.settings import Settings
from governance.stores import Stores
from ingest.pipeline.run import Ingestor


class FixedVectors:
    """Stands in for the embedder: the same unit vector for every text, at once."""

    name = "fixed"

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._row = np.full(dim, 1 / np.sqrt(dim), dtype=np.float32)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return np.tile(self._row, (len(texts), 1))


def pdf_reports(dest: Path, pages: int, rng: random.Random, per_file: int = 15) -> Path:
    """Multi-page PDF reports (fpdf2): a heading per section, paragraphs and bullet lists."""
    from fpdf import FPDF

    dest.mkdir(parents=True, exist_ok=True)
    n = 0
    while n < pages:
        pdf = FPDF()
        pdf.set_auto_page_break(True, margin=15)
        count = min(per_file, pages - n)
        for _ in range(count):
            pdf.add_page()
            pdf.set_font("Helvetica", "B", 14)
            pdf.multi_cell(0, 8, sentence(rng, 5), new_x="LMARGIN", new_y="NEXT")
            pdf.set_font("Helvetica", size=10)
            for _ in range(4):
                pdf.multi_cell(0, 5, " ".join(sentence(rng, 14) for _ in range(5)), new_x="LMARGIN", new_y="NEXT")
                pdf.ln(2)
            for _ in range(3):
                pdf.multi_cell(0, 5, "- " + sentence(rng, 10), new_x="LMARGIN", new_y="NEXT")
        pdf.output(str(dest / f"report-{n:04d}.pdf"))
        n += count
    return dest


POLICY = """\
version: 1
access:
  - match: {source: pdf}
    allow: [["group:staff"]]
"""


def _stores(tmp: Path, name: str) -> Stores:
    policy = tmp / "policy.yaml"  # PDFs carry no permissions: one rule for all of them
    policy.write_text(POLICY)
    return Stores.open(
        Settings(
            home=tmp / f"home-{name}",
            milvus_uri=str(tmp / f"{name}.db"),
            policy=policy,
            database_url=f"sqlite:///{tmp / f'{name}.sqlite3'}",
            collection=f"bench_{name}",
        )
    )


def _chunk_texts(stores: Stores) -> list[str]:
    from sqlalchemy import select

    from governance.catalog.models import ChunkRow

    with stores.catalog.session() as s:
        return list(s.scalars(select(ChunkRow.text)))


def ingest_once(tmp: Path, name: str, paths: list[Path], embedder, workers: int | None) -> tuple[dict, list[str]]:
    stores = _stores(tmp, name)
    try:
        ingestor = Ingestor(stores, lambda: embedder, workers=workers)
        t = time.perf_counter()
        summary = ingestor.ingest_paths(paths)
        seconds = time.perf_counter() - t
        texts = _chunk_texts(stores)
    finally:
        stores.close()
    return {
        "workers": summary.parse_workers,
        "documents": summary.new,
        "quarantined": summary.quarantined,
        "chunks": summary.chunks_written,
        "seconds": round(seconds, 2),
        "chunks_per_second": round(summary.chunks_written / seconds, 1),
        "parse_seconds_summed": round(summary.parse_seconds, 2),
        "stage_chunks_per_second": summary.stage_rates(),
    }, texts


def bench_source(
    tmp: Path,
    source: str,
    paths: list[Path],
    embedder: LocalEmbedder,
    workers: list[int],
    *,
    ceiling_only: bool,
    repeat: int = 1,
) -> dict:
    result: dict = {"source": source}
    if not ceiling_only:
        # Pipeline and bare embedder alternate, ``repeat`` times: on a shared machine the load
        # changes between two runs minutes apart, so each ratio pairs neighbouring runs and
        # the median of the pairs is reported.
        pairs = []
        for n in range(repeat):
            end_to_end, texts = ingest_once(tmp, f"{source}-e2e{n}", paths, embedder, None)
            t = time.perf_counter()
            embedder.embed(texts)
            bare = time.perf_counter() - t
            end_to_end["bare_embedder_seconds"] = round(bare, 2)
            end_to_end["bare_embedder_chunks_per_second"] = round(len(texts) / bare, 1)
            end_to_end["ratio_vs_embedder"] = round(bare / end_to_end["seconds"], 3)
            end_to_end["load_average"] = os.getloadavg()
            pairs.append(end_to_end)
        median = sorted(pairs, key=lambda r: r["ratio_vs_embedder"])[len(pairs) // 2]
        result["end_to_end"] = {**median, "ratios": [r["ratio_vs_embedder"] for r in pairs]}
    fixed = FixedVectors(embedder.dim)
    ceiling = {w: ingest_once(tmp, f"{source}-w{w}", paths, fixed, w)[0] for w in workers}
    result["ceiling"] = ceiling
    if 1 in ceiling and 2 in ceiling:
        result["ceiling_2_vs_1_worker"] = round(ceiling[2]["chunks_per_second"] / ceiling[1]["chunks_per_second"], 2)
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--pages", type=int, default=500)
    ap.add_argument("--pdf-pages", type=int, default=300)
    ap.add_argument("--pdf-corpus", type=Path, default=None, help="a folder of real PDFs to add")
    ap.add_argument("--sources", nargs="+", default=["pdf", "slack", "confluence"])
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--ceiling-only", action="store_true", help="only the fixed-vector runs (no real embedder)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=1, help="end-to-end / bare embedder pairs per source (median)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="govrag-pipeline-bench-"))
    os.environ["GOVRAG_HOME"] = str(tmp / "home")  # zip work dirs
    inputs: dict[str, list[Path]] = {}
    if "pdf" in args.sources:
        inputs["pdf"] = [pdf_reports(tmp / "pdf", args.pdf_pages, rng)]
        if args.pdf_corpus:
            inputs["pdf"].append(args.pdf_corpus)
    if "slack" in args.sources:
        inputs["slack"] = [slack_export(tmp / "slack", args.messages, rng)]
    if "confluence" in args.sources:
        inputs["confluence"] = [confluence_export(tmp / "confluence", args.pages, rng)]
    embedder = LocalEmbedder()
    embedder.embed(["warm up"])
    results = [
        bench_source(tmp, source, paths, embedder, args.workers, ceiling_only=args.ceiling_only, repeat=args.repeat)
        for source, paths in inputs.items()
    ]
    out = {
        "machine": machine_details(),
        "load_average": os.getloadavg(),
        "default_workers": Settings().parse_workers,
        "inputs": {"messages": args.messages, "pages": args.pages, "pdf_pages": args.pdf_pages},
        "results": results,
    }
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
