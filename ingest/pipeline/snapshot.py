"""What changed in a source since the last ingest, without parsing anything.

Each item's cheap fingerprint (raw bytes + parser version) is compared with the catalog's
``current_source_hash``. A *manifest* per source (the document ids its last ingest saw, kept
under ``GOVRAG_HOME/manifests``) tells which documents disappeared from the source.

``changed`` is an upper bound: a re-saved file with the same text counts as changed here, and
the ingest then finds the same content hash and embeds nothing.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from governance.catalog import Catalog
from governance.catalog.statuses import DocumentStatus
from ingest.sources.base import SourceItem

__all__ = ["Snapshot", "load_manifest", "manifest_path", "save_manifest", "take_snapshot"]

PREVIEW = 20
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass
class Snapshot:
    """Document ids of a source by status (``deleted``: in the manifest, not in the source)."""

    new: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    @property
    def items(self) -> int:
        return len(self.new) + len(self.changed) + len(self.unchanged)

    def counts(self) -> dict[str, int]:
        return {
            "items": self.items,
            "new": len(self.new),
            "changed": len(self.changed),
            "unchanged": len(self.unchanged),
            "deleted": len(self.deleted),
        }

    def preview(self, limit: int = PREVIEW) -> dict[str, list[str]]:
        return {k: v[:limit] for k, v in (("new", self.new), ("changed", self.changed), ("deleted", self.deleted)) if v}


def take_snapshot(catalog: Catalog, items: Iterable[SourceItem], known_ids: Iterable[str] = ()) -> Snapshot:
    """Classify ``items`` against the catalog; ``known_ids`` is the source's last manifest."""
    snap = Snapshot()
    present: set[str] = set()
    for item in items:
        present.add(item.document_id)
        state = catalog.documents.document_state(item.document_id)
        if state is None or state.status != DocumentStatus.ACTIVE or state.current_version is None:
            snap.new.append(item.document_id)
        elif state.current_source_hash == item.fingerprint():
            snap.unchanged.append(item.document_id)
        else:
            snap.changed.append(item.document_id)
    snap.deleted = sorted(set(known_ids) - present)
    return snap


def manifest_path(home: Path, source_key: str) -> Path:
    """Where the manifest of ``source_key`` lives (the key must be a safe file name)."""
    if not _SAFE_NAME.match(source_key) or ".." in source_key:
        raise ValueError(f"unsafe source key for a manifest file name: {source_key!r}")
    return Path(home) / "manifests" / f"{source_key}.json"


def load_manifest(home: Path, source_key: str) -> list[str]:
    """Document ids the last ingest of this source saw (empty when never ingested)."""
    try:
        data = json.loads(manifest_path(home, source_key).read_text())
    except FileNotFoundError:
        return []
    return [str(d) for d in data.get("document_ids", [])]


def save_manifest(home: Path, source_key: str, document_ids: Sequence[str]) -> Path:
    """Replace the manifest atomically (write a temp file, then rename)."""
    path = manifest_path(home, source_key)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"source_key": source_key, "document_ids": sorted(set(document_ids))}))
    tmp.replace(path)
    return path
