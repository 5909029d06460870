"""Per-core parse rate: parse → clean → chunk in one process, per source, current path vs
the former one (``--baseline`` adds it; ``testsupport/parse_reference.py`` keeps it).

    python bench/parse_rate.py [--baseline] [--repeat 2] [--pdf-pages 40] [--pages 120]
                               [--messages 4000] [--json out.json]

Inputs: the real PDFs and Confluence exports under ``../shared/corpus`` when present, plus
generated ones (a multi-page PDF report written with fpdf2, an XML Confluence space, a Slack
export). Every document is parsed, cleaned and chunked (1,000 characters, the default) the
way ``ingest.pipeline.prepare.read_text`` does; documents a path refuses are counted, not
timed twice. NLP models are loaded before the clock starts (one warm-up document per path);
each path is timed ``--repeat`` times, alternating, and the best run is kept, because the
machines these run on are shared and noisy. Rates are chunks per second of one process.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ingest_sources import sentence
from bench.machine import machine_details
from governance.errors import QuarantinedDocument, SourceError
from governance.policy import load_policy
from ingest.chunking import chunk_elements, clean_elements
from testsupport.parse_reference import corpus_confluence_pages
from testsupport.paths import CORPUS, SAMPLE_POLICY
from testsupport.pdf_builder import write_report_pdf
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

MAX_CHARACTERS = 1000


def write_space(dest: Path, pages: int, rng: random.Random) -> Path:
    """An XML Confluence space export: headings, paragraphs, lists, a table, a code macro."""
    space = CSpace("BENCH", "Bench space", view_groups=["staff"])
    for i in range(pages):
        body = "".join(
            f"<h2>{sentence(rng, 4)}</h2><p>{sentence(rng, 60)}</p><ul><li>{sentence(rng, 8)}</li>"
            f"<li>{sentence(rng, 8)}</li></ul>"
            f"<table><tr><th>metric</th><th>value</th></tr><tr><td>{sentence(rng, 2)}</td><td>{i}</td></tr></table>"
            '<ac:structured-macro ac:name="code"><ac:plain-text-body><![CDATA[make deploy]]>'
            "</ac:plain-text-body></ac:structured-macro>"
            for _ in range(3)
        )
        space.pages.append(CPage(str(1000 + i), f"Page {i}", body))
    return write_confluence_xml(dest, [space], [CUser("u0", "user0", "user0@corp.example")])


def write_slack(dest: Path, messages: int, rng: random.Random) -> Path:
    """A Slack export: 10 channels, a fifth of the talk in threads."""
    users = [SUser(f"U{i:04d}", f"user{i}", f"user{i}@corp.example") for i in range(40)]
    convs = [SConv(f"C{i:03d}", f"channel-{i}", "public", [u.id for u in users]) for i in range(10)]
    for n in range(messages):
        conv = rng.choice(convs)
        offset = n * 37.0
        m = msg(rng.choice(conv.members), sentence(rng, 22), offset)
        if n % 5 == 1:
            root = msg(rng.choice(conv.members), sentence(rng, 20), offset - 1, reply_count=1)
            root["thread_ts"] = root["ts"]
            m["thread_ts"] = root["ts"]
            conv.days.setdefault(time.strftime("%Y-%m-%d", time.gmtime(float(root["ts"]))), []).append(root)
        conv.days.setdefault(time.strftime("%Y-%m-%d", time.gmtime(float(m["ts"]))), []).append(m)
    for c in convs:
        for msgs in c.days.values():
            msgs.sort(key=lambda x: float(x["ts"]))
    return write_slack_export(dest, users, convs)


@dataclass
class Doc:
    name: str
    current: Callable[[], list[Any]]
    reference: Callable[[], list[Any]] | None


def pdf_docs(paths: list[Path]) -> list[Doc]:
    from ingest.sources.pdf import PdfFile
    from testsupport.parse_reference import reference_pdf_elements

    return [Doc(p.name, lambda p=p: PdfFile(p).parse().elements, lambda p=p: reference_pdf_elements(p)) for p in paths]


def source_docs(kind: str, path: Path) -> list[Doc]:
    from ingest.sources import discover
    from ingest.sources.confluence.render import PageParser
    from testsupport.parse_reference import parser_of, reference_page_elements

    docs: list[Doc] = []
    try:
        items = list(discover(path, kind, load_policy(SAMPLE_POLICY), site="bench.example"))
    except SourceError as exc:  # a corpus folder that is not an export of this kind
        print(f"skipped {path.name}: {exc}", file=sys.stderr)
        return docs
    for item in items:
        parser = parser_of(item.parse)
        ref = None
        if isinstance(parser, PageParser):
            ref = lambda page=parser.page: reference_page_elements(page)  # noqa: E731
        docs.append(Doc(item.rel_path, lambda item=item: item.parse().elements, ref))
    return docs


def page_docs(pages: list[Any]) -> list[Doc]:
    from ingest.sources.confluence.render import PageParser
    from testsupport.parse_reference import reference_page_elements

    return [
        Doc(p.id, lambda p=p: PageParser(p).parse().elements, lambda p=p: reference_page_elements(p)) for p in pages
    ]


def chunks_of(parse: Callable[[], list[Any]]) -> int:
    """parse → clean → chunk, as the pipeline does; the number of chunks (0: refused)."""
    try:
        elements = clean_elements(parse())
    except QuarantinedDocument:
        return 0
    return len(chunk_elements(elements, MAX_CHARACTERS)) if elements else 0


def clear_nlp_caches() -> None:
    """Forget unstructured's memoized spaCy results: a second pass over the same texts would
    otherwise time dictionary look-ups, not parsing."""
    import unstructured.nlp.tokenize as tokenize

    for name in ("_process_cached", "word_tokenize", "pos_tag", "_tokenize_for_cache"):
        cached = getattr(tokenize, name, None)
        if hasattr(cached, "cache_clear"):
            cached.cache_clear()


def time_path(docs: list[Doc], which: str) -> tuple[float, int, int]:
    """Seconds, chunks and parsed documents for one pass over ``docs``."""
    clear_nlp_caches()
    chunks = parsed = 0
    t = time.perf_counter()
    for d in docs:
        fn = d.current if which == "current" else d.reference
        if fn is None:
            continue
        n = chunks_of(fn)
        chunks += n
        parsed += n > 0
    return time.perf_counter() - t, chunks, parsed


def measure(name: str, docs: list[Doc], repeat: int, baseline: bool) -> dict[str, Any]:
    paths = ["current"] + (["reference"] if baseline and any(d.reference for d in docs) else [])
    for which in paths:  # warm-up: NLP models and imports load outside the clock
        for d in docs:
            if chunks_of(d.current if which == "current" else d.reference or d.current):
                break
    best: dict[str, tuple[float, int, int]] = {}
    for _ in range(repeat):
        for which in paths:
            run = time_path(docs, which)
            if which not in best or run[0] < best[which][0]:
                best[which] = run
    out: dict[str, Any] = {"source": name, "documents": len(docs)}
    for which, (seconds, chunks, parsed) in best.items():
        out[which] = {
            "seconds": round(seconds, 3),
            "chunks": chunks,
            "parsed_documents": parsed,
            "chunks_per_second": round(chunks / seconds, 1) if seconds else None,
        }
    if "reference" in out and out["reference"]["chunks_per_second"]:
        out["speedup"] = round(out["current"]["chunks_per_second"] / out["reference"]["chunks_per_second"], 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", action="store_true", help="also time the former path (same run)")
    ap.add_argument("--repeat", type=int, default=2, help="passes per path; the best is kept")
    ap.add_argument("--pdf-pages", type=int, default=40, help="pages of the generated PDF report")
    ap.add_argument("--pages", type=int, default=120, help="pages of the generated Confluence space")
    ap.add_argument("--messages", type=int, default=4000, help="messages of the generated Slack export")
    ap.add_argument("--only", choices=["pdf", "confluence", "slack"], action="append", help="limit to sources")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="govrag-parse-rate-"))
    os.environ.setdefault("GOVRAG_HOME", str(tmp / "home"))
    only = set(args.only or ["pdf", "confluence", "slack"])
    sets: list[tuple[str, list[Doc]]] = []
    if "pdf" in only:
        if CORPUS.is_dir():
            sets.append(("pdf (corpus)", pdf_docs(sorted((CORPUS / "pdf").glob("*.pdf")))))
        sets.append(
            ("pdf (generated)", pdf_docs([write_report_pdf(tmp / "report.pdf", args.pdf_pages, seed=args.seed)]))
        )
    if "confluence" in only:
        if CORPUS.is_dir():
            sets.append(("confluence (corpus)", page_docs(corpus_confluence_pages(CORPUS))))
        sets.append(("confluence (generated)", source_docs("confluence", write_space(tmp / "space", args.pages, rng))))
    if "slack" in only:
        if CORPUS.is_dir():
            viewer = CORPUS / "slack" / "slack-export-viewer" / "testarchive"
            sets.append(("slack (corpus)", source_docs("slack", viewer)))
        sets.append(("slack (generated)", source_docs("slack", write_slack(tmp / "slack", args.messages, rng))))
    results = []
    for name, docs in sets:
        r = measure(name, docs, args.repeat, args.baseline)
        results.append(r)
        print(json.dumps(r), flush=True)
    out = {"machine": machine_details(), "load_average": os.getloadavg(), "results": results}
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
