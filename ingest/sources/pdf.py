"""PDF drop folders: every ``*.pdf`` under the given paths; access comes from the policy."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Iterator

from governance.errors import SourceError
from ingest.sources.base import SourceExport, Parsed, SourceItem

PARSER_VERSION = "pdf-fast-1"


def detect(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() == ".pdf" or path.is_dir()


def fingerprint_file(path: Path, salt: str = PARSER_VERSION) -> str:
    """sha256 of the bytes (salted with the parser version, so a parser upgrade re-parses)."""
    h = hashlib.sha256(salt.encode())
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _parse(path: Path) -> Parsed:
    from ingest.parse.pdf import partition

    elements, facts = partition(path)
    return Parsed(elements=elements, title=facts.title)


def open_source(path: Path, policy: object = None, *, site: str | None = None) -> SourceExport:
    """PDFs carry no permissions of their own: documents only, scoped by the policy."""
    return SourceExport(path=Path(path), items=list(discover(path)))


def discover(path: Path, policy: object = None) -> Iterator[SourceItem]:
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
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() == ".pdf" and p.is_file() and not p.is_symlink())
    for f in files:
        rel = f.relative_to(root).as_posix()
        yield SourceItem(
            source="pdf", path=f, rel_path=rel, document_id=f"pdf:{rel}",
            fingerprint=partial(fingerprint_file, f), parse=partial(_parse, f),
            facts={"source": "pdf", "path": rel}, title=f.stem,
            modified_at=datetime.fromtimestamp(f.stat().st_mtime, tz=timezone.utc),
        )
