"""What every source yields: a document to parse, with its access facts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from governance.contracts import AccessScope, SourceDocument
from governance.errors import QuarantinedDocument
from governance.policy import Policy


@dataclass
class SourceItem:
    """One document found in an input, not yet parsed.

    ``facts`` are what policy rules match on (source, path, space, channel...).
    """

    source: str
    path: Path
    rel_path: str
    document_id: str
    facts: dict[str, Any] = field(default_factory=dict)


def scope_from_policy(policy: Policy, item: SourceItem) -> tuple[AccessScope, str]:
    """Scope and classification for a source that carries no permissions of its own.

    The scope is keyed by the rule, not by its members, so editing a rule's ``allow`` list
    changes who can read without touching any vector.
    """
    found = policy.access_rule(item.facts)
    if found is None:
        raise QuarantinedDocument(
            f"{item.rel_path}: no access rule in the policy covers this {item.source} document",
            reason="no_access_rule", path=str(item.path),
            hint="add an access rule matching it to the policy file (GOVRAG_POLICY); uncovered documents are never public",
        )
    _, rule = found
    scope = AccessScope(
        key=f"policy:{rule.match.identity() or '*'}",
        layers=rule.allow,
        description=f"policy access rule {rule.match.model_dump(exclude_none=True)}",
    )
    return scope, rule.classification or "internal"


def make_document(item: SourceItem, *, title: str, scope: AccessScope, classification: str, modified_at: Any, author: str | None = None) -> SourceDocument:
    return SourceDocument(
        document_id=item.document_id, source=item.source, uri=item.path.resolve().as_uri(),
        title=title, path=item.rel_path, scope=scope, classification=classification,
        modified_at=modified_at, author=author,
    )
