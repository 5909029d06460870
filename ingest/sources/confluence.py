"""Confluence exports: three shapes, recognised automatically, one document per page.

1. **HTML space export** (``index.html`` + ``Title_ID.html`` pages): the page tree comes from
   the breadcrumbs; the export carries no permissions, so ``item.scope`` is None and the
   policy must cover the space (else the pages are quarantined) — see ``confluence_html``.
2. **XML space export** (``entities.xml``, optionally zipped with
   ``exportDescriptor.properties``): current pages and blog posts, storage-format bodies,
   the parent tree, ``SpacePermission`` VIEWSPACE and ``ContentPermissionSet`` view
   restrictions — see ``confluence_xml``.
3. **REST API dump** (``space.json`` + ``pages/<id>.json``) — see ``confluence_rest``.

Effective view permission (XML and REST): the space's view permission AND the page's own
read restriction AND the read restriction of every ancestor that has one — one layer each, a
user must match every layer. Users are ``user:<email>`` where the export gives an email,
else ``user:<username>`` / ``user:<accountId>``; groups are ``group:<name>``. A space open
to anonymous or all users holds the workspace-wide scope (policy key ``workspaces``).
Unknown permission data (no space permissions, a page without its restrictions, an
ancestor missing from the export) quarantines the page: fail closed.

Scope keys: ``confluence:<site>:workspace`` (open space, unrestricted page),
``confluence:<site>:<space>:space`` (unrestricted page), and
``confluence:<site>:<space>:restricted:<id>/<id>...`` (the restricted pages of the chain) —
pages under the same restricted ancestors share a scope, and a restriction edit updates it.

PDF attachments of a page become their own documents through the PDF parser, with the
page's scope and facts.
"""

from __future__ import annotations

import hashlib
import html as htmllib
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, Iterator

from governance.contracts import AccessScope
from governance.errors import AccessDenied, GovragError, QuarantinedDocument, SourceError
from governance.identity import principal
from governance.policy import Policy
from ingest.parse.deadline import ParseTimeout, deadline
from ingest.sources.base import Parsed, PermissionState, SourceExport, SourceItem, bounded_id
from ingest.sources.workspaces import workspace_principals

log = logging.getLogger(__name__)

PARSER_VERSION = "confluence-1"


# -- the common model ----------------------------------------------------------------------------
@dataclass
class SpaceInfo:
    key: str
    name: str | None = None
    view: set[str] | None = None   # principals with VIEWSPACE; None: unknown (fail closed)
    open: bool = False             # anonymous / all users may view


@dataclass
class PageInfo:
    id: str
    title: str
    space: str
    body: str
    body_format: str = "storage"   # storage | view (rendered HTML)
    kind: str = "page"
    parent: str | None = None
    ancestors: list[str] = field(default_factory=list)  # root first, parent last
    read: frozenset[str] | None = None                  # own view restriction (None: none)
    restrictions_known: bool = True
    incomplete: str | None = None  # why its permission data is incomplete (unexpanded, truncated)
    version: str = ""
    modified_at: datetime | None = None
    author: str | None = None      # display name
    owner: str | None = None       # principal of the last modifier / creator
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
    if isinstance(name, str) and name.strip():
        try:
            return principal("group", name.strip())
        except AccessDenied:
            return None
    return None


# -- storage format → text elements -----------------------------------------------------------------
_CDATA = re.compile(r"<!\[CDATA\[(.*?)\]\]>", re.DOTALL)
_PANELS = {"info", "note", "warning", "tip", "panel", "expand", "excerpt", "section", "column", "details"}
_DROP_MACROS = {"toc", "children", "anchor", "attachments", "pagetree", "recently-updated", "contentbylabel",
                "livesearch", "create-from-template", "jira", "profile", "space-details"}


MAX_HTML_DEPTH = 512  # elements nested deeper than this: the page is quarantined (too_deep)
PARTITION_SECONDS = 300.0  # unstructured's partition_html on one page


def html_depth(node: Any, limit: int) -> int:
    """How deep elements nest under a BeautifulSoup node (iterative; stops once past ``limit``)."""
    from bs4 import Tag

    deepest, stack = 0, [(node, 0)]
    while stack:
        el, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            break
        stack.extend((child, depth + 1) for child in el.contents if isinstance(child, Tag))
    return deepest


def too_deep(node: Any) -> int | None:
    """The nesting depth under ``node`` when it is over ``MAX_HTML_DEPTH``, else None."""
    depth = html_depth(node, MAX_HTML_DEPTH)
    return depth if depth > MAX_HTML_DEPTH else None


def too_deep_message(depth: int) -> str:
    return (f"HTML nested more than {MAX_HTML_DEPTH} elements deep ({depth}+ levels; limit "
            "ingest.sources.confluence.MAX_HTML_DEPTH): refused before it reaches the HTML partitioner")


TOO_DEEP_HINT = "no real page nests this deep; fix the page in Confluence (or raise MAX_HTML_DEPTH) and export again"


def storage_to_html(body: str) -> str:
    """Confluence storage format (XHTML with ``ac:``/``ri:`` elements) → plain HTML that
    unstructured's partitioner understands: code macros become ``<pre>``, panels keep their
    body with a label, links keep their text, images and attachments their file names.
    Bodies nested deeper than ``MAX_HTML_DEPTH`` are refused (``too_deep``)."""
    from bs4 import BeautifulSoup

    body = _CDATA.sub(lambda m: htmllib.escape(m.group(1), quote=False), body or "")
    soup = BeautifulSoup(body, "html.parser")
    if (depth := too_deep(soup)) is not None:
        raise QuarantinedDocument(f"storage-format body: {too_deep_message(depth)}", reason="too_deep",
                                  hint=TOO_DEEP_HINT)

    def new(tag: str, text: str | None = None):  # type: ignore[no-untyped-def]
        el = soup.new_tag(tag)
        if text is not None:
            el.string = text
        return el

    for macro in reversed(soup.find_all(["ac:structured-macro", "ac:macro"])):
        name = (macro.get("ac:name") or "").lower()
        plain = macro.find("ac:plain-text-body")
        rich = macro.find("ac:rich-text-body")
        title = macro.find("ac:parameter", attrs={"ac:name": "title"})
        if name in ("code", "noformat") or (plain is not None and rich is None):
            pre = new("pre", plain.get_text() if plain is not None else "")
            macro.replace_with(pre)
        elif rich is not None:
            div = new("div")
            label = (title.get_text(strip=True) if title is not None else "") or (
                name.capitalize() if name in _PANELS else "")
            if label:
                div.append(new("p", f"{label}:"))
            for child in list(rich.contents):
                div.append(child.extract())
            macro.replace_with(div)
        elif title is not None and name not in _DROP_MACROS:
            macro.replace_with(title.get_text(strip=True))  # e.g. a status lozenge
        else:
            macro.decompose()
    for link in soup.find_all("ac:link"):
        text = link.find(["ac:plain-text-link-body", "ac:link-body"])
        label = text.get_text() if text is not None else ""
        if not label:
            ref = link.find(["ri:page", "ri:blog-post", "ri:attachment", "ri:user", "ri:space"])
            if ref is not None:
                label = (ref.get("ri:content-title") or ref.get("ri:filename") or ref.get("ri:space-key")
                         or ("@" + (ref.get("ri:username") or ref.get("ri:account-id") or ref.get("ri:userkey") or "user")))
        link.replace_with(label)
    for img in soup.find_all("ac:image"):
        ref = img.find(["ri:attachment", "ri:url"])
        name = ref.get("ri:filename") or ref.get("ri:value") if ref is not None else None
        img.replace_with(f"[image: {name}]" if name else "")
    for task in soup.find_all("ac:task"):
        body_el = task.find("ac:task-body")
        status = task.find("ac:task-status")
        li = new("li")
        li.string = ("[x] " if status is not None and status.get_text(strip=True) == "complete" else "[ ] ") + (
            body_el.get_text(" ", strip=True) if body_el is not None else "")
        task.replace_with(li)
    for tl in soup.find_all("ac:task-list"):
        tl.name = "ul"
    for el in soup.find_all(["ac:emoticon", "ac:parameter", "ac:placeholder", "ac:inline-comment-marker"]):
        if el.name == "ac:inline-comment-marker":
            el.unwrap()
        else:
            el.decompose()
    for t in soup.find_all("time"):
        if t.get("datetime") and not t.get_text(strip=True):
            t.string = t["datetime"]
    for el in soup.find_all(lambda tag: ":" in tag.name):
        el.unwrap()
    return str(soup)


def html_elements(html: str, title: str | None = None) -> list[Any]:
    """HTML → unstructured elements (headings, lists, tables, code), title first."""
    from unstructured.documents.elements import Title

    from ingest.parse.offline import prepare_unstructured

    prepare_unstructured()
    from unstructured.partition.html import partition_html

    elements: list[Any] = []
    if html and html.strip():
        try:
            # languages=[""]: no per-document language detection (2/3 of partition time;
            # the result is not used downstream).
            with deadline(PARTITION_SECONDS):
                elements = list(partition_html(text=html, languages=[""]))
        except ParseTimeout:
            raise QuarantinedDocument(f"page {title!r}: HTML partitioning took longer than {PARTITION_SECONDS:.0f} s "
                                      "(limit ingest.sources.confluence.PARTITION_SECONDS)", reason="timeout",
                                      hint="split the page; if it is genuine, raise PARTITION_SECONDS") from None
        except GovragError:
            raise
        except Exception as exc:  # unstructured/lxml failures: this page only
            raise QuarantinedDocument(f"page {title!r}: HTML could not be partitioned: {exc}",
                                      reason="unparseable") from exc
    return ([Title(title)] if title else []) + elements


# -- scopes ------------------------------------------------------------------------------------------
def _nobody(key: str, why: str) -> AccessScope:
    return AccessScope(key=bounded_id(key), layers=[[]], description=f"readable by nobody: {why}")


def space_key(site: str, space: str) -> str:
    """The scope of a space's unrestricted pages: one key whether the space is open to all
    users or not, so opening or closing a space changes the row, not the key."""
    return bounded_id(f"confluence:{site}:{space}:space")


def restricted_prefix(site: str, space: str) -> str:
    return f"confluence:{site}:{space}:restricted:"


class ScopeResolver:
    """Effective view scope of a page: space layer AND every restricted page of its chain."""

    def __init__(self, site: str, spaces: dict[str, SpaceInfo], pages: dict[str, PageInfo], policy: Policy,
                 source_members: set[str]) -> None:
        self.site, self.spaces, self.pages = site, spaces, pages
        self._policy, self._members = policy, source_members
        self._workspace: dict[str, frozenset[str]] = {}

    def workspace(self, space: str) -> frozenset[str]:
        """Who holds "all users" of this space's site: the policy's ``workspaces`` entry for
        the space, else for the site, else ``confluence``, else ``default`` (per space: two
        open spaces mapped to different groups give different access)."""
        if space not in self._workspace:
            names = [f"{self.site}:{space}", space, self.site, "confluence"]
            self._workspace[space] = frozenset(workspace_principals(self._policy, names, self._members))
        return self._workspace[space]

    def space_layer(self, key: str) -> tuple[frozenset[str] | None, str | None, str | None]:
        """(the space's view layer, quarantine reason, message); None when unknown or empty."""
        space = self.spaces.get(key)
        if space is None or space.view is None:
            return None, "permissions_unknown", f"space {key}: the export holds no view permission for it"
        layer = frozenset(space.view) | (self.workspace(key) if space.open else frozenset())
        if not layer:
            return None, "empty_acl", f"space {key}: nobody holds view permission"
        return layer, None, None

    def space_scope(self, key: str) -> AccessScope:
        """The scope of the space's unrestricted pages (readable by nobody when unknown)."""
        return self._space_scope(key)[0]

    def _space_scope(self, key: str) -> tuple[AccessScope, str | None, str | None]:
        layer, reason, why = self.space_layer(key)
        if layer is None:
            return _nobody(space_key(self.site, key), why or "permissions unknown"), reason, why
        open_ = " (open to all users)" if self.spaces[key].open else ""
        try:
            return AccessScope(key=space_key(self.site, key), layers=[layer],
                               description=f"Confluence {self.site} space {key}{open_}"), None, None
        except AccessDenied as exc:  # a view list over MAX_PRINCIPALS_PER_LAYER: its pages are refused
            why = f"space {key}: {exc} (grant a group instead of listing members)"
            return _nobody(space_key(self.site, key), why), "acl_too_large", why

    def scope(self, page: PageInfo) -> tuple[AccessScope, str | None, str | None]:
        """(scope, quarantine reason, message)."""
        site, key = self.site, page.space
        nobody = _nobody(f"confluence:{site}:{key}:page:{page.id}", "permissions unknown")
        space_layer, reason, why = self.space_layer(key)
        if space_layer is None:
            return nobody, reason, why
        layers, restricted = [space_layer], []
        for pid in [*page.ancestors, page.id]:
            p = self.pages.get(pid)
            if p is None:
                return nobody, "permissions_unknown", f"ancestor page {pid} is not in the export; its restrictions are unknown"
            if p.incomplete:
                return nobody, "permissions_incomplete", (p.incomplete if pid == page.id
                                                          else f"ancestor page {pid}: {p.incomplete}")
            if not p.restrictions_known:
                return nobody, "permissions_unknown", f"page {pid} was exported without its read restrictions"
            if p.read:
                layers.append(p.read)
                restricted.append(pid)
        try:
            if not restricted:
                scope, reason, why = self._space_scope(key)
                return (nobody, reason, why) if reason else (scope, None, None)
            scope = AccessScope(key=bounded_id(restricted_prefix(site, key) + "/".join(restricted)),
                                layers=layers,
                                description=f"Confluence {site} space {key}, restricted by pages {', '.join(restricted)}")
        except AccessDenied as exc:  # a layer over MAX_PRINCIPALS_PER_LAYER, too many layers
            return nobody, "acl_too_large", f"{exc} (grant a group instead of listing members)"
        return scope, None, None


@dataclass
class RestrictedChainRebase:
    """Re-bases the stored restricted-page scopes of one space on this export: the space's
    view layer first, then each restricted page's own restriction where the export holds
    that page (a page it does not hold keeps the layer last stated for it). So a narrowed
    space permission reaches pages ingested from earlier exports, too."""

    prefix: str
    space_layer: frozenset[str]
    restrictions: dict[str, frozenset[str] | None]  # page id -> its read restriction in this export

    def wants(self, key: str) -> bool:
        return True

    def rebuild(self, stored: AccessScope) -> AccessScope | None:
        ids = stored.key[len(self.prefix):].split("#", 1)[0].split("/")
        if len(stored.layers) != len(ids) + 1 or "#" in stored.key:
            return None  # not a chain this module wrote (or a cut key): leave it
        layers = [self.space_layer]
        for pid, old in zip(ids, stored.layers[1:]):
            if pid in self.restrictions:
                new = self.restrictions[pid]
                # A restriction lifted since: the chain's key no longer exists for pages this
                # export holds; pages it does not hold keep the narrower old layer.
                layers.append(new if new else old)
            else:
                layers.append(old)
        try:
            return AccessScope(key=stored.key, layers=layers, description=stored.description)
        except AccessDenied:
            return _nobody(stored.key, "acl too large")


@dataclass
class SharedOpenSpaceKey:
    """Before per-space keys, unrestricted pages of every open space of a site shared
    ``confluence:<site>:workspace`` (and had ids ``confluence:<space>:<page id>``): documents
    still on it move to their space's key."""

    site: str
    spaces: set[str]
    keys: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.keys = [f"confluence:{self.site}:workspace"]

    def key_for(self, document_id: str) -> str | None:
        parts = document_id.split(":")
        space = parts[1] if len(parts) >= 3 and parts[0] == "confluence" else None
        return space_key(self.site, space) if space in self.spaces else None


_UNKNOWN = frozenset({"user:unresolved:unknown-restriction"})  # marker: restriction not readable


@dataclass
class ChainRescope:
    """Pages of stored documents below pages this export holds: their scope is rebuilt from
    their recorded ancestry, the export's restrictions for the pages it holds, and the
    restrictions last stated for the others (taken from the document's current scope)."""

    site: str
    restrictions: dict[str, frozenset[str] | None]  # page id -> read restriction (None: none)
    space_layers: dict[str, frozenset[str] | None]   # stated spaces -> view layer (None: unknown)
    id_prefix: str = ""
    page_ids: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.id_prefix = f"confluence:{self.site}:"
        self.page_ids = set(self.restrictions)

    def rescope(self, document_id: str, ancestry: list[str], current: AccessScope) -> AccessScope | None:
        self_id = document_id[len(self.id_prefix):].split(":", 1)[0]
        head = f"confluence:{self.site}:"
        if not current.key.startswith(head) or "#" in current.key:
            return None
        space, _, kind = current.key[len(head):].partition(":")
        if kind == "space":
            old: dict[str, frozenset[str]] = {}
        elif kind.startswith("restricted:"):
            ids = kind[len("restricted:"):].split("/")
            if len(current.layers) != len(ids) + 1:
                return None
            old = dict(zip(ids, current.layers[1:]))
        else:
            return None  # a nobody scope: stays nobody
        space_layer = self.space_layers.get(space, current.layers[0])
        nobody = _nobody(f"confluence:{self.site}:{space}:page:{self_id}", "permissions unknown")
        if not space_layer:
            return nobody
        layers, restricted = [space_layer], []
        for pid in [*ancestry, self_id]:
            read = self.restrictions[pid] if pid in self.restrictions else old.get(pid)
            if read is _UNKNOWN:
                return nobody
            if read:
                layers.append(read)
                restricted.append(pid)
        key = space_key(self.site, space) if not restricted else bounded_id(restricted_prefix(self.site, space)
                                                                             + "/".join(restricted))
        try:
            return AccessScope(key=key, layers=layers, description=current.description)
        except AccessDenied:
            return nobody


def permission_state(resolver: ScopeResolver, pages: dict[str, PageInfo], *, as_of: str | None) -> PermissionState:
    """What the export states for each of its spaces: the space's scope, and the space layer
    re-based into every stored restricted-page scope of the space."""
    scopes, rebases = [], []
    for key in sorted(resolver.spaces):
        scopes.append(resolver.space_scope(key))
        layer, _, _ = resolver.space_layer(key)
        restrictions = {p.id: (p.read if p.restrictions_known and not p.incomplete else frozenset())
                        for p in pages.values() if p.space == key}
        # Unknown restrictions keep the stored layer (``frozenset()`` falls back to it); an
        # unknown or empty space makes every page of it readable by nobody.
        rebases.append(RestrictedChainRebase(prefix=restricted_prefix(resolver.site, key),
                                             space_layer=layer if layer is not None else frozenset(),
                                             restrictions=restrictions))
    return PermissionState(identity=f"confluence:{resolver.site}", as_of=as_of, scopes=scopes, rebases=rebases,
                           origins=[f"confluence:{resolver.site}:{key}" for key in sorted(resolver.spaces)],
                           legacy=SharedOpenSpaceKey(resolver.site, set(resolver.spaces)),
                           descendants=ChainRescope(resolver.site, {
                               p.id: (p.read if p.restrictions_known and not p.incomplete and not p.error else _UNKNOWN)
                               for p in pages.values()},
                               {key: resolver.space_layer(key)[0] for key in resolver.spaces}))


def require_site(site: str | None, display: str) -> str:
    """The site an export belongs to, or a refusal: two exports that state no site must not
    share scope keys or document ids."""
    if site:
        cleaned = re.sub(r"[^A-Za-z0-9_.:-]", "_", site.strip().lower())[:200]
        if cleaned.strip("_"):
            return cleaned
    raise SourceError(f"{display}: the Confluence export does not say which site it comes from (no base URL)",
                      hint="name the site: govrag ingest --site acme.atlassian.net, or a policy `sources` rule "
                           "with site: (see docs/sources.md)")


INCOMPLETE_HINT = ("save each page with ?expand=ancestors,restrictions.read.restrictions.user,"
                   "restrictions.read.restrictions.group (every page of the results, not the first page of "
                   "them) and space.json with ?expand=permissions; a page with incomplete permission data "
                   "is never ingested")


# -- items ---------------------------------------------------------------------------------------------
def _raiser(exc: Exception):  # type: ignore[no-untyped-def]
    def fail() -> Any:
        raise exc
    return fail


def _page_fingerprint(page: PageInfo) -> str:
    h = hashlib.sha256(PARSER_VERSION.encode())
    for part in (page.title, page.version, page.body_format, page.body, "/".join(page.breadcrumb)):
        h.update(b"\x00" + (part or "").encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def _page_parse(page: PageInfo) -> Parsed:
    try:
        html = storage_to_html(page.body) if page.body_format == "storage" else page.body
        elements = html_elements(html, page.title)
    except QuarantinedDocument as exc:  # name the file and the page
        where = f"{page.path}: " if page.path else ""
        raise QuarantinedDocument(f"{where}page {page.id} ({page.title!r}): {exc}", reason=exc.reason,
                                  path=str(page.path) if page.path else exc.path, hint=exc.hint) from exc
    return Parsed(elements=elements, title=page.title, author=page.author,
                  owner=page.owner, modified_at=page.modified_at)


def page_items(pages: dict[str, PageInfo], resolver: ScopeResolver | None, *, site: str,
               display: str, as_of: str | None = None) -> Iterator[SourceItem]:
    """SourceItems for pages (scope from the resolver, or None for the policy) and their PDFs.

    A page's id is its source identity, site + page id (``confluence:<site>:<page id>``):
    a page that moves to another space or under another parent stays one document, so its
    old copy and its old access cannot survive the move."""
    from ingest.sources.pdf import _parse as parse_pdf
    from ingest.sources.pdf import fingerprint_file

    for page in sorted(pages.values(), key=lambda p: (p.space, p.id)):
        if page.kind not in ("page", "blogpost"):
            continue
        scope, reason, why = resolver.scope(page) if resolver is not None else (None, None, None)
        facts = {"source": "confluence", "space": page.space, "workspace": site,
                 "path": "/".join([*page.breadcrumb, page.title])}
        doc_id = f"confluence:{site}:{page.id}"
        legacy = f"confluence:{page.space}:{page.id}"  # the id before sites were part of it
        origin = f"confluence:{site}:{page.space}"
        fingerprint, parse = partial(_page_fingerprint, page), partial(_page_parse, page)
        if page.error or reason:
            hint = (INCOMPLETE_HINT if reason == "permissions_incomplete"
                    else "export the space again with its permissions (see docs/sources.md)")
            exc = QuarantinedDocument(f"{display}: page {page.id} ({page.title!r}): {page.error or why}",
                                      reason=page.error_reason if page.error else reason or "error",
                                      path=str(page.path or display), hint=hint)
            fingerprint = parse = _raiser(exc)
            if page.error:  # its own restrictions are unreadable too
                scope = _nobody(f"confluence:{site}:{page.space}:page:{page.id}", "unreadable page")
        yield SourceItem(source="confluence", path=page.path or Path(display), rel_path=page.rel_path or doc_id,
                         document_id=doc_id, fingerprint=fingerprint, parse=parse, facts=facts, scope=scope,
                         uri=page.uri, title=page.title, author=page.author, modified_at=page.modified_at,
                         origin=origin, as_of=as_of, aliases=(legacy,), ancestry=tuple(page.ancestors))
        for name, file in page.attachments:
            if not name.lower().endswith(".pdf") or not file.is_file() or file.is_symlink():
                continue
            att_rel = f"{page.rel_path or page.id}/attachments/{name}"
            fp, pp = partial(fingerprint_file, file), partial(parse_pdf, file)
            if page.error or reason:
                fp = pp = fingerprint  # the page's refusal
            yield SourceItem(source="confluence", path=file, rel_path=att_rel,
                             document_id=f"{doc_id}:attachment:{name}", fingerprint=fp, parse=pp,
                             facts={**facts, "path": facts["path"] + "/" + name, "attachment": name},
                             scope=scope, uri=(page.uri or doc_id) + f"#attachment={name}", title=name,
                             author=page.author, modified_at=page.modified_at, origin=origin, as_of=as_of,
                             aliases=(f"{legacy}:attachment:{name}",), ancestry=tuple(page.ancestors))


# -- dispatch ------------------------------------------------------------------------------------------
def _shape(path: Path) -> str | None:
    from ingest.sources import confluence_html, confluence_rest, confluence_xml

    for mod in (confluence_rest, confluence_xml, confluence_html):
        if mod.detect(path):
            return mod.__name__
    return None


def detect(path: Path) -> bool:
    return _shape(Path(path)) is not None


def open_source(path: Path, policy: Policy, *, site: str | None = None) -> SourceExport:
    """Pages (and PDF attachments) of a Confluence export of any of the three shapes, and
    the permission state it states. ``site`` names the site when the export does not."""
    import importlib

    path = Path(path)
    name = _shape(path)
    if name is None:
        raise SourceError(f"{path}: not a Confluence HTML, XML or REST export",
                          hint="pass the unpacked export folder, the XML export zip, or a REST dump folder")
    return importlib.import_module(name).open_source(path, policy, site=site)


def discover(path: Path, policy: Policy | None = None, *, site: str | None = None) -> Iterator[SourceItem]:
    """The pages of :func:`open_source`; by default with the process policy."""
    from ingest.sources import process_policy

    yield from open_source(path, policy if policy is not None else process_policy(), site=site).items
