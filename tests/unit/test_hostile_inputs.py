"""Hostile inputs met by pure code: ids too long for the catalog and the index are bounded
and stay distinct; a PDF's weight counts a form each time a page uses it (every hostile
input through the pipeline: tests/integration/test_hostile_inputs.py)."""

from __future__ import annotations

from pathlib import Path

from ingest.parse import pdf as pdf_parse
from testsupport.hostile_inputs import TEST, write_case


def test_long_ids_are_bounded_and_distinct() -> None:
    from ingest.sources.base import MAX_ID_BYTES, bounded_id

    a, b = bounded_id("slack:T:" + "9" * 5000), bounded_id("slack:T:" + "9" * 4999 + "8")
    assert a != b and len(a.encode()) <= MAX_ID_BYTES and len(b.encode()) <= MAX_ID_BYTES
    assert bounded_id("pdf:plain name.pdf") == "pdf:plain name.pdf"  # ordinary ids never change
    esc = bounded_id("pdf:new\nline.pdf")
    assert "\n" not in esc and esc != bounded_id("pdf:new%0Aline.pdf")
    assert bounded_id("x\udcff").encode("utf-8")  # encodable


def test_pdf_weight_counts_forms_per_use(tmp_path: Path) -> None:
    from pypdf import PdfReader

    from ingest.parse.pdf import _glyphs, _PageWeigher, _stream_bytes

    assert _glyphs(b"BT (hello) Tj [(a) 3 (b)] TJ <414243> Tj ET") >= 10
    assert _glyphs(b"(\\)" + b"x" * 1000 + b")") >= 1000  # an escaped paren does not end the string
    assert _glyphs(b")))))(abc)") == 4
    case = write_case("pdf_form_fanout", tmp_path, TEST)
    page = PdfReader(str(case.path)).pages[0]
    size, glyphs = _PageWeigher().weigh(_stream_bytes(page.get("/Contents"), 1 << 20), page.get("/Resources"))
    assert glyphs > pdf_parse.MAX_PAGE_GLYPHS
