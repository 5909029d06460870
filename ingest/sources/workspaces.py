"""Who holds a source's workspace-wide scope (policy key ``workspaces``).

Public Slack channels, and Confluence spaces open to all (logged-in or anonymous) users, are
readable by "everybody in the workspace". That is one scope per workspace, and its single
layer is decided here::

    workspaces:
      T0BMHLSRH: ["group:all-staff"]     # this Slack team: whoever has the IdP group
      ENG-WIKI: source-members           # members listed by the export itself
      default: source-members            # every other workspace

Lookup order: each of the workspace's names the source gives (team id, team name, domain,
Confluence space key or site), then ``default``; absent everywhere → ``source-members``.
A value is ``source-members``, one principal (``"group:staff"``) or a list of principals.
``[]`` or ``none`` makes workspace-wide content readable by nobody (fail closed).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from governance.errors import ConfigError
from governance.identity import parse_principal
from governance.policy import Policy

SOURCE_MEMBERS = "source-members"


def workspace_setting(policy: Policy, names: Iterable[str | None]) -> Any:
    table = policy.workspaces or {}
    if not isinstance(table, dict):
        raise ConfigError("policy key 'workspaces' must be a mapping", hint="see docs/sources.md")
    for name in [*names, "default"]:
        if name is not None and name in table:
            return table[name]
    return SOURCE_MEMBERS


def workspace_principals(policy: Policy, names: Iterable[str | None], source_members: Iterable[str]) -> frozenset[str]:
    """The principals of the single layer of a workspace-wide scope."""
    value = workspace_setting(policy, list(names))
    if value == SOURCE_MEMBERS:
        return frozenset(source_members)
    if value is None or value == "none":
        return frozenset()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ConfigError(
            f"policy workspaces value {value!r} is neither 'source-members' nor a list of principals",
            hint='write e.g. T0123: ["group:all-staff"] or default: source-members',
        )
    try:
        return frozenset(parse_principal(p) for p in value)
    except Exception as exc:
        raise ConfigError(f"policy workspaces: bad principal in {value!r}: {exc}") from exc
