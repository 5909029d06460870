"""Load: searcher threads, processes and HTTP clients against the shared milvus-lite
server while an ingest, an ACL revocation and two purges run — no errors, no leaks.

The harness is ``bench/load.py``; here it runs bounded (20 s of load, 3 threads, 2 processes,
1 HTTP client, 2 copies of the sample corpus). The leak oracle itself is checked first on
hand-made records, so a harness that could never see a leak does not pass silently.
"""

from __future__ import annotations

import pytest

from bench import load

pytestmark = pytest.mark.slow

T = 1000.0  # a fake epoch for the oracle tests


def _truth() -> load.Truth:
    truth = load.Truth(["pdf:finance/a.pdf", "pdf:handbook/h.pdf", "pdf:engineering/e.pdf", "pdf:unfiled/u.pdf"])
    truth.add(
        load.Change(
            kind="ingest", name="ingest", begin=T + 10, commit=T + 12, docs={"pdf:engineering/new.pdf": "engineering"}
        )
    )
    truth.add(
        load.Change(
            kind="acl", name="revoke", begin=T + 20, commit=T + 21, folder="handbook", readers=load.REVOKED_READERS
        )
    )
    truth.add(
        load.Change(
            kind="purge", name="purge", begin=T + 30, commit=T + 31, docs={"pdf:engineering/e.pdf": "engineering"}
        )
    )
    return truth


def _rec(
    user: str, t0: float, t1: float, docs: list[str], ch: str = "thread", err: str | None = None, w: int = 0
) -> dict:
    return {
        "ch": ch,
        "w": w,
        "user": user,
        "q": 0,
        "t0": t0,
        "t1": t1,
        "ms": (t1 - t0) * 1000,
        "docs": docs,
        "err": err,
    }


def test_the_oracle_holds_searches_that_start_after_a_commit_to_the_new_truth():
    truth = _truth()
    cases = [
        # (user, t0, t1, docs, leaked?)
        ("bob", T + 1, T + 2, ["pdf:engineering/e.pdf", "pdf:handbook/h.pdf"], False),
        ("bob", T + 1, T + 2, ["pdf:finance/a.pdf"], True),  # never his
        ("eve", T + 1, T + 2, ["pdf:handbook/h.pdf"], True),  # a nobody
        ("alice", T + 1, T + 2, ["pdf:unfiled/u.pdf"], True),  # quarantined
        ("bob", T + 5, T + 9, ["pdf:engineering/new.pdf"], True),  # ingest not begun yet
        ("bob", T + 9, T + 11, ["pdf:engineering/new.pdf"], False),  # overlaps the ingest
        ("alice", T + 13, T + 14, ["pdf:engineering/new.pdf"], True),  # new, but not hers
        ("bob", T + 20.5, T + 22, ["pdf:handbook/h.pdf"], False),  # overlaps the revocation
        ("bob", T + 21.5, T + 22, ["pdf:handbook/h.pdf"], True),  # started after it returned
        ("carol", T + 25, T + 26, ["pdf:handbook/h.pdf"], False),  # staff keeps the handbook
        ("bob", T + 30.5, T + 32, ["pdf:engineering/e.pdf"], False),  # overlaps the purge
        ("bob", T + 31.5, T + 32, ["pdf:engineering/e.pdf"], True),  # purged before it started
    ]
    records = [_rec(u, t0, t1, docs, w=i) for i, (u, t0, t1, docs, _) in enumerate(cases)]
    result = load.summarize(
        records + [_rec("bob", T, T + 1, [], ch="http", err="RuntimeError: HTTP 503")], truth, T, T + 40
    )
    leaked = {s["w"] for s in result["leak_samples"]}
    assert [i in leaked for i in range(len(cases))] == [c[-1] for c in cases]
    assert result["channels"]["thread"]["leaks"] == sum(c[-1] for c in cases)
    assert result["channels"]["http"]["errors"] == 1 and result["total"]["errors"] == 1
    reasons = {s["w"]: next(iter(s["leaked"].values())) for s in result["leak_samples"]}
    assert reasons[1] == reasons[2] == reasons[6] == "outside the user's scopes"
    assert reasons[3].startswith("no access rule") and reasons[4].startswith("not yet ingested")
    assert reasons[8].startswith("revoked") and reasons[11].startswith("purged")


def test_the_oracle_allows_the_state_between_two_changes_a_search_overlaps():
    """An ingest that runs past the revocation's slot: the revocation starts as it returns. A
    search that began before the ingest returned and ended after the revocation began may have
    read the catalog between the two, when bob could read the new handbook document; one that
    began after the revocation returned may not, and no state ever let bob read finance."""
    truth = load.Truth(["pdf:handbook/h.pdf"])
    truth.add(
        load.Change(
            kind="ingest", name="ingest", begin=T + 10, commit=T + 12, docs={"pdf:handbook/new.pdf": "handbook"}
        )
    )
    truth.add(
        load.Change(
            kind="acl", name="revoke", begin=T + 12, commit=T + 12.1, folder="handbook", readers=load.REVOKED_READERS
        )
    )
    cases = [
        # (t0, t1, docs, leaked?)
        (T + 11, T + 12.05, ["pdf:handbook/new.pdf", "pdf:handbook/h.pdf"], False),  # between the two
        (T + 11, T + 13, ["pdf:handbook/new.pdf"], False),  # overlapped both: the state between them too
        (T + 11, T + 13, ["pdf:finance/a.pdf"], True),  # readable in no state
        (T + 12.2, T + 13, ["pdf:handbook/new.pdf"], True),  # started after the revocation returned
        (T + 5, T + 9, ["pdf:handbook/new.pdf"], True),  # ended before the ingest began
    ]
    records = [_rec("bob", t0, t1, docs, w=i) for i, (t0, t1, docs, _) in enumerate(cases)]
    result = load.summarize(records, truth, T, T + 40)
    leaked = {s["w"] for s in result["leak_samples"]}
    assert [i in leaked for i in range(len(cases))] == [c[-1] for c in cases]


def test_searchers_on_three_channels_see_no_leak_and_no_error_while_data_and_acls_change(tmp_path):
    result = load.run_load(
        backend="lite-server",
        duration_s=20,
        threads=3,
        processes=2,
        http_clients=1,
        copies=2,
        k=10,
        home=tmp_path / "load",
        json_out=tmp_path / "load.json",
        change_at=(0.15, 0.35, 0.55, 0.7),
    )
    report = load.format_result(result)
    assert result["total"]["errors"] == 0, (report, result["error_samples"][:3])
    assert result["total"]["leaks"] == 0, (report, result["leak_samples"][:3])
    assert result["hung_searchers"] == [] and result["processes_left"] == [], report

    changes = {c["name"]: c for c in result["changes"]}
    assert list(changes) == ["ingest", "revoke", "purge_document", "purge_source"]
    for c in changes.values():
        assert c["error"] is None, report
        # each change began and committed inside the load window
        assert 0 < c["begin_s"] <= c["commit_s"] < result["config"]["duration_s"], report
    assert changes["ingest"]["detail"]["new"] == 3
    assert changes["purge_document"]["detail"]["verified"] and changes["purge_source"]["detail"]["verified"]

    for name, ch in result["channels"].items():
        assert ch["workers"] == {"thread": 3, "process": 2, "http": 1}[name], report
        assert ch["searches"] >= 5, report
        assert all(ch["by_user"][u] > 0 for u in load.USERS), report
        # searches ran on both sides of every change: some started after the last commit
        assert ch["started_after_change"]["purge_source"] >= 1, report
        assert ch["p50_ms"] is not None and ch["p50_ms"] <= ch["p95_ms"] <= ch["p99_ms"]

    live = result["liveness"]
    # The run could have caught a leak: the revoked user's queries did surface the handbook
    # before the revocation, purged documents were hits before the purge, new documents
    # became hits after the ingest; and the nobody never got anything.
    assert live["revoked_folder_hits_before_revoke"] > 0, report
    assert live["revoked_user_searches_after_revoke"] > 0, report
    assert live["purged_hits_before_purge"] > 0, report
    assert live["incoming_hits_after_ingest"] > 0, report
    assert live["eve_hits"] == 0
    assert (tmp_path / "load.json").is_file() and result["machine"]["cores"]
