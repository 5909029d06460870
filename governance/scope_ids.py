"""A caller's allowed scope ids, checked once and immutable.

A search gets the caller's allowed scope ids from :class:`governance.scope_resolver.ScopeResolver`
(cached per principal set until an ACL changes). For a reader of 100,000 scopes, checking the
ids, building a set of them and deriving the search plan's numbers from them cost ~100 ms of
Python per search on 2 loaded cores (profiled, docs/benchmarks.md) — every search, for an
answer that changes only with the ACLs. A ``ScopeIds`` is checked once when it is made, holds
its set, and is the same object for every search by that principal set, so what is derived
from it (:class:`governance.vector_index.plan.ScopeCounts` keeps that per object) is computed
once per catalog count, not once per search.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, overload

import numpy as np

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class ScopeIds(Sequence[int]):
    """Distinct int64 scope ids, in ascending order as a sequence, with O(1) membership.

    Made from any iterable of ints; bools, floats, strings and numbers outside int64 are
    refused (TypeError/ValueError), so nothing unchecked ever reaches a filter or a plan.
    Equality and hashing are by identity: what is remembered about one is about that object.
    """

    __slots__ = ("__weakref__", "_sorted", "set")

    def __init__(self, values: Iterable[Any] = ()) -> None:
        self.set: frozenset[int] = checked_int64_set(values, "scope id")
        self._sorted: tuple[int, ...] | None = None  # sorted on first use: a plan may not need it

    @classmethod
    def of(cls, values: Iterable[Any]) -> ScopeIds:
        """``values`` if already a ScopeIds (no check, no copy), else a checked one."""
        return values if isinstance(values, ScopeIds) else cls(values)

    @property
    def ids(self) -> tuple[int, ...]:
        """The ids in ascending order."""
        if self._sorted is None:
            self._sorted = tuple(sorted(self.set))
        return self._sorted

    def __len__(self) -> int:
        return len(self.set)

    def __contains__(self, value: object) -> bool:
        return value in self.set

    def __iter__(self) -> Iterator[int]:
        return iter(self.ids)

    @overload
    def __getitem__(self, index: int) -> int: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[int, ...]: ...
    def __getitem__(self, index: int | slice) -> int | tuple[int, ...]:
        return self.ids[index]

    def __repr__(self) -> str:
        shown = ", ".join(map(str, self.ids[:5]))
        return f"ScopeIds([{shown}{', ...' if len(self) > 5 else ''}], {len(self)} ids)"


def checked_int64_set(values: Iterable[Any], what: str) -> frozenset[int]:
    """The values as a set of int64s, refused as :func:`check_int64` refuses one."""
    given = list(values)
    # Types are checked before deduplication: a set would fold True and 1.0 into 1.
    if set(map(type, given)) <= {int}:  # in C: ~10x faster than a generator over 100k ids
        distinct = frozenset(given)
        if not distinct or (min(distinct) >= INT64_MIN and max(distinct) <= INT64_MAX):
            return distinct
    return frozenset(check_int64(v, what) for v in given)


def check_int64(value: Any, what: str) -> int:
    """``value`` as an int64; bools, floats, strings and out-of-range numbers are refused."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what} must be an int, got {type(value).__name__}: {value!r}")
    number = int(value)
    if not INT64_MIN <= number <= INT64_MAX:
        raise ValueError(f"{what} {number} is outside int64")
    return number


__all__ = ["INT64_MAX", "INT64_MIN", "ScopeIds", "check_int64", "checked_int64_set"]
