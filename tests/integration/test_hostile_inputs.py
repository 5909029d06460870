"""Every hostile input (testsupport/hostile_inputs.py) ends cleanly — quarantined with a
reason that names the file and the problem, or refused as a whole archive — while good
input in the same run is still ingested, nothing hostile becomes searchable, and names full
of filter metacharacters are indexed with exactly their intended scope.

One Stores per module (opening one costs ~2 s): the good PDF is embedded by the first case
and then seen ``unchanged`` by each later run, which still proves the run went on past the
hostile input. The 100 MB JSON, the 100k-deep HTML and other cases where size is the point
are ``slow``. tests/system/test_hostile_inputs.py runs the CLI on the worst of them in a
subprocess under RLIMIT_AS = 2 GiB; tests/unit/test_hostile_inputs.py holds the checks that
need no store.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from governance.identity import User
from ingest.parse import pdf as pdf_parse
from ingest.pipeline.run import Ingestor
from retrieval.search import Retriever
from testsupport.hostile_inputs import (
    GENERATORS,
    MARKER,
    POLICY_YAML,
    SLOW_CASES,
    TEST,
    Hostile,
    good_pdf,
    write_case,
)
from testsupport.store_settings import embedded_settings

GOOD_ID = "pdf:good.pdf"


@pytest.fixture(scope="module")
def hostile_stores(tmp_path_factory: pytest.TempPathFactory):
    from governance.stores import Stores

    d = tmp_path_factory.mktemp("hostile-stores")
    (d / "policy.yaml").write_text(POLICY_YAML)
    s = Stores.open(embedded_settings(d, policy=d / "policy.yaml", collection="hostile"))
    yield s
    s.close()


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return good_pdf(tmp_path_factory.mktemp("good"))


@pytest.fixture(autouse=True)
def _smaller_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    # Limits whose real value only makes the test slow, not different: the PDF parse deadline
    # (60 s + 2 s per page) and the page-tree depth (1000: a chain that deep is 1000 real pages).
    from ingest.sources.confluence import xml_export as confluence_xml

    monkeypatch.setattr(pdf_parse, "PARSE_SECONDS_BASE", 8.0)
    monkeypatch.setattr(pdf_parse, "PARSE_SECONDS_PER_PAGE", 0.5)
    monkeypatch.setattr(confluence_xml, "MAX_ANCESTORS", 100)


def _params() -> list:
    return [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_CASES else n for n in GENERATORS]


def _user(spec: dict) -> User:
    return User(**spec)


def _index_texts(stores) -> list[str]:
    from governance.vector_index import all_rows_filter

    return [r["text"] for r in stores.index.query(all_rows_filter(), ["text"], limit=16384)]


def _assert_nothing_hostile_searchable(stores) -> None:
    leaked = [t[:120] for t in _index_texts(stores) if MARKER in t]
    assert not leaked, f"hostile text was indexed: {leaked}"


def _case_ids(stores, embedder, case: Hostile) -> set[str]:
    return {i.document_id for i in Ingestor(stores, lambda: embedder).discover(case.path)}


def _assert_good_went_on(stores, summary) -> None:
    state = stores.catalog.documents.document_state(GOOD_ID)
    assert state is not None and state.status == "active", "the good PDF of the same run was not ingested"
    assert summary.new + summary.changed + summary.unchanged >= 1
    assert not any(q.path == "good.pdf" for q in summary.quarantine)


def _check_scope(stores, embedder, case: Hostile) -> None:
    ids = _case_ids(stores, embedder, case)
    retriever = Retriever(stores, lambda: embedder)
    words = case.phrase.lower().split()

    def about_phrase(h) -> bool:  # a hit of this input's strange document (not its good neighbours)
        return h.document_id in ids and sum(w in h.text.lower() for w in words) >= len(words) - 1

    if case.member is None:  # indexed, readable by nobody
        assert any(
            (st := stores.catalog.documents.document_state(i)) is not None and st.status == "active"
            for i in ids - {GOOD_ID}
        )
    else:
        hits = retriever.search(_user(case.member), case.phrase, k=10)
        assert any(about_phrase(h) for h in hits), (
            f"member {case.member} does not find {case.phrase!r}: {[(h.document_id, h.text[:80]) for h in hits]}"
        )
    for outsider in case.outsiders:
        leaked = [h.document_id for h in retriever.search(_user(outsider), case.phrase, k=10) if about_phrase(h)]
        assert not leaked, f"{outsider} without membership finds {leaked}"


@pytest.mark.parametrize("name", _params())
def test_hostile_input(name: str, tmp_path: Path, hostile_stores, embedder, make_ingestor, good: Path) -> None:
    case = write_case(name, tmp_path / "corpus", TEST)
    # In this process (workers=0): the shrunk limits above do not reach worker processes. A
    # worker's own time limit and crash handling: tests/integration/test_parse_workers.py.
    ingestor = make_ingestor(hostile_stores, embedder, workers=0)
    if case.outcome == "refused":
        # The whole archive is refused — quarantined as one input, nothing of it read — and
        # the good input of the same run still goes in (invariant 4).
        summary = ingestor.ingest_paths([case.path, good])
        refused = [q for q in summary.quarantine if q.path == str(case.path)]
        assert len(refused) == 1, [(q.path, q.reason) for q in summary.quarantine]
        assert case.reason in f"{refused[0].reason}: {refused[0].message}", refused[0]
        assert case.path.name in refused[0].message, refused[0]  # names the input...
        assert "(" in refused[0].message  # ...and says what to do (the hint)
        _assert_good_went_on(hostile_stores, summary)
    else:
        summary = ingestor.ingest_paths([case.path, good])
        _assert_good_went_on(hostile_stores, summary)
        if case.outcome == "quarantined":
            matching = [q for q in summary.quarantine if case.reason in f"{q.reason}: {q.message}"]
            assert matching, [(q.reason, q.message[:200]) for q in summary.quarantine]
            for q in matching:
                assert case.path.name in q.message, q.message  # names the file...
                assert q.reason and q.reason != "error", q  # ...and the problem
        else:
            assert case.outcome == "ingested-safely"
            assert summary.quarantined == 0, [(q.reason, q.message[:200]) for q in summary.quarantine]
            assert summary.new + summary.changed + summary.unchanged >= 2
            _check_scope(hostile_stores, embedder, case)
    _assert_nothing_hostile_searchable(hostile_stores)


def test_metachar_slack_scope_is_exactly_the_members(
    tmp_path: Path, hostile_stores, embedder, make_ingestor, make_retriever
) -> None:
    """The private channel full of metacharacters has one layer: its two active members."""
    case = write_case("slack_metachar_names", tmp_path / "corpus", TEST)
    make_ingestor(hostile_stores, embedder).ingest_paths([case.path])
    items = [i for i in make_ingestor(hostile_stores, embedder).discover(case.path) if ":G1:" in i.document_id]
    assert items and all(
        i.scope.layers == (frozenset({"user:alice@corp.example", 'user:x" or true@evil.example'}),) for i in items
    ), [i.scope for i in items]
    retriever = make_retriever(hostile_stores, embedder)
    weird_member = User(id="x", email='x" or true@evil.example')
    assert any(h.document_id == items[0].document_id for h in retriever.search(weird_member, case.phrase, k=10))
