"""Who may view a Confluence page: space permission AND every restriction of its chain.

Effective view permission (XML and REST exports): the space's view permission AND the
page's own read restriction AND the read restriction of every ancestor that has one — one
layer each, a user must match every layer. A space open to anonymous or all users holds the
workspace-wide principals (policy key ``workspaces``). Unknown permission data (no space
permissions, a page without its restrictions, an ancestor missing from the export)
quarantines the page: fail closed.

Scope keys: ``confluence:<site>:<space>:space`` (unrestricted pages, open space or not) and
``confluence:<site>:<space>:restricted:<id>/<id>...`` (the restricted pages of the chain):
pages under the same restricted ancestors share a scope, and a restriction edit updates it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from governance.contracts import AccessScope
from governance.errors import AccessDenied
from governance.policy import Policy
from ingest.sources.base import PermissionState, ScopeRebase, bounded_id, nobody_scope
from ingest.sources.confluence.model import PageInfo, SpaceInfo
from ingest.sources.workspaces import workspace_principals

INCOMPLETE_HINT = (
    "save each page with ?expand=ancestors,restrictions.read.restrictions.user,"
    "restrictions.read.restrictions.group (every page of the results, not the first page of "
    "them) and space.json with ?expand=permissions; a page with incomplete permission data "
    "is never ingested"
)


def space_key(site: str, space: str) -> str:
    """The scope of a space's unrestricted pages: one key whether the space is open to all
    users or not, so opening or closing a space changes the row, not the key."""
    return bounded_id(f"confluence:{site}:{space}:space")


def restricted_prefix(site: str, space: str) -> str:
    """What the key of every restricted-page scope of a space starts with."""
    return f"confluence:{site}:{space}:restricted:"


def page_nobody(site: str, space: str, page_id: str, why: str) -> AccessScope:
    """The readable-by-nobody scope of one page whose permissions are unknown."""
    return nobody_scope(f"confluence:{site}:{space}:page:{page_id}", why)


class PageScopes:
    """The effective view scope of each page of one export: space layer AND every restricted
    page of its chain."""

    def __init__(
        self,
        site: str,
        spaces: dict[str, SpaceInfo],
        pages: dict[str, PageInfo],
        policy: Policy,
        source_members: set[str],
    ) -> None:
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
            return nobody_scope(space_key(self.site, key), why or "permissions unknown"), reason, why
        open_ = " (open to all users)" if self.spaces[key].open else ""
        try:
            return (
                AccessScope(
                    key=space_key(self.site, key),
                    layers=[layer],
                    description=f"Confluence {self.site} space {key}{open_}",
                ),
                None,
                None,
            )
        except AccessDenied as exc:  # a view list over MAX_PRINCIPALS_PER_LAYER: its pages are refused
            why = f"space {key}: {exc} (grant a group instead of listing members)"
            return nobody_scope(space_key(self.site, key), why), "acl_too_large", why

    def scope(self, page: PageInfo) -> tuple[AccessScope, str | None, str | None]:
        """(scope, quarantine reason, message)."""
        site, key = self.site, page.space
        nobody = page_nobody(site, key, page.id, "permissions unknown")
        space_layer, reason, why = self.space_layer(key)
        if space_layer is None:
            return nobody, reason, why
        layers, restricted = [space_layer], []
        for pid in [*page.ancestors, page.id]:
            p = self.pages.get(pid)
            if p is None:
                return (
                    nobody,
                    "permissions_unknown",
                    f"ancestor page {pid} is not in the export; its restrictions are unknown",
                )
            if p.incomplete:
                return (
                    nobody,
                    "permissions_incomplete",
                    (p.incomplete if pid == page.id else f"ancestor page {pid}: {p.incomplete}"),
                )
            if not p.restrictions_known:
                return nobody, "permissions_unknown", f"page {pid} was exported without its read restrictions"
            if p.read:
                layers.append(p.read)
                restricted.append(pid)
        try:
            if not restricted:
                scope, reason, why = self._space_scope(key)
                return (nobody, reason, why) if reason else (scope, None, None)
            scope = AccessScope(
                key=bounded_id(restricted_prefix(site, key) + "/".join(restricted)),
                layers=layers,
                description=f"Confluence {site} space {key}, restricted by pages {', '.join(restricted)}",
            )
        except AccessDenied as exc:  # a layer over MAX_PRINCIPALS_PER_LAYER, too many layers
            return nobody, "acl_too_large", f"{exc} (grant a group instead of listing members)"
        return scope, None, None


# -- the permission state ------------------------------------------------------------------------
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
        ids = stored.key[len(self.prefix) :].split("#", 1)[0].split("/")
        if len(stored.layers) != len(ids) + 1 or "#" in stored.key:
            return None  # not a chain this module wrote (or a cut key): leave it
        layers = [self.space_layer]
        for pid, old in zip(ids, stored.layers[1:], strict=True):
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
            return nobody_scope(stored.key, "acl too large")


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
    space_layers: dict[str, frozenset[str] | None]  # stated spaces -> view layer (None: unknown)
    id_prefix: str = ""
    page_ids: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.id_prefix = f"confluence:{self.site}:"
        self.page_ids = set(self.restrictions)

    def rescope(self, document_id: str, ancestry: list[str], current: AccessScope) -> AccessScope | None:
        self_id = document_id[len(self.id_prefix) :].split(":", 1)[0]
        head = f"confluence:{self.site}:"
        if not current.key.startswith(head) or "#" in current.key:
            return None
        space, _, kind = current.key[len(head) :].partition(":")
        if kind == "space":
            old: dict[str, frozenset[str]] = {}
        elif kind.startswith("restricted:"):
            ids = kind[len("restricted:") :].split("/")
            if len(current.layers) != len(ids) + 1:
                return None
            old = dict(zip(ids, current.layers[1:], strict=True))
        else:
            return None  # a nobody scope: stays nobody
        space_layer = self.space_layers.get(space, current.layers[0])
        nobody = page_nobody(self.site, space, self_id, "permissions unknown")
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
        key = (
            space_key(self.site, space)
            if not restricted
            else bounded_id(restricted_prefix(self.site, space) + "/".join(restricted))
        )
        try:
            return AccessScope(key=key, layers=layers, description=current.description)
        except AccessDenied:
            return nobody


def permission_state(scopes: PageScopes, pages: dict[str, PageInfo], *, as_of: str | None) -> PermissionState:
    """What the export states for each of its spaces: the space's scope, and the space layer
    re-based into every stored restricted-page scope of the space."""
    space_scopes: list[AccessScope] = []
    rebases: list[ScopeRebase] = []
    for key in sorted(scopes.spaces):
        space_scopes.append(scopes.space_scope(key))
        layer, _, _ = scopes.space_layer(key)
        restrictions = {
            p.id: (p.read if p.restrictions_known and not p.incomplete else frozenset())
            for p in pages.values()
            if p.space == key
        }
        # Unknown restrictions keep the stored layer (``frozenset()`` falls back to it); an
        # unknown or empty space makes every page of it readable by nobody.
        rebases.append(
            RestrictedChainRebase(
                prefix=restricted_prefix(scopes.site, key),
                space_layer=layer if layer is not None else frozenset(),
                restrictions=restrictions,
            )
        )
    return PermissionState(
        identity=f"confluence:{scopes.site}",
        as_of=as_of,
        scopes=space_scopes,
        rebases=rebases,
        origins=[f"confluence:{scopes.site}:{key}" for key in sorted(scopes.spaces)],
        legacy=SharedOpenSpaceKey(scopes.site, set(scopes.spaces)),
        descendants=ChainRescope(
            scopes.site,
            {
                p.id: (p.read if p.restrictions_known and not p.incomplete and not p.error else _UNKNOWN)
                for p in pages.values()
            },
            {key: scopes.space_layer(key)[0] for key in scopes.spaces},
        ),
    )
