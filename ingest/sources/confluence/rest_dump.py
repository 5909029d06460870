"""Confluence REST v1 dumps: a folder of saved API responses.

::

    space.json          GET /rest/api/space/{key}?expand=permissions
    pages/<id>.json     GET /rest/api/content/{id}?expand=body.storage,ancestors,version,space,
                            restrictions.read.restrictions.user,restrictions.read.restrictions.group
    users.json          optional: [{accountId|username, email}] — the workspace members
    attachments/<id>/*.pdf   optional: the page's PDF attachments

A page saved without ``restrictions`` has unknown permissions and is quarantined, as is a
page whose ancestor is missing from the dump, and every page of a space saved without its
``permissions``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from governance.errors import SourceError
from ingest.sources.archive import safe_files
from ingest.sources.base import (
    JsonTooLarge,
    SourceExport,
    as_of_stamp,
    newest,
    read_json_file,
)
from ingest.sources.confluence.items import page_items
from ingest.sources.confluence.model import (
    PageInfo,
    SpaceInfo,
    group_principal,
    require_site,
    user_principal,
)
from ingest.sources.confluence.permissions import PageScopes, permission_state
from ingest.sources.protocol import SourceContext

MAX_JSON_BYTES = 64 * 1024 * 1024


def detect(path: Path) -> bool:
    """A folder with ``space.json`` and ``pages/``."""
    return Path(path).is_dir() and (Path(path) / "space.json").is_file() and (Path(path) / "pages").is_dir()


def _load(path: Path) -> Any:
    """Size-limited (MAX_JSON_BYTES, before reading), strict UTF-8, depth-safe, surrogates scrubbed."""
    return read_json_file(path, MAX_JSON_BYTES, "ingest.sources.confluence.rest_dump.MAX_JSON_BYTES")


def rest_user(u: Any) -> str | None:
    if not isinstance(u, dict):
        return None
    return user_principal(u.get("email"), u.get("username"), u.get("accountId"), u.get("userKey"))


def _subjects(block: Any, unresolved: str | None = None) -> set[str]:
    """Principals of a ``{user: {results}, group: {results}}`` block. With ``unresolved``
    (page restrictions), a subject that names no usable principal (no id, control
    characters, too long) becomes ``user:unresolved:<unresolved>:<n>``: it keeps the layer
    and matches nobody. Dropping it could empty the restriction, and an empty restriction
    means *unrestricted* — a page restricted to one unusable name must not open up."""
    out: set[str] = set()
    if not isinstance(block, dict):
        return out
    subjects = [("user", u) for u in ((block.get("user") or {}).get("results") or [])]
    subjects += [("group", g) for g in ((block.get("group") or {}).get("results") or [])]
    for n, (kind, subject) in enumerate(subjects):
        if kind == "user":
            p = rest_user(subject)
        else:
            p = group_principal(subject.get("name")) if isinstance(subject, dict) else None
        if p:
            out.add(p)
        elif unresolved is not None:
            out.add(f"user:unresolved:{unresolved}:{n}")
    return out


def _unexpanded(block: Any, parts: tuple[str, ...], *, required: bool) -> str | None:
    """Why a ``{user: {results}, group: {results}}`` block is incomplete, or None: a part
    still under ``_expandable`` (or, with ``required``, simply absent), or a part whose
    results are cut (``size`` above the results saved, or a ``next`` link)."""
    if not isinstance(block, dict):
        return "the restriction block is missing"
    listed = block.get("_expandable")
    expandable = listed if isinstance(listed, dict) else {}
    for part in parts:
        sub = block.get(part)
        if sub is None:
            if part in expandable or required:
                return f"its {part} list was not expanded"
            continue
        if not isinstance(sub, dict) or not isinstance(sub.get("results"), list):
            return f"its {part} list is not a list of results"
        size = sub.get("size")
        if isinstance(size, int) and size > len(sub["results"]):
            return f"its {part} list holds {len(sub['results'])} of {size} results"
        if isinstance(sub.get("_links"), dict) and sub["_links"].get("next"):
            return f"its {part} list has more pages (a next link)"
    return None


def parse_space(raw: Any) -> SpaceInfo:
    if not isinstance(raw, dict) or not isinstance(raw.get("key"), str):
        raise ValueError("space.json has no space key")
    space = SpaceInfo(key=raw["key"], name=raw.get("name"))
    perms = raw.get("permissions")
    if not isinstance(perms, list):
        return space  # view stays None: unknown → fail closed
    view: set[str] = set()
    for perm in perms:
        if not isinstance(perm, dict):
            continue
        op = perm.get("operation") or {}
        if op.get("operation") != "read" or op.get("targetType") not in ("space", None):
            continue
        if perm.get("anonymousAccess") or perm.get("unlicensedAccess"):
            space.open = True
        if "subjects" in perm and _unexpanded(perm["subjects"], ("user", "group"), required=False):
            return SpaceInfo(key=space.key, name=space.name)  # view unknown: every page fails closed
        view |= _subjects(perm.get("subjects"))
    space.view = view
    return space


def _when(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None


def parse_page(raw: Any, space_key: str, base: str | None) -> PageInfo:
    if not isinstance(raw, dict) or not raw.get("id"):
        raise ValueError("not a Confluence content object")
    version = raw.get("version") or {}
    by = version.get("by") or {}
    page = PageInfo(
        id=str(raw["id"]),
        title=str(raw.get("title") or raw["id"]),
        space=str((raw.get("space") or {}).get("key") or space_key),
        body=str((((raw.get("body") or {}).get("storage") or {}).get("value")) or ""),
        kind=str(raw.get("type") or "page"),
        ancestors=[str(a["id"]) for a in raw.get("ancestors") or [] if isinstance(a, dict) and a.get("id")],
        version=str(version.get("number", "")),
        modified_at=_when(version.get("when")) if version.get("when") else None,
        author=by.get("displayName") or by.get("publicName") or by.get("username"),
    )
    page.parent = page.ancestors[-1] if page.ancestors else None
    page.owner = rest_user(by) if by.get("email") or by.get("username") or by.get("accountId") else None
    if not isinstance(raw.get("ancestors"), list):
        # Without the ancestors the page would look top-level and skip every restricted
        # parent: its permissions are unknown, not "none".
        page.incomplete = "saved without its ancestors (expand=ancestors)"
    restrictions = raw.get("restrictions")
    if not isinstance(restrictions, dict) or "read" not in restrictions:
        page.restrictions_known = False
    else:
        read = (restrictions.get("read") or {}).get("restrictions")
        if read is None:
            page.restrictions_known = False
        elif (why := _unexpanded(read, ("user", "group"), required=True)) is not None:
            page.incomplete = page.incomplete or f"its read restriction is incomplete: {why}"
        else:
            principals = _subjects(read, unresolved=re.sub(r"[^A-Za-z0-9_.-]", "_", page.id)[:64])
            page.read = frozenset(principals) if principals else None
    webui = (raw.get("_links") or {}).get("webui")
    link_base = (raw.get("_links") or {}).get("base") or base
    page.uri = (link_base.rstrip("/") + webui) if link_base and webui else None
    return page


def _read_space(path: Path) -> tuple[SpaceInfo, str | None]:
    """The space of ``space.json`` and the base URL the dump states, if any."""
    try:
        raw_space = _load(path / "space.json")
        space = parse_space(raw_space)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise SourceError(
            f"{path / 'space.json'}: unreadable Confluence space: {exc}",
            hint="save GET /rest/api/space/{key}?expand=permissions as space.json",
        ) from exc
    base = ((raw_space.get("_links") or {}).get("base")) if isinstance(raw_space, dict) else None
    return space, base


def _read_members(path: Path) -> set[str]:
    """The site's users from the optional ``users.json`` (the source members)."""
    if not (path / "users.json").is_file():
        return set()
    try:
        users = _load(path / "users.json")
        users = users.get("results", []) if isinstance(users, dict) else users
        return {p for u in users or [] if (p := rest_user(u))}
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"{path / 'users.json'}: unreadable: {exc}") from exc


def _read_pages(path: Path, space: SpaceInfo, base: str | None) -> tuple[dict[str, PageInfo], set[str]]:
    """Every ``pages/*.json`` (an unreadable one becomes a page with an error) and the base
    URLs the pages state."""
    pages: dict[str, PageInfo] = {}
    page_bases: set[str] = set()
    for f in safe_files(path / "pages", ".json"):
        rel = f.relative_to(path).as_posix()
        try:
            raw = _load(f)
            page = parse_page(raw, space.key, base)
            link_base = (raw.get("_links") or {}).get("base") if isinstance(raw.get("_links"), dict) else None
            if isinstance(link_base, str):
                page_bases.add(link_base)
        except (ValueError, OSError, UnicodeDecodeError, TypeError, AttributeError) as exc:
            page = PageInfo(
                id=f.stem,
                title=f.stem,
                space=space.key,
                body="",
                error=f"unreadable JSON: {exc}",
                error_reason="too_large" if isinstance(exc, JsonTooLarge) else "unreadable_page",
            )
        page.path, page.rel_path = f, rel
        att = path / "attachments" / page.id
        if att.is_dir():
            page.attachments = [(a.name, a) for a in safe_files(att, ".pdf")]
        pages[page.id] = page
    titles = {p.id: p.title for p in pages.values()}
    for p in pages.values():
        p.breadcrumb = [titles.get(a, a) for a in p.ancestors]
    return pages, page_bases


def open_dump(path: Path, ctx: SourceContext) -> SourceExport:
    """The pages of a REST dump and the permission state it states."""
    path = Path(path)
    space, base = _read_space(path)
    members = _read_members(path)
    pages, page_bases = _read_pages(path, space, base)
    stated = {h for b in ([base] if base else sorted(page_bases)) if (h := urlparse(b).hostname)}
    # What the dump states wins; ``ctx.site`` only names dumps that state none (or several).
    site = require_site((next(iter(stated)) if len(stated) == 1 else None) or ctx.site, str(path))
    scopes = PageScopes(site, {space.key: space}, pages, ctx.policy, members)
    # When the dump was saved, by its files' times: page versions say when pages were edited,
    # not when the dump was made (a later dump of a few old pages must not count as older).
    as_of = as_of_stamp(
        None,
        newest(
            datetime.fromtimestamp(f.stat().st_mtime, tz=UTC)
            for f in (path / "space.json", *(p.path for p in pages.values() if p.path))
        ),
    )
    items = list(page_items(pages, scopes, site=site, display=str(path), as_of=as_of))
    return SourceExport(path=path, items=items, state=permission_state(scopes, pages, as_of=as_of))
