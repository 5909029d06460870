"""The parse paths govrag used before its own PDF and HTML element builders, kept as the
reference that the text-kept test and ``bench/parse_rate.py`` compare the current path with.

PDF: pypdf inspection and text-layer scan, then ``unstructured.partition_pdf(strategy="fast")`` (pdfminer layout
analysis and spaCy element classification). Confluence: storage format → HTML, then
``unstructured.partition_html`` with the page title first, its paragraphs classified by
spaCy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ingest.sources.confluence.model import PageInfo


def reference_pdf_elements(path: Path) -> list[Any]:
    """The elements the former PDF path made of ``path`` (raises QuarantinedDocument as it did)."""
    from governance.errors import QuarantinedDocument
    from ingest.parse.offline import prepare_unstructured
    from ingest.parse.pdf import inspect_pdf, scan_text_layer

    inspect_pdf(path)
    has_text, has_images = scan_text_layer(path)  # the former path looked for a text layer first
    if not has_text:
        reason = "no_text_layer" if has_images else "no_text"
        raise QuarantinedDocument(f"{path}: no text ({reason})", reason=reason, path=str(path))
    prepare_unstructured()
    from unstructured.partition.pdf import partition_pdf

    return list(partition_pdf(filename=str(path), strategy="fast", languages=["eng"]))


def reference_page_elements(page: PageInfo) -> list[Any]:
    """The elements the former Confluence path made of one page."""
    from ingest.parse.html_classify import nlp_classifier
    from ingest.parse.offline import prepare_unstructured
    from ingest.sources.confluence.render import storage_to_html

    prepare_unstructured()
    from unstructured.documents.elements import Title
    from unstructured.partition.html import partition_html

    html = storage_to_html(page.body) if page.body_format == "storage" else page.body
    with nlp_classifier():
        elements = list(partition_html(text=html, languages=[""])) if html and html.strip() else []
    return ([Title(page.title)] if page.title else []) + elements


def corpus_confluence_pages(corpus: Path) -> list[PageInfo]:
    """The Confluence pages of the real corpus: those of its HTML space export (read by the
    source), and the rendered pages a Confluence Cloud connector downloaded (view HTML)."""
    from governance.policy import Policy
    from ingest.sources.confluence import SOURCE
    from ingest.sources.protocol import SourceContext

    root = corpus / "confluence"
    pages: list[PageInfo] = []
    export = root / "html-space-export-meridius"
    if export.is_dir():
        ctx = SourceContext(policy=Policy(), work_dir=corpus, site="corpus.example")
        for item in SOURCE.open(export, ctx).items:
            parser = parser_of(item.parse)
            if parser is not None and hasattr(parser, "page"):
                pages.append(parser.page)
    for html in sorted((root / "unstructured-ingest-cloud-pages" / "downloads").glob("*.html")):
        pages.append(PageInfo(id=html.stem, title=html.stem, space="CLOUD", body=html.read_text(), body_format="view"))
    return pages


def parser_of(parse: Any) -> Any:
    """The Parser object behind a SourceItem's ``parse`` (a bound method, maybe wrapped)."""
    import inspect

    from ingest.sources.base import SizeChecked

    for _ in range(4):
        if hasattr(parse, "__self__"):
            return parse.__self__
        if isinstance(parse, SizeChecked):
            parse = parse.parse
            continue
        inner = getattr(parse, "__wrapped__", None) or inspect.getclosurevars(parse).nonlocals.get("parse")
        if inner is None:
            return None
        parse = inner
    return None
