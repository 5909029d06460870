"""Sources: each turns an input path into ``SourceItem``s; ``discover`` picks the source."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Iterator

from governance.errors import SourceError
from governance.policy import Policy
from ingest.sources.base import SourceItem

# Checked in order: specific export formats before the PDF drop folder (which takes any dir).
SOURCE_MODULES = ("ingest.sources.slack", "ingest.sources.confluence", "ingest.sources.pdf")


def _modules() -> list:
    mods = []
    for name in SOURCE_MODULES:
        try:
            mods.append(importlib.import_module(name))
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
    return mods


def discover(path: Path, source: str | None = None, policy: Policy | None = None) -> Iterator[SourceItem]:
    """Items under ``path``; ``source`` forces a source kind instead of detecting it.
    ``policy`` (the run's policy) maps workspace scopes; sources without permissions ignore it."""
    path = Path(path)
    if not path.exists():
        raise SourceError(f"{path}: no such file or directory", hint="check the path given to govrag ingest")
    for mod in _modules():
        kind = mod.__name__.rsplit(".", 1)[-1]
        if (source is None and mod.detect(path)) or source == kind:
            if policy is not None and "policy" in inspect.signature(mod.discover).parameters:
                yield from mod.discover(path, policy=policy)
            else:
                yield from mod.discover(path)
            return
    raise SourceError(f"{path}: not a PDF, a Slack export or a Confluence export",
                      hint="pass a PDF file, a folder, a Slack export zip/folder or a Confluence export")
