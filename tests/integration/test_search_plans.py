"""The search plans (governance.vector_index.plan) return exactly what the filtered search
returns, on Milvus Lite and on the session's milvus-server 2.3.5: random corpora, random scope
assignments, random readers; and the in-memory scope check fails closed."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from governance.vector_index import NEVER_EXPIRES, VectorIndex, VectorRow
from governance.vector_index import plan as plan_module
from governance.vector_index.plan import PLANS

DIM = 384
NOW = 1_000_000


def _corpus(seed: int, rows: int, scopes: int, id_base: int) -> tuple[list[VectorRow], np.ndarray]:
    """``rows`` random rows spread over ``scopes`` scopes (skewed, so some scopes hold many
    rows and some none), a tenth of them expired; and a query vector."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((rows, DIM)).astype(np.float32)
    scope_of = np.minimum(rng.geometric(min(1.0, 2.0 / scopes), rows), scopes)
    expired = rng.random(rows) < 0.1
    corpus = [
        VectorRow(
            id=id_base + i,
            vector=vectors[i].tolist(),
            document_id=f"d{i}",
            source="pdf",
            source_version=1,
            scope_id=int(scope_of[i]),
            classification="internal",
            expires_at=NOW - 1 if expired[i] else NEVER_EXPIRES,
            title="t",
            uri="u",
            text=f"text {i}",
        )
        for i in range(rows)
    ]
    return corpus, rng.standard_normal(DIM).astype(np.float32)


def _live_counts(corpus: list[VectorRow]) -> dict[int, int]:
    return dict(Counter(r.scope_id for r in corpus if r.expires_at > NOW))


def _exact(corpus: list[VectorRow], query: np.ndarray, allowed: set[int], k: int) -> list[int]:
    """The k best readable, unexpired rows by cosine similarity, computed here."""
    live = [r for r in corpus if r.scope_id in allowed and r.expires_at > NOW]
    if not live:
        return []
    mat = np.asarray([r.vector for r in live], dtype=np.float64)
    scores = mat @ query / (np.linalg.norm(mat, axis=1) * np.linalg.norm(query))
    order = sorted(range(len(live)), key=lambda i: (-scores[i], live[i].id))
    return [live[i].id for i in order[:k]]


def _lister(corpus: list[VectorRow]):
    """What the catalog answers for the listed plan: the ids of the live rows of these scopes
    (None: more than ``limit``)."""

    def list_ids(scopes: Any, limit: int) -> list[int] | None:
        wanted = set(scopes)
        ids = [r.id for r in corpus if r.scope_id in wanted and r.expires_at > NOW]
        return ids if len(ids) <= limit else None

    return list_ids


def _search(
    ix: VectorIndex, query: np.ndarray, allowed: list[int], k: int, counts: dict[int, int], plan: Any, list_ids=None
):
    return ix.search_with_plan(
        query, k=k, scope_ids=allowed, now_epoch=NOW, rows_by_scope=counts, force_plan=plan, list_ids=list_ids
    )


@pytest.fixture
def index(backend, make_index) -> VectorIndex:
    return make_index(backend)


def test_every_plan_returns_exactly_what_the_filtered_search_returns(index, monkeypatch):
    answered: Counter[str] = Counter()
    previous: list[int] = []

    @settings(max_examples=16, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(
        seed=st.integers(0, 2**32 - 1),
        rows=st.integers(1, 200),
        scopes=st.integers(1, 30),
        share=st.floats(0.0, 1.0),
        k=st.integers(1, 25),
        margin=st.sampled_from([0.2, 0.5, 2.0]),
        inline=st.sampled_from([0, 256]),
    )
    def check(seed: int, rows: int, scopes: int, share: float, k: int, margin: float, inline: int) -> None:
        nonlocal previous
        if previous:
            index.delete_ids(previous)  # each example searches its own corpus only
        corpus, query = _corpus(seed, rows, scopes, id_base=(seed % 1000) * 1000)
        previous = [r.id for r in corpus]
        index.upsert(corpus)
        rng = np.random.default_rng(seed + 1)
        allowed = [s for s in range(1, scopes + 1) if rng.random() < share] or [1]
        counts = _live_counts(corpus)
        expected = _exact(corpus, query, set(allowed), k)
        filtered, _ = _search(index, query, allowed, k, counts, "filtered")
        assert [h.id for h in filtered] == expected
        # A small margin makes the broad plan's first fetch too short: its fetch-more loop runs.
        monkeypatch.setattr(plan_module, "BROAD_MARGIN", margin)
        # 0: the broad plan reads its hits back by primary key; 256: they come with the search.
        monkeypatch.setattr(plan_module, "BROAD_INLINE_FIELDS", inline)
        for plan in PLANS:
            hits, used = _search(index, query, allowed, k, counts, plan, _lister(corpus))
            answered[f"{plan}->{used}"] += 1
            assert [h.id for h in hits] == [h.id for h in filtered], plan
            assert [h.score for h in hits] == pytest.approx([h.score for h in filtered], abs=1e-4)
            assert [h.fields for h in hits] == [h.fields for h in filtered], plan

    check()
    # The plans answered themselves, not only through their fallback to the filtered one.
    assert answered["complement->complement"] > 0, answered
    assert answered["broad->broad"] > 0, answered
    assert answered["listed->listed"] > 0, answered


def test_a_narrow_reader_gets_every_row_from_the_plan_chosen_for_the_engine(index, backend):
    corpus, query = _corpus(11, 2000, 400, id_base=0)
    index.upsert(corpus)
    index.flush()
    allowed = list(range(380, 400))  # the skewed assignment leaves these scopes 20 rows of 2,000
    expected = _exact(corpus, query, set(allowed), 10)
    assert len(expected) == 10
    hits, plan = _search(index, query, allowed, 10, _live_counts(corpus), None, _lister(corpus))
    # Milvus Lite scans every row for a filtered query: the narrow reader's rows are read by
    # primary key instead. A server's filtered search is cheaper than that read.
    assert plan == ("listed" if backend == "lite" else "filtered")
    assert [h.id for h in hits] == expected


def test_broad_plan_never_returns_a_row_whose_scope_changed_after_the_search(index, monkeypatch):
    corpus, query = _corpus(7, 60, 3, id_base=0)
    index.upsert(corpus)
    real_get = index.milvus.get

    def get_rescoped(ids, fields, **kw):  # injected fault: every row moved to scope 99 meanwhile
        return [{**row, "scope_id": 99} for row in real_get(ids, fields, **kw)]

    monkeypatch.setattr(index.milvus, "get", get_rescoped)
    monkeypatch.setattr(plan_module, "BROAD_INLINE_FIELDS", 0)  # hits read back by primary key
    hits, plan = _search(index, query, [1, 2, 3], 5, _live_counts(corpus), "broad")
    assert plan == "broad"
    assert hits == []


def test_complement_plan_falls_back_when_milvus_holds_a_scope_the_catalog_does_not_list(index):
    corpus, query = _corpus(3, 40, 4, id_base=0)
    stray = replace(corpus[0], id=10_000, scope_id=77, vector=query.tolist())
    index.upsert([*corpus, stray])
    counts = _live_counts(corpus)  # the catalog knows scopes 1-4, not 77
    hits, plan = _search(index, query, [1, 2, 3], 5, counts, "complement")
    assert plan == "filtered"
    assert 10_000 not in [h.id for h in hits]
    assert [h.id for h in hits] == _exact(corpus, query, {1, 2, 3}, 5)
