"""A caller's allowed scope ids (governance.scope_ids.ScopeIds): checked once when made,
distinct and ascending, and taken as they are by the filter builders."""

from __future__ import annotations

import numpy as np
import pytest

from governance.scope_ids import ScopeIds
from governance.vector_index.filters import MAX_FILTER_IDS, checked_id_set, checked_ints


def test_scope_ids_are_distinct_and_ascending():
    ids = ScopeIds([5, 1, 5, 3])
    assert list(ids) == [1, 3, 5]
    assert len(ids) == 3
    assert ids[0] == 1 and ids[-1] == 5


def test_scope_ids_answer_membership():
    ids = ScopeIds(range(0, 100, 2))
    assert 4 in ids
    assert 5 not in ids


@pytest.mark.parametrize("bad", [True, "1", 1.0, 2**63, -(2**63) - 1, None])
def test_scope_ids_refuse_what_is_not_an_int64(bad):
    with pytest.raises((TypeError, ValueError)):
        ScopeIds([1, bad])


def test_scope_ids_take_numpy_integers_as_ints():
    assert list(ScopeIds(np.array([3, 1], dtype=np.int64))) == [1, 3]


def test_a_scope_ids_is_taken_as_it_is():
    ids = ScopeIds([2, 1])
    assert ScopeIds.of(ids) is ids
    assert checked_id_set(ids, "scope id") is ids.set
    assert checked_ints(ids, "scope id") == [1, 2]


def test_a_scope_ids_longer_than_a_filter_takes_is_refused_by_the_filter_builders():
    ids = ScopeIds(range(MAX_FILTER_IDS + 1))
    with pytest.raises(ValueError, match="limit"):
        checked_ints(ids, "scope id")
    with pytest.raises(ValueError, match="limit"):
        checked_id_set(ids, "scope id")


def test_scope_ids_compare_by_identity():
    assert ScopeIds([1]) != ScopeIds([1])
    assert len({ScopeIds([1]), ScopeIds([1])}) == 2
