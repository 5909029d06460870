"""The parse paths govrag used before its own PDF and HTML element builders, kept as the
reference that the text-kept test and ``bench/parse_rate.py`` compare the current path with.

PDF: pypdf inspection, then ``unstructured.partition_pdf(strategy="fast")`` (pdfminer layout
analysis and spaCy element classification). Confluence: storage format → HTML, then
``unstructured.partition_html`` with the page title first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ingest.sources.confluence.model import PageInfo


def reference_pdf_elements(path: Path) -> list[Any]:
    """The elements the former PDF path made of ``path`` (raises QuarantinedDocument as it did)."""
    from ingest.parse.offline import prepare_unstructured
    from ingest.parse.pdf import inspect_pdf

    inspect_pdf(path)
    prepare_unstructured()
    from unstructured.partition.pdf import partition_pdf

    return list(partition_pdf(filename=str(path), strategy="fast", languages=["eng"]))


def reference_page_elements(page: PageInfo) -> list[Any]:
    """The elements the former Confluence path made of one page."""
    from ingest.parse.offline import prepare_unstructured
    from ingest.sources.confluence.render import storage_to_html

    prepare_unstructured()
    from unstructured.documents.elements import Title
    from unstructured.partition.html import partition_html

    html = storage_to_html(page.body) if page.body_format == "storage" else page.body
    elements = list(partition_html(text=html, languages=[""])) if html and html.strip() else []
    return ([Title(page.title)] if page.title else []) + elements
