"""PDF → text elements through ``unstructured.partition_pdf`` (fast strategy).

Before parsing, pypdf inspects the file so that encrypted, corrupt and image-only PDFs are
refused with a reason instead of becoming empty documents.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from governance.errors import QuarantinedDocument
from ingest.parse.offline import prepare_unstructured

log = logging.getLogger(__name__)

MAX_PDF_BYTES = 200 * 1024 * 1024
MAX_PAGES = 5000


@dataclass(frozen=True)
class PdfFacts:
    pages: int
    has_text_layer: bool
    has_images: bool
    title: str | None


def inspect_pdf(path: Path) -> PdfFacts:
    """Open with pypdf; raise QuarantinedDocument for encrypted or unreadable files."""
    from pypdf import PasswordType, PdfReader
    from pypdf.errors import PdfReadError

    size = path.stat().st_size
    if size == 0:
        raise QuarantinedDocument(f"{path}: empty file", reason="empty", path=str(path))
    if size > MAX_PDF_BYTES:
        raise QuarantinedDocument(f"{path}: {size} bytes is over the {MAX_PDF_BYTES} byte limit",
                                  reason="too_large", path=str(path))
    try:
        reader = PdfReader(str(path), strict=False)
        if reader.is_encrypted:
            try:
                ok = reader.decrypt("")
            except Exception as exc:  # missing AES support is still "cannot open"
                ok = 0
                log.debug("decrypt failed: %s", exc)
            # Only an empty *user* password counts as open. An empty owner password also
            # decrypts (pypdf returns OWNER_PASSWORD), but the author asked readers for a
            # password: treating that as readable would bypass the protection.
            if ok != PasswordType.USER_PASSWORD:
                raise QuarantinedDocument(
                    f"{path}: PDF is encrypted and needs a password",
                    reason="encrypted", path=str(path),
                    hint="export an unencrypted copy; govrag does not store PDF passwords",
                )
        pages = len(reader.pages)
        if pages > MAX_PAGES:
            raise QuarantinedDocument(f"{path}: {pages} pages (limit {MAX_PAGES})", reason="too_large", path=str(path))
        has_text = has_images = False
        for page in reader.pages[:50]:
            if not has_text and (page.extract_text() or "").strip():
                has_text = True
            if not has_images:
                try:
                    has_images = bool(page.images)
                except Exception:
                    pass
            if has_text and has_images:
                break
        title = None
        try:
            meta = reader.metadata
            title = str(meta.title).strip() if meta and meta.title else None
        except Exception:
            pass
        return PdfFacts(pages=pages, has_text_layer=has_text, has_images=has_images, title=title or None)
    except QuarantinedDocument:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, OSError, RecursionError) as exc:
        raise QuarantinedDocument(f"{path}: corrupt PDF ({exc.__class__.__name__}: {exc})",
                                  reason="corrupt", path=str(path)) from exc
    except Exception as exc:  # pypdf raises a zoo of errors on hostile files
        raise QuarantinedDocument(f"{path}: unreadable PDF ({exc.__class__.__name__}: {exc})",
                                  reason="corrupt", path=str(path)) from exc


def partition(path: Path) -> tuple[list[Any], PdfFacts]:
    """Parse a PDF into ``unstructured`` elements, refusing files that yield no text."""
    facts = inspect_pdf(path)
    if not facts.has_text_layer:
        if facts.has_images:
            raise QuarantinedDocument(
                f"{path}: image-only PDF ({facts.pages} pages, no text layer)",
                reason="no_text_layer", path=str(path),
                hint="OCR is not enabled; export the PDF with a text layer",
            )
        raise QuarantinedDocument(f"{path}: no extractable text", reason="no_text", path=str(path))
    prepare_unstructured()
    from unstructured.partition.pdf import partition_pdf

    try:
        elements = partition_pdf(filename=str(path), strategy="fast", languages=["eng"])
    except Exception as exc:
        raise QuarantinedDocument(f"{path}: unstructured could not parse it ({exc.__class__.__name__}: {exc})",
                                  reason="parse_error", path=str(path)) from exc
    if not any((getattr(e, "text", "") or "").strip() for e in elements):
        # A text layer that parses to nothing is a parser failure, not an empty document.
        raise QuarantinedDocument(
            f"{path}: the PDF has a text layer but the parser returned no text",
            reason="parser_returned_nothing", path=str(path),
            hint="check the spaCy model install (make setup) and unstructured's version",
        )
    return elements, facts
