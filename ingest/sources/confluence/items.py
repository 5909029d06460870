"""Confluence pages (and their PDF attachments) as ``SourceItem``s.

A page's id is its source identity, site + page id (``confluence:<site>:<page id>``): a
page that moves to another space or under another parent stays one document, so its old
copy and its old access cannot survive the move. A PDF attachment is
``confluence:<site>:<page id>:attachment:<file name>``, parsed by the PDF parser, with its
page's scope, facts and refusal.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from governance.contracts import AccessScope
from governance.errors import QuarantinedDocument
from ingest.sources.base import Parser, Refusal, SourceItem
from ingest.sources.confluence.model import PageInfo
from ingest.sources.confluence.permissions import (
    INCOMPLETE_HINT,
    PageScopes,
    page_nobody,
)
from ingest.sources.confluence.render import PageParser
from ingest.sources.pdf import PdfFile


def page_items(
    pages: dict[str, PageInfo], scopes: PageScopes | None, *, site: str, display: str, as_of: str | None = None
) -> Iterator[SourceItem]:
    """SourceItems for pages (scope from ``scopes``, or None for the policy) and their PDFs."""
    for page in sorted(pages.values(), key=lambda p: (p.space, p.id)):
        if page.kind not in ("page", "blogpost"):
            continue
        scope, reason, why = scopes.scope(page) if scopes is not None else (None, None, None)
        facts = {
            "source": "confluence",
            "space": page.space,
            "workspace": site,
            "path": "/".join([*page.breadcrumb, page.title]),
        }
        doc_id = f"confluence:{site}:{page.id}"
        legacy = f"confluence:{page.space}:{page.id}"  # the id before sites were part of it
        origin = f"confluence:{site}:{page.space}"
        refusal = _refusal(page, reason, why, display) if page.error or reason else None
        if page.error:  # its own restrictions are unreadable too
            scope = page_nobody(site, page.space, page.id, "unreadable page")
        parser: Parser = refusal or PageParser(page)
        yield SourceItem(
            source="confluence",
            path=page.path or Path(display),
            rel_path=page.rel_path or doc_id,
            document_id=doc_id,
            fingerprint=parser.fingerprint,
            parse=parser.parse,
            facts=facts,
            scope=scope,
            uri=page.uri,
            title=page.title,
            author=page.author,
            modified_at=page.modified_at,
            origin=origin,
            as_of=as_of,
            aliases=(legacy,),
            ancestry=tuple(page.ancestors),
        )
        yield from _attachment_items(
            page, refusal, scope, facts, doc_id=doc_id, legacy=legacy, origin=origin, as_of=as_of
        )


def _refusal(page: PageInfo, reason: str | None, why: str | None, display: str) -> Refusal:
    """Why a page (and its attachments) is quarantined: unreadable, or its permissions."""
    hint = (
        INCOMPLETE_HINT
        if reason == "permissions_incomplete"
        else "export the space again with its permissions (see docs/sources.md)"
    )
    return Refusal(
        QuarantinedDocument(
            f"{display}: page {page.id} ({page.title!r}): {page.error or why}",
            reason=page.error_reason if page.error else reason or "error",
            path=str(page.path or display),
            hint=hint,
        )
    )


def _attachment_items(
    page: PageInfo,
    refusal: Refusal | None,
    scope: AccessScope | None,
    facts: dict[str, str],
    *,
    doc_id: str,
    legacy: str,
    origin: str,
    as_of: str | None,
) -> Iterator[SourceItem]:
    """The page's PDF attachments (symlinks never followed)."""
    for name, file in page.attachments:
        if not name.lower().endswith(".pdf") or not file.is_file() or file.is_symlink():
            continue
        parser: Parser = refusal or PdfFile(file)
        yield SourceItem(
            source="confluence",
            path=file,
            rel_path=f"{page.rel_path or page.id}/attachments/{name}",
            document_id=f"{doc_id}:attachment:{name}",
            fingerprint=parser.fingerprint,
            parse=parser.parse,
            facts={**facts, "path": facts["path"] + "/" + name, "attachment": name},
            scope=scope,
            uri=(page.uri or doc_id) + f"#attachment={name}",
            title=name,
            author=page.author,
            modified_at=page.modified_at,
            origin=origin,
            as_of=as_of,
            aliases=(f"{legacy}:attachment:{name}",),
            ancestry=tuple(page.ancestors),
        )
