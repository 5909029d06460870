"""Slack workspace exports (zip or unpacked folder), with the permissions Slack had.

- :mod:`~ingest.sources.slack.load`: reading the export (users, conversations, day files,
  how new it is);
- :mod:`~ingest.sources.slack.permissions`: members → one scope per conversation, deny
  lists, the permission state the export states;
- :mod:`~ingest.sources.slack.render`: messages → thread and channel-day documents, their
  titles and text;
- :mod:`~ingest.sources.slack.items`: the documents as ``SourceItem``s.

See docs/sources.md for the documents, the text and the permission mapping.
"""

from __future__ import annotations

from pathlib import Path

from ingest.sources.archive import extract_zip, removed_on_error
from ingest.sources.base import SourceExport
from ingest.sources.protocol import ExportSource, SourceContext
from ingest.sources.slack import load
from ingest.sources.slack.items import iter_items
from ingest.sources.slack.permissions import ScopeBuilder, permission_state


class SlackSource(ExportSource):
    """A Slack export: its documents and the permission state its metadata states.
    ``ctx.policy`` decides who holds the workspace layer (key ``workspaces``); ``ctx.site``
    names the team when the export does not."""

    kind = "slack"

    def detect(self, path: Path) -> bool:
        return load.detect(path)

    def open(self, path: Path, ctx: SourceContext) -> SourceExport:
        path = Path(path)
        root = extract_zip(path, dest_root=ctx.work_dir) if path.is_file() else path
        scratch = [root] if root != path else []
        with removed_on_error(scratch):
            export = load.load_export(root, display=str(path), site=ctx.site)
            builder = ScopeBuilder(export, ctx.policy)
            return SourceExport(
                path=path,
                items=list(iter_items(export, builder)),
                state=permission_state(export, builder),
                scratch=scratch,
            )


SOURCE = SlackSource()

# Entry points with a policy instead of a context (tests, benchmarks).
detect = SOURCE.detect
open_source = SOURCE.open_source
discover = SOURCE.discover_items
