"""Sources: each turns an input path into a :class:`SourceExport` (its documents and the
permission state it states); :func:`open_source` picks the source.

Every source module has the same three functions: ``detect(path) -> bool``,
``open_source(path, policy, *, site=None) -> SourceExport`` and ``discover(path, policy=None)``
(the items alone).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Iterator

from governance.errors import SourceError
from governance.policy import Policy
from ingest.sources.base import SourceExport, SourceItem

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


def process_policy() -> Policy:
    """The policy of the process (``GOVRAG_POLICY``; with multi-tenancy, GOVRAG_TENANT's),
    for callers that pass none."""
    from governance.policy import load_policy
    from governance.settings import get_settings

    settings = get_settings()
    return load_policy(settings.policy_for((settings.tenant or None) if settings.multi_tenant else None))


def open_source(path: Path, source: str | None = None, policy: Policy | None = None, *,
                site: str | None = None) -> SourceExport:
    """Open one input: ``source`` forces a source kind instead of detecting it; ``policy``
    (the run's policy, default the process policy) maps workspace scopes and names sites;
    ``site`` names the Confluence site / Slack team of an export that does not state it."""
    path = Path(path)
    if not path.exists():
        raise SourceError(f"{path}: no such file or directory", hint="check the path given to govrag ingest")
    policy = policy if policy is not None else process_policy()
    for mod in _modules():
        kind = mod.__name__.rsplit(".", 1)[-1]
        if (source is None and mod.detect(path)) or source == kind:
            return mod.open_source(path, policy, site=site or policy.source_site(path))
    raise SourceError(f"{path}: not a PDF, a Slack export or a Confluence export",
                      hint="pass a PDF file, a folder, a Slack export zip/folder or a Confluence export")


def discover(path: Path, source: str | None = None, policy: Policy | None = None, *,
             site: str | None = None) -> Iterator[SourceItem]:
    """The items of :func:`open_source` (documents only, no permission state)."""
    yield from open_source(path, source, policy, site=site).items
