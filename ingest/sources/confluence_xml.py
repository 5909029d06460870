"""Confluence XML space exports: ``entities.xml`` (Hibernate objects), folder or zip.

Objects read: ``Space``, ``Page`` / ``BlogPost`` (only the current version: ``contentStatus``
current and no ``originalVersion``; drafts, history and trash are skipped), ``BodyContent``
(storage format), ``SpacePermission`` (type ``VIEWSPACE``: a ``group``, a ``userSubject`` or
neither = anonymous), ``ContentPermissionSet`` / ``ContentPermission`` (type ``View``),
``ConfluenceUserImpl`` (username, email) and ``Attachment`` (PDFs under
``attachments/<page id>/<attachment id>/<version>``).

The XML is read with lxml's iterparse, entity resolution and network access off (no XXE).
A zip goes through the same safe extraction as Slack exports.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from governance.errors import SourceError
from governance.policy import Policy
from ingest.sources.archive import extract_zip, remove_extraction, safe_files, zip_names
from ingest.sources.base import SourceExport, SourceItem, as_of_stamp, newest
from ingest.sources.confluence import (
    PageInfo,
    ScopeResolver,
    SpaceInfo,
    group_principal,
    page_items,
    permission_state,
    require_site,
    user_principal,
)

MAX_ENTITIES_BYTES = 512 * 1024 * 1024  # entities.xml (read objects are held in memory together)
MAX_BODY_CHARS = 32 * 1024 * 1024  # one page's storage-format body
MAX_ANCESTORS = 1000               # depth of the page tree
KEEP = {"Space", "Page", "BlogPost", "BodyContent", "SpacePermission", "ContentPermissionSet", "ContentPermission",
        "ConfluenceUserImpl", "Attachment"}


def detect(path: Path) -> bool:
    path = Path(path)
    if path.is_dir():
        return (path / "entities.xml").is_file()
    if path.is_file() and path.name == "entities.xml":
        return True
    if path.is_file() and path.suffix.lower() == ".zip":
        return "entities.xml" in zip_names(path)
    return False


def read_objects(xml_path: Path) -> dict[str, list[dict[str, Any]]]:
    """``{class: [{"id": .., "props": {name: text | ("ref", id)}, "collections": {name: [ids]}}]}``."""
    from lxml import etree

    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    try:
        # Confluence never writes a DOCTYPE: one here can only declare entities (XXE, billion
        # laughs). Refused before the body is read (entities are never resolved anyway).
        for _, el in etree.iterparse(str(xml_path), events=("start",), resolve_entities=False, no_network=True,
                                     load_dtd=False):
            doctype = el.getroottree().docinfo.doctype
            if doctype:
                raise SourceError(f"{xml_path}: entities.xml declares a DOCTYPE ({doctype[:80]!r}); Confluence exports "
                                  "never do, and its entities could read local files or expand without bound",
                                  hint="export the space again from Confluence; nothing from this export was ingested")
            break
        for _, el in etree.iterparse(str(xml_path), events=("end",), tag="object", resolve_entities=False,
                                     no_network=True, huge_tree=True, load_dtd=False):
            cls = el.get("class")
            if cls in KEEP:
                obj: dict[str, Any] = {"id": None, "props": {}, "collections": {}}
                for child in el:
                    if child.tag == "id":
                        obj["id"] = (child.text or "").strip()
                    elif child.tag == "property":
                        ref = child.find("id")
                        if ref is not None:
                            obj["props"][child.get("name")] = ("ref", (ref.text or "").strip())
                        else:
                            obj["props"][child.get("name")] = child.text
                    elif child.tag == "collection":
                        obj["collections"][child.get("name")] = [
                            (e.findtext("id") or "").strip() for e in child.findall("element")]
                out[cls].append(obj)
            el.clear()
            while el.getprevious() is not None:
                del el.getparent()[0]
    except etree.XMLSyntaxError as exc:
        raise SourceError(f"{xml_path}: entities.xml is not well-formed XML: {exc}",
                          hint="export the space again; nothing from this export was ingested") from exc
    return out


def _ref(obj: dict, name: str) -> str | None:
    v = obj["props"].get(name)
    return v[1] if isinstance(v, tuple) and v[1] else None


def _text(obj: dict, name: str) -> str | None:
    v = obj["props"].get(name)
    return v if isinstance(v, str) else None


def _when(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.strip()).replace(tzinfo=timezone.utc)
    except ValueError:
        return None


ANONYMOUS = "anonymous"
# Properties a SpacePermission carries besides its subject; anything else (or a subject
# property that is present but empty) makes the grant unreadable.
_PERMISSION_PROPS = {"type", "space", "creator", "creationDate", "lastModifier", "lastModificationDate",
                     "hibernateVersion"}
_SUBJECT_PROPS = {"group", "userSubject", "userName", "allUsersSubject"}


def view_grant(sp: dict, users: dict[str, str], by_username: dict[str, str]) -> str | None:
    """The principal one VIEWSPACE permission grants, ``ANONYMOUS`` for anonymous access, or
    None for no grant. Anonymous means *no subject property at all* and nothing unknown: an
    empty group, a user that is not in the export, a property this reader does not know,
    all grant nothing (an unreadable grant must never become "everybody")."""
    props = sp["props"]
    subjects = {k: v for k, v in props.items() if k in _SUBJECT_PROPS}
    unknown = {k for k, v in props.items() if k not in _SUBJECT_PROPS | _PERMISSION_PROPS and v not in (None, "")}
    if not subjects:
        return None if unknown else ANONYMOUS
    if len(subjects) != 1 or unknown:
        return None
    (name, value), = subjects.items()
    if name == "group":
        return group_principal(value) if isinstance(value, str) else None
    if name == "userSubject":
        return users.get(value[1]) if isinstance(value, tuple) else None
    if name == "userName":  # Confluence before 5.3 named the user by its username
        if not isinstance(value, str) or not value.strip():
            return None
        return by_username.get(value.strip().lower()) or user_principal(value)
    return None  # allUsersSubject and anything else: not read, so no grant


def _export_datetime(xml_path: Path) -> datetime | None:
    """The ``datetime`` attribute of ``<hibernate-generic>``: when the export was made."""
    import re

    with open(xml_path, "rb") as f:
        head = f.read(4096).decode("utf-8", errors="replace")
    m = re.search(r"<hibernate-generic[^>]*\bdatetime=\"([^\"]+)\"", head)
    return _when(m.group(1)) if m else None


def _site(root: Path) -> str | None:
    props = root / "exportDescriptor.properties"
    if props.is_file():
        from urllib.parse import urlparse

        with open(props, "rb") as f:
            text = f.read(1 << 20).decode("utf-8", errors="replace")  # a few lines; never a hostile GB
        for line in text.splitlines():
            k, _, v = line.partition("=")
            if k.strip() == "baseUrl" and v.strip():
                return urlparse(v.strip().replace("\\:", ":")).hostname
    return None


def open_source(path: Path, policy: Policy, *, site: str | None = None) -> SourceExport:
    path = Path(path)
    if path.is_file() and path.suffix.lower() == ".zip":
        root = extract_zip(path)
        try:
            return _open(path, root, str(path), policy, site, scratch=[root])
        except BaseException:
            remove_extraction(root)
            raise
    return _open(path, path if path.is_dir() else path.parent, str(path), policy, site, scratch=[])


def _open(path: Path, root: Path, display: str, policy: Policy, site: str | None, *,
          scratch: list[Path]) -> SourceExport:
    xml = root / "entities.xml"
    if not xml.is_file() or xml.is_symlink():
        raise SourceError(f"{display}: no entities.xml", hint="pass the XML space export (zip or folder)")
    if (size := xml.stat().st_size) > MAX_ENTITIES_BYTES:
        # every kept object (bodies included) is held at once: bound the input, not the damage
        raise SourceError(f"{display}: entities.xml is {size} bytes, over the {MAX_ENTITIES_BYTES} byte limit "
                          "(ingest.sources.confluence_xml.MAX_ENTITIES_BYTES)",
                          hint="export the space in parts (or use the REST dump), or raise MAX_ENTITIES_BYTES "
                               "where the memory allows; nothing from this export was ingested")
    objs = read_objects(xml)
    site = require_site(_site(root) or site, display)  # what the export states wins

    users: dict[str, str] = {}
    for u in objs["ConfluenceUserImpl"]:
        p = user_principal(_text(u, "email"), _text(u, "name"), _text(u, "lowerName"), u["id"])
        if p:
            users[u["id"]] = p
    spaces: dict[str, SpaceInfo] = {}
    space_key_by_id: dict[str, str] = {}
    for s in objs["Space"]:
        key = _text(s, "key") or s["id"]
        space_key_by_id[s["id"]] = key
        spaces[key] = SpaceInfo(key=key, name=_text(s, "name"), view=None)
    by_username = {}
    for u in objs["ConfluenceUserImpl"]:
        for name in (_text(u, "name"), _text(u, "lowerName")):
            if name and u["id"] in users:
                by_username[name.strip().lower()] = users[u["id"]]
    for sp in objs["SpacePermission"]:
        if (_text(sp, "type") or "").strip().upper() != "VIEWSPACE":
            continue
        key = space_key_by_id.get(_ref(sp, "space") or "")
        if key is None:
            continue
        space = spaces[key]
        space.view = space.view if space.view is not None else set()
        grant = view_grant(sp, users, by_username)
        if grant == ANONYMOUS:
            space.open = True
        elif grant is not None:
            space.view.add(grant)
    # View restrictions: set id → page, permission → set
    set_page: dict[str, str] = {}
    for ps in objs["ContentPermissionSet"]:
        if (_text(ps, "type") or "").strip().lower() == "view" and _ref(ps, "owningContent"):
            set_page[ps["id"]] = _ref(ps, "owningContent")  # type: ignore[assignment]
    read: dict[str, set[str]] = defaultdict(set)
    for cp in objs["ContentPermission"]:
        if (_text(cp, "type") or "").strip().lower() != "view":
            continue
        owner = set_page.get(_ref(cp, "owningSet") or "")
        if owner is None:
            continue
        group, user = _text(cp, "groupName"), _ref(cp, "userSubject")
        p = group_principal(group) if group else users.get(user or "") or user_principal(_text(cp, "userName"))
        read[owner].add(p or f"user:unresolved:{cp['id']}")  # unknown user: keeps the layer, matches nobody
    for sid, page_id in set_page.items():
        read.setdefault(page_id, set())

    bodies: dict[str, str] = {}
    for b in objs["BodyContent"]:
        owner = _ref(b, "content")
        if owner and (_text(b, "bodyType") or "2").strip() == "2":
            bodies[owner] = _text(b, "body") or ""
    too_large = {o for o, body in bodies.items() if len(body) > MAX_BODY_CHARS}
    for owner in too_large:
        bodies[owner] = ""
    restricted_pages = set(set_page.values())  # (one lookup per page, not a scan of every set)
    pages: dict[str, PageInfo] = {}
    parents: dict[str, str | None] = {}
    for kind, cls in (("page", "Page"), ("blogpost", "BlogPost")):
        for o in objs[cls]:
            status = (_text(o, "contentStatus") or "current").strip()
            if status != "current" or _ref(o, "originalVersion"):
                continue
            key = space_key_by_id.get(_ref(o, "space") or "", "unknown")
            pid = o["id"]
            creator = users.get(_ref(o, "lastModifier") or _ref(o, "creator") or "")
            page = PageInfo(id=pid, title=(_text(o, "title") or pid).strip(), space=key, body=bodies.get(pid, ""),
                            kind=kind, version=(_text(o, "version") or "").strip(),
                            modified_at=_when(_text(o, "lastModificationDate")),
                            author=creator.split(":", 1)[1] if creator else None, owner=creator,
                            rel_path=f"entities.xml#{cls}:{pid}", path=xml)
            page.read = frozenset(read[pid]) if pid in restricted_pages and read[pid] else None
            if pid in too_large:
                page.error, page.error_reason = (f"page body is over {MAX_BODY_CHARS} characters "
                                                 "(limit ingest.sources.confluence_xml.MAX_BODY_CHARS)"), "too_large"
            pages[pid] = page
            parents[pid] = _ref(o, "parent") if kind == "page" else None
    # Ancestors by walking parents (cycles and missing parents handled by the resolver).
    for pid, page in pages.items():
        chain, cur, seen = [], parents.get(pid), {pid}
        while cur and cur not in seen:
            if len(chain) >= MAX_ANCESTORS:  # bounded: a hostile 100k-page chain would be quadratic
                page.error, page.error_reason = (f"page is nested more than {MAX_ANCESTORS} pages deep (limit "
                                                 "ingest.sources.confluence_xml.MAX_ANCESTORS)"), "too_deep"
                break
            chain.append(cur)
            seen.add(cur)
            cur = parents.get(cur)
        page.ancestors = list(reversed(chain))
        page.parent = page.ancestors[-1] if page.ancestors else None
        page.breadcrumb = [pages[a].title if a in pages else a for a in page.ancestors]
    # PDF attachments
    att_root = root / "attachments"
    for a in objs["Attachment"]:
        status = (_text(a, "contentStatus") or "current").strip()
        title = (_text(a, "title") or "").strip()
        owner = _ref(a, "containerContent") or _ref(a, "content")
        if status != "current" or _ref(a, "originalVersion") or owner not in pages or not title.lower().endswith(".pdf"):
            continue
        folder = att_root / owner / a["id"]
        files = safe_files(folder) if folder.is_dir() else []
        version = (_text(a, "version") or "").strip()
        chosen = next((f for f in files if f.name == version), files[-1] if files else None)
        if chosen is not None:
            pages[owner].attachments.append((title, chosen))  # type: ignore[index]
    members = set(users.values())
    resolver = ScopeResolver(site, spaces, pages, policy, members)
    files = Path(display) if Path(display).is_file() else xml
    as_of = as_of_stamp(_export_datetime(xml) or newest(p.modified_at for p in pages.values()),
                        datetime.fromtimestamp(files.stat().st_mtime, tz=timezone.utc))
    items = list(page_items(pages, resolver, site=site, display=display, as_of=as_of))
    return SourceExport(path=path, items=items, state=permission_state(resolver, pages, as_of=as_of), scratch=scratch)


def discover(path: Path, policy: Policy, *, site: str | None = None) -> Iterator[SourceItem]:
    yield from open_source(path, policy, site=site).items
