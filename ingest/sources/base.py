"""What every source yields: a document to parse, with the access facts it carries.

A source module (``pdf``, ``slack``, ``confluence``) exposes ``detect(path) -> bool`` and
``discover(path) -> Iterator[SourceItem]``. Each item knows how to fingerprint its raw
content cheaply (so unchanged documents are skipped before parsing) and how to parse itself
into text blocks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from governance.contracts import AccessScope, SourceDocument
from governance.errors import QuarantinedDocument
from governance.policy import Policy


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
    fingerprint: Callable[[], str]
    parse: Callable[[], Parsed]
    facts: dict[str, Any] = field(default_factory=dict)
    scope: AccessScope | None = None
    uri: str | None = None
    title: str | None = None
    author: str | None = None
    modified_at: datetime | None = None
    owner: str | None = None  # principal, when known before parsing
    origin: str | None = None  # the export / drop folder (pruning a full export compares by origin)


def element_author(element: Any) -> str | None:
    """The principal that wrote an element, when the source knows it (``govrag_author``)."""
    return getattr(element, "govrag_author", None)


def resolve_scope(policy: Policy, item: SourceItem) -> tuple[AccessScope, str]:
    """The scope and classification a document gets.

    Sources without permissions take the first matching policy rule's layers; sources with
    their own permissions get a matching rule's layers *added* (it can only narrow). The
    scope is keyed by the source's scope and the rule, not by members, so a membership or
    rule edit updates one scope row and touches no vector.
    """
    found = policy.access_rule(item.facts)
    if item.scope is None:
        if found is None:
            raise QuarantinedDocument(
                f"{item.rel_path}: no access rule in the policy covers this {item.source} document",
                reason="no_access_rule", path=str(item.path),
                hint="add an access rule matching it to the policy file (GOVRAG_POLICY); uncovered documents are never public",
            )
        _, rule = found
        scope = AccessScope(key=f"policy:{rule.match.identity() or '*'}", layers=rule.allow,
                            description=f"policy access rule {rule.match.model_dump(exclude_none=True)}")
        return scope, rule.classification or "internal"
    if found is None:
        return item.scope, "internal"
    _, rule = found
    scope = AccessScope(key=f"{item.scope.key}|policy:{rule.match.identity() or '*'}",
                        layers=(*item.scope.layers, *[frozenset(layer) for layer in rule.allow]),
                        description=f"{item.scope.description} narrowed by policy rule")
    return scope, rule.classification or "internal"


def make_document(item: SourceItem, parsed: Parsed, *, scope: AccessScope, classification: str) -> SourceDocument:
    return SourceDocument(
        document_id=item.document_id, source=item.source, uri=item.uri or item.path.resolve().as_uri(),
        title=(parsed.title or item.title or item.path.stem)[:1000], path=item.rel_path, scope=scope,
        classification=classification, modified_at=parsed.modified_at or item.modified_at,
        author=parsed.owner or item.owner,
    )
