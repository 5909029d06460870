"""Reference model for leak fuzzing: who may read which document at a given time.

Pure Python on purpose: nothing here imports ``governance``, ``ingest`` or ``retrieval``.
The model restates the access model of DESIGN.md from its text, so the fuzzer compares the
real stack against an independent oracle:

* a principal is ``kind:value``; values are compared after NFC normalisation and stripping,
  and user values that are e-mail addresses are lower-cased (``user:<email>``);
* a user holds ``user:<id>``, ``user:<email>``, ``group:<g>`` per group claim, ``role:<r>``
  per role claim, plus whatever the policy's ``roles`` mapping grants for each role claim
  (one step: a granted ``role:x`` is a principal, it does not expand again);
* a scope is a list of layers; a user may read it when they hold at least one principal of
  EVERY layer (an empty layer is matched by nobody);
* Slack guests (``is_restricted``) are not workspace members: a public channel's single
  layer is every full member plus only those guests who joined that channel;
* a document inherits its source's scope (Slack channel, Confluence page) or, with no
  permissions of its own (PDF), the first matching policy access rule's layers; a policy rule
  matching a document that has its own scope *adds* its layers (it can only narrow);
* a document is readable when it is active (ingested, not tombstoned, not purged), has not
  expired (``now < expires_at``) and the user may read the scope the *catalog* holds for it;
  when its source replaced the text with content already past retention (the ingest skips
  such content), no version of it is readable any more (``CatalogDoc.source_expired``);
* legal holds stop purges, not tombstones; a purge of expired documents takes the active and
  tombstoned ones whose catalog expiry is at or before ``now``;
* Slack exports (real export files, see ``SlackWorkspace``): every conversation has one scope
  named by its id, whatever its visibility. A public channel's single layer is the workspace
  layer (every active full member, or the principals the policy's ``workspaces`` key maps the
  team to) plus its active guest members; a private channel's is its active members; a
  private channel with no active member is readable by nobody, and an ingest of its messages
  retires them. Every scope denies the principals of deactivated accounts, whatever the
  layers say. An export's metadata states the scope of EVERY conversation it lists, messages
  or not, and it holds for all documents of that conversation, ingested earlier or now;
* time of Slack statements is the export's own: a statement (a conversation's scope, a
  document's presence or refusal) older than the one already applied changes nothing.

The model keeps two pictures apart: the *source* (what the Slack/Confluence/PDF source says
now: scope members, text, expiry) and the *catalog* (what the last ingest, ACL sync or direct
catalog update wrote). ACL and document changes that are not pushed yet ("lazy") only change
the source; readability always follows the catalog picture, exactly as the real system must.

Catalog scopes are named here by the model's own ids: ``("scope", key, narrowed)`` for a
source scope (narrowed: with the policy's narrowing rule added) and ``("pdf",)`` for the
policy rule that covers PDFs. One model id stands for one catalog scope row.

It also holds the hypothesis strategies that draw a random world: users (some guests, some
without e-mail), groups, roles, role grants, scopes with 1-3 layers, documents with unique
phrases and expiries, and hostile names (quotes, brackets, backslashes, ``or true``, filter
and SQL fragments, principal-looking names, unicode, padded and decomposed spellings).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from hypothesis import strategies as st

DAY = 86_400
# Principal values that try to break out of a filter, a SQL string, a glob or a kind prefix.
HOSTILE = (
    '"] or scope_id >= 0 or ["',
    "' OR '1'='1",
    "or true",
    "x\\",
    '\\"',
    "[1,2]",
    "a]",
    "%",
    "_",
    "*",
    "**",
    "group:eng",
    "role:admin",
    "user:root",
    "id >= 0",
    "; DROP TABLE scopes; --",
    "`tick`",
    "${x}",
    "{x}",
    "a,b",
    "null",
    "None",
    "-1",
    "Eng",
    "eng",
    "ENG",
    "équipe",
    "ü-team",
    "名前",
    "🙂",
    "ＡＤＭＩＮ",
    "a b",
    "ʼnap",
)
# Innocuous lower-case words: text that cleaning keeps as is and redaction leaves alone.
WORDS = (
    "amber",
    "anchor",
    "apple",
    "arch",
    "aspen",
    "atlas",
    "badger",
    "bamboo",
    "banner",
    "basil",
    "beacon",
    "birch",
    "bison",
    "bramble",
    "brook",
    "cactus",
    "canyon",
    "cedar",
    "cherry",
    "cinder",
    "clover",
    "cobalt",
    "comet",
    "coral",
    "cricket",
    "crystal",
    "dahlia",
    "delta",
    "dune",
    "ember",
    "falcon",
    "fern",
    "fig",
    "fjord",
    "flint",
    "forest",
    "garnet",
    "geyser",
    "ginger",
    "glacier",
    "granite",
    "grove",
    "harbor",
    "hazel",
    "heron",
    "hollow",
    "indigo",
    "iris",
    "ivory",
    "jasper",
    "juniper",
    "kelp",
    "kestrel",
    "lagoon",
    "lantern",
    "larch",
    "lemon",
    "lilac",
    "lotus",
    "lynx",
    "maple",
    "marble",
    "meadow",
    "mesa",
    "mint",
    "moss",
    "nectar",
    "nickel",
    "oasis",
    "olive",
    "onyx",
    "orchid",
    "otter",
    "pebble",
    "pepper",
    "pine",
    "plum",
    "prairie",
    "quartz",
    "quill",
    "raven",
    "reef",
    "ridge",
    "river",
    "saffron",
    "sage",
    "salmon",
    "sierra",
    "slate",
    "sparrow",
    "spruce",
    "summit",
    "tamarind",
    "thistle",
    "thunder",
    "tidal",
    "topaz",
    "tulip",
    "tundra",
    "umber",
    "valley",
    "velvet",
    "violet",
    "walnut",
    "willow",
    "wren",
    "yarrow",
    "zephyr",
)
SYLLABLES = ("ka", "lo", "mi", "nu", "po", "ri", "sa", "te", "vu", "ze", "qua", "xi", "bro", "dri")
# Expiry choices relative to the model clock; ANCIENT means "already past in real time when
# ingested" (the ingest skips such new content), None means no retention rule applies.
EXPIRY_DELTAS = (-DAY, -3600, -1, 0, 1, 3600, DAY)
ANCIENT = "ancient"
CLOCK_STEPS = (1, 59, 60, 3600, DAY)


# -- canonical principals (DESIGN.md "Access model") --------------------------------------------
def canon_value(value: str) -> str:
    return unicodedata.normalize("NFC", value.strip())


def canon_principal(text: str) -> str:
    kind, _, value = text.partition(":")
    kind, value = kind.strip(), canon_value(value)
    if kind == "user" and "@" in value:
        value = value.lower()
    return f"{kind}:{value}"


def canon_layers(layers: Iterable[Iterable[str]]) -> tuple[frozenset[str], ...]:
    return tuple(frozenset(canon_principal(p) for p in layer) for layer in layers)


def may_read(principals: frozenset[str], layers: tuple[frozenset[str], ...]) -> bool:
    """One principal in every layer; no layers or an empty layer: nobody."""
    return bool(layers) and all(layer & principals for layer in layers)


def surface(value: str, how: int) -> str:
    """Another spelling of ``value`` that must mean the same principal: padded or decomposed."""
    if how == 1:
        return f"  {value} "
    if how == 2:
        return unicodedata.normalize("NFD", value)
    return value


# -- the world ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelUser:
    """A caller: identity plus claims as the identity provider sends them (surface spellings)."""

    key: str
    id: str
    email: str | None
    groups: tuple[str, ...]
    roles: tuple[str, ...]
    guest: bool = False

    def principals(self, role_grants: dict[str, tuple[str, ...]]) -> frozenset[str]:
        out = {f"user:{canon_value(self.id)}"}
        if self.email:
            out.add(canon_principal(f"user:{self.email}"))
        out |= {f"group:{canon_value(g)}" for g in self.groups}
        roles = {canon_value(r) for r in self.roles}
        out |= {f"role:{r}" for r in roles}
        for role in roles:
            out |= {canon_principal(g) for g in role_grants.get(role, ())}
        return frozenset(out)

    def claims(self) -> dict:
        out: dict = {"sub": self.id, "groups": list(self.groups), "roles": list(self.roles)}
        if self.email:
            out["email"] = self.email
        return out

    def source_principal(self) -> str:
        """How a Slack export names this person in a member list (e-mail when it has one)."""
        return f"user:{self.email}" if self.email else f"user:{self.id}"


@dataclass
class ScopeSpec:
    """A scope as its source states it now. ``kind``: ``slack-public`` (workspace members plus
    the guests in the channel), ``slack-private`` (a member list) or ``confluence`` (1-3
    layers; in the narrowed space the policy's narrowing rule adds its layers)."""

    key: str
    kind: str
    layers: tuple[tuple[str, ...], ...] = ()
    guests: frozenset[str] = frozenset()  # user keys (slack-public)
    narrowed: bool = False

    @property
    def source(self) -> str:
        return "confluence" if self.kind == "confluence" else "slack"


@dataclass
class SourceDoc:
    """A document as its source holds it now."""

    doc_id: str
    kind: str  # slack | confluence | pdf
    rel_path: str
    title: str
    phrase: str
    fingerprint: str
    scope_key: str | None  # None for pdf
    expiry: int | str | None  # epoch seconds, ANCIENT, or None


@dataclass
class CatalogDoc:
    """What the catalog holds for a document (as far as the model follows it)."""

    status: str = "never"  # never | active | tombstoned | purged
    row: tuple | None = None
    phrase: str | None = None
    fingerprint: str | None = None
    expiry: int | str | None = None
    # The source replaced the text with content already past retention: the ingest publishes
    # nothing, and the document must not be served (neither the new text nor the old one).
    source_expired: bool = False
    # Slack export documents: the serial of the newest export that stated this document.
    stamp: int | None = None


@dataclass
class World:
    """A drawn world: names carry the example's nonce so examples never share a principal."""

    nonce: str
    users: list[ModelUser]
    groups: list[str]
    roles: list[str]
    role_grants: dict[str, tuple[str, ...]]
    scopes: list[ScopeSpec]
    docs: list[SourceDoc]
    pdf_rule: tuple[tuple[str, ...], ...] | None
    narrow_rule: tuple[tuple[str, ...], ...]
    foreign: list[str]  # principals nobody in the world holds
    pool: list[str]  # principals scopes and rules draw from (several spellings)


class LeakModel:
    """The oracle. Methods named ``on_*`` mirror what one real operation does to the catalog."""

    def __init__(self, world: World, *, now: int, real_floor: int) -> None:
        self.world = world
        self.now = now
        self.real_floor = real_floor  # expiries at or before this are past in real time
        self.users = {u.key: u for u in world.users}
        self.scopes = {s.key: s for s in world.scopes}
        self.docs = {d.doc_id: d for d in world.docs}
        self.catalog = {d.doc_id: CatalogDoc() for d in world.docs}
        self.rows: dict[tuple, tuple[frozenset[str], ...]] = {}
        self.denies: dict[tuple, frozenset[str]] = {}  # catalog scope -> denied principals
        self.row_stamps: dict[tuple, int] = {}  # Slack scope -> serial of the export that stated it
        self.slack: SlackWorkspace | None = None
        self.role_grants = dict(world.role_grants)
        self.pdf_rule = world.pdf_rule
        self.narrow_rule = world.narrow_rule
        self.holds: set[str] = set()
        self.phrases: list[str] = [d.phrase for d in world.docs]

    # -- clock ----------------------------------------------------------------------------------
    def expiry_epoch(self, expiry: int | str | None) -> int | None:
        if expiry == ANCIENT:
            return self.real_floor - DAY
        return expiry  # type: ignore[return-value]

    def expired(self, expiry: int | str | None) -> bool:
        e = self.expiry_epoch(expiry)
        return e is not None and e <= self.now

    # -- scopes as the source states them -------------------------------------------------------
    def source_layers(self, scope: ScopeSpec) -> tuple[tuple[str, ...], ...]:
        if scope.kind == "slack-public":
            members = [u.source_principal() for u in self.users.values() if not u.guest or u.key in scope.guests]
            return (tuple(members),)
        return scope.layers

    def resolve(self, doc: SourceDoc) -> tuple[tuple, tuple[frozenset[str], ...]] | None:
        """The catalog scope (model id) and canonical layers an ingest gives the document, or
        None when no access rule covers it (quarantined)."""
        if doc.kind == "pdf":
            if self.pdf_rule is None:
                return None
            return ("pdf",), canon_layers(self.pdf_rule)
        scope = self.scopes[doc.scope_key]  # type: ignore[index]
        layers = self.source_layers(scope)
        if scope.narrowed:
            layers = (*layers, *self.narrow_rule)
        return ("scope", scope.key, scope.narrowed), canon_layers(layers)

    # -- operations -----------------------------------------------------------------------------
    def on_ingest(self, doc_ids: Iterable[str]) -> None:
        """Ingest of the source's current state of these documents."""
        for doc_id in doc_ids:
            doc, cat = self.docs[doc_id], self.catalog[doc_id]
            resolved = self.resolve(doc)
            if resolved is None:  # quarantined; a searchable document is retired (fail closed)
                if cat.status == "active":
                    cat.status = "tombstoned"
                continue
            row, layers = resolved
            self.rows[row] = layers  # the scope is stored before anything else happens
            if cat.status == "active" and cat.fingerprint == doc.fingerprint:
                cat.row, cat.expiry = row, doc.expiry  # unchanged: access and expiry only
                continue
            e = self.expiry_epoch(doc.expiry)
            if e is not None and e <= self.real_floor:
                # New content already past retention: nothing is published. The document as
                # its source now has it has expired, so an older version must not stay readable.
                cat.source_expired = cat.status == "active"
                continue
            cat.status, cat.row, cat.expiry = "active", row, doc.expiry
            cat.phrase, cat.fingerprint, cat.source_expired = doc.phrase, doc.fingerprint, False

    def on_sync(self, doc_ids: Iterable[str]) -> None:
        """Permission sync: scopes re-resolved; unchanged active documents get their access
        rewritten; uncovered active ones are retired; changed content is left to the ingest."""
        todo = []
        for doc_id in doc_ids:
            doc, cat = self.docs[doc_id], self.catalog[doc_id]
            resolved = self.resolve(doc)
            if resolved is None:
                if cat.status == "active":
                    todo.append(doc_id)
                continue
            self.rows[resolved[0]] = resolved[1]
            if cat.status == "active" and cat.fingerprint == doc.fingerprint:
                todo.append(doc_id)
        self.on_ingest(todo)

    def on_direct_scope_update(self, key: str, layers: tuple[tuple[str, ...], ...]) -> None:
        """``ScopeRepository.upsert_scope`` with the source scope's own key (no policy narrowing)."""
        self.rows[("scope", key, False)] = canon_layers(layers)

    def on_tombstone(self, doc_id: str) -> None:
        if self.catalog[doc_id].status == "active":
            self.catalog[doc_id].status = "tombstoned"

    def on_purge(self, doc_ids: Iterable[str]) -> None:
        for doc_id in doc_ids:
            cat = self.catalog[doc_id]
            if cat.status in ("active", "tombstoned") and doc_id not in self.holds:
                cat.status = "purged"

    def expired_purgeable(self) -> list[str]:
        return [
            d
            for d, c in self.catalog.items()
            if c.status in ("active", "tombstoned") and self.expired(c.expiry) and not c.source_expired
        ]

    def purge_undecided(self) -> set[str]:
        """Documents whose purge selection the model leaves open (see ``source_expired``)."""
        return {d for d, c in self.catalog.items() if c.source_expired and c.status in ("active", "tombstoned")}

    # -- Slack exports --------------------------------------------------------------------------
    def slack_principal(self, acct: SlackAccount) -> str:
        """How the workspace's export names an account: its e-mail, else ``slack:<team>:<id>``."""
        team = self.slack.team  # type: ignore[union-attr]
        return canon_principal(f"user:{acct.email}" if acct.email else f"user:slack:{team}:{acct.uid}")

    def slack_scope(self, spec: SlackExportSpec, cid: str) -> tuple[tuple[frozenset[str], ...], frozenset[str], bool]:
        """(layers, deny, refused) of one conversation as the export ``spec`` states it. Refused:
        a private conversation with no active member (its messages are never ingested)."""
        ws = self.slack
        assert ws is not None
        accounts = {a.uid: a for a in spec.accounts}
        active = {p for a in spec.accounts if not a.deleted for p in [self.slack_principal(a)]}
        deny = frozenset(self.slack_principal(a) for a in spec.accounts if a.deleted) - active
        conv = next(c for c in spec.convs if c.cid == cid)
        members = [accounts[u] for u in conv.members if u in accounts and not accounts[u].deleted]
        if conv.private:
            layer = frozenset(self.slack_principal(a) for a in members)
            return (layer,), deny, not layer
        if ws.workspace_rule is None:  # source-members: every active full member
            workspace = {self.slack_principal(a) for a in spec.accounts if not a.deleted and not a.guest}
        else:
            workspace = {canon_principal(p) for p in ws.workspace_rule}
        layer = frozenset(workspace | {self.slack_principal(a) for a in members if a.guest})
        return (layer,), deny, False

    def slack_snapshot(self, days: Iterable[str]) -> SlackExportSpec:
        """A new export of the workspace as it is now, with day files for ``days``; every
        export is newer than the ones before it."""
        ws = self.slack
        assert ws is not None
        spec = SlackExportSpec(
            serial=len(ws.exports) + 1,
            accounts=tuple(ws.accounts.values()),
            convs=tuple(ws.convs.values()),
            days=tuple(sorted(set(days))),
        )
        ws.exports.append(spec)
        return spec

    def on_slack_export(self, spec: SlackExportSpec, how: str, *, state_only: bool = False) -> None:
        """``how`` = ingest (``Ingestor.ingest_paths``) or sync (``sync_permissions`` with the
        opened export). First the export's permission state: every conversation it lists gets
        the scope the export states, unless a newer export already stated it. Then its
        documents: a document a newer export stated is left alone; one of a refused
        conversation (stated now) is retired; an active one keeps following its scope; an
        ingest publishes the rest (never ingested, retired, purged), a sync leaves them.
        ``state_only``: the permission state alone (the operation failed after applying it)."""
        ws = self.slack
        assert ws is not None
        s = spec.serial
        scopes = {c.cid: self.slack_scope(spec, c.cid) for c in spec.convs}
        for cid, (layers, deny, _) in scopes.items():
            row = ("slack", cid)
            if self.row_stamps.get(row, 0) <= s:
                self.rows[row], self.denies[row], self.row_stamps[row] = layers, deny, s
        for doc_id in () if state_only else spec.days:
            doc, cat = self.docs[doc_id], self.catalog[doc_id]
            cid = ws.doc_conv[doc_id]
            row = ("slack", cid)
            if cat.status != "purged" and cat.stamp is not None and s < cat.stamp:
                continue  # a newer export stated this document
            if scopes[cid][2]:  # refused
                if s < self.row_stamps[row]:
                    continue  # an older export's refusal: a newer one says who may read it
                if cat.status == "active":
                    cat.status = "tombstoned"
                if cat.status != "never":
                    cat.stamp = s if cat.stamp is None else max(cat.stamp, s)
                continue
            if cat.status == "active":
                cat.row = row
                cat.stamp = s if cat.stamp is None else max(cat.stamp, s)
            elif how == "ingest":
                cat.status, cat.row, cat.expiry, cat.stamp = "active", row, None, s
                cat.phrase, cat.fingerprint, cat.source_expired = doc.phrase, doc.fingerprint, False

    # -- the oracle -----------------------------------------------------------------------------
    def principals(self, user: ModelUser) -> frozenset[str]:
        return user.principals(self.role_grants)

    def readable(self, user: ModelUser, doc_id: str) -> bool:
        cat = self.catalog.get(doc_id)
        if cat is None or cat.status != "active" or cat.source_expired or self.expired(cat.expiry):
            return False
        layers = self.rows.get(cat.row)  # type: ignore[arg-type]
        principals = self.principals(user)
        return (
            layers is not None
            and may_read(principals, layers)
            and not (self.denies.get(cat.row, frozenset()) & principals)
        )  # type: ignore[arg-type]

    def why_not(self, user: ModelUser, doc_id: str) -> str:
        cat = self.catalog.get(doc_id)
        if cat is None:
            return "not a document of this world"
        if cat.status != "active":
            return f"status {cat.status}"
        if cat.source_expired:
            return (
                f"its source replaced the text with content already past retention (skipped by the "
                f"ingest); the old version {cat.phrase!r} must not be served"
            )
        if self.expired(cat.expiry):
            return f"expired at {self.expiry_epoch(cat.expiry)} <= now {self.now}"
        layers = self.rows.get(cat.row)  # type: ignore[arg-type]
        denied = self.denies.get(cat.row, frozenset()) & self.principals(user)  # type: ignore[arg-type]
        if denied and layers and may_read(self.principals(user), layers):
            return f"denied (deactivated account) {sorted(denied)} in scope {cat.row}"
        return (
            f"principals {sorted(self.principals(user))} do not match layers "
            f"{[sorted(x) for x in layers or ()]} of scope {cat.row}"
        )

    def item_docs(self) -> list[str]:
        """Documents the fuzzer hands to the pipeline as ``SourceItem``s (not Slack export files)."""
        return sorted(d for d, doc in self.docs.items() if doc.kind != SLACK_EXPORT)

    def readable_docs(self, user: ModelUser) -> set[str]:
        return {d for d in self.docs if self.readable(user, d)}


# -- strategies ---------------------------------------------------------------------------------
def _name(nonce: str, i: int, hostile: str) -> str:
    """A canonical name for the example: nonce first (isolation), hostile text after it."""
    return canon_value(f"{nonce}.{i}.{hostile}")


names_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=10
).filter(lambda s: bool(canon_value(s)))
hostile_text = st.one_of(st.sampled_from(HOSTILE), names_text)


def phrase_for(draw, serial: int) -> str:
    words = draw(st.lists(st.sampled_from(WORDS), min_size=3, max_size=6, unique=True))
    tag, n = "", serial + 1
    while n:
        n, r = divmod(n - 1, len(SYLLABLES))
        tag = SYLLABLES[r] + tag
    return " ".join([*words, f"zq{tag}"])


@st.composite
def worlds(draw, nonce: str, max_docs: int = 8, max_users: int = 5) -> World:
    groups = [_name(nonce, i, draw(hostile_text)) for i in range(draw(st.integers(2, 4)))]
    roles = [_name(nonce, i, draw(hostile_text)) for i in range(draw(st.integers(1, 3)))]
    n_users = draw(st.integers(2, max_users))
    users = []
    for i in range(n_users):
        uid = _name(nonce, i, draw(hostile_text)).replace("@", "(at)")
        email = None
        if draw(st.booleans()):
            local = draw(st.sampled_from(("ann", "Bob", "CAROL", "dave.o", "Émile", "zoë")))
            email = f"{local}{i}@{nonce}.Example.org"
        users.append(
            ModelUser(
                key=f"u{i}",
                id=surface(uid, draw(st.integers(0, 2))),
                email=email,
                groups=tuple(
                    surface(g, draw(st.integers(0, 2)))
                    for g in draw(st.lists(st.sampled_from(groups), min_size=1, max_size=3, unique=True))
                ),
                roles=tuple(
                    surface(r, draw(st.integers(0, 2)))
                    for r in draw(st.lists(st.sampled_from(roles), max_size=2, unique=True))
                ),
                guest=draw(st.booleans()),
            )
        )
    foreign = [
        f"group:{nonce}.nobody",
        f"role:{nonce}.{HOSTILE[0]}",
        f"user:{nonce}.ghost@example.org",
        f"group:{nonce}.*",
    ]
    pool = principal_pool(users, groups, roles, foreign)
    role_grants = {
        r: tuple(draw(st.lists(st.sampled_from(pool), max_size=2, unique=True))) for r in roles if draw(st.booleans())
    }

    scopes: list[ScopeSpec] = []
    kinds = draw(
        st.lists(st.sampled_from(("slack-public", "slack-private", "confluence", "confluence")), min_size=2, max_size=5)
    )
    narrowed_done = False
    for j, kind in enumerate(kinds):
        key = f"{nonce}:{kind}:{j}:{draw(hostile_text)}"
        if kind == "slack-public":
            guests = frozenset(draw(st.lists(st.sampled_from([u.key for u in users]), max_size=2)))
            scopes.append(ScopeSpec(key=key, kind=kind, guests=guests))
        elif kind == "slack-private":
            members = draw(st.lists(st.sampled_from([u.source_principal() for u in users]), max_size=3, unique=True))
            scopes.append(ScopeSpec(key=key, kind=kind, layers=(tuple(members),)))
        else:
            narrowed = not narrowed_done and draw(st.booleans())
            narrowed_done |= narrowed
            scopes.append(ScopeSpec(key=key, kind=kind, layers=draw(layer_lists(pool)), narrowed=narrowed))
    docs = []
    for i in range(draw(st.integers(2, max_docs))):
        kind = draw(st.sampled_from(("slack", "confluence", "pdf")))
        candidates = [s for s in scopes if s.source == kind]
        if kind != "pdf" and not candidates:
            kind = "pdf"
        scope_key = None if kind == "pdf" else draw(st.sampled_from(candidates)).key
        phrase = phrase_for(draw, i)
        hostile = draw(hostile_text)
        docs.append(
            SourceDoc(
                doc_id=f"{kind}:{nonce}:{i}:{hostile}",
                kind=kind,
                rel_path=f"{nonce}/acl/{i}-{hostile}.pdf" if kind == "pdf" else f"{nonce}/{i}",
                title=f"{hostile} {i}",
                phrase=phrase,
                fingerprint=f"fp:{phrase}",
                scope_key=scope_key,
                expiry=draw(expiries()),
            )
        )
    pdf_rule = draw(st.none() | layer_lists(pool, nonempty=True))
    narrow_rule = draw(layer_lists(pool, nonempty=True, max_layers=2))
    return World(
        nonce=nonce,
        users=users,
        groups=groups,
        roles=roles,
        role_grants=role_grants,
        scopes=scopes,
        docs=docs,
        pdf_rule=pdf_rule,
        narrow_rule=narrow_rule,
        foreign=foreign,
        pool=pool,
    )


def principal_pool(users: list[ModelUser], groups: list[str], roles: list[str], foreign: list[str]) -> list[str]:
    """Principals a scope may list, in the spellings sources use (padded/decomposed included).
    Groups and roles come three times: held by several users, they make layers that some
    users pass, so readable documents (and so misses) are common enough to be checked."""
    out = [f"group:{g}" for g in groups] * 2 + [f"role:{r}" for r in roles] * 2
    for u in users:
        out.append(f"user:{u.id}")
        if u.email:
            out.append(f"user:{u.email}")
    out += [f"group:{g}" for g in groups] + [f"role:{r}" for r in roles]
    out += [f"group: {g} " for g in groups[:1]] + [f"role:{unicodedata.normalize('NFD', r)}" for r in roles[:1]]
    # kind confusion: a group named like a role is not that role
    out += [f"group:{r}" for r in roles[:1]] + foreign
    return out


def layer_lists(pool: list[str], *, nonempty: bool = False, max_layers: int = 3):
    """1-3 layers of principals from the pool; an empty layer now and then (nobody)."""
    layer = st.lists(st.sampled_from(pool), min_size=1 if nonempty else 0, max_size=4, unique=True)
    if not nonempty:
        layer = st.one_of(st.lists(st.sampled_from(pool), min_size=1, max_size=4, unique=True), layer)
    return st.lists(layer.map(tuple), min_size=1, max_size=max_layers).map(tuple)


def expiries():
    """An expiry relative to the clock (0 = now): None (no retention rule), a delta in seconds
    (at or before 0: already expired for search), or ANCIENT. Half of them never expire."""
    return st.sampled_from((None,) * 5 + EXPIRY_DELTAS + (7 * DAY, ANCIENT))


def absolute_expiry(choice: int | str | None, now: int) -> int | str | None:
    return choice if choice is None or choice == ANCIENT else now + int(choice)


def with_absolute_expiries(world: World, now: int) -> World:
    return replace(world, docs=[replace(d, expiry=absolute_expiry(d.expiry, now)) for d in world.docs])


# -- Slack exports --------------------------------------------------------------------------------
SLACK_EXPORT = "slack-export"  # SourceDoc.kind of a document that comes from a real export file
SLACK_EPOCH = 1_750_000_000  # users' ``updated`` in export 1; every later export is 1000 s newer
SLACK_DAY0 = 1_704_067_200  # 2024-01-01: message days, older than every export's stamp
SLACK_CREATED = 1_600_000_000  # every conversation's ``created``


@dataclass(frozen=True)
class SlackAccount:
    """A Slack account of the workspace: one per model user, with that user's e-mail (or none:
    then the export names it ``user:slack:<team>:<id>``, which no caller holds)."""

    uid: str
    name: str
    email: str | None
    guest: bool = False  # is_restricted
    deleted: bool = False  # deactivated


@dataclass(frozen=True)
class SlackConv:
    cid: str
    name: str
    private: bool  # groups.json (else channels.json)
    members: tuple[str, ...]  # account uids


@dataclass(frozen=True)
class SlackExportSpec:
    """One export as it was written: the workspace at that moment and the documents it has day
    files for. ``serial`` orders exports in time (``SLACK_EPOCH + 1000 * serial`` is its
    newest stated time, the users' ``updated``)."""

    serial: int
    accounts: tuple[SlackAccount, ...]
    convs: tuple[SlackConv, ...]
    days: tuple[str, ...]

    @property
    def stamp(self) -> int:
        return SLACK_EPOCH + 1000 * self.serial


@dataclass
class SlackWorkspace:
    """The workspace as Slack has it now (the source picture), and the exports written so far."""

    team: str
    accounts: dict[str, SlackAccount]
    convs: dict[str, SlackConv]
    workspace_rule: tuple[str, ...] | None  # policy ``workspaces`` value for the team; None: source-members
    doc_conv: dict[str, str] = field(default_factory=dict)  # document id -> conversation id
    doc_day: dict[str, int] = field(default_factory=dict)  # document id -> day number (0: SLACK_DAY0)
    doc_author: dict[str, str] = field(default_factory=dict)  # document id -> account uid
    exports: list[SlackExportSpec] = field(default_factory=list)
    days_used: int = 0

    def scope_key(self, cid: str) -> str:
        return f"slack:{self.team}:channel:{cid}"

    def new_doc(self, cid: str, phrase: str, author: str) -> SourceDoc:
        day = self.days_used
        self.days_used += 1
        date = slack_date(day)
        doc_id = f"slack:{self.team}:{cid}:day:{date}"
        self.doc_conv[doc_id], self.doc_day[doc_id], self.doc_author[doc_id] = cid, day, author
        return SourceDoc(
            doc_id=doc_id,
            kind=SLACK_EXPORT,
            rel_path=f"{self.convs[cid].name}/{date}.json",
            title=f"#{self.convs[cid].name}, {date}",
            phrase=phrase,
            fingerprint=f"slack:{phrase}",
            scope_key=self.scope_key(cid),
            expiry=None,
        )

    def docs_of(self, cid: str) -> list[str]:
        return sorted(d for d, c in self.doc_conv.items() if c == cid)


def slack_date(day: int) -> str:
    import datetime as _dt

    return (_dt.date(2024, 1, 1) + _dt.timedelta(days=day)).isoformat()


@st.composite
def slack_workspaces(draw, world: World, serial: int, max_docs: int = 5) -> tuple[SlackWorkspace, list[SourceDoc]]:
    """A Slack workspace over the world's users: accounts (some guests, now and then a
    deactivated one), 1-3 conversations (public or private, with members), 1-``max_docs``
    channel-days of messages, and whether the policy maps the team to a group."""
    team = f"T{world.nonce.upper()}"
    accounts = {}
    for i, u in enumerate(world.users):
        uid = f"U{i}"
        accounts[uid] = SlackAccount(
            uid=uid,
            name=f"person{i}",
            email=u.email,
            guest=draw(st.integers(0, 3), label="slack guest") == 0,
            deleted=draw(st.integers(0, 5), label="slack deactivated") == 0,
        )
    uids = sorted(accounts)
    convs = {}
    for j in range(draw(st.integers(1, 3), label="slack conversations")):
        cid = f"C{j}"
        convs[cid] = SlackConv(
            cid=cid,
            name=f"chan-{j}",
            private=draw(st.booleans(), label="private"),
            members=tuple(draw(st.lists(st.sampled_from(uids), min_size=1, max_size=3, unique=True), label="members")),
        )
    rule = None
    if draw(st.booleans(), label="workspace mapped to a group"):
        rule = (f"group:{draw(st.sampled_from(world.groups))}",)
    ws = SlackWorkspace(team=team, accounts=accounts, convs=convs, workspace_rule=rule)
    docs = []
    for k in range(draw(st.integers(1, max_docs), label="slack days")):
        cid = draw(st.sampled_from(sorted(convs)), label="conversation")
        docs.append(ws.new_doc(cid, phrase_for(draw, serial + k), draw(st.sampled_from(uids), label="author")))
    return ws, docs


@dataclass
class FuzzStats:
    """What a fuzz run checked and found."""

    examples: int = 0
    steps: int = 0
    searches: int = 0
    hits_checked: int = 0
    docs_checked: int = 0
    leaks: int = 0
    misses: int = 0
    errors: int = 0  # operations of the real stack that raised
    slack_exports: int = 0  # Slack export folders written
    slack_stale_applied: int = 0  # exports applied after a newer one
    ops: dict[str, int] = field(default_factory=dict)
    findings: list[str] = field(default_factory=list)

    def count(self, op: str) -> None:
        self.steps += 1
        self.ops[op] = self.ops.get(op, 0) + 1

    def line(self) -> str:
        return (
            f"leak-fuzz: {self.examples} examples, {self.steps} steps, {self.searches} searches, "
            f"{self.hits_checked} hits checked, {self.docs_checked} (search, document) pairs checked, "
            f"{self.checks} checks, {self.slack_exports} Slack exports ({self.slack_stale_applied} applied after a "
            f"newer one), {self.leaks} leaks, {self.misses} misses, {self.errors} errors"
        )

    @property
    def checks(self) -> int:
        return self.hits_checked + self.docs_checked
