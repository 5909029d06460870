"""Who may read a Slack conversation: the export's members → one ``AccessScope`` each.

- private channels, DMs, group DMs: one layer of their *active* members — ``user:<email>``
  (lower-cased), or ``user:slack:<team>:<user id>`` when the user has no email;
- public channels: one layer of every full member (or what the policy's ``workspaces`` key
  maps the team to), plus the guests and accounts of other teams that are members of it.
  Guests (``is_restricted``/``is_ultra_restricted``) and other teams' accounts are in no
  workspace layer;
- deleted users, bots and apps are in no layer at all, and the principals of deactivated
  accounts are on the deny list of every scope of the workspace (see ``deny_for``);
- a private conversation left with no active member is quarantined (``empty_acl``).

Every conversation has one key, ``slack:<team>:channel:<id>``, whatever it is now: a
membership change or a visibility flip updates one catalog row and no vector.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from governance.contracts import AccessScope
from governance.errors import AccessDenied
from governance.identity import principal
from governance.policy import Policy
from governance.scope_rules import POLICY_SEP
from ingest.sources.base import PermissionState, bounded_id, nobody_scope
from ingest.sources.slack.load import Conversation, SlackExport
from ingest.sources.workspaces import workspace_principals

log = logging.getLogger(__name__)


# -- who a user is -------------------------------------------------------------------------------
def user_principal(export: SlackExport, uid: str) -> str | None:
    """``user:<email>`` (lower-cased), else ``user:slack:<team>:<user id>``; None for an
    unknown user or one whose email / id no principal can hold."""
    u = export.users.get(uid)
    if u is None:
        return None
    email = ((u.get("profile") or {}).get("email") or u.get("email") or "").strip()
    try:
        return principal("user", email) if email else principal("user", f"slack:{export.team}:{uid}")
    except AccessDenied:
        log.warning("slack user %s has an unusable email/id; left out of every scope", uid)
        return None


def is_reader(export: SlackExport, uid: str) -> bool:
    """An active human account (not deleted, not a bot or app)."""
    u = export.users.get(uid)
    if not u:
        return False
    return not u.get("deleted") and not u.get("is_bot") and not u.get("is_app_user") and uid != "USLACKBOT"


def is_guest(export: SlackExport, uid: str) -> bool:
    u = export.users.get(uid) or {}
    return bool(u.get("is_restricted") or u.get("is_ultra_restricted"))


def is_external(export: SlackExport, uid: str) -> bool:
    """An account of another team (Slack Connect, shared channels): it may read the
    conversations it is a member of, never this workspace's "everyone" layer."""
    u = export.users.get(uid) or {}
    if u.get("is_stranger"):
        return True
    team = u.get("team_id") or (u.get("profile") or {}).get("team")
    return bool(export.home_team and team and team != export.home_team)


def full_members(export: SlackExport) -> set[str]:
    """Principals of the workspace's own active, non-guest accounts (``source-members``)."""
    out = set()
    for uid in export.users:
        if is_reader(export, uid) and not is_guest(export, uid) and not is_external(export, uid):
            p = user_principal(export, uid)
            if p:
                out.add(p)
    return out


def deactivated(export: SlackExport) -> set[str]:
    """Principals of deactivated (``deleted: true``) accounts that no active account of
    this export also holds: denied in every scope of the workspace."""
    gone = {p for uid, u in export.users.items() if u.get("deleted") and (p := user_principal(export, uid))}
    active = {p for uid in export.users if is_reader(export, uid) and (p := user_principal(export, uid))}
    return gone - active


# -- conversation scopes -------------------------------------------------------------------------
def conversation_key(team: str, conversation_id: str) -> str:
    """The scope key of a conversation, whatever it is now."""
    return bounded_id(f"slack:{team}:channel:{conversation_id}")


class ScopeBuilder:
    """The scope of each conversation of one export, under one policy."""

    def __init__(self, export: SlackExport, policy: Policy) -> None:
        self.export = export
        names = [export.team, *export.team_names]
        self.workspace = frozenset(workspace_principals(policy, names, full_members(export)))
        self.deny = frozenset(deactivated(export))
        self._cache: dict[str, tuple[AccessScope, str | None]] = {}

    def scope(self, conv: Conversation) -> tuple[AccessScope, str | None]:
        """The conversation's scope, and a quarantine reason when it must not be ingested."""
        if conv.id in self._cache:
            return self._cache[conv.id]
        try:
            out = self._scope(conv)
        except AccessDenied as exc:  # e.g. a layer over the principal limit
            log.warning("slack %s: %s", conv.id, exc)
            out = (nobody_scope(conversation_key(self.export.team, conv.id), str(exc)), "acl_too_large")
        self._cache[conv.id] = out
        return out

    def _scope(self, conv: Conversation) -> tuple[AccessScope, str | None]:
        # One key per conversation, whatever it is now (public, private, with guests or
        # not): visibility flips, guests leaving and deactivations change the scope's row,
        # never the key, so every earlier document of the conversation follows at once.
        ex, team = self.export, self.export.team
        key = conversation_key(team, conv.id)
        readers = [m for m in dict.fromkeys(conv.members) if is_reader(ex, m)]
        if conv.kind == "public":
            # Guests and accounts of other teams read the public channels they are in.
            outsiders = {p for m in readers if (is_guest(ex, m) or is_external(ex, m)) and (p := user_principal(ex, m))}
            layer = self.workspace | outsiders
            if not layer:
                return nobody_scope(key, "nobody holds the workspace"), None
            return AccessScope(
                key=key,
                layers=[layer],
                deny=deny_for([layer], self.deny),
                description=f"Slack {team} public #{conv.name}",
            ), None
        members = {p for m in readers if (p := user_principal(ex, m))}
        if not members:
            return nobody_scope(key, "no active member"), "empty_acl"
        return AccessScope(
            key=key,
            layers=[members],
            deny=deny_for([members], self.deny),
            description=f"Slack {team} {conv.kind} {conv.id if conv.kind == 'mpim' else conv.name}",
        ), None


def deny_for(layers: Iterable[AbstractSet[str]], deactivated: frozenset[str]) -> frozenset[str]:
    """The deny list of a workspace scope: every deactivated account's principal, whatever
    its layers hold. A layer of active members' own ``user:`` principals still admits a
    deactivated person whose claims carry one of them -- the policy's ``roles`` can grant
    any principal, ``user:`` ones included, and a role grant may be added after the export
    was applied -- so no layer is safe without the deny list. A scope readable by nobody
    needs none."""
    return deactivated if any(layer for layer in layers) else frozenset()


# -- the permission state ------------------------------------------------------------------------
@dataclass
class SharedPublicKey:
    """Before per-conversation keys, every public channel without guests shared
    ``slack:<team>:workspace``; documents still on it move to their conversation's key."""

    team: str
    conversations: set[str]
    keys: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.keys = [f"slack:{self.team}:workspace"]

    def key_for(self, document_id: str) -> str | None:
        head = f"slack:{self.team}:"
        cid = document_id[len(head) :].split(":", 1)[0] if document_id.startswith(head) else None
        return conversation_key(self.team, cid) if cid in self.conversations else None


@dataclass
class WorkspaceDeny:
    """Conversations this export does not list (deleted since, or left out) keep their
    members, but deactivated accounts are denied in them too: a deactivated user loses
    everything of the workspace."""

    prefix: str
    stated: set[str]
    deny: frozenset[str]

    def wants(self, key: str) -> bool:
        return key not in self.stated and POLICY_SEP not in key

    def rebuild(self, stored: AccessScope) -> AccessScope | None:
        deny = deny_for(stored.layers, self.deny)
        if stored.deny == deny:
            return None
        try:
            return AccessScope(key=stored.key, layers=stored.layers, deny=deny, description=stored.description)
        except AccessDenied as exc:  # a deny list over the principal limit: fail closed
            log.warning("slack scope %s: %s", stored.key, exc)
            return nobody_scope(stored.key, str(exc))


def permission_state(export: SlackExport, builder: ScopeBuilder) -> PermissionState:
    """The scope of every conversation the metadata files list, with messages in this export
    or not: applied to all of its documents, including those of earlier exports."""
    scopes = [builder.scope(conv)[0] for conv in export.by_id.values()]
    return PermissionState(
        identity=f"slack:{export.team}",
        as_of=export.as_of,
        scopes=scopes,
        rebases=[WorkspaceDeny(f"slack:{export.team}:", {s.key for s in scopes}, builder.deny)],
        origins=[f"slack:{export.team}"],
        legacy=SharedPublicKey(export.team, set(export.by_id)),
    )
