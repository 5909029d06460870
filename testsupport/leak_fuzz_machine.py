"""The leak fuzzer's state machine: random worlds and operations over time, on the real stack.

A hypothesis state machine draws a world (users with ids/e-mails/groups/roles, guests, role
grants, scopes with 1-3 layers, documents with unique phrases and expiries, hostile names)
and then a random sequence of operations, each done through the real code path:

* ingest       ``Ingestor.ingest_items`` with ``SourceItem``s (the lowest public entry of the
               real pipeline: scope resolution with the policy, clean, chunk, version,
               embed with the real MiniLM model -- each distinct text embedded once, see
               ``MemoEmbedder`` --, Milvus Lite upsert, catalog publish); also a full run
               over every document of the world;
* ACL change   a source scope's members change, pushed ``direct`` (``ScopeRepository.upsert_scope``
               with the same key), by ``sync`` (``ingest.pipeline.permission_sync``) or
               ``lazy`` (not pushed yet: the old ACL must keep ruling);
* guest flip, move a document to another scope, edit its text (its modified time, and so
  its retention, may move with it), change its expiry (all pushed by ingest, sync or
  lazily), policy edits (the PDF rule removed/changed, the narrowing rule's layers, the
  ``roles`` grants), IdP claim changes;
* time         the clock moves forward (see ``FakeClock``);
* tombstone, purge one document, purge what has expired (the selection is checked too:
  expired content left behind is a leak, unexpired or held content purged a miss), legal
  holds on and off (and a purge of the held document right after);
* search       as a random user (or a stranger, or an intruder whose claims are nothing but
               hostile strings), by ``User`` or by OIDC claims, for one document's phrase;
* Slack export real export folders (``users.json``, ``channels.json``, ``groups.json``,
               ``team_info.json``, day files) of one workspace per example, written to disk
               and applied by ``Ingestor.ingest_paths`` or ``sync_permissions(ingestor,
               [ingestor.open(path)])``, or written and left for later ("lazy"):
               - membership changes in a later export WITHOUT messages: members added or
                 removed, an account deactivated or reactivated, a guest flag flipped, while
                 the changed conversation has no day file in that export -- the new
                 membership must hold for all of its earlier documents;
               - visibility flips: a conversation moves between channels.json and groups.json
                 (with or without its messages), keeping its scope;
               - new messages (new channel-day documents) in a later export;
               - an earlier export (applied before or never) applied again after newer ones:
                 older statements change nothing (monotone time). Every export is newer than
                 the one before (users' ``updated`` moves 1000 s per export).

After every operation one search runs, and ``sweep`` searches as every user. Each search is
checked against ``testsupport.leak_model.LeakModel``: (a) every hit is a document of this world the
user may read at that moment, with its current text, once; (b) every document the user may
read is among the hits (k is at least the number of documents, so top-k must hold all of
them; the query is one document's unique phrase). Counts go to ``FuzzStats``.

The clock: ``Retriever.search`` takes no ``now``; it reads ``datetime.now`` in
``retrieval.search`` once per search and hands that time to both the Milvus filter and the
catalog post-check. The fuzzer replaces that one name with ``FakeClock`` time. Ingest keeps
real time (its "already expired, skip" check), so the fake clock starts two days ahead of
real time and every expiry the fuzzer draws relative to it is in the real future, except
``ANCIENT`` ones, which are in the real past on purpose.

Examples share one set of stores (a Milvus Lite collection costs seconds to create); every
name an example uses starts with a fresh nonce, so no principal of one example appears in
another's scopes, and a hit from an earlier example is a leak.

``tests/integration/test_leak_fuzz.py`` runs it in CI (few examples, leaks and misses raised) and
``bench/leak_fuzz.py`` for long (many examples, leaks and misses counted).
"""

# Over 400 lines: one hypothesis state machine whose rules share its state and helpers, plus
# the few functions that build its world; split, each rule would reach back into the others.

from __future__ import annotations

import itertools
import json
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

from testsupport.leak_model import (
    ANCIENT,
    CLOCK_STEPS,
    DAY,
    HOSTILE,
    SLACK_CREATED,
    SLACK_DAY0,
    SLACK_EXPORT,
    CatalogDoc,
    FuzzStats,
    LeakModel,
    ModelUser,
    SlackConv,
    SlackExportSpec,
    absolute_expiry,
    expiries,
    layer_lists,
    phrase_for,
    slack_date,
    slack_workspaces,
    with_absolute_expiries,
    worlds,
)

PUSH = ("ingest", "sync", "lazy")
_NONCES = itertools.count(1)


class FakeClock:
    """What ``retrieval.search`` sees as ``datetime``: real class, ``now()`` from ``epoch``."""

    epoch: float = time.time()

    class datetime(datetime):  # stands in for datetime.datetime
        @classmethod
        def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
            return datetime.fromtimestamp(FakeClock.epoch, tz or UTC)


class MemoEmbedder:
    """The real embedder, remembering each text's vector. The fuzzer embeds the same few
    phrases over and over (a document's text is its phrase, and so is the query); the vectors
    are what the model gives, only not recomputed. Embedding is not what is under test."""

    def __init__(self, embedder: Any) -> None:
        self._inner = embedder
        self.name, self.dim = embedder.name, embedder.dim
        self._memo: dict[str, Any] = {}

    def embed(self, texts: Any) -> Any:
        import numpy as np

        todo = [t for t in dict.fromkeys(texts) if t not in self._memo]
        if todo:
            self._memo.update(zip(todo, self._inner.embed(todo), strict=True))
        return np.stack([self._memo[t] for t in texts]) if texts else self._inner.embed([])


def open_stores(tmp: Path):
    from governance.settings import Settings
    from governance.stores import Stores

    return Stores.open(
        Settings(
            home=tmp / "home",
            database_url=f"sqlite:///{tmp / 'catalog.sqlite3'}",
            milvus_uri=str(tmp / "milvus.db"),
            collection="leak_fuzz",
        )
    )


def build_policy(model: LeakModel):
    from governance.policy import Policy

    nonce = model.world.nonce
    access: list[dict] = []
    if model.pdf_rule is not None:
        access.append(
            {"match": {"source": "pdf", "path": f"{nonce}/acl/**"}, "allow": [list(layer) for layer in model.pdf_rule]}
        )
    access.append(
        {
            "match": {"source": "confluence", "space": f"{nonce}-narrow"},
            "allow": [list(layer) for layer in model.narrow_rule],
        }
    )
    workspaces = {}
    if model.slack is not None and model.slack.workspace_rule is not None:
        workspaces[model.slack.team] = list(model.slack.workspace_rule)
    return Policy.model_validate(
        {
            "version": 1,
            "access": access,
            "workspaces": workspaces,
            "retention": [{"match": {"workspace": f"{nonce}-ttl"}, "keep_for": "1d", "from": "modified"}],
            "roles": {role: list(grants) for role, grants in model.role_grants.items()},
        }
    )


def source_item(model: LeakModel, doc_id: str):
    """The document as its source hands it to the pipeline now."""
    from governance.contracts import AccessScope
    from ingest.sources.base import Parsed, SourceItem, TextBlock

    doc, nonce = model.docs[doc_id], model.world.nonce
    facts: dict[str, Any] = {"source": doc.kind, "path": doc.rel_path}
    scope = None
    if doc.kind != "pdf":
        spec = model.scopes[doc.scope_key]  # type: ignore[index]
        scope = AccessScope(key=spec.key, layers=model.source_layers(spec))
        if spec.source == "confluence":
            facts["space"] = f"{nonce}-narrow" if spec.narrowed else f"{nonce}-space"
    expiry = model.expiry_epoch(doc.expiry)
    modified = None
    if expiry is not None:  # retention: keep_for 1d from modified
        facts["workspace"] = f"{nonce}-ttl"
        modified = datetime.fromtimestamp(expiry - DAY, UTC)
    phrase, title, fp = doc.phrase, doc.title, doc.fingerprint
    return SourceItem(
        source=doc.kind,
        path=Path(doc.rel_path),
        rel_path=doc.rel_path,
        document_id=doc.doc_id,
        fingerprint=lambda: fp,
        parse=lambda: Parsed(elements=[TextBlock(phrase)], title=title, modified_at=modified),
        facts=facts,
        scope=scope,
        uri=f"fuzz://{nonce}/{doc.rel_path}",
        title=title,
        modified_at=modified,
    )


def write_slack_export(root: Path, model: LeakModel, spec: SlackExportSpec) -> Path:
    """The export ``spec`` as Slack writes one (unpacked): its metadata files and one day file
    per document it carries."""
    ws = model.slack
    assert ws is not None
    path = root / f"{model.world.nonce}-export-{spec.serial:03d}"
    path.mkdir(parents=True)

    def dump(name: str, obj: Any) -> None:
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(json.dumps(obj, ensure_ascii=False), encoding="utf-8")

    users = []
    for a in spec.accounts:
        profile: dict[str, Any] = {"display_name": a.name, "real_name": a.name, "team": ws.team}
        if a.email:
            profile["email"] = a.email
        users.append(
            {
                "id": a.uid,
                "team_id": ws.team,
                "name": a.name,
                "deleted": a.deleted,
                "is_restricted": a.guest,
                "is_bot": False,
                "updated": spec.stamp,
                "profile": profile,
            }
        )
    dump("users.json", users)
    dump("team_info.json", {"team": {"id": ws.team, "name": f"fuzz {model.world.nonce}"}})
    rows: dict[bool, list[dict]] = {False: [], True: []}
    for c in spec.convs:
        rows[c.private].append(
            {
                "id": c.cid,
                "name": c.name,
                "created": SLACK_CREATED,
                "is_private": c.private,
                "members": list(c.members),
                "topic": {"value": "", "last_set": 0},
                "purpose": {"value": "", "last_set": 0},
            }
        )
    dump("channels.json", rows[False])
    dump("groups.json", rows[True])
    for doc_id in spec.days:
        day = ws.doc_day[doc_id]
        ts = f"{SLACK_DAY0 + day * DAY + 3600}.000100"
        conv = ws.convs[ws.doc_conv[doc_id]]
        dump(
            f"{conv.name}/{slack_date(day)}.json",
            [{"type": "message", "user": ws.doc_author[doc_id], "text": model.docs[doc_id].phrase, "ts": ts}],
        )
    return path


def machine_class(
    stores,
    embedder,
    stats: FuzzStats,
    *,
    strict: bool,
    max_docs: int = 8,
    max_users: int = 5,
    workdir: Path | None = None,
):
    """A state machine class bound to one set of stores. ``strict``: fail at the first leak or
    miss (CI; hypothesis then shrinks it); otherwise count them and go on (bench). Slack
    exports are written under ``workdir`` (a new temporary folder by default)."""
    from governance import purge
    from governance.contracts import AccessScope
    from governance.identity import User
    from ingest.pipeline.permission_sync import sync_permissions
    from ingest.pipeline.run import Ingestor
    from retrieval.search import MAX_K, Retriever

    memo = MemoEmbedder(embedder)
    ingestor = Ingestor(stores, lambda: memo)
    retriever = Retriever(stores, lambda: memo)
    catalog, index = stores.catalog, stores.index
    exports_root = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="leak-fuzz-slack-"))

    class LeakFuzz(RuleBasedStateMachine):
        model: LeakModel

        # -- world ------------------------------------------------------------------------------
        @initialize(data=st.data())
        def build(self, data: st.DataObject) -> None:
            nonce = f"f{next(_NONCES)}"
            world = data.draw(worlds(nonce, max_docs=max_docs, max_users=max_users), label="world")
            real_now = int(time.time())
            start = real_now + 2 * DAY
            self.model = LeakModel(with_absolute_expiries(world, start), now=start, real_floor=real_now)
            self.serial = len(world.docs)
            FakeClock.epoch = start
            stores.policy = build_policy(self.model)
            stats.examples += 1
            # The first full ingest of the sources; documents left out start "never ingested".
            first = data.draw(
                st.lists(st.sampled_from(sorted(self.model.docs)), unique=True, min_size=len(world.docs) // 2),
                label="first ingest",
            )
            self._push("ingest", sorted(first))
            # The Slack workspace and its first export (every day file), ingested.
            ws, docs = data.draw(slack_workspaces(world, self.serial), label="slack workspace")
            self.model.slack = ws
            self.slack_paths: dict[int, Path] = {}
            for doc in docs:
                self._add_slack_doc(doc)
            stores.policy = build_policy(self.model)
            self._slack_export([d.doc_id for d in docs], "ingest")

        # -- helpers --------------------------------------------------------------------------
        def _docs(self, data: st.DataObject, kinds: tuple[str, ...] = ("slack", "confluence", "pdf")) -> str | None:
            ids = sorted(d for d, doc in self.model.docs.items() if doc.kind in kinds)
            return data.draw(st.sampled_from(ids), label="doc") if ids else None

        def _push(self, how: str, doc_ids: list[str]) -> None:
            if how == "ingest" and doc_ids:
                ingestor.ingest_items([source_item(self.model, d) for d in doc_ids])
                self.model.on_ingest(doc_ids)
            elif how == "sync":
                sync_permissions(ingestor, [source_item(self.model, d) for d in doc_ids], actor="leak-fuzz")
                self.model.on_sync(doc_ids)

        def _add_slack_doc(self, doc) -> None:
            m = self.model
            m.docs[doc.doc_id] = doc
            m.catalog[doc.doc_id] = CatalogDoc()
            m.phrases.append(doc.phrase)
            self.serial += 1

        def _slack_export(self, days: list[str], how: str) -> SlackExportSpec:
            """A new export of the workspace as it is now, written to disk, applied by ``how``."""
            spec = self.model.slack_snapshot(days)
            self.slack_paths[spec.serial] = write_slack_export(exports_root, self.model, spec)
            stats.slack_exports += 1
            self._apply_export(spec, how)
            return spec

        def _apply_export(self, spec: SlackExportSpec, how: str) -> None:
            path = self.slack_paths[spec.serial]
            try:
                if how == "ingest":
                    ingestor.ingest_paths([path])
                elif how == "sync":
                    sync_permissions(ingestor, [ingestor.open(path)], actor="leak-fuzz")
                else:
                    return  # lazy: written, not applied (yet)
            except Exception as exc:
                if strict:
                    raise
                # Bench: count it and go on. Both entry points apply the permission state first.
                self._report("errors", f"{how} of Slack export {spec.serial} raised {type(exc).__name__}: {exc}")
                self.model.on_slack_export(spec, how, state_only=True)
                return
            self.model.on_slack_export(spec, how)

        def _slack_days(self, data: st.DataObject, exclude: str | None = None) -> list[str]:
            """Day files of a new export: none, all, or some of the documents, never those of
            the conversation ``exclude``."""
            ws = self.model.slack
            docs = sorted(d for d, c in ws.doc_conv.items() if c != exclude)  # type: ignore[union-attr]
            how = data.draw(st.sampled_from(("none", "all", "some")), label="day files")
            if how == "none" or not docs:
                return []
            if how == "all":
                return docs
            return data.draw(st.lists(st.sampled_from(docs), unique=True), label="days")

        def _report(self, kind: str, text: str) -> None:
            setattr(stats, kind, getattr(stats, kind) + 1)
            what = {"leaks": "LEAK", "misses": "MISS", "errors": "ERROR"}[kind]
            if len(stats.findings) < 50:
                stats.findings.append(f"{what}: {text}")
            if strict:
                raise AssertionError(f"{what}: {text}")

        def _search(self, user: ModelUser, query: str, k: int, as_claims: bool) -> None:
            m = self.model
            who: Any = (
                user.claims() if as_claims else User(id=user.id, email=user.email, groups=user.groups, roles=user.roles)
            )
            hits = retriever.search(who, query, k=k)
            stats.searches += 1
            seen: set[str] = set()
            for h in hits:
                stats.hits_checked += 1
                where = f"user {user.key} {user.claims()!r} at t={m.now} query {query!r} got {h.document_id!r}"
                if h.document_id not in m.docs:
                    self._report("leaks", f"{where}: not a document of this world")
                elif not m.readable(user, h.document_id):
                    self._report("leaks", f"{where}: {m.why_not(user, h.document_id)}")
                elif (
                    m.catalog[h.document_id].phrase not in h.text
                    if m.docs[h.document_id].kind == SLACK_EXPORT
                    else h.text != m.catalog[h.document_id].phrase
                ):
                    self._report(
                        "leaks", f"{where}: stale text {h.text!r}, current {m.catalog[h.document_id].phrase!r}"
                    )
                elif h.document_id in seen:
                    self._report("leaks", f"{where}: returned twice")
                seen.add(h.document_id)
            for doc_id in m.docs:
                stats.docs_checked += 1
                if doc_id not in seen and m.readable(user, doc_id):
                    self._report(
                        "misses",
                        f"user {user.key} {user.claims()!r} at t={m.now} query {query!r} "
                        f"(k={k}) did not get readable {doc_id!r} ({m.catalog[doc_id]})",
                    )

        def _users(self) -> list[ModelUser]:
            nonce = self.model.world.nonce
            stranger = ModelUser(
                key="stranger", id=f"{nonce}.stranger", email=None, groups=(f"{nonce}.nogroup",), roles=()
            )
            intruder = ModelUser(key="intruder", id=HOSTILE[0], email=None, groups=HOSTILE[:12], roles=HOSTILE[:12])
            return [*self.model.users.values(), stranger, intruder]

        def _pairs(self) -> set[tuple[str, str]]:
            m = self.model
            return {(u.key, d) for u in m.users.values() for d in m.docs if m.readable(u, d)}

        def _probe(
            self, data: st.DataObject, before: set[tuple[str, str]] | None = None, focus: list[str] | None = None
        ) -> None:
            """One search after an operation. Mostly as a user whose access to a document the
            operation changed (gained: must find it; lost: must not), searching that document's
            phrase, or else as any user for a document the operation touched; otherwise a
            random user, stranger or intruder with a random phrase."""
            m = self.model
            changed = sorted(before ^ self._pairs()) if before is not None else []
            if not changed and focus:  # readers of the touched documents, or else anyone
                changed = [(u, d) for u in sorted(m.users) for d in focus if m.readable(m.users[u], d)] or [
                    (u, d) for u in sorted(m.users) for d in focus
                ]
            k = data.draw(st.sampled_from((MAX_K, len(m.docs))), label="k")
            if changed and data.draw(st.integers(0, 3), label="focus") > 0:
                key, doc_id = data.draw(st.sampled_from(changed), label="changed access")
                user, query = m.users[key], m.catalog[doc_id].phrase or m.docs[doc_id].phrase
            else:
                user = data.draw(st.sampled_from(self._users()), label="user")
                query = data.draw(st.sampled_from(m.phrases), label="query")
            self._search(user, query, k, data.draw(st.booleans(), label="as_claims"))

        # -- operations -------------------------------------------------------------------------
        @rule(data=st.data())
        def ingest(self, data: st.DataObject) -> None:
            stats.count("ingest")
            before = self._pairs()
            ids = data.draw(st.lists(st.sampled_from(self.model.item_docs()), min_size=1, max_size=3, unique=True))
            self._push("ingest", ids)
            self._probe(data, before, ids)

        @rule(data=st.data())
        def full_ingest(self, data: st.DataObject) -> None:
            """A scheduled run over the whole source: lazy changes land, retired documents return."""
            stats.count("full_ingest")
            before = self._pairs()
            self._push("ingest", self.model.item_docs())
            self._probe(data, before)

        @rule(data=st.data())
        def change_acl(self, data: st.DataObject) -> None:
            stats.count("change_acl")
            before = self._pairs()
            m = self.model
            spec = data.draw(st.sampled_from(sorted(m.scopes.values(), key=lambda s: s.key)), label="scope")
            if spec.kind == "slack-public":
                spec.guests = frozenset(data.draw(st.lists(st.sampled_from(sorted(m.users)), max_size=2)))
            elif spec.kind == "slack-private":
                members = sorted({u.source_principal() for u in m.users.values()})
                spec.layers = (tuple(data.draw(st.lists(st.sampled_from(members), max_size=3, unique=True))),)
            else:
                spec.layers = data.draw(layer_lists(m.world.pool))
            how = data.draw(st.sampled_from(("direct", "sync", "lazy")), label="push")
            if how == "direct":
                layers = m.source_layers(spec)
                catalog.scopes.upsert_scope(AccessScope(key=spec.key, layers=layers), actor="leak-fuzz")
                m.on_direct_scope_update(spec.key, layers)
            else:
                self._push(how, [d for d in m.item_docs() if m.docs[d].scope_key == spec.key])
            self._probe(data, before)

        @rule(data=st.data())
        def flip_guest(self, data: st.DataObject) -> None:
            stats.count("flip_guest")
            before = self._pairs()
            m = self.model
            key = data.draw(st.sampled_from(sorted(m.users)), label="user")
            m.users[key] = replace(m.users[key], guest=not m.users[key].guest)
            public = {s.key for s in m.scopes.values() if s.kind == "slack-public"}
            self._push(
                data.draw(st.sampled_from(("sync", "lazy"))),
                [d for d in m.item_docs() if m.docs[d].scope_key in public],
            )
            self._probe(data, before)

        @rule(data=st.data())
        def move_document(self, data: st.DataObject) -> None:
            stats.count("move_document")
            before = self._pairs()
            m = self.model
            doc_id = self._docs(data, ("slack", "confluence"))
            if doc_id is not None:
                doc = m.docs[doc_id]
                doc.scope_key = data.draw(
                    st.sampled_from(sorted(s.key for s in m.scopes.values() if s.source == doc.kind))
                )
                self._push(data.draw(st.sampled_from(PUSH), label="push"), [doc_id])
            self._probe(data, before, [doc_id] if doc_id else None)

        @rule(data=st.data())
        def edit_document(self, data: st.DataObject) -> None:
            stats.count("edit_document")
            before = self._pairs()
            m = self.model
            doc_id = self._docs(data)
            doc = m.docs[doc_id]  # type: ignore[index]
            doc.phrase = phrase_for(data.draw, self.serial)
            doc.fingerprint = f"fp:{doc.phrase}"
            if data.draw(st.booleans(), label="modified time changes too"):  # retention moves with it
                doc.expiry = absolute_expiry(data.draw(st.sampled_from((None, ANCIENT, -1, 0, 1, DAY))), m.now)
            self.serial += 1
            m.phrases.append(doc.phrase)
            self._push(data.draw(st.sampled_from(PUSH), label="push"), [doc_id])  # type: ignore[list-item]
            self._probe(data, before, [doc_id])  # type: ignore[list-item]

        @rule(data=st.data())
        def set_expiry(self, data: st.DataObject) -> None:
            stats.count("set_expiry")
            before = self._pairs()
            m = self.model
            doc_id = self._docs(data)
            m.docs[doc_id].expiry = absolute_expiry(data.draw(expiries(), label="expiry"), m.now)  # type: ignore[index]
            self._push(data.draw(st.sampled_from(PUSH), label="push"), [doc_id])  # type: ignore[list-item]
            self._probe(data, before, [doc_id])  # type: ignore[list-item]

        @rule(data=st.data())
        def advance_clock(self, data: st.DataObject) -> None:
            stats.count("advance_clock")
            before = self._pairs()
            self.model.now += data.draw(st.sampled_from(CLOCK_STEPS), label="seconds")
            FakeClock.epoch = self.model.now
            self._probe(data, before)

        @rule(data=st.data())
        def tombstone(self, data: st.DataObject) -> None:
            stats.count("tombstone")
            before = self._pairs()
            doc_id = self._docs(data)
            purge.tombstone_documents(catalog, index, [doc_id], reason="leak fuzz", actor="leak-fuzz")  # type: ignore[list-item]
            self.model.on_tombstone(doc_id)  # type: ignore[arg-type]
            self._probe(data, before, [doc_id])  # type: ignore[list-item]

        @rule(data=st.data())
        def purge_document(self, data: st.DataObject) -> None:
            stats.count("purge_document")
            before = self._pairs()
            held = sorted(self.model.holds)
            doc_id = (
                data.draw(st.sampled_from(held), label="held doc")
                if held and data.draw(st.booleans())
                else self._docs(data)
            )
            ids = purge.select(catalog, document=doc_id)
            purge.purge_documents(catalog, index, ids, reason="leak fuzz", selector={"document": doc_id})
            self.model.on_purge([doc_id])  # type: ignore[list-item]
            self._probe(data, before, [doc_id])  # type: ignore[list-item]

        @rule(data=st.data())
        def purge_expired(self, data: st.DataObject) -> None:
            stats.count("purge_expired")
            before = self._pairs()
            m = self.model
            ids = purge.select(catalog, expired=True, now=datetime.fromtimestamp(m.now, UTC))
            expected = set(m.expired_purgeable()) - m.holds
            mine = set(ids) & set(m.docs) - m.purge_undecided()
            # Selection is checked too: expired content left behind is kept past its retention
            # (a leak); content purged that is not expired, or is held, is lost (a miss).
            if expected - mine:
                self._report("leaks", f"purge --expired at t={m.now} left expired {sorted(expected - mine)}")
            if mine - expected - m.holds:
                self._report("misses", f"purge --expired at t={m.now} selected unexpired {sorted(mine - expected)}")
            purge.purge_documents(catalog, index, ids, reason="leak fuzz: expired", selector={"expired": True})
            m.on_purge(expected | (set(ids) & m.purge_undecided()))
            self._probe(data, before, sorted(m.holds))

        @rule(data=st.data())
        def hold(self, data: st.DataObject) -> None:
            stats.count("hold")
            before = self._pairs()
            active = sorted(d for d, c in self.model.catalog.items() if c.status == "active")
            doc_id = data.draw(st.sampled_from(active), label="doc") if active else self._docs(data)
            if data.draw(st.integers(0, 3), label="on") > 0:
                catalog.holds.add_hold("document", doc_id, "leak fuzz", "leak-fuzz")  # type: ignore[arg-type]
                self.model.holds.add(doc_id)  # type: ignore[arg-type]
                if data.draw(st.booleans(), label="then try to purge it"):
                    purge.purge_documents(
                        catalog,
                        index,
                        purge.select(catalog, document=doc_id),
                        reason="leak fuzz",
                        selector={"document": doc_id},
                    )
                    self.model.on_purge([doc_id])  # type: ignore[list-item]
            else:
                catalog.holds.remove_hold("document", doc_id)  # type: ignore[arg-type]
                self.model.holds.discard(doc_id)  # type: ignore[arg-type]
            self._probe(data, before, [doc_id])  # type: ignore[list-item]

        @rule(data=st.data())
        def edit_policy(self, data: st.DataObject) -> None:
            stats.count("edit_policy")
            before = self._pairs()
            m = self.model
            pool = m.world.pool
            m.pdf_rule = data.draw(st.none() | layer_lists(pool, nonempty=True), label="pdf rule")
            m.narrow_rule = data.draw(layer_lists(pool, nonempty=True, max_layers=2), label="narrow rule")
            m.role_grants = {
                r: tuple(data.draw(st.lists(st.sampled_from(pool), max_size=2, unique=True)))
                for r in m.world.roles
                if data.draw(st.booleans())
            }
            stores.policy = build_policy(m)
            self._push(data.draw(st.sampled_from(("sync", "lazy")), label="push"), m.item_docs())
            self._probe(data, before)

        @rule(data=st.data())
        def change_claims(self, data: st.DataObject) -> None:
            stats.count("change_claims")
            before = self._pairs()
            m = self.model
            key = data.draw(st.sampled_from(sorted(m.users)), label="user")
            u = m.users[key]
            m.users[key] = replace(
                u,
                groups=tuple(data.draw(st.lists(st.sampled_from(m.world.groups), max_size=3, unique=True))),
                roles=tuple(data.draw(st.lists(st.sampled_from(m.world.roles), max_size=2, unique=True))),
                email=u.email if data.draw(st.booleans()) else None,
            )
            self._probe(data, before)

        # -- Slack exports ----------------------------------------------------------------------
        def _slack_conv(self, data: st.DataObject) -> SlackConv:
            ws = self.model.slack
            return ws.convs[data.draw(st.sampled_from(sorted(ws.convs)), label="conversation")]  # type: ignore[union-attr]

        @rule(data=st.data())
        def slack_membership_without_messages(self, data: st.DataObject) -> None:
            """A later export changes who may read a conversation -- a member added or removed,
            an account deactivated or reactivated, a guest flag flipped -- and has no day file
            of that conversation: the new membership holds for all its earlier documents."""
            stats.count("slack_membership")
            before = self._pairs()
            ws = self.model.slack
            conv = self._slack_conv(data)
            uids = sorted(ws.accounts)  # type: ignore[union-attr]
            change = data.draw(st.sampled_from(("add", "remove", "deactivate", "reactivate", "guest")), label="change")
            if change == "remove" and conv.members:
                gone = data.draw(st.sampled_from(conv.members), label="member")
                ws.convs[conv.cid] = replace(conv, members=tuple(u for u in conv.members if u != gone))  # type: ignore[union-attr]
            elif change in ("add", "remove"):
                new = data.draw(st.sampled_from(uids), label="account")
                ws.convs[conv.cid] = replace(conv, members=tuple(dict.fromkeys((*conv.members, new))))  # type: ignore[union-attr]
            else:
                uid = data.draw(st.sampled_from(uids), label="account")
                a = ws.accounts[uid]  # type: ignore[union-attr]
                ws.accounts[uid] = (
                    replace(a, deleted=change == "deactivate")
                    if change != "guest"  # type: ignore[union-attr]
                    else replace(a, guest=not a.guest)
                )
            self._slack_export(
                self._slack_days(data, exclude=conv.cid),
                data.draw(st.sampled_from(("ingest", "sync", "lazy")), label="apply"),
            )
            self._probe(data, before, ws.docs_of(conv.cid) or None)  # type: ignore[union-attr]

        @rule(data=st.data())
        def slack_flip_visibility(self, data: st.DataObject) -> None:
            """A conversation moves between channels.json and groups.json in a later export,
            with its messages or without: same scope key, the new access for all its documents."""
            stats.count("slack_flip")
            before = self._pairs()
            ws = self.model.slack
            conv = self._slack_conv(data)
            ws.convs[conv.cid] = replace(conv, private=not conv.private)  # type: ignore[union-attr]
            days = self._slack_days(data, exclude=conv.cid)
            if data.draw(st.booleans(), label="with its messages"):
                days += ws.docs_of(conv.cid)  # type: ignore[union-attr]
            self._slack_export(days, data.draw(st.sampled_from(("ingest", "sync", "lazy")), label="apply"))
            self._probe(data, before, ws.docs_of(conv.cid) or None)  # type: ignore[union-attr]

        @rule(data=st.data())
        def slack_new_messages(self, data: st.DataObject) -> None:
            """New channel-days in a later export (with some, all or none of the older ones)."""
            stats.count("slack_messages")
            before = self._pairs()
            ws = self.model.slack
            new = []
            for _ in range(data.draw(st.integers(0, 2), label="new days")):
                cid = self._slack_conv(data).cid
                doc = ws.new_doc(
                    cid,
                    phrase_for(data.draw, self.serial),  # type: ignore[union-attr]
                    data.draw(st.sampled_from(sorted(ws.accounts)), label="author"),
                )  # type: ignore[union-attr]
                self._add_slack_doc(doc)
                new.append(doc.doc_id)
            self._slack_export(
                self._slack_days(data) + new, data.draw(st.sampled_from(("ingest", "ingest", "sync")), label="apply")
            )
            self._probe(data, before, new or None)

        @rule(data=st.data())
        def slack_reapply_export(self, data: st.DataObject) -> None:
            """An earlier export (applied before, or written and never applied) applied after
            newer ones: what a newer export stated stays; only what no newer export spoke for
            (a document it never carried) may come from it."""
            stats.count("slack_reapply")
            before = self._pairs()
            m, ws = self.model, self.model.slack
            spec = data.draw(st.sampled_from(ws.exports), label="export")  # type: ignore[union-attr]
            rows_before = {r: (m.rows[r], m.denies.get(r)) for r in m.row_stamps}
            self._apply_export(spec, data.draw(st.sampled_from(("ingest", "sync")), label="apply"))
            if spec.serial < max(m.row_stamps.values(), default=0):
                stats.slack_stale_applied += 1
            assert all(m.rows[r] == v[0] for r, v in rows_before.items() if m.row_stamps[r] > spec.serial), (
                "model: an older export changed a newer statement"
            )
            self._probe(data, before, list(spec.days) or None)

        @rule(data=st.data())
        def search(self, data: st.DataObject) -> None:
            stats.count("search")
            self._probe(data)

        @rule(data=st.data())
        def sweep(self, data: st.DataObject) -> None:
            stats.count("sweep")
            for user in self._users():
                query = data.draw(st.sampled_from(self.model.phrases), label="query")
                self._search(user, query, MAX_K, as_claims=False)

    return LeakFuzz
