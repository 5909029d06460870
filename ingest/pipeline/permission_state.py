"""Apply the permission state an export states, before (and whether or not) its documents
are ingested.

A Slack export lists every conversation with its members; a Confluence export states every
space's view permission. That state is the source's *current* permission, and it holds for
every document of those conversations and spaces, including documents ingested from earlier
exports and conversations with no messages in this one (invariant 7). Applying it is a
catalog update: scope rows change, no vector is rewritten.

Three kinds of stored scope follow a stated one:

- the stated scope itself (``slack:<team>:channel:<id>``, ``confluence:<site>:<space>:space``);
- scopes a source re-bases (a Confluence space's restricted-page chains, see
  ``ingest.sources.confluence.permissions.RestrictedChainRebase``);
- the same scopes narrowed by a policy rule (``<key>|policy:<rule>``): the source's layers
  are replaced, the rule's layers after them are kept.

Every statement carries the export's ``as_of`` stamp; the catalog ignores a statement older
than the one a scope already holds, so an older export never overrides a newer one, in any
order and from any entry point (ingest, ``acl sync``, Dagster).
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from governance.catalog import Catalog
from governance.catalog.freshness import is_older
from governance.contracts import AccessScope
from governance.scope_rules import POLICY_SEP
from ingest.sources.base import PermissionState


class AppliedState(BaseModel):
    """What applying one export's permission state did."""

    identity: str
    as_of: str | None = None
    scopes_stated: int = 0
    scopes_changed: int = 0
    changed_scope_keys: list[str] = Field(default_factory=list)
    scopes_stale: int = 0  # stated, but a newer export already spoke for them
    documents_moved: int = 0  # documents it does not hold that it moved to another scope


def apply_permission_state(catalog: Catalog, state: PermissionState, *, actor: str | None = None) -> AppliedState:
    """Write ``state`` into the catalog's scope rows (monotone in ``state.as_of``)."""
    result = AppliedState(identity=state.identity, as_of=state.as_of)
    # Fingerprints only: a workspace can hold thousands of conversations whose layers hold
    # thousands of members each; members are read just for the keys that need them.
    stamps = catalog.scopes.scope_stamps(state.identity + ":")
    derived: dict[str, list[str]] = {}
    for key in stamps:
        base, sep, _ = key.partition(POLICY_SEP)
        if sep:
            derived.setdefault(base, []).append(key)
    unchanged: list[str] = []

    def state_one(scope: AccessScope) -> None:
        narrowed = (
            [sc for sc, _ in catalog.scopes.scopes_with_prefix(scope.key + POLICY_SEP)] if scope.key in derived else []
        )
        for s in (scope, *_narrowed(scope, narrowed)):
            result.scopes_stated += 1
            old = stamps.get(s.key)
            if old is not None and is_older(state.as_of, old[1]):
                result.scopes_stale += 1
            elif old is not None and old[0] == s.fingerprint():
                unchanged.append(s.key)
            else:
                _, changed = catalog.scopes.upsert_scope(s, actor=actor, as_of=state.as_of)
                if changed:
                    result.changed_scope_keys.append(s.key)

    for scope in state.scopes:
        state_one(scope)
    for rebase in state.rebases:
        keys = [k for k in catalog.scopes.scope_stamps(rebase.prefix) if POLICY_SEP not in k and rebase.wants(k)]
        for stored in catalog.scopes.scopes_by_keys(keys):
            rebuilt = rebase.rebuild(stored)
            if rebuilt is not None:
                state_one(rebuilt)
    catalog.scopes.stamp_scopes(unchanged, state.as_of)
    result.scopes_changed = len(result.changed_scope_keys)
    return result


def _narrowed(base: AccessScope, stored: list[AccessScope]) -> list[AccessScope]:
    """``base``'s policy-narrowed variants with base's layers and deny, and their own rule
    layers after them (a source key's layer count is fixed by the key)."""
    n = len(base.layers)
    return [
        AccessScope(key=d.key, layers=(*base.layers, *d.layers[n:]), deny=base.deny, description=d.description)
        for d in stored
        if len(d.layers) > n
    ]
