"""A PDF's text layer → ``unstructured`` elements, read with pdfium (``pypdfium2``).

``partition_pdf(strategy="fast")`` spent its time in pdfminer (content streams interpreted in
Python, then layout analysis, ≈ 2/3) and in spaCy classifying every text box (≈ 1/3), to pick
between element types of which chunking uses only one: ``Title`` starts a section. pdfium
extracts the same text in C, about 50× faster. Here its lines become blocks (paragraphs,
headings) by where they sit on the page, and a block is a ``Title`` when it looks like a
heading *on the page*: a short line in a larger or bold font. No NLP model is loaded.

Lines come in pdfium's reading order (content-stream order, column by column in the usual
two-column paper). A new block starts where the vertical gap to the previous line is over
half a line (pdfminer's ``line_margin`` default), where the text moves up or sideways (a new
column), or where the font size or weight changes (a heading). Every character pdfium reads
is kept; a hyphen pdfium marks at a line end (U+FFFE) goes back to "-" and a line break.
"""

from __future__ import annotations

import os
import re
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TITLE_MAX_WORDS = 12  # unstructured's title_max_word_length
TITLE_MAX_LINES = 2
TITLE_SIZE_RATIO = 1.15  # a heading's font is at least this much larger than the body's...
BOLD_WEIGHT = 600  # ...or at least this heavy (pdfium reports 400 regular, 700 bold)
LINE_MARGIN = 0.5  # gap between lines of one block, in line heights (pdfminer's default)

# pdfium's mark for a hyphen at a line end (it drops the line break there): restored as "-\n",
# so that clean_text joins the word exactly as it joins any other hyphenated line break.
_SOFT_HYPHEN = "\ufffe"
_ENDS_SENTENCE = re.compile(r"[.,;:!?]\s*$")

# pdfium is not thread-safe; one document at a time per process (the pool runs processes).
_pdfium_lock = threading.Lock()


def _fresh_lock_after_fork() -> None:
    # A worker forked while another thread of its parent read a PDF would inherit the lock held.
    global _pdfium_lock
    _pdfium_lock = threading.Lock()


os.register_at_fork(after_in_child=_fresh_lock_after_fork)


@dataclass(frozen=True)
class Line:
    """One line of text as pdfium reads it: its box, its first character's font size, and
    whether it is bold from its first to its last character."""

    text: str
    left: float
    bottom: float
    right: float
    top: float
    size: float
    bold: bool

    @property
    def height(self) -> float:
        return max(self.top - self.bottom, 0.0)


def _char_lines(textpage: Any, text: str) -> Iterator[Line]:
    """Split a page's text at pdfium's generated line breaks; place each line by its first
    and last visible characters (text offsets equal character indices: checked by the caller)."""
    import pypdfium2.raw as pdfium_c

    raw = textpage.raw
    start = 0
    for piece in text.split("\r\n"):
        end = start + len(piece)
        first = next((i for i in range(start, end) if not text[i].isspace()), None)
        if first is not None:
            last = next(i for i in range(end - 1, first - 1, -1) if not text[i].isspace())
            left, bottom, _, top = textpage.get_charbox(first, loose=True)
            _, _, right, _ = textpage.get_charbox(last, loose=True)
            yield Line(
                text=piece,
                left=left,
                bottom=bottom,
                right=right,
                top=top,
                size=round(float(pdfium_c.FPDFText_GetFontSize(raw, first)), 1),
                # bold from first to last: a run-in heading ("Guards. Each ...") stays in its paragraph
                bold=min(pdfium_c.FPDFText_GetFontWeight(raw, first), pdfium_c.FPDFText_GetFontWeight(raw, last))
                >= BOLD_WEIGHT,
            )
        start = end + 2


def page_lines(textpage: Any) -> list[Line]:
    """The lines of one page (``textpage``: a ``pypdfium2.PdfTextPage``)."""
    text = textpage.get_text_range()
    if len(text) != textpage.count_chars():
        # Characters pdfium could not map one-to-one (outside the BMP): no positions, one line
        # per text line, so the text is still all there.
        return [Line(t, 0.0, 0.0, 0.0, 0.0, 0.0, False) for t in text.split("\r\n") if t.strip()]
    return list(_char_lines(textpage, text))


def _starts_block(prev: Line, cur: Line) -> bool:
    if prev.size != cur.size or prev.bold != cur.bold:
        return True
    height = max(prev.height, cur.height)
    gap = prev.bottom - cur.top  # PDF y grows upwards: the next line of a block sits below
    if gap > LINE_MARGIN * height or gap < -LINE_MARGIN * height:
        return True
    return cur.left > prev.right or cur.right < prev.left  # no horizontal overlap: a new column


def blocks(lines: list[Line]) -> list[list[Line]]:
    """Consecutive lines grouped into blocks (paragraphs, headings)."""
    out: list[list[Line]] = []
    for line in lines:
        if out and not _starts_block(out[-1][-1], line):
            out[-1].append(line)
        else:
            out.append([line])
    return out


def body_size(lines: list[Line]) -> float:
    """The font size most of the document's characters are set in."""
    sizes: Counter[float] = Counter()
    for line in lines:
        sizes[line.size] += len(line.text)
    return sizes.most_common(1)[0][0] if sizes else 0.0


def _looks_like_title(block: list[Line], text: str, body: float) -> bool:
    first = block[0]
    if len(block) > TITLE_MAX_LINES or len(text.split()) > TITLE_MAX_WORDS or not first.size:
        return False
    if _ENDS_SENTENCE.search(text) or text.isnumeric():
        return False
    visible = [c for c in text if not c.isspace()]
    if sum(c.isalpha() for c in visible) < 0.5 * len(visible):  # "----", "12 / 3.4", figures
        return False
    return first.bold or (body > 0 and first.size >= TITLE_SIZE_RATIO * body)


def block_elements(pages: list[list[Line]]) -> list[Any]:
    """Blocks of every page → Title, ListItem and NarrativeText elements (page numbers kept)."""
    # unstructured's bullet helpers, not text_type's: importing that module imports spaCy.
    from unstructured.cleaners.core import clean_bullets
    from unstructured.documents.elements import ElementMetadata, ListItem, NarrativeText, Title
    from unstructured.nlp.patterns import UNICODE_BULLETS_RE

    body = body_size([line for page in pages for line in page])
    out: list[Any] = []
    for number, lines in enumerate(pages, start=1):
        for block in blocks(lines):
            text = "\n".join(line.text for line in block).replace(_SOFT_HYPHEN, "-\n").strip()
            if not text:
                continue
            meta = ElementMetadata(page_number=number)
            if UNICODE_BULLETS_RE.match(text):
                out.append(ListItem(text=clean_bullets(text), metadata=meta))
            elif _looks_like_title(block, text, body):
                out.append(Title(text=text, metadata=meta))
            else:
                out.append(NarrativeText(text=text, metadata=meta))
    return out


def read_lines(path: Path) -> list[list[Line]]:
    """Every page's lines. Each page is one short call into pdfium, so a parse deadline set
    around this (``ingest.parse.deadline``) stops it between pages."""
    import pypdfium2 as pdfium

    try:
        source: Any = str(path)
        source.encode("utf-8")
    except UnicodeEncodeError:  # an undecodable file name: hand pdfium the bytes
        source = path.read_bytes()
    with _pdfium_lock:
        pdf = pdfium.PdfDocument(source)
        try:
            pages = []
            for i in range(len(pdf)):
                page = pdf[i]
                textpage = page.get_textpage()
                try:
                    pages.append(page_lines(textpage))
                finally:
                    textpage.close()
                    page.close()
            return pages
        finally:
            pdf.close()


def pdf_elements(path: Path) -> list[Any]:
    """A PDF's text layer as unstructured elements (may be empty: the caller decides)."""
    return block_elements(read_lines(path))
