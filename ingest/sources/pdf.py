"""PDF drop folders: every ``*.pdf`` under the given paths; access comes from the policy."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from governance.errors import SourceError
from ingest.sources.base import SourceItem


def discover(path: Path) -> Iterator[SourceItem]:
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
        yield SourceItem(source="pdf", path=f, rel_path=rel, document_id=f"pdf:{rel}",
                         facts={"source": "pdf", "path": rel})
