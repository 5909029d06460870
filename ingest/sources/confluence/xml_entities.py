"""Reading a Confluence XML space export's ``entities.xml``: Hibernate objects, safely.

The XML is read with lxml's iterparse, entity resolution and network access off (no XXE); a
``DOCTYPE`` refuses the file. Only the classes in ``KEEP`` are kept, as
``{"id": .., "props": {name: text | ("ref", id)}, "collections": {name: [ids]}}``.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from governance.errors import SourceError
from ingest.sources.confluence.model import group_principal, user_principal

KEEP = {
    "Space",
    "Page",
    "BlogPost",
    "BodyContent",
    "SpacePermission",
    "ContentPermissionSet",
    "ContentPermission",
    "ConfluenceUserImpl",
    "Attachment",
}


def read_objects(xml_path: Path) -> dict[str, list[dict[str, Any]]]:
    """``{class: [{"id": .., "props": {name: text | ("ref", id)}, "collections": {name: [ids]}}]}``."""
    from lxml import etree

    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    try:
        # Confluence never writes a DOCTYPE: one here can only declare entities (XXE, billion
        # laughs). Refused before the body is read (entities are never resolved anyway).
        for _, el in etree.iterparse(
            str(xml_path), events=("start",), resolve_entities=False, no_network=True, load_dtd=False
        ):
            doctype = el.getroottree().docinfo.doctype
            if doctype:
                raise SourceError(
                    f"{xml_path}: entities.xml declares a DOCTYPE ({doctype[:80]!r}); Confluence exports "
                    "never do, and its entities could read local files or expand without bound",
                    hint="export the space again from Confluence; nothing from this export was ingested",
                )
            break
        for _, el in etree.iterparse(
            str(xml_path),
            events=("end",),
            tag="object",
            resolve_entities=False,
            no_network=True,
            huge_tree=True,
            load_dtd=False,
        ):
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
                            (e.findtext("id") or "").strip() for e in child.findall("element")
                        ]
                out[cls].append(obj)
            el.clear()
            while el.getprevious() is not None:
                del el.getparent()[0]
    except etree.XMLSyntaxError as exc:
        raise SourceError(
            f"{xml_path}: entities.xml is not well-formed XML: {exc}",
            hint="export the space again; nothing from this export was ingested",
        ) from exc
    return out


def prop_ref(obj: dict, name: str) -> str | None:
    """The id a property of ``obj`` refers to (``<property><id>..</id></property>``)."""
    v = obj["props"].get(name)
    return v[1] if isinstance(v, tuple) and v[1] else None


def prop_text(obj: dict, name: str) -> str | None:
    """The text of a property of ``obj`` (None for a reference or an absent property)."""
    v = obj["props"].get(name)
    return v if isinstance(v, str) else None


def xml_time(text: str | None) -> datetime | None:
    """A Hibernate timestamp (UTC), or None when it is not one."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.strip()).replace(tzinfo=UTC)
    except ValueError:
        return None


ANONYMOUS = "anonymous"
# Properties a SpacePermission carries besides its subject; anything else (or a subject
# property that is present but empty) makes the grant unreadable.
_PERMISSION_PROPS = {
    "type",
    "space",
    "creator",
    "creationDate",
    "lastModifier",
    "lastModificationDate",
    "hibernateVersion",
}
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
    ((name, value),) = subjects.items()
    if name == "group":
        return group_principal(value) if isinstance(value, str) else None
    if name == "userSubject":
        return users.get(value[1]) if isinstance(value, tuple) else None
    if name == "userName":  # Confluence before 5.3 named the user by its username
        if not isinstance(value, str) or not value.strip():
            return None
        return by_username.get(value.strip().lower()) or user_principal(value)
    return None  # allUsersSubject and anything else: not read, so no grant


def export_datetime(xml_path: Path) -> datetime | None:
    """The ``datetime`` attribute of ``<hibernate-generic>``: when the export was made."""
    import re

    with open(xml_path, "rb") as f:
        head = f.read(4096).decode("utf-8", errors="replace")
    m = re.search(r"<hibernate-generic[^>]*\bdatetime=\"([^\"]+)\"", head)
    return xml_time(m.group(1)) if m else None


def stated_site(root: Path) -> str | None:
    """The host of ``exportDescriptor.properties``' ``baseUrl``: the site the export states."""
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
