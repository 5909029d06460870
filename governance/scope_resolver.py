"""Cached scope resolution: a user's allowed scope ids, reused until any ACL changes.

Resolving principals to scope ids is one grouped SQL query whose cost grows with the scope
layers the principals appear in (tens of ms for a group in 10k scopes, see
docs/benchmarks.md). Searches by the same principal set repeat it for nothing while no
scope changes, so the answer is kept per principal set and checked against the catalog's ACL
generation — a counter bumped in the same transaction as every scope change — with one
primary-key read per search. A membership change therefore still takes effect on the very
next search, in this process and in every other.

The answer is kept as a :class:`~governance.scope_ids.ScopeIds`, checked once, and the same
object is handed to every search by that principal set: what a search derives from a
caller's scopes (their share of the chunks, the list a plan sends) is then worked out once
per principal set, not on every search (:mod:`governance.vector_index.plan`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable

from governance.catalog import Catalog
from governance.scope_ids import ScopeIds

DEFAULT_MAX_ENTRIES = 4096


class ScopeResolver:
    """``allowed(principals)`` = ``catalog.scopes.allowed_scope_ids(principals)``, cached (thread-safe,
    bounded LRU; one per retriever, not process-global); :meth:`allowed_ids` is the cached
    object itself."""

    def __init__(self, catalog: Catalog, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self.catalog = catalog
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._generation: int | None = None
        self._entries: OrderedDict[frozenset[str], ScopeIds] = OrderedDict()
        self.hits = self.misses = 0

    def allowed(self, principals: Iterable[str]) -> list[int]:
        """The scope ids these principals may read, ascending (a new list each call)."""
        return list(self.allowed_ids(principals))

    def allowed_ids(self, principals: Iterable[str]) -> ScopeIds:
        """The scope ids these principals may read: the cached, immutable object, the same
        one for every call until an ACL changes (or the entry is evicted)."""
        key = frozenset(principals)
        if not key:
            return ScopeIds()
        generation = self.catalog.scopes.acl_generation()  # read first: a change after it is caught next time
        with self._lock:
            if generation != self._generation:
                self._entries.clear()
                self._generation = generation
            cached = self._entries.get(key)
            if cached is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return cached
            self.misses += 1
        ids = ScopeIds(self.catalog.scopes.allowed_scope_ids(key))
        with self._lock:
            if self._generation == generation:
                self._entries[key] = ids
                self._entries.move_to_end(key)
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
        return ids
