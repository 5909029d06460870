"""Access scopes in the catalog: storing them by key, rebuilding them, and resolving which
scopes a caller's principals may read.

Principals are only ever bound as parameters; nothing from a user reaches SQL text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from sqlalchemy import case, delete, exists, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from governance.catalog.engine import PARAM_BATCH, Database, retry_read
from governance.catalog.freshness import is_older
from governance.catalog.models import AclGeneration, DenyList, DenyListPrincipal, Scope, ScopePrincipal, utcnow
from governance.contracts import AccessScope
from governance.errors import CatalogError

__all__ = ["DENY_LAYER", "PRINCIPALS_PER_QUERY", "ScopeRepository", "load_scopes"]

# Principals bound into one scope-resolution statement (SQLite >= 3.32 allows 32,766
# parameters, PostgreSQL 65,535); a user with more is resolved in parts.
PRINCIPALS_PER_QUERY = 20_000

DENY_LAYER = -1  # scope_principals.layer of a scope's deny list


def _scope_from_rows(
    key: str,
    rows: Iterable[tuple[int, str]],
    description: str = "",
    n_layers: int | None = None,
    shared_deny: Iterable[str] = (),
) -> AccessScope:
    """An AccessScope from its scope_principals rows (layer, principal) and the principals of
    the shared deny list it carries."""
    layers: dict[int, set[str]] = {i: set() for i in range(n_layers or 0)}
    deny: set[str] = set(shared_deny)
    for layer, p in rows:
        (deny if layer == DENY_LAYER else layers.setdefault(layer, set())).add(p)
    return AccessScope(
        key=key, layers=[layers[k] for k in sorted(layers)] or [[]], deny=deny, description=description or ""
    )


def load_scopes(s: Session, scope_rows: Sequence[Scope]) -> dict[int, AccessScope]:
    """These scope rows rebuilt as AccessScopes (layers, own deny rows, shared deny list),
    by scope id, in the caller's transaction."""
    out: dict[int, AccessScope] = {}
    for i in range(0, len(scope_rows), PARAM_BATCH):
        part = scope_rows[i : i + PARAM_BATCH]
        members: dict[int, list[tuple[int, str]]] = {}
        for sid, layer, p in s.execute(
            select(ScopePrincipal.scope_id, ScopePrincipal.layer, ScopePrincipal.principal).where(
                ScopePrincipal.scope_id.in_([r.id for r in part])
            )
        ):
            members.setdefault(sid, []).append((layer, p))
        lists = _deny_list_members(s, {r.deny_list_id for r in part if r.deny_list_id is not None})
        for r in part:
            shared = lists.get(r.deny_list_id, ()) if r.deny_list_id is not None else ()
            out[r.id] = _scope_from_rows(r.key, members.get(r.id, []), r.description, r.n_layers, shared)
    return out


def _deny_list_members(s: Session, list_ids: Iterable[int]) -> dict[int, list[str]]:
    ids = sorted(list_ids)
    out: dict[int, list[str]] = {}
    for i in range(0, len(ids), PARAM_BATCH):
        for lid, p in s.execute(
            select(DenyListPrincipal.list_id, DenyListPrincipal.principal).where(
                DenyListPrincipal.list_id.in_(ids[i : i + PARAM_BATCH])
            )
        ):
            out.setdefault(lid, []).append(p)
    return out


def _deny_digest(deny: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(sorted(deny)).encode()).hexdigest()


def _shared_deny_list(s: Session, deny: frozenset[str]) -> int | None:
    """The id of the deny list holding exactly ``deny``, stored now if no scope carries it
    yet (None for an empty one). A workspace's deactivated accounts are stored once, not once
    per conversation."""
    if not deny:
        return None
    digest = _deny_digest(deny)
    found = s.scalar(select(DenyList.id).where(DenyList.digest == digest))
    if found is not None:
        return int(found)
    row = DenyList(digest=digest)
    s.add(row)
    s.flush()
    s.execute(insert(DenyListPrincipal), [{"list_id": row.id, "principal": p} for p in sorted(deny)])
    return row.id


def _denying_lists(s: Session, principals: Sequence[str], list_ids: Iterable[int]) -> set[int]:
    """Of these shared deny lists (those the scopes just read carry), the ones that deny a
    caller holding ``principals``: those any of the principals is on and, failing closed, those
    no longer stored. Read after the scopes, not before: a list's principals never change
    once written (a changed deny set is a new list), and a list is only dropped when no scope
    carries it, so a list still stored says what it said when the scope was read, and a
    scope that moved to another list in between is denied for this one search, never let
    through on a list read before the move."""
    ids = sorted(list_ids)
    denied: set[int] = set()
    for i in range(0, len(ids), PARAM_BATCH):
        part = ids[i : i + PARAM_BATCH]
        for j in range(0, len(principals), PRINCIPALS_PER_QUERY):
            on_it = exists().where(
                DenyListPrincipal.list_id == DenyList.id,
                DenyListPrincipal.principal.in_(principals[j : j + PRINCIPALS_PER_QUERY]),
            )
            rows = s.execute(select(DenyList.id, on_it).where(DenyList.id.in_(part))).all()
            denied.update(set(part) - {lid for lid, _ in rows})  # dropped meanwhile: fail closed
            denied.update(lid for lid, hit in rows if hit)
    return denied


def _drop_if_unused(s: Session, list_id: int | None) -> None:
    """Delete a deny list no scope carries any more (its principals go with it)."""
    if list_id is None:
        return
    s.execute(delete(DenyList).where(DenyList.id == list_id, ~exists().where(Scope.deny_list_id == list_id)))


class ScopeRepository:
    """The ``scopes`` and ``scope_principals`` tables and the ACL generation counter."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def upsert_scope(
        self, scope: AccessScope, *, actor: str | None = None, as_of: str | None = None
    ) -> tuple[int, bool]:
        """Store a scope by key; returns (scope id, whether it is new or its layers changed).
        A change to an existing scope is an ACL change and lands in the audit log.

        ``as_of`` is how new the source's statement is (``ingest.sources.base.as_of_stamp``):
        a statement older than the one the scope row already holds changes nothing, so an
        older export never overrides a newer one, whatever order they are applied in."""
        fp = scope.fingerprint()
        scope_id, changed, existed = self._upsert_scope(scope, fp, as_of)
        if changed and existed:
            from governance import audit  # audit builds on this module

            audit.record(
                self._db,
                "acl_change",
                actor,
                {
                    "scope_id": scope_id,
                    "scope": scope.key,
                    "fingerprint": fp,
                    "layers": [len(layer) for layer in scope.layers],
                    "deny": len(scope.deny),
                    "as_of": as_of,
                },
            )
        return scope_id, changed

    def _upsert_scope(self, scope: AccessScope, fp: str, as_of: str | None) -> tuple[int, bool, bool]:
        for attempt in range(2):
            try:
                with self._db.session() as s:
                    row = s.scalar(select(Scope).where(Scope.key == scope.key))
                    if row is not None and is_older(as_of, row.source_as_of):
                        return row.id, False, True  # a newer export already spoke for this scope
                    if row is not None and row.fingerprint == fp:
                        if as_of is not None and row.source_as_of != as_of:
                            row.source_as_of = as_of
                        return row.id, False, True
                    existed = row is not None
                    deny_list_id = _shared_deny_list(s, scope.deny)
                    if row is None:
                        row = Scope(
                            key=scope.key,
                            fingerprint=fp,
                            n_layers=len(scope.layers),
                            description=scope.description,
                            source_as_of=as_of,
                            deny_list_id=deny_list_id,
                        )
                        s.add(row)
                        s.flush()
                    else:
                        # Its own deny rows (written before deny lists were shared) go too.
                        s.query(ScopePrincipal).filter(ScopePrincipal.scope_id == row.id).delete()
                        row.fingerprint, row.n_layers, row.updated_at = fp, len(scope.layers), utcnow()
                        row.description = scope.description
                        previous, row.deny_list_id = row.deny_list_id, deny_list_id
                        if as_of is not None:
                            row.source_as_of = as_of
                        s.flush()
                        if previous != deny_list_id:
                            _drop_if_unused(s, previous)
                    # Core executemany, not ORM objects: a workspace-wide layer can hold tens of
                    # thousands of principals (~10x faster on SQLite).
                    members = [
                        {"scope_id": row.id, "layer": i, "principal": p}
                        for i, layer in enumerate(scope.layers)
                        for p in sorted(layer)
                    ]
                    if members:
                        s.execute(insert(ScopePrincipal), members)
                    s.execute(
                        update(AclGeneration)
                        .where(AclGeneration.id == 1)
                        .values(generation=AclGeneration.generation + 1)
                    )
                    return row.id, True, existed
            except CatalogError as exc:
                # Two processes inserting the same new scope: the loser reads the winner's row.
                if attempt == 0 and isinstance(exc.__cause__, IntegrityError):
                    continue
                raise
        raise AssertionError("unreachable")

    def scopes_with_prefix(self, prefix: str) -> list[tuple[AccessScope, str | None]]:
        """Every stored scope whose key starts with ``prefix`` (``%`` and ``_`` in it are
        literal), rebuilt with its layers and deny list, and the ``source_as_of`` of the
        export that last stated it: the rows an export's permission state re-bases."""
        stamps = self.scope_stamps(prefix)
        return [(scope, stamps[scope.key][1]) for scope in self.scopes_by_keys(sorted(stamps))]

    @retry_read
    def scopes_by_keys(self, keys: Sequence[str]) -> list[AccessScope]:
        """The stored scopes with these keys, with their layers and deny lists."""
        keys = list(keys)
        out: list[AccessScope] = []
        with self._db.session() as s:
            for i in range(0, len(keys), PARAM_BATCH):
                rows = list(s.scalars(select(Scope).where(Scope.key.in_(keys[i : i + PARAM_BATCH]))))
                out += load_scopes(s, rows).values()
        return out

    @retry_read
    def scope_by_id(self, scope_id: int) -> AccessScope | None:
        """A stored scope with its layers and deny list."""
        with self._db.session() as s:
            row = s.get(Scope, scope_id)
            return None if row is None else load_scopes(s, [row])[row.id]

    @retry_read
    def scope_as_of(self, key: str) -> str | None:
        """The ``source_as_of`` of the scope row ``key`` (None: no row, or no time)."""
        with self._db.session() as s:
            return s.scalar(select(Scope.source_as_of).where(Scope.key == key))

    @retry_read
    def scope_stamps(self, prefix: str) -> dict[str, tuple[str, str | None]]:
        """``{key: (fingerprint, source_as_of)}`` of the stored scopes under ``prefix``: enough
        to tell which stated scopes changed without reading their members."""
        with self._db.session() as s:
            return {
                k: (fp, as_of)
                for k, fp, as_of in s.execute(
                    select(Scope.key, Scope.fingerprint, Scope.source_as_of).where(
                        Scope.key.startswith(prefix, autoescape=True)
                    )
                )
            }

    def stamp_scopes(self, keys: Sequence[str], as_of: str | None) -> None:
        """Record that an export stamped ``as_of`` stated these scopes unchanged (so an older
        export applied later cannot override them)."""
        if as_of is None:
            return
        keys = list(keys)
        with self._db.session() as s:
            for i in range(0, len(keys), PARAM_BATCH):
                s.execute(
                    update(Scope)
                    .where(
                        Scope.key.in_(keys[i : i + PARAM_BATCH]),
                        or_(Scope.source_as_of.is_(None), Scope.source_as_of < as_of),
                    )
                    .values(source_as_of=as_of)
                )

    @retry_read
    def acl_generation(self) -> int:
        """Bumped in the transaction of every scope change (see :class:`ScopeResolver`)."""
        with self._db.session() as s:
            return int(s.scalar(select(AclGeneration.generation).where(AclGeneration.id == 1)) or 0)

    @retry_read
    def allowed_scope_ids(self, principals: Iterable[str], among: Iterable[int] | None = None) -> list[int]:
        """Scopes in which the principals match at least one member of every layer.

        One query: the database counts, per scope, the distinct layers the principals hit and
        keeps the scopes where that equals ``n_layers``. (Grouping in Python instead cost
        ~0.5 s for a user in a group that sits in a layer of 10k scopes.)"""
        principals = sorted(set(principals))
        only = None if among is None else sorted({int(x) for x in among})
        if not principals or only == []:
            return []
        if len(principals) > PRINCIPALS_PER_QUERY or (only is not None and len(only) > PARAM_BATCH):
            got = self._allowed_scope_ids_in_parts(principals)
            return got if only is None else sorted(set(got) & set(only))
        # Layers hit (the deny "layer" -1 does not count) must equal n_layers, no principal of
        # the caller may sit in the scope's own deny rows, nor in the shared deny list it carries.
        hit_layers = func.count(case((ScopePrincipal.layer >= 0, ScopePrincipal.layer)).distinct())
        denied = func.sum(case((ScopePrincipal.layer == DENY_LAYER, 1), else_=0))
        q = (
            select(ScopePrincipal.scope_id, Scope.deny_list_id)
            .join(Scope, Scope.id == ScopePrincipal.scope_id)
            .where(ScopePrincipal.principal.in_(principals), Scope.n_layers > 0)  # no layers = nobody's
            .group_by(ScopePrincipal.scope_id, Scope.n_layers, Scope.deny_list_id)
            .having(hit_layers == Scope.n_layers, denied == 0)
        )
        if only is not None:  # the post-check: just these scopes, straight from the tables
            q = q.where(ScopePrincipal.scope_id.in_(only))
        with self._db.session() as s:
            rows = s.execute(q).all()
            denied_lists = _denying_lists(s, principals, {dl for _, dl in rows if dl is not None})
            return sorted(int(sid) for sid, dl in rows if dl is None or dl not in denied_lists)

    def _allowed_scope_ids_in_parts(self, principals: list[str]) -> list[int]:
        """The same answer for principal sets too big for one statement's parameters: the
        layers hit are collected part by part and compared in Python."""
        matched: dict[int, set[int]] = {}
        with self._db.session() as s:
            for i in range(0, len(principals), PARAM_BATCH):
                for scope_id, layer in s.execute(
                    select(ScopePrincipal.scope_id, ScopePrincipal.layer)
                    .where(ScopePrincipal.principal.in_(principals[i : i + PARAM_BATCH]))
                    .distinct()
                ):
                    matched.setdefault(scope_id, set()).add(layer)
            facts: dict[int, tuple[int, int | None]] = {}
            ids = sorted(matched)
            for i in range(0, len(ids), PARAM_BATCH):
                facts.update(
                    (sid, (n, dl))
                    for sid, n, dl in s.execute(
                        select(Scope.id, Scope.n_layers, Scope.deny_list_id).where(
                            Scope.id.in_(ids[i : i + PARAM_BATCH])
                        )
                    )
                )
            denied_lists = _denying_lists(s, principals, {dl for _, dl in facts.values() if dl is not None})
        allowed = []
        for sid, layers in matched.items():
            n_layers, deny_list = facts.get(sid, (0, None))
            if DENY_LAYER not in layers and 0 < n_layers == len(layers) and deny_list not in denied_lists:
                allowed.append(sid)
        return sorted(allowed)

    @retry_read
    def live_scope_ids(self) -> set[int]:
        """Ids of the scopes that exist and have at least one layer (a vector on any other
        scope id is unscoped)."""
        with self._db.session() as s:
            return set(s.scalars(select(Scope.id).where(Scope.n_layers > 0)))

    def scope_count(self) -> int:
        """How many scopes are stored (the search service's readiness probe)."""
        with self._db.session() as s:
            return int(s.scalar(select(func.count()).select_from(Scope)) or 0)
