"""Confluence exports: three shapes, recognised automatically, one document per page.

1. **REST API dump** (``space.json`` + ``pages/<id>.json``) — :mod:`.rest_dump`.
2. **XML space export** (``entities.xml``, optionally zipped with
   ``exportDescriptor.properties``): current pages and blog posts, storage-format bodies,
   the parent tree, ``SpacePermission`` VIEWSPACE and ``ContentPermissionSet`` view
   restrictions — :mod:`.xml_export` (reading ``entities.xml``: :mod:`.xml_entities`).
3. **HTML space export** (``index.html`` + ``Title_ID.html`` pages): the page tree comes from
   the breadcrumbs; the export carries no permissions, so ``item.scope`` is None and the
   policy must cover the space (else the pages are quarantined) — :mod:`.html_export`.

Each shape reads its input into :mod:`.model` spaces and pages; :mod:`.permissions` maps
them to scopes (space permission AND every restriction of the page's chain) and the
permission state; :mod:`.render` turns page bodies into text; :mod:`.items` makes the
``SourceItem``s (PDF attachments become their own documents, with the page's scope and facts).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from governance.errors import SourceError
from ingest.sources.base import SourceExport
from ingest.sources.confluence import html_export, rest_dump, xml_export
from ingest.sources.protocol import ExportSource, SourceContext

Opener = Callable[[Path, SourceContext], SourceExport]

# Tried in order: the first shape that recognises the input opens it.
SHAPES: tuple[tuple[Callable[[Path], bool], Opener], ...] = (
    (rest_dump.detect, rest_dump.open_dump),
    (xml_export.detect, xml_export.open_export),
    (html_export.detect, html_export.open_export),
)


def _opener(path: Path) -> Opener | None:
    return next((open_ for detect_, open_ in SHAPES if detect_(path)), None)


class ConfluenceSource(ExportSource):
    """Pages (and PDF attachments) of a Confluence export of any of the three shapes, and
    the permission state it states. ``ctx.site`` names the site when the export does not."""

    kind = "confluence"

    def detect(self, path: Path) -> bool:
        return _opener(Path(path)) is not None

    def open(self, path: Path, ctx: SourceContext) -> SourceExport:
        path = Path(path)
        opener = _opener(path)
        if opener is None:
            raise SourceError(
                f"{path}: not a Confluence HTML, XML or REST export",
                hint="pass the unpacked export folder, the XML export zip, or a REST dump folder",
            )
        return opener(path, ctx)


SOURCE = ConfluenceSource()

# Entry points with a policy instead of a context (tests, benchmarks).
detect = SOURCE.detect
open_source = SOURCE.open_source
discover = SOURCE.discover_items
