"""A drop folder: each top-level entry (a sub-folder, a zip, a PDF) is one source export.

Every entry gets a *source key*: a short name safe in a Dagster partition key, a file name
and a URL. A name that is already safe (``[A-Za-z0-9][A-Za-z0-9._-]*``, at most 64 chars, no
``..``) is its own key; any other name becomes a sanitized prefix plus 8 hex digits of the
sha256 of the original name, so two odd names that sanitize alike still get distinct keys.
The key is computed from the name alone, so it maps back to its entry by scanning the
folder: no registry to keep in sync.

Hidden and temporary names (``.x``, ``_x``, ``*.tmp``, ``*.part``, ``*.partial``,
``*.crdownload``) and symlinks are ignored: a drop must not point outside the folder.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from governance.errors import SourceError

__all__ = ["DropEntry", "due_exports", "resolve_source_key", "scan_drop_folder", "source_key"]

MAX_KEY = 64
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_TEMP_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".download")
EXPORT_SUFFIXES = (".zip", ".pdf")


@dataclass(frozen=True)
class DropEntry:
    """One export in the drop folder."""

    key: str
    name: str
    path: Path
    signature: str  # changes when anything under the entry changes (size, mtime, count)
    latest_mtime: float

    def settled(self, settle_seconds: float, now: float | None = None) -> bool:
        """No file under it changed in the last ``settle_seconds`` (a copy is not running)."""
        return (now if now is not None else time.time()) - self.latest_mtime >= settle_seconds


def source_key(name: str) -> str:
    """The partition-safe key of a drop folder entry name (see the module docstring)."""
    if len(name) <= MAX_KEY and _SAFE.match(name) and ".." not in name:
        return name
    raw = name.encode("utf-8", "surrogateescape")
    digest = hashlib.sha256(raw).hexdigest()[:8]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", name)
    stem = re.sub(r"\.{2,}", ".", stem).strip("-._")[: MAX_KEY - 9] or "export"
    return f"{stem}-{digest}"


def _is_candidate(p: Path) -> bool:
    name = p.name
    if name.startswith((".", "_")) or name.lower().endswith(_TEMP_SUFFIXES) or p.is_symlink():
        return False
    return p.is_dir() or (p.is_file() and p.suffix.lower() in EXPORT_SUFFIXES)


def _signature(p: Path) -> tuple[str, float]:
    if p.is_file():
        st = p.stat()
        return f"f:{st.st_size}:{st.st_mtime_ns}", st.st_mtime
    h = hashlib.sha256()
    latest = p.stat().st_mtime
    for root, dirs, files in os.walk(p, followlinks=False):
        dirs.sort()
        for name in sorted(files):
            try:
                st = os.lstat(os.path.join(root, name))
            except FileNotFoundError:  # removed while we walk: the next scan sees it
                continue
            rel = os.path.relpath(os.path.join(root, name), p)
            h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
            latest = max(latest, st.st_mtime)
    return "d:" + h.hexdigest()[:16], latest


def scan_drop_folder(root: Path) -> list[DropEntry]:
    """The exports in ``root``, sorted by key (empty when ``root`` does not exist)."""
    root = Path(root)
    if not root.is_dir():
        return []
    entries = []
    for p in sorted(root.iterdir()):
        if not _is_candidate(p):
            continue
        sig, latest = _signature(p)
        entries.append(DropEntry(key=source_key(p.name), name=p.name, path=p, signature=sig, latest_mtime=latest))
    return sorted(entries, key=lambda e: e.key)


def resolve_source_key(root: Path, key: str) -> Path:
    """The path of the drop folder entry whose key is ``key``."""
    root = Path(root)
    if root.is_dir():
        for p in root.iterdir():
            if _is_candidate(p) and source_key(p.name) == key:
                return p
    raise SourceError(
        f"no export with source key {key!r} in the drop folder {root}",
        hint="check GOVRAG_DROP_DIR; the export may have been moved or removed",
    )


def due_exports(
    entries: list[DropEntry], seen: dict[str, str], settle_seconds: float, now: float | None = None
) -> tuple[list[DropEntry], dict[str, str]]:
    """Settled entries that are new or changed since ``seen`` (key -> signature), and the
    updated ``seen``. Unsettled entries keep their old signature so they come back later;
    entries gone from the folder are forgotten."""
    due, updated = [], {}
    for e in entries:
        if not e.settled(settle_seconds, now):
            if e.key in seen:
                updated[e.key] = seen[e.key]
            continue
        updated[e.key] = e.signature
        if seen.get(e.key) != e.signature:
            due.append(e)
    return due, updated
