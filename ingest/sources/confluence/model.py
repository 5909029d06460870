"""What every Confluence export shape is read into: spaces, pages, principals, the site."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from governance.errors import AccessDenied, SourceError
from governance.identity import principal


@dataclass
class SpaceInfo:
    key: str
    name: str | None = None
    view: set[str] | None = None  # principals with VIEWSPACE; None: unknown (fail closed)
    open: bool = False  # anonymous / all users may view


@dataclass
class PageInfo:
    id: str
    title: str
    space: str
    body: str
    body_format: str = "storage"  # storage | view (rendered HTML)
    kind: str = "page"
    parent: str | None = None
    ancestors: list[str] = field(default_factory=list)  # root first, parent last
    read: frozenset[str] | None = None  # own view restriction (None: none)
    restrictions_known: bool = True
    incomplete: str | None = None  # why its permission data is incomplete (unexpanded, truncated)
    version: str = ""
    modified_at: datetime | None = None
    author: str | None = None  # display name
    owner: str | None = None  # principal of the last modifier / creator
    uri: str | None = None
    path: Path | None = None
    rel_path: str = ""
    breadcrumb: list[str] = field(default_factory=list)
    attachments: list[tuple[str, Path]] = field(default_factory=list)  # (file name, file)
    error: str | None = None
    error_reason: str = "unreadable_page"  # quarantine reason when ``error`` is set


def user_principal(email: Any = None, *alternatives: Any) -> str | None:
    """``user:<email>`` when there is one, else the first username / accountId given."""
    for value in (email, *alternatives):
        if isinstance(value, str) and value.strip():
            try:
                return principal("user", value.strip())
            except AccessDenied:
                return None
    return None


def group_principal(name: Any) -> str | None:
    """``group:<name>``, or None for a name no principal can hold."""
    if isinstance(name, str) and name.strip():
        try:
            return principal("group", name.strip())
        except AccessDenied:
            return None
    return None


def require_site(site: str | None, display: str) -> str:
    """The site an export belongs to, or a refusal: two exports that state no site must not
    share scope keys or document ids."""
    if site:
        cleaned = re.sub(r"[^A-Za-z0-9_.:-]", "_", site.strip().lower())[:200]
        if cleaned.strip("_"):
            return cleaned
    raise SourceError(
        f"{display}: the Confluence export does not say which site it comes from (no base URL)",
        hint="name the site: govrag ingest --site acme.atlassian.net, or a policy `sources` rule "
        "with site: (see docs/sources.md)",
    )
