"""Access scopes in the catalog: storing them by key, rebuilding them, and resolving which
scopes a caller's principals may read.

Principals are only ever bound as parameters; nothing from a user reaches SQL text.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import case, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from governance.catalog.engine import PARAM_BATCH, Database, retry_read
from governance.catalog.freshness import is_older
from governance.catalog.models import AclGeneration, Scope, ScopePrincipal, utcnow
from governance.contracts import AccessScope
from governance.errors import CatalogError

__all__ = ["DENY_LAYER", "PRINCIPALS_PER_QUERY", "ScopeRepository", "scope_from_rows"]

# Principals bound into one scope-resolution statement (SQLite >= 3.32 allows 32,766
# parameters, PostgreSQL 65,535); a user with more is resolved in parts.
PRINCIPALS_PER_QUERY = 20_000

DENY_LAYER = -1  # scope_principals.layer of a scope's deny list


def scope_from_rows(
    key: str, rows: Iterable[tuple[int, str]], description: str = "", n_layers: int | None = None
) -> AccessScope:
    """An AccessScope from its scope_principals rows (layer, principal)."""
    layers: dict[int, set[str]] = {i: set() for i in range(n_layers or 0)}
    deny: set[str] = set()
    for layer, p in rows:
        (deny if layer == DENY_LAYER else layers.setdefault(layer, set())).add(p)
    return AccessScope(
        key=key, layers=[layers[k] for k in sorted(layers)] or [[]], deny=deny, description=description or ""
    )


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
                    if row is None:
                        row = Scope(
                            key=scope.key,
                            fingerprint=fp,
                            n_layers=len(scope.layers),
                            description=scope.description,
                            source_as_of=as_of,
                        )
                        s.add(row)
                        s.flush()
                    else:
                        s.query(ScopePrincipal).filter(ScopePrincipal.scope_id == row.id).delete()
                        row.fingerprint, row.n_layers, row.updated_at = fp, len(scope.layers), utcnow()
                        row.description = scope.description
                        if as_of is not None:
                            row.source_as_of = as_of
                    # Core executemany, not ORM objects: a workspace-wide layer can hold tens of
                    # thousands of principals (~10x faster on SQLite).
                    members = [
                        {"scope_id": row.id, "layer": i, "principal": p}
                        for i, layer in enumerate(scope.layers)
                        for p in sorted(layer)
                    ]
                    members += [{"scope_id": row.id, "layer": DENY_LAYER, "principal": p} for p in sorted(scope.deny)]
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
                part = keys[i : i + PARAM_BATCH]
                rows = s.execute(
                    select(Scope.id, Scope.key, Scope.description, Scope.n_layers).where(Scope.key.in_(part))
                ).all()
                members: dict[int, list[tuple[int, str]]] = {}
                for sid, layer, p in s.execute(
                    select(ScopePrincipal.scope_id, ScopePrincipal.layer, ScopePrincipal.principal).where(
                        ScopePrincipal.scope_id.in_([r[0] for r in rows])
                    )
                ):
                    members.setdefault(sid, []).append((layer, p))
                out += [scope_from_rows(key, members.get(sid, []), desc, n) for sid, key, desc, n in rows]
        return out

    @retry_read
    def scope_by_id(self, scope_id: int) -> AccessScope | None:
        """A stored scope with its layers and deny list."""
        with self._db.session() as s:
            row = s.get(Scope, scope_id)
            if row is None:
                return None
            members = s.execute(
                select(ScopePrincipal.layer, ScopePrincipal.principal).where(ScopePrincipal.scope_id == scope_id)
            ).all()
            return scope_from_rows(row.key, members, row.description, row.n_layers)

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
        # Layers hit (the deny "layer" -1 does not count) must equal n_layers, and no
        # principal of the caller may sit in the deny list.
        hit_layers = func.count(case((ScopePrincipal.layer >= 0, ScopePrincipal.layer)).distinct())
        denied = func.sum(case((ScopePrincipal.layer == DENY_LAYER, 1), else_=0))
        q = (
            select(ScopePrincipal.scope_id)
            .join(Scope, Scope.id == ScopePrincipal.scope_id)
            .where(ScopePrincipal.principal.in_(principals), Scope.n_layers > 0)  # no layers = nobody's
            .group_by(ScopePrincipal.scope_id, Scope.n_layers)
            .having(hit_layers == Scope.n_layers, denied == 0)
        )
        if only is not None:  # the post-check: just these scopes, straight from the tables
            q = q.where(ScopePrincipal.scope_id.in_(only))
        with self._db.session() as s:
            return sorted(int(sid) for sid in s.scalars(q))

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
            n_layers: dict[int, int] = {}
            ids = sorted(matched)
            for i in range(0, len(ids), PARAM_BATCH):
                n_layers.update(
                    s.execute(select(Scope.id, Scope.n_layers).where(Scope.id.in_(ids[i : i + PARAM_BATCH]))).all()
                )
        return sorted(
            sid
            for sid, layers in matched.items()
            if DENY_LAYER not in layers and n_layers.get(sid, 0) > 0 and len(layers) == n_layers[sid]
        )

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
