"""Confluence XML space exports: ``entities.xml`` (Hibernate objects), folder or zip.

Objects read: ``Space``, ``Page`` / ``BlogPost`` (only the current version: ``contentStatus``
current and no ``originalVersion``; drafts, history and trash are skipped), ``BodyContent``
(storage format), ``SpacePermission`` (type ``VIEWSPACE``: a ``group``, a ``userSubject`` or
neither = anonymous), ``ContentPermissionSet`` / ``ContentPermission`` (type ``View``),
``ConfluenceUserImpl`` (username, email) and ``Attachment`` (PDFs under
``attachments/<page id>/<attachment id>/<version>``).

Reading ``entities.xml`` itself is :mod:`~ingest.sources.confluence.xml_entities`. A zip
goes through the same safe extraction as Slack exports.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from governance.errors import SourceError
from ingest.sources.archive import extract_zip, removed_on_error, safe_files, zip_names
from ingest.sources.base import SourceExport, as_of_stamp, newest
from ingest.sources.confluence.items import page_items
from ingest.sources.confluence.model import (
    PageInfo,
    SpaceInfo,
    group_principal,
    require_site,
    user_principal,
)
from ingest.sources.confluence.permissions import PageScopes, permission_state
from ingest.sources.confluence.xml_entities import (
    ANONYMOUS,
    export_datetime,
    prop_ref,
    prop_text,
    read_objects,
    stated_site,
    view_grant,
    xml_time,
)
from ingest.sources.protocol import SourceContext

MAX_ENTITIES_BYTES = 512 * 1024 * 1024  # entities.xml (read objects are held in memory together)
MAX_BODY_CHARS = 32 * 1024 * 1024  # one page's storage-format body
MAX_ANCESTORS = 1000  # depth of the page tree

Objects = dict[str, list[dict[str, Any]]]


def detect(path: Path) -> bool:
    """A folder holding ``entities.xml``, the file itself, or a zip holding it."""
    path = Path(path)
    if path.is_dir():
        return (path / "entities.xml").is_file()
    if path.is_file() and path.name == "entities.xml":
        return True
    if path.is_file() and path.suffix.lower() == ".zip":
        return "entities.xml" in zip_names(path)
    return False


def open_export(path: Path, ctx: SourceContext) -> SourceExport:
    """The pages of an XML space export and the permission state it states."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() == ".zip":
        root = extract_zip(path, dest_root=ctx.work_dir)
        scratch = [root]
    else:
        root, scratch = (path if path.is_dir() else path.parent), []
    with removed_on_error(scratch):
        return _open(path, root, ctx, scratch=scratch)


def _open(path: Path, root: Path, ctx: SourceContext, *, scratch: list[Path]) -> SourceExport:
    display = str(path)
    xml = _entities_file(root, display)
    objs = read_objects(xml)
    site = require_site(stated_site(root) or ctx.site, display)  # what the export states wins
    users = _users(objs)
    spaces, space_by_id = _spaces(objs, users)
    restrictions = _view_restrictions(objs, users)
    pages, parents = _pages(objs, xml, space_by_id, users, restrictions)
    _link_ancestors(pages, parents)
    _attach_pdfs(objs, pages, root / "attachments")
    scopes = PageScopes(site, spaces, pages, ctx.policy, set(users.values()))
    files = Path(display) if Path(display).is_file() else xml
    as_of = as_of_stamp(
        export_datetime(xml) or newest(p.modified_at for p in pages.values()),
        datetime.fromtimestamp(files.stat().st_mtime, tz=UTC),
    )
    items = list(page_items(pages, scopes, site=site, display=display, as_of=as_of))
    return SourceExport(path=path, items=items, state=permission_state(scopes, pages, as_of=as_of), scratch=scratch)


def _entities_file(root: Path, display: str) -> Path:
    """``entities.xml``, refused when absent, a symlink, or over ``MAX_ENTITIES_BYTES``."""
    xml = root / "entities.xml"
    if not xml.is_file() or xml.is_symlink():
        raise SourceError(f"{display}: no entities.xml", hint="pass the XML space export (zip or folder)")
    if (size := xml.stat().st_size) > MAX_ENTITIES_BYTES:
        # every kept object (bodies included) is held at once: bound the input, not the damage
        raise SourceError(
            f"{display}: entities.xml is {size} bytes, over the {MAX_ENTITIES_BYTES} byte limit "
            "(ingest.sources.confluence.xml_export.MAX_ENTITIES_BYTES)",
            hint="export the space in parts (or use the REST dump), or raise MAX_ENTITIES_BYTES "
            "where the memory allows; nothing from this export was ingested",
        )
    return xml


def _users(objs: Objects) -> dict[str, str]:
    """User object id → principal (email, else username, else the id)."""
    users: dict[str, str] = {}
    for u in objs["ConfluenceUserImpl"]:
        p = user_principal(prop_text(u, "email"), prop_text(u, "name"), prop_text(u, "lowerName"), u["id"])
        if p:
            users[u["id"]] = p
    return users


def _spaces(objs: Objects, users: dict[str, str]) -> tuple[dict[str, SpaceInfo], dict[str, str]]:
    """(space key → space with its VIEWSPACE grants, space object id → key)."""
    spaces: dict[str, SpaceInfo] = {}
    space_by_id: dict[str, str] = {}
    for s in objs["Space"]:
        key = prop_text(s, "key") or s["id"]
        space_by_id[s["id"]] = key
        spaces[key] = SpaceInfo(key=key, name=prop_text(s, "name"), view=None)
    by_username = {}
    for u in objs["ConfluenceUserImpl"]:
        for name in (prop_text(u, "name"), prop_text(u, "lowerName")):
            if name and u["id"] in users:
                by_username[name.strip().lower()] = users[u["id"]]
    for sp in objs["SpacePermission"]:
        if (prop_text(sp, "type") or "").strip().upper() != "VIEWSPACE":
            continue
        key = space_by_id.get(prop_ref(sp, "space") or "")
        if key is None:
            continue
        space = spaces[key]
        space.view = space.view if space.view is not None else set()
        grant = view_grant(sp, users, by_username)
        if grant == ANONYMOUS:
            space.open = True
        elif grant is not None:
            space.view.add(grant)
    return spaces, space_by_id


def _view_restrictions(objs: Objects, users: dict[str, str]) -> dict[str, set[str]]:
    """Page id → principals of its View restriction, for every page that has one (an
    unknown user keeps the layer as ``user:unresolved:<id>``, which matches nobody)."""
    set_page: dict[str, str] = {}  # permission set id → its page
    for ps in objs["ContentPermissionSet"]:
        if (prop_text(ps, "type") or "").strip().lower() == "view" and prop_ref(ps, "owningContent"):
            set_page[ps["id"]] = prop_ref(ps, "owningContent")  # type: ignore[assignment]
    read: dict[str, set[str]] = defaultdict(set)
    for cp in objs["ContentPermission"]:
        if (prop_text(cp, "type") or "").strip().lower() != "view":
            continue
        owner = set_page.get(prop_ref(cp, "owningSet") or "")
        if owner is None:
            continue
        group, user = prop_text(cp, "groupName"), prop_ref(cp, "userSubject")
        p = group_principal(group) if group else users.get(user or "") or user_principal(prop_text(cp, "userName"))
        read[owner].add(p or f"user:unresolved:{cp['id']}")
    return {page_id: read[page_id] for page_id in set_page.values()}


def _bodies(objs: Objects) -> tuple[dict[str, str], set[str]]:
    """(content id → storage-format body, ids whose body is over ``MAX_BODY_CHARS``: dropped)."""
    bodies: dict[str, str] = {}
    for b in objs["BodyContent"]:
        owner = prop_ref(b, "content")
        if owner and (prop_text(b, "bodyType") or "2").strip() == "2":
            bodies[owner] = prop_text(b, "body") or ""
    too_large = {o for o, body in bodies.items() if len(body) > MAX_BODY_CHARS}
    for owner in too_large:
        bodies[owner] = ""
    return bodies, too_large


def _pages(
    objs: Objects, xml: Path, space_by_id: dict[str, str], users: dict[str, str], restrictions: dict[str, set[str]]
) -> tuple[dict[str, PageInfo], dict[str, str | None]]:
    """(current pages and blog posts by id, page id → its parent's id)."""
    bodies, too_large = _bodies(objs)
    pages: dict[str, PageInfo] = {}
    parents: dict[str, str | None] = {}
    for kind, cls in (("page", "Page"), ("blogpost", "BlogPost")):
        for o in objs[cls]:
            status = (prop_text(o, "contentStatus") or "current").strip()
            if status != "current" or prop_ref(o, "originalVersion"):
                continue
            pid = o["id"]
            creator = users.get(prop_ref(o, "lastModifier") or prop_ref(o, "creator") or "")
            page = PageInfo(
                id=pid,
                title=(prop_text(o, "title") or pid).strip(),
                space=space_by_id.get(prop_ref(o, "space") or "", "unknown"),
                body=bodies.get(pid, ""),
                kind=kind,
                version=(prop_text(o, "version") or "").strip(),
                modified_at=xml_time(prop_text(o, "lastModificationDate")),
                author=creator.split(":", 1)[1] if creator else None,
                owner=creator,
                rel_path=f"entities.xml#{cls}:{pid}",
                path=xml,
            )
            page.read = frozenset(restrictions[pid]) if restrictions.get(pid) else None
            if pid in too_large:
                page.error, page.error_reason = (
                    (
                        f"page body is over {MAX_BODY_CHARS} characters "
                        "(limit ingest.sources.confluence.xml_export.MAX_BODY_CHARS)"
                    ),
                    "too_large",
                )
            pages[pid] = page
            parents[pid] = prop_ref(o, "parent") if kind == "page" else None
    return pages, parents


def _link_ancestors(pages: dict[str, PageInfo], parents: dict[str, str | None]) -> None:
    """Each page's ancestors (root first) and breadcrumb, by walking parents. A cycle stops
    the walk; a missing ancestor is left for the scopes to refuse; a chain deeper than
    ``MAX_ANCESTORS`` is an error (bounded: a hostile 100k-page chain would be quadratic)."""
    for pid, page in pages.items():
        chain: list[str] = []
        cur, seen = parents.get(pid), {pid}
        while cur and cur not in seen:
            if len(chain) >= MAX_ANCESTORS:
                page.error, page.error_reason = (
                    (
                        f"page is nested more than {MAX_ANCESTORS} pages deep (limit "
                        "ingest.sources.confluence.xml_export.MAX_ANCESTORS)"
                    ),
                    "too_deep",
                )
                break
            chain.append(cur)
            seen.add(cur)
            cur = parents.get(cur)
        page.ancestors = list(reversed(chain))
        page.parent = page.ancestors[-1] if page.ancestors else None
        page.breadcrumb = [pages[a].title if a in pages else a for a in page.ancestors]


def _attach_pdfs(objs: Objects, pages: dict[str, PageInfo], att_root: Path) -> None:
    """The current PDF attachments of each page: the file of the attachment's version."""
    for a in objs["Attachment"]:
        status = (prop_text(a, "contentStatus") or "current").strip()
        title = (prop_text(a, "title") or "").strip()
        owner = prop_ref(a, "containerContent") or prop_ref(a, "content")
        if (
            status != "current"
            or prop_ref(a, "originalVersion")
            or owner not in pages
            or not title.lower().endswith(".pdf")
        ):
            continue
        folder = att_root / owner / a["id"]
        files = safe_files(folder) if folder.is_dir() else []
        version = (prop_text(a, "version") or "").strip()
        chosen = next((f for f in files if f.name == version), files[-1] if files else None)
        if chosen is not None:
            pages[owner].attachments.append((title, chosen))
