"""The faster parse paths keep the text: on every real corpus PDF and Confluence page, the
chunks hold at least 99% of the characters the former path (partition_pdf fast strategy;
partition_html with spaCy classification) extracted, compared as multisets of non-whitespace
characters after cleaning."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from governance.errors import QuarantinedDocument
from ingest.chunking import chunk_elements, clean_elements
from ingest.sources.confluence.render import PageParser
from ingest.sources.pdf import PdfFile
from testsupport.parse_reference import corpus_confluence_pages, reference_page_elements, reference_pdf_elements
from testsupport.paths import CORPUS

KEPT = 0.99
pytestmark = pytest.mark.corpus


def _characters(elements: list) -> Counter[str]:
    chunks = chunk_elements(clean_elements(elements), 1000)
    return Counter(c for chunk in chunks for c in chunk if not c.isspace())


def kept(new: Counter[str], old: Counter[str]) -> float:
    """The share of the former path's characters the new chunks hold (1.0: all of them)."""
    return sum((new & old).values()) / max(sum(old.values()), 1)


def test_the_measure_fails_when_text_is_lost() -> None:
    old = Counter("a" * 100)
    assert kept(Counter("a" * 98), old) < KEPT <= kept(Counter("a" * 100), old)


def _pdfs() -> list[Path]:
    return sorted((CORPUS / "pdf").glob("*.pdf")) if CORPUS.is_dir() else []


@pytest.mark.parametrize("path", _pdfs(), ids=lambda p: p.name)
def test_corpus_pdf_chunks_keep_the_text_the_former_path_extracted(corpus: Path, path: Path) -> None:
    try:
        old = _characters(reference_pdf_elements(path))
    except QuarantinedDocument as refused:  # refused before: refused now, for the same reason
        with pytest.raises(QuarantinedDocument) as now:
            PdfFile(path).parse()
        assert now.value.reason == refused.reason
        return
    assert kept(_characters(PdfFile(path).parse().elements), old) >= KEPT


def test_corpus_confluence_page_chunks_keep_the_text_the_former_path_extracted(corpus: Path) -> None:
    pages = corpus_confluence_pages(corpus)
    assert len(pages) >= 5
    for page in pages:
        old = _characters(reference_page_elements(page))
        assert kept(_characters(PageParser(page).parse().elements), old) >= KEPT, page.id
