"""PDF → text elements: pdfium reads the text layer, :mod:`ingest.parse.pdf_text` makes
``unstructured`` elements of it (``Title``/``ListItem``/``NarrativeText``).

Before parsing, pypdf inspects the file so that encrypted, corrupt and image-only PDFs are
refused with a reason instead of becoming empty documents, and measures what each page
would make a text extractor do: decoded content bytes and glyphs (Form XObjects counted once
per use, so a form drawn 1000 times weighs 1000 forms). A page over the limits is refused
(``too_large``) before the extractor sees it. Parsing then runs under a wall-clock limit
(``timeout``), checked between pages.
Limits (module constants, named in every refusal): docs/hostile_inputs.md.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from governance.errors import QuarantinedDocument
from ingest.parse.deadline import ParseTimeout, deadline

log = logging.getLogger(__name__)
_T = TypeVar("_T")

MAX_PDF_BYTES = 200 * 1024 * 1024
MAX_PAGES = 5000
MAX_PAGE_CONTENT_BYTES = 8 * 1024 * 1024  # decoded content streams of one page, forms per use
MAX_PAGE_GLYPHS = 200_000  # characters in the string operands one page draws
MAX_DOCUMENT_GLYPHS = 20_000_000
MAX_FORM_DEPTH = 12  # Form XObjects drawing Form XObjects
INSPECT_SECONDS = 120.0  # pypdf inspection of one file
PARSE_SECONDS_BASE = 60.0  # unstructured/pdfminer: base + per page
PARSE_SECONDS_PER_PAGE = 2.0

_ESCAPED = re.compile(rb"\\.", re.S)
_HEX_STRING = re.compile(rb"<[0-9A-Fa-f\s]*+>")
_DO = re.compile(rb"/([^\s/\[\]()<>{}%]+)\s*Do(?![A-Za-z])")
LIMIT_HINT = (
    "a page this heavy is not a document to search; if it is genuine, raise the limit named in the "
    "message (ingest.parse.pdf) or export the PDF again (print to PDF flattens it)"
)


class _TooHeavy(Exception):
    def __init__(self, message: str, reason: str = "too_large") -> None:
        super().__init__(message)
        self.reason = reason


def _glyphs(content: bytes) -> int:
    """Bytes inside string operands (literal ``(..)`` with nesting and escapes, hex ``<..>``):
    a close upper bound of the characters pdfminer makes layout objects of. Linear time;
    callers pass at most MAX_PAGE_CONTENT_BYTES (the int32 arrays take 4x that, briefly)."""
    import numpy as np

    if not content:
        return 0
    data = _ESCAPED.sub(b"..", content)  # an escaped char is one glyph and never a paren
    arr = np.frombuffer(data, dtype=np.uint8)
    depth = (arr == 0x28).astype(np.int32)
    depth -= arr == 0x29
    np.cumsum(depth, out=depth)
    low = np.minimum(depth, 0)
    np.minimum.accumulate(low, out=low)
    depth -= low  # a stray ')' outside a string is no string: depth never goes below 0
    del low
    inside = int(np.count_nonzero(depth > 0))
    del depth
    hexed = sum(max(len(m.group()) - 2, 0) // 2 for m in _HEX_STRING.finditer(data))
    return inside + hexed


def _stream_bytes(obj: Any, limit: int) -> bytes:
    """The decoded content of a stream or an array of streams; stops (returning more than
    ``limit`` bytes) once the total is over ``limit``. pypdf caps each stream at 75 MB."""
    obj = obj.get_object() if obj is not None else None
    if obj is None:
        return b""
    if isinstance(obj, list):
        parts, total = [], 0
        for x in obj:
            part = _stream_bytes(x, limit - total)
            parts.append(part)
            total += len(part) + 1
            if total > limit:
                break
        return b"\n".join(parts)
    get = getattr(obj, "get_data", None)
    return get() if get is not None else b""


class _PageWeigher:
    """Decoded bytes and glyphs a page draws, its Form XObjects counted once per use."""

    def __init__(self) -> None:
        self._forms: dict[Any, tuple[int, int]] = {}

    @staticmethod
    def _key(obj: Any) -> Any:
        ref = getattr(obj, "indirect_reference", None)
        return (ref.idnum, ref.generation) if ref is not None else id(obj)

    def _xobjects(self, resources: Any) -> dict:
        try:
            res = resources.get_object() if resources is not None else None
            xo = res.get("/XObject") if res is not None else None
            return dict(xo.get_object()) if xo is not None else {}
        except (AttributeError, TypeError):
            return {}

    def weigh(self, content: bytes, resources: Any, depth: int = 0, stack: tuple = ()) -> tuple[int, int]:
        size = len(content)
        if size > MAX_PAGE_CONTENT_BYTES:
            return size, 0  # refused on size; counting glyphs would cost memory in proportion
        glyphs = _glyphs(content)
        uses = Counter(m.group(1) for m in _DO.finditer(content))
        if uses:
            xobjects = self._xobjects(resources)
            for name, n in uses.items():
                ref = xobjects.get("/" + name.decode("latin-1"))
                form = ref.get_object() if ref is not None else None
                if form is None or form.get("/Subtype") != "/Form":
                    continue
                key = self._key(form)
                if key in stack:
                    raise _TooHeavy("a Form XObject draws itself (a cycle)", reason="corrupt")
                if depth >= MAX_FORM_DEPTH:
                    raise _TooHeavy(f"Form XObjects nested more than {MAX_FORM_DEPTH} deep (MAX_FORM_DEPTH)")
                if key not in self._forms:
                    self._forms[key] = self.weigh(
                        _stream_bytes(form, MAX_PAGE_CONTENT_BYTES),
                        form.get("/Resources") or resources,
                        depth + 1,
                        (*stack, key),
                    )
                fs, fg = self._forms[key]
                size, glyphs = size + n * fs, glyphs + n * fg
                if size > MAX_PAGE_CONTENT_BYTES or glyphs > MAX_PAGE_GLYPHS:
                    break
        return size, glyphs


def _check_weight(reader: Any) -> None:
    """Refuse pages (and documents) that would make pdfminer build unbounded layouts."""
    weigher, total = _PageWeigher(), 0
    for number, page in enumerate(reader.pages, start=1):
        size, glyphs = weigher.weigh(
            _stream_bytes(page.get("/Contents"), MAX_PAGE_CONTENT_BYTES), page.get("/Resources")
        )
        if size > MAX_PAGE_CONTENT_BYTES:
            raise _TooHeavy(
                f"page {number} draws {size} bytes of content (limit MAX_PAGE_CONTENT_BYTES = {MAX_PAGE_CONTENT_BYTES})"
            )
        if glyphs > MAX_PAGE_GLYPHS:
            raise _TooHeavy(f"page {number} draws ~{glyphs} characters (limit MAX_PAGE_GLYPHS = {MAX_PAGE_GLYPHS})")
        total += glyphs
        if total > MAX_DOCUMENT_GLYPHS:
            raise _TooHeavy(
                f"pages 1-{number} draw ~{total} characters (limit MAX_DOCUMENT_GLYPHS = {MAX_DOCUMENT_GLYPHS})"
            )


@dataclass(frozen=True)
class PdfFacts:
    pages: int
    title: str | None


def inspect_pdf(path: Path) -> PdfFacts:
    """Open with pypdf; raise QuarantinedDocument for encrypted, unreadable or too heavy files
    (within ``INSPECT_SECONDS``)."""
    return _inspecting(path, _inspect_pdf)


def scan_text_layer(path: Path) -> tuple[bool, bool]:
    """(has a text layer, has images) as pypdf sees the first 50 pages: why a PDF that
    parsed to no text has none. Raises QuarantinedDocument like :func:`inspect_pdf`."""
    return _inspecting(path, _scan_text_layer)


def _inspecting(path: Path, inspect: Callable[[Path], _T]) -> _T:
    try:
        with deadline(INSPECT_SECONDS):
            return inspect(path)
    except ParseTimeout:
        raise QuarantinedDocument(
            f"{path}: inspecting the PDF took longer than {INSPECT_SECONDS:.0f} s (limit INSPECT_SECONDS)",
            reason="timeout",
            path=str(path),
            hint=LIMIT_HINT,
        ) from None


def _open(path: Path) -> Any:
    """A pypdf reader of ``path``, decrypted when its user password is empty."""
    from pypdf import PasswordType, PdfReader

    size = path.stat().st_size
    if size == 0:
        raise QuarantinedDocument(f"{path}: empty file", reason="empty", path=str(path))
    if size > MAX_PDF_BYTES:
        raise QuarantinedDocument(
            f"{path}: {size} bytes is over the {MAX_PDF_BYTES} byte limit", reason="too_large", path=str(path)
        )
    reader = PdfReader(str(path), strict=False)
    if reader.is_encrypted:
        try:
            ok = reader.decrypt("")
        except Exception as exc:  # missing AES support is still "cannot open"
            ok = PasswordType.NOT_DECRYPTED
            log.debug("decrypt failed: %s", exc)
        # Only an empty *user* password counts as open. An empty owner password also
        # decrypts (pypdf returns OWNER_PASSWORD), but the author asked readers for a
        # password: treating that as readable would bypass the protection.
        if ok != PasswordType.USER_PASSWORD:
            raise QuarantinedDocument(
                f"{path}: PDF is encrypted and needs a password",
                reason="encrypted",
                path=str(path),
                hint="export an unencrypted copy; govrag does not store PDF passwords",
            )
    return reader


def _inspect_pdf(path: Path) -> PdfFacts:
    from pypdf.errors import LimitReachedError

    with _read_errors(path):
        reader = _open(path)
        pages = len(reader.pages)
        if pages > MAX_PAGES:
            raise QuarantinedDocument(
                f"{path}: {pages} pages (limit MAX_PAGES = {MAX_PAGES})",
                reason="too_large",
                path=str(path),
                hint=LIMIT_HINT,
            )
        try:
            _check_weight(reader)
        except _TooHeavy as exc:
            raise QuarantinedDocument(
                f"{path}: {exc}; refused before parsing", reason=exc.reason, path=str(path), hint=LIMIT_HINT
            ) from None
        except LimitReachedError as exc:  # pypdf's own caps (75 MB per stream, declared lengths)
            raise QuarantinedDocument(
                f"{path}: a content stream is over pypdf's limits ({exc})",
                reason="too_large",
                path=str(path),
                hint=LIMIT_HINT,
            ) from exc
        title = None
        try:
            meta = reader.metadata
            title = str(meta.title).strip() if meta and meta.title else None
        except Exception:
            pass
        return PdfFacts(pages=pages, title=title or None)


def _scan_text_layer(path: Path) -> tuple[bool, bool]:
    with _read_errors(path):
        has_text = has_images = False
        for page in _open(path).pages[:50]:
            if not has_text and (page.extract_text() or "").strip():
                has_text = True
            if not has_images:
                with contextlib.suppress(Exception):
                    has_images = bool(page.images)
            if has_text and has_images:
                break
        return has_text, has_images


@contextlib.contextmanager
def _read_errors(path: Path) -> Iterator[None]:
    """pypdf's failures on a file as its quarantine (``corrupt``)."""
    from pypdf.errors import PdfReadError

    try:
        yield
    except QuarantinedDocument:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, OSError, RecursionError) as exc:
        raise QuarantinedDocument(
            f"{path}: corrupt PDF ({exc.__class__.__name__}: {exc})", reason="corrupt", path=str(path)
        ) from exc
    except Exception as exc:  # pypdf raises a zoo of errors on hostile files
        raise QuarantinedDocument(
            f"{path}: unreadable PDF ({exc.__class__.__name__}: {exc})", reason="corrupt", path=str(path)
        ) from exc


def partition(path: Path) -> tuple[list[Any], PdfFacts]:
    """Parse a PDF into ``unstructured`` elements, refusing files that yield no text."""
    facts = inspect_pdf(path)
    from ingest.parse import pdf_text

    seconds = PARSE_SECONDS_BASE + PARSE_SECONDS_PER_PAGE * facts.pages
    try:
        with deadline(seconds):
            elements = pdf_text.pdf_elements(path)
    except ParseTimeout:
        raise QuarantinedDocument(
            f"{path}: parsing took longer than {seconds:.0f} s for {facts.pages} pages (limit PARSE_SECONDS_BASE + "
            "PARSE_SECONDS_PER_PAGE x pages)",
            reason="timeout",
            path=str(path),
            hint=LIMIT_HINT,
        ) from None
    except MemoryError as exc:
        raise QuarantinedDocument(
            f"{path}: parsing ran out of memory", reason="too_large", path=str(path), hint=LIMIT_HINT
        ) from exc
    except Exception as exc:  # a scan pdfium cannot read is still a scan: say which it is
        _refuse_textless(path, facts, exc)
    if not any((getattr(e, "text", "") or "").strip() for e in elements):
        _refuse_textless(path, facts)
    return elements, facts


def _refuse_textless(path: Path, facts: PdfFacts, error: Exception | None = None) -> NoReturn:
    """Why a PDF gave no text (``error``: pdfium failed on it): it has none (a scan: images
    only), or the parser failed on a text layer pypdf can read."""
    has_text, has_images = scan_text_layer(path)
    if not has_text:
        if has_images:
            raise QuarantinedDocument(
                f"{path}: image-only PDF ({facts.pages} pages, no text layer)",
                reason="no_text_layer",
                path=str(path),
                hint="OCR is not enabled; export the PDF with a text layer",
            )
        raise QuarantinedDocument(f"{path}: no extractable text", reason="no_text", path=str(path))
    if error is not None:
        raise QuarantinedDocument(
            f"{path}: pdfium could not read its text ({error.__class__.__name__}: {error})",
            reason="parse_error",
            path=str(path),
        ) from error
    # A text layer that parses to nothing is a parser failure, not an empty document.
    raise QuarantinedDocument(
        f"{path}: the PDF has a text layer but the parser returned no text",
        reason="parser_returned_nothing",
        path=str(path),
        hint="check the pypdfium2 install (make setup); if the text shows in a PDF viewer, report the file",
    )
