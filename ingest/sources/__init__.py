"""Sources: each turns an input path into a :class:`SourceExport` (its documents and the
permission state it states); :func:`open_source` picks the source.

Every source keeps the :class:`~ingest.sources.protocol.Source` protocol (``kind``,
``detect``, ``open``, ``discover``); :data:`SOURCES` lists them in the order they are tried.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from governance.errors import SourceError
from governance.policy import Policy
from ingest.sources.base import SourceExport, SourceItem
from ingest.sources.confluence import SOURCE as CONFLUENCE
from ingest.sources.pdf import SOURCE as PDF
from ingest.sources.protocol import Source, SourceContext, process_policy
from ingest.sources.slack import SOURCE as SLACK

# Tried in order: specific export formats before the PDF drop folder (which takes any dir).
SOURCES: tuple[Source, ...] = (SLACK, CONFLUENCE, PDF)

__all__ = ["SOURCES", "Source", "SourceContext", "discover", "open_source", "process_policy"]


def open_source(
    path: Path, source: str | None = None, policy: Policy | None = None, *, site: str | None = None
) -> SourceExport:
    """Open one input: ``source`` forces a source kind instead of detecting it; ``policy``
    (the run's policy, default the process policy) maps workspace scopes and names sites;
    ``site`` names the Confluence site / Slack team of an export that does not state it."""
    path = Path(path)
    if not path.exists():
        raise SourceError(f"{path}: no such file or directory", hint="check the path given to govrag ingest")
    policy = policy if policy is not None else process_policy()
    for src in SOURCES:
        if (source is None and src.detect(path)) or source == src.kind:
            return src.open(path, SourceContext.create(policy, site=site or policy.source_site(path)))
    raise SourceError(
        f"{path}: not a PDF, a Slack export or a Confluence export",
        hint="pass a PDF file, a folder, a Slack export zip/folder or a Confluence export",
    )


def discover(
    path: Path, source: str | None = None, policy: Policy | None = None, *, site: str | None = None
) -> Iterator[SourceItem]:
    """The items of :func:`open_source` (documents only, no permission state)."""
    yield from open_source(path, source, policy, site=site).items
