"""PDF text layer → elements with pdfium: blocks by position, titles by font, every character
kept; the limits and refusals of the PDF path around it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from governance.errors import QuarantinedDocument
from ingest.chunking import chunk_elements, clean_elements
from ingest.parse import pdf as pdf_parse
from ingest.parse import pdf_text
from ingest.parse.pdf_text import Line, block_elements, blocks
from testsupport.pdf_builder import TITLE, write_report_pdf


def _line(text: str, top: float, *, left: float = 72.0, size: float = 11.0, bold: bool = False) -> Line:
    return Line(text, left=left, bottom=top - size, right=left + 6 * len(text), top=top, size=size, bold=bold)


def test_lines_a_line_apart_form_one_block_and_a_wider_gap_starts_another() -> None:
    lines = [_line("first line of a paragraph", 700), _line("its second line", 688), _line("next", 640)]
    assert [[line.text for line in b] for b in blocks(lines)] == [
        ["first line of a paragraph", "its second line"],
        ["next"],
    ]


def test_text_moving_up_the_page_starts_a_block_as_a_new_column_does() -> None:
    lines = [_line("bottom of the left column", 100), _line("top of the right column", 700, left=320)]
    assert len(blocks(lines)) == 2


def test_a_short_bold_or_larger_line_is_a_title_and_body_text_is_narrative() -> None:
    page = [
        _line("Results and discussion", 700, size=14),
        _line("Method", 680, bold=True),
        _line("We measured the rate in one process and it rose.", 660),
        _line("The rate rose on every input we tried", 648),
        _line("A sentence ends here.", 600, bold=True),  # bold, but punctuated like a sentence
    ]
    got = [(e.category, e.text) for e in block_elements([page])]
    assert got[0] == ("Title", "Results and discussion")
    assert got[1] == ("Title", "Method")
    assert got[2][0] == "NarrativeText" and "every input" in got[2][1]
    assert got[3] == ("NarrativeText", "A sentence ends here.")


def test_a_hyphen_pdfium_marks_at_a_line_end_joins_the_word_after_cleaning() -> None:
    elements = clean_elements(block_elements([[_line("more difficult to com\ufffepile than", 700)]]))
    assert elements[0].text == "more difficult to compile than"


def test_a_generated_report_parses_to_its_title_headings_and_paragraphs(tmp_path: Path) -> None:
    path = write_report_pdf(tmp_path / "report.pdf", 2)
    elements = pdf_text.pdf_elements(path)
    titles = [e.text for e in elements if e.category == "Title"]
    assert titles[0] == TITLE
    assert len(titles) >= 3 and all(t.split(". ", 1)[0].isdigit() for t in titles[1:])
    paragraphs = [e for e in elements if e.category == "NarrativeText"]
    assert paragraphs and min(len(e.text.split()) for e in paragraphs) > 30  # wrapped lines kept together
    assert {e.metadata.page_number for e in elements} == {1, 2}


def test_a_parse_past_its_deadline_is_quarantined_as_timeout(tmp_path: Path, monkeypatch) -> None:
    path = write_report_pdf(tmp_path / "report.pdf", 1)
    monkeypatch.setattr(pdf_parse, "PARSE_SECONDS_BASE", 0.3)
    monkeypatch.setattr(pdf_parse, "PARSE_SECONDS_PER_PAGE", 0.0)

    def stuck(textpage: object) -> list[Line]:  # the injected fault: a page that never ends
        while True:
            time.sleep(0.01)

    monkeypatch.setattr(pdf_text, "page_lines", stuck)
    with pytest.raises(QuarantinedDocument) as err:
        pdf_parse.partition(path)
    assert err.value.reason == "timeout"


def test_a_pdf_whose_text_pdfium_cannot_read_is_a_parse_error(tmp_path: Path, monkeypatch) -> None:
    path = write_report_pdf(tmp_path / "report.pdf", 1)

    def broken(path: Path) -> list:  # the injected fault
        raise RuntimeError("pdfium failed")

    monkeypatch.setattr(pdf_text, "pdf_elements", broken)
    with pytest.raises(QuarantinedDocument) as err:
        pdf_parse.partition(path)
    assert err.value.reason == "parse_error" and "pdfium failed" in str(err.value)


def test_an_image_only_pdf_is_refused_as_having_no_text_layer(tmp_path: Path) -> None:
    from govrag.sample_corpus import _write_image_only_pdf

    _write_image_only_pdf(tmp_path / "scan.pdf")
    with pytest.raises(QuarantinedDocument) as err:
        pdf_parse.partition(tmp_path / "scan.pdf")
    assert err.value.reason == "no_text_layer"


def test_pdf_parsing_loads_no_nlp_model(tmp_path: Path, monkeypatch) -> None:
    import unstructured.nlp.tokenize as tokenize

    def no_model() -> None:  # the injected fault: spaCy's model is unavailable
        raise AssertionError("the PDF path loaded spaCy")

    monkeypatch.setattr(tokenize, "_get_nlp", no_model)
    elements, _ = pdf_parse.partition(write_report_pdf(tmp_path / "report.pdf", 1, seed=99))
    assert chunk_elements(clean_elements(elements), 1000)


def _parse_in_child(path: Path, queue: object) -> None:
    queue.put([e.text for e in pdf_text.pdf_elements(path)][:1])  # type: ignore[attr-defined]


def test_a_worker_forked_while_a_pdf_is_being_read_can_read_pdfs(tmp_path: Path) -> None:
    import multiprocessing

    path = write_report_pdf(tmp_path / "report.pdf", 1)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_parse_in_child, args=(path, queue), daemon=True)
    try:
        with pdf_text._pdfium_lock:  # another thread of the parent is inside pdfium at fork time
            child.start()
            assert queue.get(timeout=60) == [TITLE]
    finally:
        child.join(timeout=5)
        if child.is_alive():
            child.kill()
