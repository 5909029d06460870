"""Cached scope resolution: a user's allowed scope ids, reused until any ACL changes.

Resolving principals to scope ids is one grouped SQL query whose cost grows with the scope
layers the principals appear in (tens of ms for a group in 10k scopes, see
docs/benchmarks.md). Searches by the same principal set repeat it for nothing while no
scope changes, so the answer is kept per principal set and checked against the catalog's ACL
generation — a counter bumped in the same transaction as every scope change — with one
primary-key read per search. A membership change therefore still takes effect on the very
next search, in this process and in every other.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable

from governance.catalog import Catalog

DEFAULT_MAX_ENTRIES = 4096


class ScopeResolver:
    """``allowed(principals)`` = ``catalog.scopes.allowed_scope_ids(principals)``, cached (thread-safe,
    bounded LRU; one per retriever, not process-global)."""

    def __init__(self, catalog: Catalog, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self.catalog = catalog
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._generation: int | None = None
        self._entries: OrderedDict[frozenset[str], tuple[int, ...]] = OrderedDict()
        self.hits = self.misses = 0

    def allowed(self, principals: Iterable[str]) -> list[int]:
        key = frozenset(principals)
        if not key:
            return []
        generation = self.catalog.scopes.acl_generation()  # read first: a change after it is caught next time
        with self._lock:
            if generation != self._generation:
                self._entries.clear()
                self._generation = generation
            cached = self._entries.get(key)
            if cached is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return list(cached)
            self.misses += 1
        ids = tuple(self.catalog.scopes.allowed_scope_ids(key))
        with self._lock:
            if self._generation == generation:
                self._entries[key] = ids
                self._entries.move_to_end(key)
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
        return list(ids)
