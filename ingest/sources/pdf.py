"""PDF drop folders: every ``*.pdf`` under the given paths; access comes from the policy."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from governance.errors import SourceError
from ingest.sources.base import Parsed, SourceExport, SourceItem
from ingest.sources.protocol import ExportSource, SourceContext

# pdfium text, blocks and titles from the page (was "pdf-fast-1": unstructured's partition_pdf,
# fast strategy): stored PDFs are parsed again once, as their chunks differ
PARSER_VERSION = "pdf-pdfium-1"


def fingerprint_file(path: Path, salt: str = PARSER_VERSION) -> str:
    """sha256 of the bytes (salted with the parser version, so a parser upgrade re-parses)."""
    h = hashlib.sha256(salt.encode())
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class PdfFile:
    """The parser of one PDF file (a drop-folder document or a Confluence attachment)."""

    path: Path

    def fingerprint(self) -> str:
        return fingerprint_file(self.path)

    def parse(self) -> Parsed:
        from ingest.parse.pdf import partition

        elements, facts = partition(self.path)
        return Parsed(elements=elements, title=facts.title)


class PdfSource(ExportSource):
    """PDFs carry no permissions of their own: documents only, scoped by the policy."""

    kind = "pdf"

    def detect(self, path: Path) -> bool:
        return (path.is_file() and path.suffix.lower() == ".pdf") or path.is_dir()

    def open(self, path: Path, ctx: SourceContext) -> SourceExport:
        return SourceExport(path=Path(path), items=list(self.discover(path, ctx)))

    def discover(self, path: Path, ctx: SourceContext) -> Iterator[SourceItem]:
        """PDF files under ``path`` (or ``path`` itself), with paths relative to the ingest root.

        Symlinks are not followed: a drop folder must not be able to point outside itself.
        """
        path = Path(path)
        if not path.exists():
            raise SourceError(f"{path}: no such file or directory", hint="check the path given to govrag ingest")
        if path.is_file():
            root, files = path.parent, [path]
        else:
            root = path
            files = sorted(
                p for p in path.rglob("*") if p.suffix.lower() == ".pdf" and p.is_file() and not p.is_symlink()
            )
        for f in files:
            rel = f.relative_to(root).as_posix()
            parser = PdfFile(f)
            yield SourceItem(
                source="pdf",
                path=f,
                rel_path=rel,
                document_id=f"pdf:{rel}",
                fingerprint=parser.fingerprint,
                parse=parser.parse,
                facts={"source": "pdf", "path": rel},
                title=f.stem,
                modified_at=datetime.fromtimestamp(f.stat().st_mtime, tz=UTC),
            )


SOURCE = PdfSource()
