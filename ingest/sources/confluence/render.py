"""Confluence page bodies → text elements, and the parser of one page.

Storage format (XHTML with ``ac:``/``ri:`` elements, XML and REST exports) becomes plain
HTML; rendered HTML (HTML exports) is used as it is; unstructured's partitioner turns either
into elements (headings, lists, tables, code), the page title first. Bodies nested deeper
than ``MAX_HTML_DEPTH`` are refused before any HTML parser walks them.
"""

from __future__ import annotations

import hashlib
import html as htmllib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from governance.errors import GovragError, QuarantinedDocument
from ingest.parse.deadline import ParseTimeout, deadline
from ingest.sources.base import Parsed
from ingest.sources.confluence.model import PageInfo

if TYPE_CHECKING:  # bs4 is imported when a body is rendered
    from bs4 import Tag

PARSER_VERSION = "confluence-1"
MAX_HTML_DEPTH = 512  # elements nested deeper than this: the page is quarantined (too_deep)
PARTITION_SECONDS = 300.0  # unstructured's partition_html on one page


# -- storage format → HTML → elements -----------------------------------------------------------
_CDATA = re.compile(r"<!\[CDATA\[(.*?)\]\]>", re.DOTALL)
_PREFIXED_TAG = re.compile(r"<[^\s/>!?:]*:")
_PANELS = {"info", "note", "warning", "tip", "panel", "expand", "excerpt", "section", "column", "details"}
_DROP_MACROS = {
    "toc",
    "children",
    "anchor",
    "attachments",
    "pagetree",
    "recently-updated",
    "contentbylabel",
    "livesearch",
    "create-from-template",
    "jira",
    "profile",
    "space-details",
}


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


def attr_text(tag: Tag, name: str) -> str:
    """An attribute's value, "" when the tag has none. bs4 gives multi-valued attributes
    (``class``, ``rel``) as lists: those are joined with spaces."""
    value = tag.get(name)
    if value is None:
        return ""
    return value if isinstance(value, str) else " ".join(value)


def too_deep(node: Any) -> int | None:
    """The nesting depth under ``node`` when it is over ``MAX_HTML_DEPTH``, else None."""
    depth = html_depth(node, MAX_HTML_DEPTH)
    return depth if depth > MAX_HTML_DEPTH else None


def too_deep_message(depth: int) -> str:
    return (
        f"HTML nested more than {MAX_HTML_DEPTH} elements deep ({depth}+ levels; limit "
        "ingest.sources.confluence.render.MAX_HTML_DEPTH): refused before it reaches the HTML partitioner"
    )


TOO_DEEP_HINT = "no real page nests this deep; fix the page in Confluence (or raise MAX_HTML_DEPTH) and export again"


def storage_to_html(body: str) -> str:
    """Confluence storage format (XHTML with ``ac:``/``ri:`` elements) → plain HTML that
    unstructured's partitioner understands: code macros become ``<pre>``, panels keep their
    body with a label, links keep their text, images and attachments their file names.
    Bodies nested deeper than ``MAX_HTML_DEPTH`` are refused (``too_deep``)."""
    from bs4 import BeautifulSoup

    body = _CDATA.sub(lambda m: htmllib.escape(m.group(1), quote=False), body or "")
    soup = BeautifulSoup(body, "html.parser")
    lowered = body.lower()  # html.parser lower-cases tag names

    def has(*names: str) -> bool:
        """Whether the body may hold one of these tags: each pass below walks the whole tree,
        and most pages use few of the macros (no pass creates a tag another pass looks for)."""
        return any(f"<{name}" in lowered for name in names)

    if (depth := too_deep(soup)) is not None:
        raise QuarantinedDocument(
            f"storage-format body: {too_deep_message(depth)}", reason="too_deep", hint=TOO_DEEP_HINT
        )

    def new(tag: str, text: str | None = None) -> Tag:
        el = soup.new_tag(tag)
        if text is not None:
            el.string = text
        return el

    macros = ["ac:structured-macro", "ac:macro"]
    for macro in reversed(soup.find_all(macros) if has(*macros) else []):
        name = attr_text(macro, "ac:name").lower()
        plain = macro.find("ac:plain-text-body")
        rich = macro.find("ac:rich-text-body")
        title = macro.find("ac:parameter", attrs={"ac:name": "title"})
        if name in ("code", "noformat") or (plain is not None and rich is None):
            pre = new("pre", plain.get_text() if plain is not None else "")
            macro.replace_with(pre)
        elif rich is not None:
            div = new("div")
            label = (title.get_text(strip=True) if title is not None else "") or (
                name.capitalize() if name in _PANELS else ""
            )
            if label:
                div.append(new("p", f"{label}:"))
            for child in list(rich.contents):
                div.append(child.extract())
            macro.replace_with(div)
        elif title is not None and name not in _DROP_MACROS:
            macro.replace_with(title.get_text(strip=True))  # e.g. a status lozenge
        else:
            macro.decompose()
    for link in soup.find_all("ac:link") if has("ac:link") else []:
        text = link.find(["ac:plain-text-link-body", "ac:link-body"])
        label = text.get_text() if text is not None else ""
        if not label:
            ref = link.find(["ri:page", "ri:blog-post", "ri:attachment", "ri:user", "ri:space"])
            if ref is not None:
                label = (
                    attr_text(ref, "ri:content-title")
                    or attr_text(ref, "ri:filename")
                    or attr_text(ref, "ri:space-key")
                    or (
                        "@"
                        + (
                            attr_text(ref, "ri:username")
                            or attr_text(ref, "ri:account-id")
                            or attr_text(ref, "ri:userkey")
                            or "user"
                        )
                    )
                )
        link.replace_with(label)
    for img in soup.find_all("ac:image") if has("ac:image") else []:
        ref = img.find(["ri:attachment", "ri:url"])
        image = attr_text(ref, "ri:filename") or attr_text(ref, "ri:value") if ref is not None else None
        img.replace_with(f"[image: {image}]" if image else "")
    for task in soup.find_all("ac:task") if has("ac:task") else []:
        body_el = task.find("ac:task-body")
        status = task.find("ac:task-status")
        li = new("li")
        li.string = ("[x] " if status is not None and status.get_text(strip=True) == "complete" else "[ ] ") + (
            body_el.get_text(" ", strip=True) if body_el is not None else ""
        )
        task.replace_with(li)
    for tl in soup.find_all("ac:task-list") if has("ac:task-list") else []:
        tl.name = "ul"
    marks = ["ac:emoticon", "ac:parameter", "ac:placeholder", "ac:inline-comment-marker"]
    for el in soup.find_all(marks) if has(*marks) else []:
        if el.name == "ac:inline-comment-marker":
            el.unwrap()
        else:
            el.decompose()
    for t in soup.find_all("time") if has("time") else []:
        if t.get("datetime") and not t.get_text(strip=True):
            t.string = attr_text(t, "datetime")
    for el in soup.find_all(lambda tag: ":" in tag.name) if _PREFIXED_TAG.search(lowered) else []:
        el.unwrap()
    return str(soup)


def html_elements(html: str, title: str | None = None) -> list[Any]:
    """HTML → unstructured elements (headings, lists, tables, code), title first."""
    from unstructured.documents.elements import Title

    from ingest.parse import html_classify
    from ingest.parse.offline import prepare_unstructured

    prepare_unstructured()
    html_classify.install()  # no spaCy per paragraph: the type it picked changed no chunk
    from unstructured.partition.html import partition_html

    elements: list[Any] = []
    if html and html.strip():
        try:
            # languages=[""]: no per-document language detection (2/3 of partition time;
            # the result is not used downstream).
            with deadline(PARTITION_SECONDS):
                elements = list(partition_html(text=html, languages=[""]))
        except ParseTimeout:
            raise QuarantinedDocument(
                f"page {title!r}: HTML partitioning took longer than {PARTITION_SECONDS:.0f} s "
                "(limit ingest.sources.confluence.render.PARTITION_SECONDS)",
                reason="timeout",
                hint="split the page; if it is genuine, raise PARTITION_SECONDS",
            ) from None
        except GovragError:
            raise
        except Exception as exc:  # unstructured/lxml failures: this page only
            raise QuarantinedDocument(
                f"page {title!r}: HTML could not be partitioned: {exc}", reason="unparseable"
            ) from exc
    return ([Title(title)] if title else []) + elements


# -- one page ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class PageParser:
    """The parser of one page: its fingerprint covers what its text is made of (title,
    version, body, breadcrumb); a restriction change does not change it."""

    page: PageInfo

    def fingerprint(self) -> str:
        page = self.page
        h = hashlib.sha256(PARSER_VERSION.encode())
        for part in (page.title, page.version, page.body_format, page.body, "/".join(page.breadcrumb)):
            h.update(b"\x00" + (part or "").encode("utf-8", "surrogatepass"))
        return h.hexdigest()

    def parse(self) -> Parsed:
        page = self.page
        try:
            html = storage_to_html(page.body) if page.body_format == "storage" else page.body
            elements = html_elements(html, page.title)
        except QuarantinedDocument as exc:  # name the file and the page
            where = f"{page.path}: " if page.path else ""
            raise QuarantinedDocument(
                f"{where}page {page.id} ({page.title!r}): {exc}",
                reason=exc.reason,
                path=str(page.path) if page.path else exc.path,
                hint=exc.hint,
            ) from exc
        return Parsed(
            elements=elements, title=page.title, author=page.author, owner=page.owner, modified_at=page.modified_at
        )
