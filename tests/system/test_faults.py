"""Faults: the Milvus server, the Triton server and the catalog's database die in
the middle of ingest, purge and search. Each gives a clear error (one line and a hint on
the CLI), is retried where that is safe, never lets a hit through without the catalog
post-check, and the next run repairs what it left: ``govrag doctor`` finds nothing and
every document is searchable exactly once. A Milvus that hangs instead (stopped with
SIGSTOP mid-search) fails the search within its timeout (``GOVRAG_MILVUS_TIMEOUT_S``).

The components are the real ones (a ``milvus-lite server`` and a ``milvus-server`` killed
with SIGKILL or stopped with SIGSTOP by PID, PostgreSQL backends ended with
``pg_terminate_backend``, a SQLite file replaced, a ``tritonserver`` killed by PID). The
only stand-in is *when* the fault strikes: a CLI subprocess pauses at a named call
(``FAULT_PAUSE``) until the test has killed the server, so each fault hits the same point
on every run. docs/faults.md describes each case.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from governance.errors import CatalogError, EmbedderUnavailable, IndexUnavailable
from governance.identity import User
from testsupport import postgres
from testsupport.paths import SAMPLE_POLICY
from testsupport.store_settings import embedded_settings

ALICE = User(id="alice@example.com", email="alice@example.com", groups=["finance"])
BOB = User(id="bob@example.com", email="bob@example.com", groups=["eng"])
NOBODY = User(id="eve@example.com", email="eve@example.com", groups=["marketing"])
USERS = (ALICE, BOB, NOBODY)
QUERIES = ("revenue budget forecast", "deployment rollback canary", "annual parental leave", "database outage disk")
BROAD = "revenue budget deployment rollback leave outage"

CHANGED_DOC = "pdf:engineering/deploy-runbook.pdf"  # sorts first in an ingest batch
# New documents sort after CHANGED_DOC, so a fault right after it is published leaves them pending.
NEW_DOCS = (
    "pdf:engineering/new/deploy-runbook.pdf",
    "pdf:engineering/new/incidents/2026-10-database-outage.pdf",
    "pdf:finance/new/budget-2027.pdf",
    "pdf:finance/new/q3-revenue-report.pdf",
)


def may_read(user: User, document_id: str) -> bool:
    """The sample policy, restated: finance/** for finance, engineering/** for eng, the
    handbook for staff, finance and eng; nothing else for anybody."""
    path, groups = document_id.removeprefix("pdf:"), set(user.groups)
    if path.startswith("finance/"):
        return "finance" in groups
    if path.startswith("engineering/"):
        return "eng" in groups
    if path.startswith("handbook/"):
        return bool(groups & {"staff", "finance", "eng"})
    return False


# -- checks ---------------------------------------------------------------------------------
def assert_may_read(user: User, hits: list[Any], catalog: Any) -> None:
    """The never-unfiltered property for one answer: every hit is one ``user`` may read,
    of the current version of an active document, and none is returned twice."""
    assert len({h.chunk_id for h in hits}) == len(hits), "a chunk returned twice"
    for h in hits:
        assert may_read(user, h.document_id), f"{user.email} got {h.document_id}"
        state = catalog.documents.document_state(h.document_id)
        assert state is not None and state.status == "active", (h.document_id, state)
        assert h.source_version == state.current_version, f"{h.document_id} v{h.source_version} is not current"


def current_chunks(catalog: Any) -> dict[str, set[int]]:
    """Chunk ids of the current version of every active document, per document."""
    from sqlalchemy import select

    from governance.catalog.models import ChunkRow, Document

    out: dict[str, set[int]] = {}
    with catalog.session() as s:
        for cid, doc_id in s.execute(
            select(ChunkRow.id, Document.id)
            .join(Document, Document.id == ChunkRow.document_id)
            .where(Document.status == "active", ChunkRow.version == Document.current_version)
        ):
            out.setdefault(doc_id, set()).add(int(cid))
    return out


def scans_within_budget(stores: Any, timeout: float = 180) -> None:
    """Wait until a full scan of the collection pages within the read budget: a server that
    was just restarted answers searches before a scan of every row (the doctor's) stops
    timing out while it loads segments, and on a loaded test machine that takes a while.
    What the test checks is that nothing was lost, not how soon the scan is fast."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            for _ in stores.index.iter_rows(["scope_id", "expires_at"]):
                pass
            return
        except IndexUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


def assert_repaired(stores: Any, retriever: Any) -> dict[str, set[int]]:
    """What "the next run repairs" means: the doctor finds nothing (no orphan, pending,
    missing, stale or expired vector), Milvus holds exactly the current chunks, and each user
    gets every chunk they may read exactly once and nothing else."""
    from governance.consistency import check_consistency
    from governance.vector_index import all_rows_filter

    report = check_consistency(stores.catalog, stores.index, scan_secrets=False)
    assert report.agrees and report.no_expired and report.pending_vectors.count == 0, report.counts()
    current = current_chunks(stores.catalog)
    rows = stores.index.query(all_rows_filter(), fields=["id", "document_id"])
    assert len(rows) == len({r["id"] for r in rows}), "duplicate vectors"
    by_doc: dict[str, set[int]] = {}
    for r in rows:
        by_doc.setdefault(r["document_id"], set()).add(int(r["id"]))
    assert by_doc == current
    for user in USERS:
        hits = retriever.search(user, BROAD, k=100)
        assert_may_read(user, hits, stores.catalog)
        want = {cid for doc, ids in current.items() if may_read(user, doc) for cid in ids}
        assert {h.chunk_id for h in hits} == want, user.email
    return current


def assert_clear(exc: BaseException, *must_contain: str) -> None:
    """A clear error: one line, a hint, no engine internals (SQL, parameters, tracebacks)."""
    message = str(exc)
    assert "\n" not in message, message
    assert exc.hint, f"no hint on {message!r}"  # type: ignore[attr-defined]
    for bad in ("[SQL", "[parameters", "Traceback", "sqlalche.me", "alice@example.com", "bob@example.com"):
        assert bad not in message, message
    for part in must_contain:
        assert part in message, (part, message)


GRPC_CORE_LOG = re.compile(r"^[IWE]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ \S+:\d+\] ")


def assert_one_line_cli_error(proc: subprocess.CompletedProcess[str], *must_contain: str) -> str:
    """What a user sees on the CLI: exit code 1, ``error: ...`` on one line, then at most a
    ``hint:`` line; no traceback and no library log output."""
    assert proc.returncode == 1, (proc.returncode, proc.stderr[-3000:])
    # gRPC's C core writes its own log lines straight to fd 2 (e.g. a keepalive GOAWAY from
    # the milvus-lite server); they are not govrag's output and are left out here.
    lines = [line for line in proc.stderr.splitlines() if line.strip() and not GRPC_CORE_LOG.match(line)]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert lines and lines[0].startswith("error: "), proc.stderr[-3000:]
    assert len(lines) == 1 or (len(lines) == 2 and lines[1].startswith("hint: ")), proc.stderr[-3000:]
    for part in must_contain:
        assert part in lines[0], (part, lines[0])
    return lines[0]


# -- the CLI in a subprocess, paused at a named call -----------------------------------------
FAULT_BOOT = textwrap.dedent("""
    import importlib, json, os, sys, time
    from pathlib import Path

    spec = json.loads(os.environ.pop("FAULT_PAUSE", "null") or "null")
    if spec:
        module, _, attr = spec["at"].partition(":")
        owner_name, _, method = attr.rpartition(".")
        owner = importlib.import_module(module)
        for part in owner_name.split("."):
            owner = getattr(owner, part)
        original = getattr(owner, method)
        calls = [0]

        def pause():
            Path(spec["marker"]).write_text(str(os.getpid()))
            deadline = time.monotonic() + 300
            while not Path(spec["go"]).exists():
                if time.monotonic() > deadline:
                    raise SystemExit("the fault test never said go")
                time.sleep(0.05)

        def wrapped(*args, **kwargs):
            calls[0] += 1
            hit = calls[0] == spec.get("nth", 1)
            if hit and spec.get("when", "before") == "before":
                pause()
            result = original(*args, **kwargs)
            if hit and spec.get("when") == "after":
                pause()
            return result

        setattr(owner, method, wrapped)
    sys.argv = ["govrag", *sys.argv[1:]]
    from govrag.cli.main import main
    main()
""")


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVRAG_")}
    env.update(
        GOVRAG_HOME=str(home), GOVRAG_POLICY=str(SAMPLE_POLICY), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", **extra
    )
    return env


def govrag(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", FAULT_BOOT, *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def govrag_with_fault(
    env: dict[str, str],
    args: list[str],
    *,
    at: str,
    when: str,
    workdir: Path,
    fault: Callable[[], None],
    nth: int = 1,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """Run ``govrag ARGS``; when it reaches call ``nth`` of ``at`` (``module:Class.method``,
    ``before`` or ``after`` the call), run ``fault()`` (kill a server), then let it go on."""
    marker, go = workdir / f"paused-{time.monotonic_ns()}", workdir / f"go-{time.monotonic_ns()}"
    spec = {"at": at, "when": when, "nth": nth, "marker": str(marker), "go": str(go)}
    proc = subprocess.Popen(
        [sys.executable, "-c", FAULT_BOOT, *args],
        env={**env, "FAULT_PAUSE": json.dumps(spec)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out_parts: dict[str, str] = {}
    reader = threading.Thread(target=lambda: out_parts.update(zip(("out", "err"), proc.communicate(timeout=timeout))))
    reader.start()
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            reader.join(timeout=30)
            pytest.fail(
                f"govrag {' '.join(args)} ended before reaching {at}: rc={proc.returncode}\n"
                f"{out_parts.get('err', '')[-3000:]}"
            )
        time.sleep(0.05)
    try:
        fault()
    finally:
        go.write_text("go")
    reader.join(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out_parts.get("out", ""), out_parts.get("err", ""))


# -- the local milvus-lite server -----------------------------------------------------------
def kill_local_server(home: Path) -> Any:
    """SIGKILL this home's milvus-lite server by its PID and wait until it is gone."""
    from governance.milvus_process.local import process_alive, running_server

    server = running_server(home)
    assert server is not None, "no local milvus-lite server is running"
    os.kill(server.pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while process_alive(server.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not process_alive(server.pid)
    return server


def restart_local_server_on(home: Path, old: Any) -> Any:
    """Start the server again on the same data and the same port (what a supervisor does),
    so clients that hold the old URI can reconnect."""
    from governance.milvus_process.local import LocalServer, _binary, _port_open, _state_dir

    state_dir = _state_dir(home)
    with open(state_dir / "server.log", "ab") as log:
        proc = subprocess.Popen(
            [*_binary(), "server", "--data-dir", old.data_dir, "--host", "127.0.0.1", "--port", str(old.port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + 90
    while not _port_open(old.port):
        assert proc.poll() is None and time.monotonic() < deadline, "milvus-lite server did not come back"
        time.sleep(0.1)
    server = LocalServer(pid=proc.pid, port=old.port, data_dir=old.data_dir)
    (state_dir / "server.json").write_text(json.dumps(server.__dict__))
    return server


def write_corpus(out: Path) -> Path:
    from govrag.sample_corpus import write_sample_corpus

    write_sample_corpus(out, with_bad_inputs=False)
    return out


def change_and_add(corpus: Path) -> None:
    """A changed CHANGED_DOC and the NEW_DOCS, so a run has both kinds of work."""
    from govrag.sample_corpus import DOCS, SampleDoc, _write_pdf

    for doc in DOCS[:4]:
        _write_pdf(corpus / doc.path.replace("/", "/new/", 1), doc)
    d = next(d for d in DOCS if "pdf:" + d.path == CHANGED_DOC)
    _write_pdf(corpus / d.path, SampleDoc(d.path, d.title, d.sections + (("Update", "Canary pool is now two zones."),)))


@pytest.fixture(scope="module")
def lite_baseline(
    tmp_path_factory: pytest.TempPathFactory, embedder: Any, make_ingestor: Any
) -> Iterator[tuple[Path, Path]]:
    """(home, corpus): the sample corpus ingested into a home with its local milvus-lite
    server and SQLite catalog, the server stopped. Tests copy it."""
    from governance.milvus_process.local import stop_server
    from governance.settings import Settings
    from governance.stores import Stores

    root = tmp_path_factory.mktemp("faults-baseline")
    corpus = write_corpus(root / "corpus")
    home = root / "home"
    stores = Stores.open(
        Settings(
            home=home,
            policy=SAMPLE_POLICY,
            milvus_uri=None,
            collection="govrag_chunks",
            database_url=f"sqlite:///{home / 'catalog.sqlite3'}",
        )
    )
    try:
        assert make_ingestor(stores, embedder).ingest_paths([corpus]).new == 5
    finally:
        stores.close()
        stop_server(home)
    yield home, corpus


def lite_copy(baseline: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    home, corpus = tmp_path / "home", tmp_path / "corpus"
    shutil.copytree(baseline[0], home)
    shutil.copytree(baseline[1], corpus)
    return home, corpus


def lite_stores(home: Path) -> Any:
    from governance.settings import Settings
    from governance.stores import Stores

    return Stores.open(Settings(home=home, policy=SAMPLE_POLICY))


def doctor_cli_is_clean(env: dict[str, str]) -> dict[str, Any]:
    proc = govrag(env, "doctor", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = json.loads(proc.stdout)
    assert out["ok"] is True
    problems = {k: v for k, v in out["before"].items() if k not in ("vectors", "catalog_current_chunks") and v}
    assert problems == {}, out
    assert out["before"]["vectors"] == out["before"]["catalog_current_chunks"] > 0
    return out


# -- Milvus: search --------------------------------------------------------------------------
class SearchLoop:
    """Searches as ALICE, BOB and NOBODY on a thread until stopped; keeps every outcome."""

    def __init__(self, retriever: Any) -> None:
        self.retriever = retriever
        self.outcomes: list[tuple[float, User, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            user, query = USERS[i % len(USERS)], QUERIES[i % len(QUERIES)]
            i += 1
            try:
                result: Any = self.retriever.search(user, query, k=10)
            except Exception as exc:
                result = exc
            self.outcomes.append((time.monotonic(), user, result))
            time.sleep(0.02)

    def __enter__(self) -> SearchLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=120)

    def wait_for(self, what: Callable[[Any], bool], n: int, *, since: float, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while sum(1 for t, _, r in self.outcomes if t >= since and what(r)) < n:
            assert time.monotonic() < deadline, f"timed out; outcomes so far: {self.outcomes[-5:]}"
            assert self._thread.is_alive()
            time.sleep(0.05)

    def judge(self, catalog: Any, *, allowed_errors: tuple[type[BaseException], ...]) -> tuple[int, list[Any]]:
        """Every answer holds only readable hits; every failure is one of ``allowed_errors``."""
        answers, errors = 0, []
        for _, user, result in self.outcomes:
            if isinstance(result, BaseException):
                assert isinstance(result, allowed_errors), repr(result)
                errors.append(result)
            else:
                assert_may_read(user, result, catalog)
                answers += 1
        return answers, errors


def searched_ok(r: Any) -> bool:
    return isinstance(r, list) and len(r) > 0


def failed(r: Any) -> bool:
    return isinstance(r, IndexUnavailable)


@pytest.mark.slow
def test_local_milvus_killed_mid_search_fails_clearly_and_recovers(lite_baseline, tmp_path, embedder, make_retriever):
    from governance.milvus_process.local import ensure_server, stop_server

    home, _ = lite_copy(lite_baseline, tmp_path)
    first = ensure_server(home)
    stores = lite_stores(home)
    retriever = make_retriever(stores, embedder)
    try:
        with SearchLoop(retriever) as loop:
            loop.wait_for(searched_ok, 3, since=0)
            killed_at = time.monotonic()
            kill_local_server(home)
            loop.wait_for(failed, 3, since=killed_at)
            # The same retriever, once the server is back at the same address: the client
            # reconnects and the collection (released by the restart) is loaded again.
            restarted_at = time.monotonic()
            restart_local_server_on(home, first)
            loop.wait_for(searched_ok, 4, since=restarted_at)
        answers, errors = loop.judge(stores.catalog, allowed_errors=(IndexUnavailable,))
        assert answers >= 7 and len(errors) >= 3
        for err in errors:
            assert_clear(err, first.uri)
            assert "govrag server status" in err.hint
        # NOBODY never reaches Milvus (no allowed scope): an empty answer, even while it is down.
        assert all(r == [] for _, u, r in loop.outcomes if u is NOBODY)

        # Killed again and started by the next govrag command (ensure_server): it takes the
        # same port again, so a long-lived process (the HTTP service) recovers by itself.
        kill_local_server(home)
        second = ensure_server(home)
        assert second.uri == first.uri
        deadline = time.monotonic() + 30
        while True:
            try:
                hits = retriever.search(BOB, "granite-otter rollback", k=5)
                break
            except IndexUnavailable as exc:
                assert_clear(exc, first.uri)
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        assert hits[0].document_id == CHANGED_DOC
        assert_repaired(stores, retriever)
    finally:
        stores.close()
        stop_server(home)


# -- Milvus: ingest and purge through the CLI ------------------------------------------------
@pytest.mark.slow
def test_local_milvus_killed_mid_ingest_cli_then_rerun_repairs(lite_baseline, tmp_path, embedder, make_retriever):
    from governance.milvus_process.local import ensure_server, stop_server

    home, corpus = lite_copy(lite_baseline, tmp_path)
    change_and_add(corpus)
    ensure_server(home)
    env = cli_env(home)
    stores = None
    try:
        # Paused after the batch (CHANGED_DOC's new version and the NEW_DOCS) is published in
        # one transaction, just before the replaced version's vectors are deleted.
        proc = govrag_with_fault(
            env,
            ["ingest", str(corpus), "--json"],
            workdir=tmp_path,
            at="governance.vector_index:VectorIndex.delete_ids",
            when="before",
            fault=lambda: kill_local_server(home),
        )
        line = assert_one_line_cli_error(proc, "Milvus at http://127.0.0.1:", "failed")
        assert "hint: " in proc.stderr and "govrag server status" in proc.stderr, line

        stores = lite_stores(home)  # starts the local server again (a new port)
        retriever = make_retriever(stores, embedder)
        for doc in NEW_DOCS:
            assert stores.catalog.documents.document_state(doc).current_version == 1
        owed = stores.catalog.chunks.superseded_chunk_ids()
        assert owed and len(stores.index.get(owed, ["id"])) == len(owed), "the old version's vectors are owed"
        for user in USERS:  # ...and are never returned: only the current version is visible
            hits = retriever.search(user, BROAD, k=100)
            assert_may_read(user, hits, stores.catalog)
            assert not {h.chunk_id for h in hits} & set(owed)
        bob = retriever.search(BOB, "granite-otter rollback canary", k=100)
        assert {h.source_version for h in bob if h.document_id == CHANGED_DOC} == {2}

        rerun = govrag(env, "ingest", str(corpus), "--json")
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        summary = json.loads(rerun.stdout)
        assert (summary["new"], summary["changed"], summary["unchanged"]) == (0, 0, 9), summary
        assert summary["vectors_deleted"] == len(owed), summary
        assert stores.index.get(owed, ["id"]) == []
        doctor_cli_is_clean(env)
        current = assert_repaired(stores, retriever)
        assert set(NEW_DOCS) <= set(current) and len(current) == 9
    finally:
        if stores is not None:
            stores.close()
        stop_server(home)


EXPIRE = ("pdf:finance/budget-2027.pdf", "pdf:engineering/incidents/2026-10-database-outage.pdf")


@pytest.mark.slow
@pytest.mark.parametrize("point", ["before vectors are deleted", "after documents are retired"])
def test_local_milvus_killed_mid_purge_cli_then_rerun_finishes(
    lite_baseline, tmp_path, embedder, point, make_retriever
):
    from governance.catalog.models import Document
    from governance.milvus_process.local import ensure_server, stop_server

    home, _ = lite_copy(lite_baseline, tmp_path)
    ensure_server(home)
    env = cli_env(home)
    stores = lite_stores(home)
    try:
        with stores.catalog.session() as s:
            for doc_id in EXPIRE:
                s.get(Document, doc_id).expires_at = datetime.now(UTC) - timedelta(days=1)
        at, when = (
            ("governance.vector_index:VectorIndex.delete_ids", "before")
            if point.startswith("before")
            else ("governance.catalog.documents:DocumentRepository.retire_documents", "after")
        )
        proc = govrag_with_fault(
            env,
            ["purge", "--expired", "--json"],
            workdir=tmp_path,
            at=at,
            when=when,
            fault=lambda: kill_local_server(home),
        )
        assert_one_line_cli_error(proc, "Milvus at http://127.0.0.1:")
        stores.close()

        stores = lite_stores(home)
        retriever = make_retriever(stores, embedder)
        for user in USERS:  # expired (per the catalog) are never returned, purged or not
            hits = retriever.search(user, BROAD, k=100)
            assert_may_read(user, hits, stores.catalog)
            assert not {h.document_id for h in hits} & set(EXPIRE)
        retired = {d: stores.catalog.documents.document_state(d).status for d in EXPIRE}
        # Claimed ("purging": out of search, holds checked) before the vectors go; retired after.
        assert set(retired.values()) == ({"purging"} if point.startswith("before") else {"purged"})

        rerun = govrag(env, "purge", "--expired", "--json")
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        report = json.loads(rerun.stdout)
        assert report["verified"] is True
        assert sorted(report["documents"]) == (sorted(EXPIRE) if point.startswith("before") else [])
        assert all(stores.catalog.documents.document_state(d).status == "purged" for d in EXPIRE)
        assert stores.index.ids_of_documents(list(EXPIRE)) == []
        doctor_cli_is_clean(env)
        current = assert_repaired(stores, retriever)
        assert len(current) == 3 and not set(current) & set(EXPIRE)
    finally:
        stores.close()
        stop_server(home)


# -- Milvus: the real milvus-server ------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.milvus_server
def test_milvus_server_killed_mid_search_fails_clearly_and_recovers_at_the_same_address(
    tmp_path, embedder, make_ingestor, make_retriever
):
    from governance.settings import Settings
    from governance.stores import Stores
    from testsupport.milvus_server import MilvusServer, unavailable_reason

    reason = unavailable_reason()
    if reason:
        pytest.skip(f"milvus-server unavailable: {reason}")
    corpus = write_corpus(tmp_path / "corpus")
    data_dir = tmp_path / "milvus-server"
    server = MilvusServer(data_dir).start()
    restarted = None
    stores = None
    try:
        stores = Stores.open(
            Settings(
                home=tmp_path / "home",
                milvus_uri=server.uri,
                policy=SAMPLE_POLICY,
                database_url=f"sqlite:///{tmp_path / 'catalog.sqlite3'}",
            )
        )
        assert make_ingestor(stores, embedder).ingest_paths([corpus]).new == 5
        retriever = make_retriever(stores, embedder)
        with SearchLoop(retriever) as loop:
            loop.wait_for(searched_ok, 3, since=0)
            killed_at = time.monotonic()
            pids = server.processes()
            for pid in pids:  # the forwarder and milvus itself, by PID
                os.kill(pid, signal.SIGKILL)
            server.stop()  # reaps them; nothing is left
            assert server.processes() == []
            loop.wait_for(failed, 3, since=killed_at)
            restarted_at = time.monotonic()
            restarted = MilvusServer(data_dir, port=server.port).start()
            loop.wait_for(searched_ok, 3, since=restarted_at, timeout=180)
        _, errors = loop.judge(stores.catalog, allowed_errors=(IndexUnavailable,))
        for err in errors:
            assert_clear(err, server.uri)
        scans_within_budget(stores)
        assert_repaired(stores, retriever)  # nothing was lost: the data survived the kill
    finally:
        if stores is not None:
            stores.close()
        for s in (restarted, server):
            if s is not None:
                s.stop()
        shutil.rmtree(data_dir, ignore_errors=True)  # ~1 GB


# -- Milvus hung (stopped with SIGSTOP, not dead) -----------------------------------------------
HUNG_BUDGET_S = 2.0  # GOVRAG_MILVUS_TIMEOUT_S of these tests


def hung_bound_s(budget: float) -> float:
    """What "within the budget" means here: a bound that a search blocked without a timeout
    (forever) can never meet, with room for a loaded CI machine; not a timing measurement."""
    return 3 * budget + 5


def signal_all(pgid: int, pids: list[int], sig: int) -> None:
    """``sig`` to a process group and to each of ``pids`` (a server's processes)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def stop_at_next_call(monkeypatch: pytest.MonkeyPatch, milvus: Any, stop: Callable[[], None]) -> dict[str, float]:
    """Make the next call ``milvus`` (a MilvusCollection) makes to Milvus run ``stop()`` first,
    once: the search has begun (query embedded, scopes resolved) when Milvus stops, and its
    call (the index search, or the exact scan a selective filter is remembered to need) goes
    to a server that takes the bytes and never answers. Returns where ``stopped_at`` lands."""
    real, state = milvus._call, {}

    def call(*args: Any, **kwargs: Any) -> Any:
        if "stopped_at" not in state:
            stop()
            state["stopped_at"] = time.monotonic()
        return real(*args, **kwargs)

    monkeypatch.setattr(milvus, "_call", call)
    return state


def search_fails_within_budget(retriever: Any, uri: str, state: dict[str, float]) -> float:
    """The retrieval.search path against the stopped Milvus: IndexUnavailable, one line that
    names the budget, a hint, within the bound. Returns the time from the stop to the error."""
    with pytest.raises(IndexUnavailable) as caught:
        retriever.search(ALICE, QUERIES[0], k=10)
    took = time.monotonic() - state["stopped_at"]
    assert took < hung_bound_s(HUNG_BUDGET_S), took
    assert_clear(caught.value, uri, f"got no answer within {HUNG_BUDGET_S:g}s", "GOVRAG_MILVUS_TIMEOUT_S")
    assert "raise GOVRAG_MILVUS_TIMEOUT_S" in caught.value.hint  # type: ignore[attr-defined]
    print(f"hung Milvus at {uri}: search failed {took:.2f}s after SIGSTOP (budget {HUNG_BUDGET_S:g}s)")
    return took


def searches_again(retriever: Any, timeout: float = 60) -> None:
    """The same retriever answers once the server runs again (SIGCONT)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            assert retriever.search(ALICE, QUERIES[0], k=10)
            return
        except IndexUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@pytest.mark.slow
@pytest.mark.milvus_server
def test_milvus_server_stopped_mid_search_fails_within_the_timeout(
    tmp_path, keys, embedder, make_ingestor, make_retriever, monkeypatch
):
    from fastapi.testclient import TestClient

    from governance.stores import Stores
    from retrieval.service import create_app
    from testsupport.milvus_server import MilvusServer, unavailable_reason
    from testsupport.service_tokens import ALICE as ALICE_CLAIMS
    from testsupport.service_tokens import bearer, claims, service_settings, sign

    reason = unavailable_reason()
    if reason:
        pytest.skip(f"milvus-server unavailable: {reason}")
    corpus = write_corpus(tmp_path / "corpus")
    data_dir = tmp_path / "milvus-server"
    # A server of its own: the session's is shared by the worker's other tests.
    server = MilvusServer(data_dir).start()
    stores = None
    pids: list[int] = []
    try:
        settings = service_settings(tmp_path, keys, milvus_uri=server.uri, milvus_timeout_s=HUNG_BUDGET_S)
        stores = Stores.open(settings)
        assert make_ingestor(stores, embedder).ingest_paths([corpus]).new == 5
        retriever = make_retriever(stores, embedder)
        assert retriever.search(ALICE, QUERIES[0], k=10)  # it answers while the server runs

        def stop() -> None:
            pids[:] = server.processes()  # the forwarder and milvus itself, one process group
            assert server.pid is not None and len(pids) >= 2, pids
            signal_all(server.pid, pids, signal.SIGSTOP)

        try:
            search_fails_within_budget(retriever, server.uri, stop_at_next_call(monkeypatch, stores.index.milvus, stop))
            # The HTTP service, searching with the same retriever, answers its one-line 503.
            with TestClient(create_app(settings, retriever=retriever)) as client:
                started = time.monotonic()
                response = client.post(
                    "/v1/search",
                    json={"query": QUERIES[0], "k": 10},
                    headers=bearer(sign(keys, payload=claims(ALICE_CLAIMS))),
                )
                took = time.monotonic() - started
            assert response.status_code == 503, response.text
            assert response.json()["error"] == "vector index unavailable"
            assert took < hung_bound_s(HUNG_BUDGET_S), took
            print(f"hung Milvus at {server.uri}: HTTP search answered 503 after {took:.2f}s")
        finally:
            if server.pid is not None:
                signal_all(server.pid, pids, signal.SIGCONT)
        searches_again(retriever)
    finally:
        if stores is not None:
            stores.close()
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)  # ~1 GB


@pytest.mark.slow
def test_local_milvus_stopped_mid_search_fails_within_the_timeout(
    lite_baseline, tmp_path, embedder, make_retriever, monkeypatch
):
    from governance.milvus_process.local import ensure_server, stop_server
    from governance.settings import Settings
    from governance.stores import Stores

    home, _ = lite_copy(lite_baseline, tmp_path)
    server = ensure_server(home)  # its own session: its process group is its PID
    stores = Stores.open(Settings(home=home, policy=SAMPLE_POLICY, milvus_timeout_s=HUNG_BUDGET_S))
    try:
        retriever = make_retriever(stores, embedder)
        assert retriever.search(ALICE, QUERIES[0], k=10)
        state = stop_at_next_call(
            monkeypatch, stores.index.milvus, lambda: signal_all(server.pid, [server.pid], signal.SIGSTOP)
        )
        try:
            search_fails_within_budget(retriever, server.uri, state)
            # A process opening its stores now (a CLI command, the service's first request)
            # fails within the budget too, instead of waiting for the server forever.
            started = time.monotonic()
            with pytest.raises(IndexUnavailable) as caught:
                Stores.open(Settings(home=home, policy=SAMPLE_POLICY, milvus_timeout_s=HUNG_BUDGET_S)).close()
            took = time.monotonic() - started
            assert took < hung_bound_s(HUNG_BUDGET_S), took
            assert_clear(caught.value, server.uri, "GOVRAG_MILVUS_TIMEOUT_S")
            print(f"hung Milvus at {server.uri}: opening the stores failed after {took:.2f}s")
        finally:
            signal_all(server.pid, [server.pid], signal.SIGCONT)
        searches_again(retriever)
    finally:
        stores.close()
        stop_server(home)


# -- the catalog: PostgreSQL ---------------------------------------------------------------------
class PgKiller:
    """Ends the catalog's PostgreSQL backends from outside, as an operator or a failover does:
    ``all_idle()`` every backend of the database, ``arm(pattern)`` the backend that is about to
    run the next statement matching ``pattern`` (so it dies mid-transaction)."""

    def __init__(self, engine: Any, database: str) -> None:
        from sqlalchemy import create_engine, event

        self.database = database
        self.admin = create_engine(postgres.admin_url(), isolation_level="AUTOCOMMIT")
        self.pattern: str | None = None
        self.fired = 0
        event.listen(engine, "before_cursor_execute", self._before)

    def _terminate(self, where: str, **params: Any) -> None:
        from sqlalchemy import text

        with self.admin.connect() as c:
            pids = [
                r[0]
                for r in c.execute(
                    text(f"SELECT pid FROM pg_stat_activity WHERE datname = :db AND pid <> pg_backend_pid() {where}"),
                    {"db": self.database, **params},
                )
            ]
            for pid in pids:
                c.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
            deadline = time.monotonic() + 10
            while (
                pids
                and time.monotonic() < deadline
                and c.execute(
                    text("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:pids)"), {"pids": pids}
                ).scalar()
            ):
                time.sleep(0.02)

    def all_backends(self) -> None:
        self._terminate("")

    def arm(self, pattern: str) -> None:
        self.pattern = pattern

    def _before(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if self.pattern is None or not re.search(self.pattern, statement):
            return
        self.pattern = None
        self.fired += 1
        self._terminate("AND pid = :pid", pid=conn.connection.driver_connection.info.backend_pid)

    def close(self) -> None:
        self.admin.dispose()


@pytest.fixture
def pg_url(pg_database: Callable[..., Any]) -> Iterator[str]:
    with pg_database() as url:
        yield url


def catalog_stores(tmp_path: Path, url: str) -> Any:
    from governance.stores import Stores

    return Stores.open(embedded_settings(tmp_path, database_url=url))


def ingest_with_fault_at_third_publish(
    stores: Any, embedder: Any, corpus: Path, fault: Callable[[], None], monkeypatch: pytest.MonkeyPatch
) -> BaseException:
    """Ingest the corpus one document per write batch; the third batch's publish runs right
    after ``fault()``. The first two documents are published, the other three staged with
    their vectors written."""
    import ingest.pipeline.run as run_mod
    from governance.catalog.documents import DocumentRepository
    from ingest.pipeline.run import Ingestor

    original, calls = DocumentRepository.publish_versions, [0]

    def publish(self: DocumentRepository, *args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == 3:
            fault()
        return original(self, *args, **kwargs)

    monkeypatch.setattr(run_mod, "MIN_EMBED_CHUNKS", 1)
    monkeypatch.setattr(run_mod, "MAX_EMBED_CHUNKS", 1)
    monkeypatch.setattr(DocumentRepository, "publish_versions", publish)
    try:
        with pytest.raises(CatalogError) as err:
            Ingestor(stores, lambda: embedder).ingest_paths([corpus])
    finally:
        monkeypatch.setattr(DocumentRepository, "publish_versions", original)
    return err.value


def assert_half_done_ingest_is_invisible(stores: Any, retriever: Any) -> None:
    published = {"pdf:engineering/deploy-runbook.pdf", "pdf:engineering/incidents/2026-10-database-outage.pdf"}
    pending = {
        "pdf:finance/budget-2027.pdf",
        "pdf:finance/q3-revenue-report.pdf",
        "pdf:handbook/holidays-and-leave.pdf",
    }
    assert {d for d in published | pending if stores.catalog.documents.document_state(d).current_version} == published
    assert stores.index.ids_of_documents(sorted(pending)), "the staged versions' vectors were written"
    for user in USERS:
        hits = retriever.search(user, BROAD, k=100)
        assert_may_read(user, hits, stores.catalog)
        assert not {h.document_id for h in hits} & pending
    assert {h.document_id for h in retriever.search(BOB, BROAD, k=100)} == published


@pytest.mark.postgres
def test_postgres_connections_terminated_during_ingest_and_search(
    pg_url, tmp_path, embedder, monkeypatch, make_ingestor, make_retriever
):
    from sqlalchemy.engine import make_url

    corpus = write_corpus(tmp_path / "corpus")
    stores = catalog_stores(tmp_path, pg_url)
    killer = PgKiller(stores.catalog.engine, make_url(pg_url).database)
    try:
        # Ingest: the third publish's backend dies inside its transaction.
        err = ingest_with_fault_at_third_publish(
            stores, embedder, corpus, lambda: killer.arm(r"FROM documents"), monkeypatch
        )
        assert killer.fired == 1
        assert_clear(err, "catalog operation failed at postgresql", "OperationalError")
        assert "GOVRAG_DATABASE_URL" in err.hint
        retriever = make_retriever(stores, embedder)
        assert_half_done_ingest_is_invisible(stores, retriever)
        summary = make_ingestor(stores, embedder).ingest_paths([corpus])
        assert (summary.new, summary.unchanged) == (3, 2)
        current = assert_repaired(stores, retriever)

        # Search: idle pooled connections ended -> pool_pre_ping replaces them, no error.
        killer.all_backends()
        assert_may_read(ALICE, retriever.search(ALICE, "revenue forecast", k=5), stores.catalog)
        # A read's connection ended mid-query (the post-check) -> retried on a new one.
        killer.arm(r"FROM chunks JOIN documents")
        hits = retriever.search(BOB, BROAD, k=100)
        assert killer.fired == 2
        assert {h.chunk_id for h in hits} == {c for d, ids in current.items() if may_read(BOB, d) for c in ids}
        assert_may_read(BOB, hits, stores.catalog)
        # A write's connection ended (the search's audit record) -> CatalogError, no hits at all.
        killer.arm(r"UPDATE audit_head")
        with pytest.raises(CatalogError) as err2:
            retriever.search(ALICE, "revenue forecast", k=5)
        assert killer.fired == 3
        assert_clear(err2.value, "catalog operation failed at postgresql")
        assert retriever.search(ALICE, "revenue forecast", k=5)  # the next call works again

        # Backends ended again and again while searches run: each answer is right or a CatalogError.
        stop = threading.Event()

        def chaos() -> None:
            while not stop.is_set():
                killer.all_backends()
                time.sleep(0.03)

        chaos_thread = threading.Thread(target=chaos, daemon=True)
        chaos_thread.start()
        outcomes: list[tuple[User, Any]] = []
        try:
            for i in range(24):
                user = USERS[i % 3]
                try:
                    outcomes.append((user, retriever.search(user, QUERIES[i % 4], k=10)))
                except CatalogError as exc:
                    outcomes.append((user, exc))
        finally:
            stop.set()
            chaos_thread.join(timeout=30)
        for user, result in outcomes:
            if isinstance(result, CatalogError):
                assert_clear(result, "catalog operation failed at postgresql")
            else:
                assert_may_read(user, result, stores.catalog)
        assert_repaired(stores, retriever)
    finally:
        killer.close()
        stores.close()


# -- the catalog: SQLite ----------------------------------------------------------------------------
class SwappedFile:
    """The SQLite catalog file replaced by one that is not a database (a restore gone wrong, a
    disk returning garbage), and put back: bounded, unlike a lock held past busy_timeout."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.aside = path.parent / "aside"

    def __enter__(self) -> SwappedFile:
        self.aside.mkdir(exist_ok=True)
        for suffix in ("", "-wal", "-shm"):
            p = Path(f"{self.path}{suffix}")
            if p.exists():
                p.rename(self.aside / p.name)
        self.path.write_bytes(b"this is not a SQLite database\n" * 200)
        return self

    def __exit__(self, *exc: object) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        for p in self.aside.iterdir():
            p.rename(self.path.parent / p.name)


def test_sqlite_catalog_file_replaced_during_ingest_and_search(
    tmp_path, embedder, monkeypatch, make_ingestor, make_retriever
):
    corpus = write_corpus(tmp_path / "corpus")
    db = tmp_path / "catalog.sqlite3"
    stores = catalog_stores(tmp_path, f"sqlite:///{db}")
    swapped = SwappedFile(db)
    try:
        err = ingest_with_fault_at_third_publish(stores, embedder, corpus, swapped.__enter__, monkeypatch)
        assert_clear(err, "catalog operation failed at sqlite", "file is not a database")
        swapped.__exit__()
        retriever = make_retriever(stores, embedder)
        assert_half_done_ingest_is_invisible(stores, retriever)
        summary = make_ingestor(stores, embedder).ingest_paths([corpus])
        assert (summary.new, summary.unchanged) == (3, 2)
        assert_repaired(stores, retriever)

        for user in USERS:
            assert_may_read(user, retriever.search(user, BROAD, k=20), stores.catalog)
        with swapped:  # mid-run: the next searches fail clearly, never with unchecked hits
            for user in (ALICE, BOB, NOBODY):
                with pytest.raises(CatalogError) as err2:
                    retriever.search(user, BROAD, k=20)
                assert_clear(err2.value, "file is not a database")
        assert_repaired(stores, retriever)  # file back: the next call works
    finally:
        stores.close()


# -- Triton -------------------------------------------------------------------------------------
def _triton_available() -> str | None:
    from embedding.triton_server import triton_env

    if not (triton_env() / "bin" / "python").exists():
        return f"no Triton env at {triton_env()} (run scripts/setup_triton_env.sh or set GOVRAG_TRITON_ENV)"
    try:
        import tritonclient.grpc  # noqa: F401
    except ImportError:
        return "tritonclient is not installed: pip install 'tritonclient[grpc,http]'"
    return None


def _start_triton_once_more_if_stuck(start_triton, model_dir: Path, **kwargs):
    """Start tritonserver; once more if it never became ready. Under three test workers on two
    cores a start was seen to stop after the model's initialize returned, never reporting the
    model loaded; what this test checks starts after the server is up."""
    try:
        return start_triton(model_dir, **kwargs)
    except EmbedderUnavailable as exc:
        if "not ready after" not in str(exc):
            raise
        return start_triton(model_dir, **kwargs)


@pytest.mark.slow
def test_triton_killed_mid_ingest_cli_retries_then_fails_clearly_and_rerun_repairs(
    lite_baseline, tmp_path, embedder, make_retriever
):
    reason = _triton_available()
    if reason:
        pytest.skip(reason)
    from embedding.quantize import quantize_model
    from embedding.triton_client import TritonEmbedder
    from embedding.triton_server import start_triton
    from governance.milvus_process.local import ensure_server, stop_server

    model_dir = tmp_path / "nvfp4"
    quantize_model(model_dir, method="rtn")  # the format matters here, not the quality
    home, corpus = lite_copy(lite_baseline, tmp_path)
    change_and_add(corpus)
    ensure_server(home)
    triton = _start_triton_once_more_if_stuck(start_triton, model_dir)
    restarted = None
    stores = None
    try:
        env = cli_env(home, GOVRAG_EMBEDDER="triton", GOVRAG_TRITON_URL=triton.grpc_url)
        stores = lite_stores(home)
        served = TritonEmbedder(triton.grpc_url, batch_size=8)  # a search process's embedder
        searcher = make_retriever(stores, served)
        assert_may_read(BOB, searcher.search(BOB, "granite-otter rollback", k=5), stores.catalog)

        def kill_triton() -> None:
            os.killpg(triton.process.pid, signal.SIGKILL)  # the server and its Python stub
            triton.process.wait(timeout=30)

        # Paused once the embedder has connected and the first batch is about to be sent (as
        # token ids: the ingest's workers tokenize, so the run calls embed_ids, never embed).
        proc = govrag_with_fault(
            env,
            ["ingest", str(corpus), "--json"],
            workdir=tmp_path,
            at="embedding.triton_client:TritonEmbedder.embed_ids",
            when="before",
            fault=kill_triton,
        )
        assert_one_line_cli_error(proc, f"Triton embedding failed at {triton.grpc_url} after 4 attempts")
        assert "hint: start it with: govrag serve-embedder" in proc.stderr

        retriever = make_retriever(stores, embedder)
        assert stores.catalog.documents.document_state(CHANGED_DOC).current_version == 1
        assert stores.index.ids_of_documents(list(NEW_DOCS)) == []  # nothing was written
        for user in USERS:
            assert_may_read(user, retriever.search(user, BROAD, k=100), stores.catalog)
        with pytest.raises(EmbedderUnavailable):  # and nothing answers at that address
            TritonEmbedder(triton.grpc_url, retries=0)
        # A search while Triton is down: the query cannot be embedded, so no hits at all.
        with pytest.raises(EmbedderUnavailable) as err:
            searcher.search(BOB, "granite-otter rollback", k=5)
        assert_clear(err.value, triton.grpc_url, "after 4 attempts")
        assert searcher.search(NOBODY, "granite-otter rollback", k=5) == []  # no scope: nothing to embed

        restarted = _start_triton_once_more_if_stuck(start_triton, model_dir, grpc_port=triton.grpc_port)
        # The same client reconnects to the restarted server at the same address.
        assert_may_read(BOB, searcher.search(BOB, "granite-otter rollback", k=5), stores.catalog)
        rerun = govrag(env, "ingest", str(corpus), "--json")
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        summary = json.loads(rerun.stdout)
        assert (summary["new"], summary["changed"], summary["unchanged"]) == (4, 1, 4), summary
        doctor_cli_is_clean(env)
        current = assert_repaired(stores, retriever)
        assert stores.catalog.documents.document_state(CHANGED_DOC).current_version == 2 and len(current) == 9
    finally:
        if stores is not None:
            stores.close()
        for t in (restarted, triton):
            if t is not None:
                t.stop()
        stop_server(home)
