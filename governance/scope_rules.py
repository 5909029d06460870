"""How the policy's ``access`` rules decide a document's scope at ingest.

A document from a source without permissions (a PDF folder, a Confluence HTML export)
takes the first matching rule's layers, and is quarantined when no rule matches. A document
whose source states its own scope gets a matching rule's layers *added*: a rule can only
narrow what the source allows. The scope is keyed by the source's scope and the rule, not
by members, so a membership or rule edit updates one scope row and touches no vector.

Search-time resolution (principals → the scope ids they may read) is
:mod:`governance.scope_resolver`; this module only builds the scopes it resolves.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from governance.contracts import AccessScope
from governance.errors import QuarantinedDocument
from governance.policy import Policy

POLICY_SEP = "|policy:"  # a source scope narrowed by a policy rule: "<source key>|policy:<rule>"


class ScopedDocument(Protocol):
    """What a scope decision reads of a document (an ingest ``SourceItem`` is one)."""

    @property
    def source(self) -> str:
        """The source kind: ``pdf``, ``slack``, ``confluence``."""

    @property
    def path(self) -> Path:
        """Where the document was read from (named in a quarantine)."""

    @property
    def rel_path(self) -> str:
        """The document's path inside its input (named in a quarantine)."""

    @property
    def facts(self) -> Mapping[str, Any]:
        """What policy rules match on (source, path, space, channel, workspace...)."""

    @property
    def scope(self) -> AccessScope | None:
        """The scope the source itself states; None when the policy must give one."""


def resolve_scope(policy: Policy, doc: ScopedDocument) -> tuple[AccessScope, str]:
    """The scope and classification ``doc`` gets under ``policy``.

    Raises :class:`QuarantinedDocument` (``no_access_rule``) for a document whose source
    states no scope and that no rule covers: uncovered documents are never public."""
    found = policy.access_rule(dict(doc.facts))
    if doc.scope is None:
        if found is None:
            raise QuarantinedDocument(
                f"{doc.rel_path}: no access rule in the policy covers this {doc.source} document",
                reason="no_access_rule",
                path=str(doc.path),
                hint=(
                    "add an access rule matching it to the policy file (GOVRAG_POLICY); "
                    "uncovered documents are never public"
                ),
            )
        _, rule = found
        scope = AccessScope(
            key=f"policy:{rule.match.identity() or '*'}",
            layers=rule.allow,
            description=f"policy access rule {rule.match.model_dump(exclude_none=True)}",
        )
        return scope, rule.classification or "internal"
    if found is None:
        return doc.scope, "internal"
    _, rule = found
    scope = AccessScope(
        key=f"{doc.scope.key}{POLICY_SEP}{rule.match.identity() or '*'}",
        layers=(*doc.scope.layers, *[frozenset(layer) for layer in rule.allow]),
        deny=doc.scope.deny,
        description=f"{doc.scope.description} narrowed by policy rule",
    )
    return scope, rule.classification or "internal"
