"""What every source yields: a document to parse, with the access facts it carries.

A source (:class:`ingest.sources.protocol.Source`) opens an input into a
:class:`SourceExport`: its :class:`SourceItem` documents and the :class:`PermissionState`
it states. Each item knows how to fingerprint its raw content cheaply (so unchanged
documents are skipped before parsing) and how to parse itself into text blocks.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from governance.contracts import AccessScope, SourceDocument
from governance.errors import QuarantinedDocument

MAX_ID_BYTES = 1024  # document ids (Milvus VARCHAR(1024) counts bytes) and scope keys
MAX_DOCUMENT_CHARS = 8_000_000  # text of one parsed document (~2,500 book pages; hours of CPU embedding)
_SURROGATES = re.compile(r"[\ud800-\udfff]")
_ID_UNSAFE = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")


def scrub(text: Any) -> Any:
    """``text`` with lone UTF-16 surrogates (JSON ``\\ud800`` escapes, undecodable file-name
    bytes) replaced by U+FFFD: they cannot be encoded as UTF-8, so no store could hold them."""
    if isinstance(text, str) and _SURROGATES.search(text):
        return _SURROGATES.sub("\ufffd", text)
    return text


def cut_bytes(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes (index fields count bytes, not characters)."""
    if len(text) * 4 <= limit:
        return text
    return text.encode("utf-8", "surrogatepass")[:limit].decode("utf-8", "ignore")


def bounded_id(value: str, limit: int = MAX_ID_BYTES) -> str:
    """An id or scope key every store accepts: at most ``limit`` UTF-8 bytes, no control
    characters or surrogates (a Milvus filter literal cannot hold them). Ids that are fine
    stay as they are; others are escaped (``%0A``) and/or cut, and end in ``#`` + a hash of
    the original, so two different originals never share an id."""
    if len(value) * 4 <= limit and not _ID_UNSAFE.search(value):
        return value
    if not _ID_UNSAFE.search(value) and len(value.encode("utf-8")) <= limit:
        return value
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    escaped = _ID_UNSAFE.sub(
        lambda m: f"%{ord(m.group()):02X}" if ord(m.group()) < 0x80 else f"%u{ord(m.group()):04X}", value
    )
    room = limit - len(digest) - 1
    cut = escaped.encode("utf-8")[:room].decode("utf-8", "ignore")
    return f"{cut}#{digest}"


class JsonTooLarge(ValueError):
    """A JSON file over its size limit (refused before a byte of it is parsed)."""


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _scrub_tree(obj: Any) -> Any:
    """Replace lone surrogates in every string of a parsed JSON value (iteratively)."""
    if isinstance(obj, str):
        return scrub(obj)
    stack = [obj]
    while stack:
        cur = stack.pop()
        if isinstance(cur, dict):
            for k in list(cur):
                v = cur[k]
                if isinstance(v, str):
                    cur[k] = scrub(v)
                elif isinstance(v, (dict, list)):
                    stack.append(v)
                if isinstance(k, str) and _SURROGATES.search(k):
                    cur[scrub(k)] = cur.pop(k)
        elif isinstance(cur, list):
            for i, v in enumerate(cur):
                if isinstance(v, str):
                    cur[i] = scrub(v)
                elif isinstance(v, (dict, list)):
                    stack.append(v)
    return obj


def read_json_file(path: Path, max_bytes: int, limit_name: str = "the size limit") -> Any:
    """Parse a JSON file from an export, refusing what would hurt: more than ``max_bytes``
    (checked before reading: :class:`JsonTooLarge`), not UTF-8, nested deeper than the
    parser's recursion limit (``ValueError``, not ``RecursionError``). Lone surrogates from
    ``\\ud800``-style escapes become U+FFFD."""
    import json

    size = path.stat().st_size
    if size > max_bytes:
        raise JsonTooLarge(f"{size} bytes is over the {max_bytes} byte limit ({limit_name})")
    with open(path, "rb") as f:
        raw = f.read()
    surrogates = _SURROGATE_ESCAPE.search(raw) is not None
    text = raw.decode("utf-8")  # UnicodeDecodeError (a ValueError) for latin-1, UTF-16...
    del raw  # peak: the text and the parsed objects, not the bytes too
    try:
        obj = json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply to parse") from None
    del text
    return _scrub_tree(obj) if surrogates else obj


@dataclass
class TextBlock:
    """A parsed piece of text (an ``unstructured`` element or a source's own block).

    ``category`` follows unstructured's element types (Title, NarrativeText, ListItem...) so
    ``chunk_by_title`` can split on headings."""

    text: str
    category: str = "NarrativeText"
    govrag_author: str | None = None  # principal of who wrote this block (right to be forgotten)


@dataclass
class Parsed:
    """A parsed document: its text blocks (unstructured elements or TextBlocks) and title."""

    elements: list[Any]
    title: str | None = None
    author: str | None = None  # display name, for people
    modified_at: datetime | None = None
    owner: str | None = None  # principal of the document's owner/author (purge --subject)


class Parser(Protocol):
    """How a source reads one document: each source has one (``pdf.PdfFile``,
    ``slack.render.RenderedDocument``, ``confluence.render.PageParser``; :class:`Refusal`
    for a quarantined one) and hands its bound methods to :class:`SourceItem`."""

    def fingerprint(self) -> str:
        """A cheap hash of the raw content (and the parser version): equal means unchanged."""

    def parse(self) -> Parsed:
        """The document's text blocks and metadata."""


@dataclass(frozen=True)
class Refusal:
    """The parser of a document that must not be ingested: fingerprinting or parsing it
    raises its quarantine."""

    error: QuarantinedDocument

    def fingerprint(self) -> str:
        raise self.error

    def parse(self) -> Parsed:
        raise self.error


def nobody_scope(key: str, why: str) -> AccessScope:
    """A scope readable by nobody (a conversation or page whose permissions are unknown)."""
    return AccessScope(key=bounded_id(key), layers=[[]], description=f"readable by nobody: {why}")


@dataclass
class SourceItem:
    """One document found in an input, not yet parsed.

    ``facts`` are what policy rules match on (source, path, space, channel, workspace...).
    ``scope`` is the permission the source itself carries (None: the policy must give one).
    """

    source: str
    path: Path
    rel_path: str
    document_id: str
    # Callables rather than one Parser field: erasure and tests build items from lambdas
    # (and swap ``parse``); sources pass a Parser's bound methods (see :class:`Parser`).
    fingerprint: Callable[[], str]
    parse: Callable[[], Parsed]
    facts: dict[str, Any] = field(default_factory=dict)
    scope: AccessScope | None = None
    uri: str | None = None
    title: str | None = None
    author: str | None = None
    modified_at: datetime | None = None
    owner: str | None = None  # principal, when known before parsing
    origin: str | None = None  # source identity (``slack:<team>``, ``confluence:<site>:<space>``;
    # the input path for PDFs): what ``--prune`` compares by
    as_of: str | None = None  # how new the export is (:func:`as_of_stamp`); older never overrides newer
    aliases: tuple[str, ...] = ()  # ids this document had under earlier versions of govrag
    ancestry: tuple[str, ...] | None = None  # ids of the pages above it at the source, root first

    def __post_init__(self) -> None:
        # Names come from hostile input: keep ids storable and filterable, text encodable.
        self.document_id = bounded_id(self.document_id)
        self.rel_path = scrub(self.rel_path)
        self.title = scrub(self.title)
        self.author = scrub(self.author)
        self.parse = _size_checked(self.parse, self)


# -- the permission state an export states ---------------------------------------------------


def as_of_stamp(content: datetime | None, files: datetime | None = None) -> str | None:
    """A sortable stamp saying how new an export is: the newest timestamp its content states
    (messages, edits, user updates, the export's own date), then the time of its files as a
    tie-breaker. ``None`` when the export states no time at all (it then always applies)."""
    if content is None and files is None:
        return None

    def iso(t: datetime | None) -> str:
        if t is None:
            return "0000-00-00T00:00:00.000000Z"
        if t.tzinfo is None:
            t = t.replace(tzinfo=UTC)
        return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    return f"{iso(content)}/{iso(files)}"


def newest(times: Iterable[datetime | None]) -> datetime | None:
    """The latest of the known times (naive ones are UTC), or None."""
    known = [t if t.tzinfo else t.replace(tzinfo=UTC) for t in times if t is not None]
    return max(known) if known else None


class ScopeRebase(Protocol):
    """Rebuilds stored scopes that an export does not restate one by one but whose layers it
    changes (a Confluence space permission is the first layer of every restricted-page scope
    of that space, including pages this export does not contain)."""

    prefix: str

    def wants(self, key: str) -> bool:
        """Whether a stored key under ``prefix`` is one this rebase rebuilds (checked before
        its members are read)."""

    def rebuild(self, stored: AccessScope) -> AccessScope | None:
        """The scope with this export's layers, or None to leave it as it is."""


class LegacyScopes(Protocol):
    """Scope keys earlier govrag versions gave this source's documents (a Slack workspace's
    one shared public-channel key), and the key each such document has now: applying the
    state moves them, so no document keeps an access no export states any more."""

    keys: list[str]

    def key_for(self, document_id: str) -> str | None:
        """The current scope key for a document on a legacy key (None: leave it)."""


class DescendantScopes(Protocol):
    """Documents the export does not hold but whose permission depends on pages it does (a
    page below a parent that gained a restriction, in a REST dump of a few pages)."""

    id_prefix: str
    page_ids: set[str]

    def rescope(self, document_id: str, ancestry: list[str], current: AccessScope) -> AccessScope | None:
        """The scope the document has now, given its recorded ancestry and its current
        (source) scope; None to leave it."""


@dataclass
class PermissionState:
    """Every permission fact an export states, documents or not: the scopes of all the
    conversations / spaces / pages it describes. Applied before its documents are ingested,
    so a conversation listed with fewer members, and no messages in this export, still loses
    them on every document ingested earlier (invariant 7)."""

    identity: str  # every scope key it states starts with "<identity>:"
    as_of: str | None
    scopes: list[AccessScope] = field(default_factory=list)
    rebases: list[ScopeRebase] = field(default_factory=list)
    origins: list[str] = field(default_factory=list)  # source identities of its documents (for --prune)
    legacy: LegacyScopes | None = None
    descendants: DescendantScopes | None = None


@dataclass
class SourceExport:
    """One opened input: its documents and the permission state it states (None for sources
    that carry no permissions, such as PDF folders and Confluence HTML exports)."""

    path: Path
    items: list[SourceItem]
    state: PermissionState | None = None
    scratch: list[Path] = field(default_factory=list)  # extracted copies of the input, removed by close()

    def close(self) -> None:
        """Remove what opening the input wrote (an extracted zip holds the export's text in
        clear): call once its items are ingested; their parse() may need it until then."""
        from ingest.sources.archive import remove_extraction

        for folder in self.scratch:
            remove_extraction(folder)
        self.scratch.clear()

    def __enter__(self) -> SourceExport:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _size_checked(parse: Callable[[], Parsed], item: SourceItem) -> Callable[[], Parsed]:
    """``parse``, refusing documents with more than ``MAX_DOCUMENT_CHARS`` of text."""
    if isinstance(parse, SizeChecked):
        return parse
    return SizeChecked(parse, item.rel_path, str(item.path))


@dataclass(frozen=True)
class SizeChecked:
    """A parse that refuses more than ``MAX_DOCUMENT_CHARS`` of text. A plain object, not a
    closure, so an item whose parser pickles can be parsed in a worker process."""

    parse: Callable[[], Parsed]
    rel_path: str
    path: str

    def __call__(self) -> Parsed:
        parsed = self.parse()
        total = sum(len(getattr(e, "text", "") or "") for e in parsed.elements)
        if total > MAX_DOCUMENT_CHARS:
            raise QuarantinedDocument(
                f"{self.rel_path}: {total} characters of text (limit ingest.sources.base.MAX_DOCUMENT_CHARS = "
                f"{MAX_DOCUMENT_CHARS})",
                reason="too_large",
                path=self.path,
                hint="split the document; if it is genuine, raise MAX_DOCUMENT_CHARS (embedding it takes long)",
            )
        return parsed


class SharedState:
    """Marks state that many items' parsers share (a Slack export's users and channels): the
    parse pool sends such an object to each worker process once, not with every document."""


def element_author(element: Any) -> str | None:
    """The principal that wrote an element, when the source knows it (``govrag_author``)."""
    return getattr(element, "govrag_author", None)


def make_document(item: SourceItem, parsed: Parsed, *, scope: AccessScope, classification: str) -> SourceDocument:
    return SourceDocument(
        document_id=item.document_id,
        source=item.source,
        uri=cut_bytes(scrub(item.uri or item.path.resolve().as_uri()), 2000),
        title=cut_bytes(scrub(parsed.title or item.title or item.path.stem), 1000),
        path=scrub(item.rel_path),
        scope=scope,
        classification=classification,
        modified_at=parsed.modified_at or item.modified_at,
        author=scrub(parsed.owner or item.owner),
    )
