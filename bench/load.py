"""Load: concurrent searchers while an ingest, an ACL change and purges run.

Searchers, all started before the load window and all searching as several users (readers
of different scopes and a nobody) with queries that would surface forbidden documents if a
filter failed:

- ``thread``:  N threads in this process sharing one in-process :class:`Retriever`;
- ``process``: M Python subprocesses calling ``retrieval.search`` (the embedded default:
  they attach to the one ``milvus-lite server`` under ``GOVRAG_HOME``, or the given URI);
- ``http``:    H client threads (httpx) against a ``govrag api serve`` subprocess, with
  HS256 development tokens (``GOVRAG_JWT_HS256_SECRET``), rate limit off.

During the window a control thread runs, one after another, with the begin and commit
(return) time of each recorded: (a) an ingest of new documents, (b) an ACL change that
revokes ``group:eng``'s access to the handbook scope (``ScopeRepository.upsert_scope`` with the same
key and narrower layers), (c) a purge by ``--document`` and then (d) a purge by ``--source``
(``governance.purge.purge_documents``).

Every search records start, end, user, hit document ids and error. The leak rule: a hit is a
leak when the user could read the document in none of the states the catalog passed through
while the search ran: the changes committed before it started, then each change that had
begun before it ended, applied one at a time in the order they ran. A search overlapping a
change may see either side of it, and a search overlapping two (an ingest that ran past the
next change's start, then the revocation) may also see the state between them; one that
starts after a change returned is held to the new truth. So a purged document in a search that
starts after the purge returned, or a handbook hit for an ``eng``-only user after the
revocation returned, is a leak. Errors are counted too (there must be none).

    python bench/load.py [--backend lite-server|milvus-server] [--milvus-uri URI]
                         [--duration 120] [--threads 4] [--processes 2] [--http 2]
                         [--copies 6] [--k 10] [--torch-threads N] [--json PATH] [--keep]

``--backend lite-server`` (default): the embedded default, one ``milvus-lite server`` under a
fresh ``GOVRAG_HOME`` shared by every process. ``--backend milvus-server``: a real
milvus-server 2.3.5 (PyPI ``milvus``) started on 127.0.0.1 by ``testsupport.milvus_server``
in the home and stopped by PID at the end — or ``--milvus-uri`` to use a running one (a
fresh collection is made and dropped). The catalog is SQLite under the home unless
``--database-url`` is given. Results go to ``bench/results/load_<backend>.json``.

``--torch-threads 1`` sets ``OMP_NUM_THREADS=1`` in every process: on an oversubscribed
machine, torch's default (one OpenMP thread per core) makes a one-query embedding on a
process's *main* thread 10-20x slower (measured here: ~0.5 s instead of ~30 ms), which is
what the ``process`` channel's latency shows without it.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("SCARF_NO_ANALYTICS", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

from bench.machine import machine_details, percentile  # noqa: E402
from governance.milvus_process.local import free_port, process_alive  # noqa: E402

BACKENDS = ("lite-server", "milvus-server")
CHANNELS = ("thread", "process", "http")
SAMPLE_POLICY = REPO / "govrag" / "sample" / "policy.yaml"
RESULTS = REPO / "bench" / "results"
HS256_SECRET = "load-bench-dev-only-secret-0123456789abcdef"  # development tokens only

# -- who reads what (the ground truth; the sample policy, govrag/sample/policy.yaml) -------
USERS: dict[str, dict[str, Any]] = {
    "alice": {"sub": "alice@example.com", "email": "alice@example.com", "groups": ["finance"]},
    "bob": {"sub": "bob@example.com", "email": "bob@example.com", "groups": ["eng"]},
    "carol": {"sub": "carol@example.com", "email": "carol@example.com", "groups": ["staff"]},
    "eve": {"sub": "eve@example.com", "email": "eve@example.com", "groups": ["marketing"]},
}
# Top folder of a PDF's path -> the principals of its (single) layer; a folder missing here
# (unfiled/) has no access rule: quarantined, readable by nobody.
FOLDER_READERS: dict[str, frozenset[str]] = {
    "finance": frozenset({"group:finance", "role:cfo"}),
    "engineering": frozenset({"group:eng"}),
    "handbook": frozenset({"group:staff", "group:finance", "group:eng"}),
}
REVOKE_FOLDER = "handbook"
REVOKED_READERS = frozenset({"group:staff", "group:finance"})  # group:eng loses the handbook

QUERIES = (
    "quarterly revenue forecast budget share buyback jade-walrus onyx-pelican",
    "deployment rollback canary granite-otter copper-mantis teal-osprey",
    "annual leave parental leave holidays ivory-gecko coral-finch",
    "database outage write-ahead log archiving silver-lynx checklist",
    "quartz-badger draft board minutes",
    "revenue deployment leave outage budget runbook",
)


def principals_of(user: str) -> frozenset[str]:
    claims = USERS[user]
    return frozenset({f"user:{claims['email']}", *(f"group:{g}" for g in claims["groups"])})


def folder_of(document_id: str) -> str | None:
    rel = document_id.split(":", 1)[-1]
    top = rel.split("/", 1)[0]
    return top if top in FOLDER_READERS else None


def plan(worker: int, i: int) -> tuple[str, str]:
    """The (user, query) of a worker's i-th search: users cycle every search, queries every
    len(USERS) searches, so each worker goes through every pair."""
    names = list(USERS)
    return names[(worker + i) % len(names)], QUERIES[(i // len(names) + worker) % len(QUERIES)]


# -- the corpus -----------------------------------------------------------------------------
def _doc(path: str, title: str, *sections: tuple[str, str]) -> Any:
    from govrag.sample_corpus import SampleDoc

    return SampleDoc(path, title, tuple(sections))


def _archive_docs() -> list[Any]:
    """Ingested before the load from their own folder (their own origin), purged during it."""
    return [
        _doc(
            "finance/archive/forecast-2025.pdf",
            "Archived forecast 2025",
            (
                "Forecast",
                "The jade-walrus forecast for 2025 expected revenue of 41 million euros and a share "
                "buyback of 2 million euros; budget owners signed it in January.",
            ),
        ),
        _doc(
            "engineering/archive/legacy-deploy.pdf",
            "Legacy deployment notes",
            (
                "Legacy",
                "The copper-mantis deployment used a blue-green rollback with manual canary checks "
                "before the runbook was automated.",
            ),
        ),
        _doc(
            "handbook/archive/leave-policy-2020.pdf",
            "Leave policy 2020",
            (
                "Leave",
                "In 2020 annual leave was 25 days and parental leave 16 weeks; the ivory-gecko form recorded holidays.",
            ),
        ),
    ]


def _incoming_docs() -> list[Any]:
    """Ingested during the load."""
    return [
        _doc(
            "finance/new/q4-forecast.pdf",
            "Q4 forecast",
            (
                "Forecast",
                "The onyx-pelican forecast puts fourth quarter revenue at 51 million euros and keeps "
                "the share buyback and the budget unchanged.",
            ),
        ),
        _doc(
            "engineering/new/canary-guide.pdf",
            "Canary guide",
            (
                "Canary",
                "The teal-osprey canary guide: deploy to one zone, watch p99 latency, roll back with "
                "the rollback script when the error budget burns.",
            ),
        ),
        _doc(
            "handbook/new/remote-work.pdf",
            "Remote work",
            (
                "Remote",
                "Staff may work remotely up to three days a week; register it with the coral-finch "
                "form, like annual leave and holidays.",
            ),
        ),
    ]


def write_corpus(root: Path, copies: int) -> dict[str, Path]:
    """``base`` (the sample corpus, plus ``copies - 1`` copies in ``<folder>/copy<i>/``
    subfolders so the policy rules still match), ``archive`` and ``incoming``."""
    from govrag.sample_corpus import DOCS, SampleDoc, _write_pdf

    if root.exists():
        shutil.rmtree(root)
    base, archive, incoming = root / "base", root / "archive", root / "incoming"
    for doc in DOCS:
        _write_pdf(base / doc.path, doc)
    for i in range(1, copies):
        for doc in DOCS:
            top, rest = doc.path.split("/", 1)
            if top in FOLDER_READERS:
                _write_pdf(base / top / f"copy{i}" / rest, SampleDoc(f"{top}/copy{i}/{rest}", doc.title, doc.sections))
    for doc in _archive_docs():
        _write_pdf(archive / doc.path, doc)
    for doc in _incoming_docs():
        _write_pdf(incoming / doc.path, doc)
    return {"base": base, "archive": archive, "incoming": incoming}


# -- ground truth ---------------------------------------------------------------------------
@dataclass
class Change:
    kind: str  # ingest | acl | purge
    name: str
    begin: float
    commit: float | None = None
    docs: dict[str, str | None] = field(default_factory=dict)  # ingest: added; purge: removed
    folder: str | None = None  # acl
    readers: frozenset[str] | None = None  # acl
    seconds: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


class Truth:
    """Which documents each user may read, as the changes commit."""

    def __init__(self, documents: Iterable[str]) -> None:
        self.initial = {d: folder_of(d) for d in documents}
        self.changes: list[Change] = []
        self._cache: dict[tuple[frozenset[str], frozenset[int]], frozenset[str]] = {}
        self._lock = threading.Lock()

    def add(self, change: Change) -> Change:
        with self._lock:
            self.changes.append(change)
            self._cache.clear()
        return change

    def readable(self, principals: frozenset[str], applied: frozenset[int]) -> frozenset[str]:
        key = (principals, applied)
        got = self._cache.get(key)
        if got is not None:
            return got
        exist, readers, gone = dict(self.initial), dict(FOLDER_READERS), set()
        for i in sorted(applied):
            c = self.changes[i]
            if c.kind == "ingest":
                exist.update(c.docs)
            elif c.kind == "acl" and c.folder:
                readers[c.folder] = c.readers or frozenset()
            elif c.kind == "purge":
                gone.update(c.docs)
        got = frozenset(d for d, f in exist.items() if f and d not in gone and principals & readers.get(f, frozenset()))
        self._cache[key] = got
        return got

    def allowed(self, principals: frozenset[str], t0: float, t1: float) -> frozenset[str]:
        """What a search running from ``t0`` to ``t1`` may return: the documents readable in
        any state it could have read. The changes run one after another, so those states are
        the changes committed before ``t0``, then each change begun before ``t1`` applied in
        turn (with only the first and the last state, a search overlapping an ingest and the
        revocation after it was wrongly counted a leak for a new handbook document that bob
        could read between the two)."""
        applied = {i for i, c in enumerate(self.changes) if c.commit is not None and c.commit <= t0}
        out = self.readable(principals, frozenset(applied))
        for i, c in enumerate(self.changes):  # in the order they ran
            if c.begin <= t1 and i not in applied:
                applied.add(i)
                out |= self.readable(principals, frozenset(applied))
        return out

    def why(self, document_id: str, principals: frozenset[str], t0: float, t1: float) -> str:
        """Why a hit is a leak (for the report)."""
        known = dict(self.initial)
        for c in self.changes:
            if c.kind == "ingest":
                known.update(c.docs)
        if document_id not in known:
            return "unknown document"
        folder = known[document_id]
        if folder is None:
            return "no access rule (quarantined)"
        for c in self.changes:
            if c.kind == "purge" and document_id in c.docs and c.commit is not None and c.commit <= t0:
                return f"purged ({c.name}) before the search started"
            if c.kind == "ingest" and document_id in c.docs and c.begin > t1:
                return f"not yet ingested ({c.name} began after the search ended)"
            if (
                c.kind == "acl"
                and c.folder == folder
                and c.commit is not None
                and c.commit <= t0
                and principals & FOLDER_READERS[folder]
            ):
                return f"revoked ({c.name}) before the search started"
        return "outside the user's scopes"


# -- searchers ------------------------------------------------------------------------------
def _record(channel: str, worker: int, user: str, qi: int, fn: Callable[[], list[str]]) -> dict[str, Any]:
    t0, p0 = time.time(), time.perf_counter()
    docs: list[str] = []
    err = None
    try:
        docs = fn()
    except Exception as exc:  # counted, never raised: one run reports every failure
        err = f"{type(exc).__name__}: {str(exc)[:300]}"
    return {
        "ch": channel,
        "w": worker,
        "user": user,
        "q": qi,
        "t0": t0,
        "t1": time.time(),
        "ms": (time.perf_counter() - p0) * 1000,
        "docs": docs,
        "err": err,
    }


def _loop(
    channel: str,
    worker: int,
    end: float,
    one: Callable[[str, str], list[str]],
    sink: Callable[[dict], None],
    think_s: float,
) -> None:
    i = 0
    while time.time() < end:
        user, query = plan(worker, i)
        sink(_record(channel, worker, user, QUERIES.index(query), functools.partial(one, user, query)))
        i += 1
        if think_s:
            time.sleep(think_s)


def _searcher_process(argv: list[str]) -> int:
    """A searcher subprocess: ``retrieval.search`` from GOVRAG_* settings; prints ``ready``
    after a warm-up search, reads ``go <end epoch>`` on stdin, writes JSON lines to --out."""
    ap = argparse.ArgumentParser(prog="bench/load.py _searcher")
    ap.add_argument("--worker", type=int, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--think-ms", type=float, default=0.0)
    args = ap.parse_args(argv)
    from retrieval import User, search

    users = {name: User.from_claims(claims) for name, claims in USERS.items()}
    search(users["alice"], "warm up", k=1)
    print("ready", flush=True)
    line = sys.stdin.readline().split()
    if not line or line[0] != "go":
        return 2
    end = float(line[1])
    with open(args.out, "w") as f:

        def sink(rec: dict) -> None:
            f.write(json.dumps(rec) + "\n")
            f.flush()

        _loop(
            "process",
            args.worker,
            end,
            lambda u, q: [h.document_id for h in search(users[u], q, k=args.k)],
            sink,
            args.think_ms / 1000,
        )
    print("done", flush=True)
    return 0


def _token(user: str, ttl_s: float) -> str:
    import jwt

    now = int(time.time())
    return jwt.encode({**USERS[user], "iat": now, "exp": now + int(ttl_s)}, HS256_SECRET, algorithm="HS256")


# -- processes ------------------------------------------------------------------------------
def _proc_usage(pid: int) -> dict[str, Any] | None:
    try:
        rss = next(
            int(line.split()[1])
            for line in Path(f"/proc/{pid}/status").read_text().splitlines()
            if line.startswith("VmRSS:")
        )
        return {
            "pid": pid,
            "rss_mb": round(rss / 1024, 1),
            "fds": len(os.listdir(f"/proc/{pid}/fd")),
            "threads": len(os.listdir(f"/proc/{pid}/task")),
        }
    except (OSError, StopIteration, ValueError):
        return None


def _tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def _stop_process(proc: subprocess.Popen, timeout_s: float = 30.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


# -- the run --------------------------------------------------------------------------------
def summarize(records: list[dict[str, Any]], truth: Truth, load_start: float, load_end: float) -> dict[str, Any]:
    """Counts, errors, leaks and latency percentiles per channel, and the liveness facts that
    show the run could have caught a leak (forbidden documents were reachable)."""
    channels: dict[str, dict[str, Any]] = {}
    leaks: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    incoming = {d for c in truth.changes if c.kind == "ingest" for d in c.docs}
    purged = {d for c in truth.changes if c.kind == "purge" for d in c.docs}
    acl = next((c for c in truth.changes if c.kind == "acl"), None)
    ingest = next((c for c in truth.changes if c.kind == "ingest"), None)
    first_purge = min((c.begin for c in truth.changes if c.kind == "purge"), default=None)
    live = {
        "revoked_folder_hits_before_revoke": 0,
        "revoked_user_searches_after_revoke": 0,
        "incoming_hits_after_ingest": 0,
        "purged_hits_before_purge": 0,
        "eve_hits": 0,
    }
    for ch in CHANNELS:
        recs = [r for r in records if r["ch"] == ch]
        ms = [r["ms"] for r in recs if not r["err"]]
        n_leaks = n_err = 0
        for r in recs:
            if r["err"]:
                n_err += 1
                errors.append(r)
                continue
            p = principals_of(r["user"])
            allowed = truth.allowed(p, r["t0"], r["t1"])
            bad = [d for d in dict.fromkeys(r["docs"]) if d not in allowed]
            if bad:
                n_leaks += 1
                leaks.append({**r, "leaked": {d: truth.why(d, p, r["t0"], r["t1"]) for d in bad}})
            revoked_user = bool(p & FOLDER_READERS[REVOKE_FOLDER]) and not (p & REVOKED_READERS)
            if acl and revoked_user:
                if acl.begin > r["t1"] and any(folder_of(d) == REVOKE_FOLDER for d in r["docs"]):
                    live["revoked_folder_hits_before_revoke"] += 1
                if acl.commit and r["t0"] >= acl.commit:
                    live["revoked_user_searches_after_revoke"] += 1
            if ingest and ingest.commit and r["t0"] >= ingest.commit and incoming & set(r["docs"]):
                live["incoming_hits_after_ingest"] += 1
            if first_purge and r["t1"] < first_purge and purged & set(r["docs"]):
                live["purged_hits_before_purge"] += 1
            if r["user"] == "eve" and r["docs"]:
                live["eve_hits"] += 1
        in_window = [r for r in recs if load_start <= r["t0"] <= load_end]
        after = {c.name: sum(1 for r in recs if c.commit and r["t0"] >= c.commit) for c in truth.changes}
        channels[ch] = {
            "workers": len({r["w"] for r in recs}),
            "searches": len(recs),
            "errors": n_err,
            "leaks": n_leaks,
            "searches_per_s": round(len(in_window) / max(load_end - load_start, 1e-9), 2),
            "p50_ms": round(percentile(ms, 50), 1) if ms else None,
            "p95_ms": round(percentile(ms, 95), 1) if ms else None,
            "p99_ms": round(percentile(ms, 99), 1) if ms else None,
            "max_ms": round(max(ms), 1) if ms else None,
            "started_after_change": after,
            "by_user": {u: sum(1 for r in recs if r["user"] == u) for u in USERS},
        }
    all_ms = [r["ms"] for r in records if not r["err"]]
    total = {
        "searches": len(records),
        "errors": len(errors),
        "leaks": len(leaks),
        "p50_ms": round(percentile(all_ms, 50), 1) if all_ms else None,
        "p95_ms": round(percentile(all_ms, 95), 1) if all_ms else None,
        "p99_ms": round(percentile(all_ms, 99), 1) if all_ms else None,
    }
    return {
        "channels": channels,
        "total": total,
        "liveness": live,
        "leak_samples": leaks[:20],
        "error_samples": errors[:20],
    }


def run_load(
    *,
    backend: str = "lite-server",
    duration_s: float = 120.0,
    threads: int = 4,
    processes: int = 2,
    http_clients: int = 2,
    copies: int = 6,
    k: int = 10,
    milvus_uri: str | None = None,
    database_url: str | None = None,
    home: Path | None = None,
    json_out: Path | None = None,
    change_at: tuple[float, float, float, float] = (0.2, 0.4, 0.6, 0.75),
    think_ms: float = 0.0,
    torch_threads: int | None = None,
    keep: bool = False,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the load and return the result (also written to ``json_out``, default
    ``bench/results/load_<backend>.json``). Raises only when the setup fails; errors and leaks
    of the searches are counted in the result."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}")
    say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    t_setup = time.perf_counter()
    tmp = Path(home) if home else Path(tempfile.mkdtemp(prefix="govrag-load-"))
    tmp.mkdir(parents=True, exist_ok=True)
    gov_home = tmp / "home"
    started_pids: list[int] = []
    cleanup: list[Callable[[], None]] = []
    server = None
    timings: dict[str, float] = {}
    collection = f"load_{uuid.uuid4().hex[:10]}"
    try:
        # -- the vector store ----------------------------------------------------------------
        if backend == "milvus-server" and not milvus_uri:
            try:
                from testsupport.milvus_server import MilvusServer, unavailable_reason
            except ImportError as exc:
                raise RuntimeError(f"--backend milvus-server is not available: {exc}") from exc
            reason = unavailable_reason()
            if reason:
                raise RuntimeError(f"--backend milvus-server is not available: {reason}")
            t = time.perf_counter()
            server = MilvusServer(tmp / "milvus-server").start()
            cleanup.append(server.stop)
            timings["milvus_server_start_s"] = round(time.perf_counter() - t, 1)
            milvus_uri = server.uri
            say(f"milvus-server ready at {server.uri} in {timings['milvus_server_start_s']}s")
        from governance.settings import Settings
        from governance.stores import Stores

        settings = Settings(
            home=gov_home, database_url=database_url, milvus_uri=milvus_uri, policy=SAMPLE_POLICY, collection=collection
        )
        env = {key: v for key, v in os.environ.items() if not key.startswith("GOVRAG_")}
        env.update(
            GOVRAG_HOME=str(gov_home),
            GOVRAG_POLICY=str(SAMPLE_POLICY),
            GOVRAG_COLLECTION=collection,
            GOVRAG_JWT_HS256_SECRET=HS256_SECRET,
            GOVRAG_API_RATE_LIMIT="0",
            HF_HUB_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
            PYTHONPATH=os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p),
        )
        if torch_threads:
            # OMP_NUM_THREADS for every process started here; this one sets torch directly.
            env["OMP_NUM_THREADS"] = str(torch_threads)
            import torch

            torch.set_num_threads(torch_threads)
        if milvus_uri:
            env["GOVRAG_MILVUS_URI"] = milvus_uri
        if database_url:
            env["GOVRAG_DATABASE_URL"] = database_url

        # -- corpus and baseline ingest ----------------------------------------------------
        roots = write_corpus(tmp / "corpus", copies)
        from embedding import make_embedder
        from ingest.pipeline.run import Ingestor
        from retrieval.search import Retriever

        t = time.perf_counter()
        lite_pid = None
        if backend == "lite-server":
            from governance.milvus_process.local import running_server, stop_server

            cleanup.append(lambda: stop_server(gov_home))
        stores = Stores.open(settings)  # lite-server: starts this home's milvus-lite server
        cleanup.append(stores.close)
        if backend == "lite-server":
            lite = running_server(gov_home)
            if lite:
                lite_pid = lite.pid
                started_pids.append(lite.pid)
        elif server is None:  # a Milvus we did not start: drop our collection
            cleanup.append(lambda: stores.index.drop())
        # The ingest has its own embedder, as an ingest job would; the searcher threads share one.
        ingest_embedder = make_embedder(settings)
        ingestor = Ingestor(stores, lambda: ingest_embedder)
        base = ingestor.ingest_paths([roots["base"]])
        archive = ingestor.ingest_paths([roots["archive"]])
        timings["baseline_ingest_s"] = round(time.perf_counter() - t, 1)
        from governance.catalog.models import Document, Scope
        from governance.catalog.statuses import DocumentStatus

        with stores.catalog.session() as s:
            documents = [d.id for d in s.query(Document).filter(Document.status == DocumentStatus.ACTIVE)]
            handbook_scope = s.get(Scope, s.get(Document, "pdf:handbook/holidays-and-leave.pdf").scope_id)
            handbook_key = handbook_scope.key
        chunks = stores.index.count()
        say(
            f"baseline: {base.new} + {archive.new} documents, {base.quarantined} quarantined, {chunks} chunks "
            f"in {timings['baseline_ingest_s']}s"
        )
        truth = Truth(documents)
        archive_origin = f"path:{roots['archive'].resolve()}"
        archive_ids = stores.catalog.documents.select_documents(source=archive_origin)
        purge_one = "pdf:finance/archive/forecast-2025.pdf"
        assert purge_one in archive_ids and len(archive_ids) == len(_archive_docs()), archive_ids

        # -- searcher processes and the HTTP service (started together, they load in parallel)
        t = time.perf_counter()
        logs = tmp / "logs"
        logs.mkdir(exist_ok=True)
        port = free_port()
        with open(logs / "api.log", "ab") as api_log:
            api = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "govrag.cli.main",
                    "api",
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--log-level",
                    "warning",
                ],
                env=env,
                cwd=str(REPO),
                stdin=subprocess.DEVNULL,
                stdout=api_log,
                stderr=subprocess.STDOUT,
            )
        started_pids.append(api.pid)
        cleanup.append(lambda: _stop_process(api))
        workers: list[tuple[subprocess.Popen, Path]] = []
        for w in range(processes):
            out = tmp / f"process-{w}.jsonl"
            with open(logs / f"process-{w}.log", "ab") as err:
                proc = subprocess.Popen(
                    [
                        sys.executable,
                        str(Path(__file__).resolve()),
                        "_searcher",
                        "--worker",
                        str(w),
                        "--out",
                        str(out),
                        "--k",
                        str(k),
                        "--think-ms",
                        str(think_ms),
                    ],
                    env=env,
                    cwd=str(REPO),
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=err,
                    text=True,
                )
            started_pids.append(proc.pid)
            cleanup.append(lambda proc=proc: _stop_process(proc))
            workers.append((proc, out))
        # In-process searchers: their own stores, one shared Retriever and the embedder.
        search_stores = Stores.open(settings)
        cleanup.append(search_stores.close)
        embedder = make_embedder(settings)
        retriever = Retriever(search_stores, lambda: embedder)
        from governance.identity import User

        users = {name: User.from_claims(c) for name, c in USERS.items()}
        retriever.search(users["alice"], "warm up", k=1)
        import httpx

        base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 300
        tokens: dict[str, str] = {}
        while True:
            if api.poll() is not None:
                raise RuntimeError(f"govrag api serve exited with {api.returncode}:\n{_tail(logs / 'api.log')}")
            try:
                if httpx.get(f"{base_url}/readyz", timeout=5).status_code == 200:
                    tokens = {u: _token(u, duration_s + 900) for u in USERS}
                    r = httpx.post(
                        f"{base_url}/v1/search",
                        json={"query": "warm up", "k": 1},
                        headers={"Authorization": f"Bearer {tokens['alice']}"},
                        timeout=120,
                    )
                    if r.status_code == 200:
                        break
                    say(f"warm-up search: {r.status_code} {r.text[:200]}")
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"govrag api serve not ready in 300 s:\n{_tail(logs / 'api.log')}")
            time.sleep(0.5)
        for w, (proc, _) in enumerate(workers):
            line = proc.stdout.readline() if proc.stdout else ""
            if line.strip() != "ready":
                proc.wait(30)
                raise RuntimeError(
                    f"searcher process {w} did not start ({proc.returncode}):\n{_tail(logs / f'process-{w}.log')}"
                )
        timings["searchers_ready_s"] = round(time.perf_counter() - t, 1)
        timings["setup_s"] = round(time.perf_counter() - t_setup, 1)
        say(
            f"searchers ready in {timings['searchers_ready_s']}s: {threads} threads, {processes} processes, "
            f"{http_clients} HTTP clients; load for {duration_s:.0f}s"
        )

        # -- the load window -----------------------------------------------------------------
        records: list[dict[str, Any]] = []
        sink = records.append  # list.append is atomic
        usage_pids = {
            "harness": os.getpid(),
            "api": api.pid,
            **{f"process-{w}": p.pid for w, (p, _) in enumerate(workers)},
        }
        if lite_pid:
            usage_pids["milvus-lite"] = lite_pid
        usage_before = {name: _proc_usage(pid) for name, pid in usage_pids.items()}
        loadavg_start = " ".join(f"{x:.2f}" for x in os.getloadavg())
        load_start = time.time()
        load_end = load_start + duration_s
        for proc, _ in workers:
            assert proc.stdin is not None
            proc.stdin.write(f"go {load_end}\n")
            proc.stdin.flush()

        def thread_search(u: str, q: str) -> list[str]:
            return [h.document_id for h in retriever.search(users[u], q, k=k)]

        def http_worker(w: int) -> None:
            with httpx.Client(base_url=base_url, timeout=120) as client:

                def one(u: str, q: str) -> list[str]:
                    r = client.post(
                        "/v1/search", json={"query": q, "k": k}, headers={"Authorization": f"Bearer {tokens[u]}"}
                    )
                    if r.status_code != 200:
                        raise RuntimeError(f"HTTP {r.status_code}: {r.text[:200]}")
                    return [h["document_id"] for h in r.json()["hits"]]

                _loop("http", w, load_end, one, sink, think_ms / 1000)

        pool = [
            threading.Thread(
                target=_loop,
                args=("thread", w, load_end, thread_search, sink, think_ms / 1000),
                name=f"load-thread-{w}",
                daemon=True,
            )
            for w in range(threads)
        ]
        pool += [
            threading.Thread(target=http_worker, args=(w,), name=f"load-http-{w}", daemon=True)
            for w in range(http_clients)
        ]
        for th in pool:
            th.start()

        def change(kind: str, name: str, fn: Callable[[Change], None], **kw: Any) -> Change:
            c = truth.add(Change(kind=kind, name=name, begin=time.time(), **kw))
            p0 = time.perf_counter()
            try:
                fn(c)
                c.commit = time.time()
            except Exception as exc:
                c.error = f"{type(exc).__name__}: {exc}"
            c.seconds = round(time.perf_counter() - p0, 3)
            say(f"  {name}: {c.seconds}s" + (f" FAILED {c.error}" if c.error else ""))
            return c

        def do_ingest(c: Change) -> None:
            summary = ingestor.ingest_paths([roots["incoming"]])
            c.detail = {"new": summary.new, "quarantined": summary.quarantined}
            if summary.new != len(c.docs):
                raise RuntimeError(f"ingest made {summary.new} documents, expected {len(c.docs)}")

        def do_revoke(c: Change) -> None:
            from governance.contracts import AccessScope

            scope_id, changed = stores.catalog.scopes.upsert_scope(
                AccessScope(key=handbook_key, layers=[sorted(REVOKED_READERS)], description="load bench: eng revoked"),
                actor="load-bench",
            )
            c.detail = {"scope_id": scope_id, "scope": handbook_key, "changed": changed}
            if not changed:
                raise RuntimeError("upsert_scope reported no change")

        def do_purge(c: Change, **selector: str) -> None:
            from governance import purge as purging

            ids = purging.select(stores.catalog, **selector)
            if set(ids) != set(c.docs):
                raise RuntimeError(f"purge selected {ids}, expected {sorted(c.docs)}")
            report = purging.purge_documents(
                stores.catalog,
                stores.index,
                ids,
                reason=f"load bench {selector}",
                selector=selector,
                actor="load-bench",
            )
            c.detail = {
                "documents": len(report.documents),
                "vectors_deleted": report.vectors_deleted,
                "verified": report.verified,
            }
            if not report.verified or sorted(report.documents) != sorted(ids):
                raise RuntimeError(f"purge not verified: {report.model_dump()}")

        incoming_ids = {f"pdf:{d.path}": folder_of(f"pdf:{d.path}") for d in _incoming_docs()}
        plan_changes: list[tuple[float, Callable[[], Change]]] = [
            (change_at[0], lambda: change("ingest", "ingest", do_ingest, docs=incoming_ids)),
            (change_at[1], lambda: change("acl", "revoke", do_revoke, folder=REVOKE_FOLDER, readers=REVOKED_READERS)),
            (
                change_at[2],
                lambda: change(
                    "purge",
                    "purge_document",
                    lambda c: do_purge(c, document=purge_one),
                    docs={purge_one: folder_of(purge_one)},
                ),
            ),
            (
                change_at[3],
                lambda: change(
                    "purge",
                    "purge_source",
                    lambda c: do_purge(c, source=archive_origin),
                    docs={d: folder_of(d) for d in archive_ids if d != purge_one},
                ),
            ),
        ]
        for frac, run_change in plan_changes:
            wait = load_start + frac * duration_s - time.time()
            if wait > 0:
                time.sleep(wait)
            run_change()
        if load_end - 1 > time.time():
            time.sleep(load_end - 1 - time.time())
        usage_after = {name: _proc_usage(pid) for name, pid in usage_pids.items()}  # all still running
        for th in pool:
            th.join(max(0.0, load_end - time.time()) + 180)
        hung = [th.name for th in pool if th.is_alive()]
        for w, (proc, out) in enumerate(workers):
            try:
                proc.communicate(timeout=max(0.0, load_end - time.time()) + 180)
            except subprocess.TimeoutExpired:
                hung.append(f"process-{w}")
                proc.kill()
                proc.communicate()
            if proc.returncode != 0:
                sink(
                    {
                        "ch": "process",
                        "w": w,
                        "user": "-",
                        "q": -1,
                        "t0": load_end,
                        "t1": load_end,
                        "ms": 0.0,
                        "docs": [],
                        "err": f"searcher process exited with {proc.returncode}: {_tail(logs / f'process-{w}.log', 5)}",
                    }
                )
            if out.exists():
                records.extend(json.loads(line) for line in out.read_text().splitlines() if line.strip())
        load_stop = time.time()
        say(f"load done: {len(records)} searches in {load_stop - load_start:.1f}s")

        # -- results -------------------------------------------------------------------------
        result: dict[str, Any] = {
            "benchmark": "load",
            "backend": backend,
            "milvus_uri": milvus_uri or "milvus-lite server under GOVRAG_HOME",
            "catalog": "postgresql" if database_url and database_url.startswith("postgres") else "sqlite",
            "config": {
                "duration_s": duration_s,
                "threads": threads,
                "processes": processes,
                "http_clients": http_clients,
                "copies": copies,
                "k": k,
                "think_ms": think_ms,
                "torch_threads": torch_threads or os.environ.get("OMP_NUM_THREADS") or "torch default",
                "users": list(USERS),
                "queries": list(QUERIES),
            },
            "corpus": {
                "documents": len(documents),
                "chunks_before": chunks,
                "quarantined": base.quarantined + archive.quarantined,
            },
            "timings": timings,
            "load": {
                "seconds": round(load_stop - load_start, 1),
                "window_s": duration_s,
                "loadavg_at_start": loadavg_start,
                "loadavg_at_end": " ".join(f"{x:.2f}" for x in os.getloadavg()),
            },
            "changes": [
                {
                    "name": c.name,
                    "kind": c.kind,
                    "begin_s": round(c.begin - load_start, 2),
                    "commit_s": None if c.commit is None else round(c.commit - load_start, 2),
                    "seconds": c.seconds,
                    "documents": sorted(c.docs),
                    "detail": c.detail,
                    "error": c.error,
                }
                for c in truth.changes
            ],
            "hung_searchers": hung,
            **summarize(records, truth, load_start, load_end),
            "usage": {"before": usage_before, "after": usage_after},
        }
    except BaseException:
        for fn in reversed(cleanup):
            with contextlib.suppress(Exception):
                fn()
        cleanup.clear()
        raise
    finally:
        errors_at_teardown = []
        for fn in reversed(cleanup):
            try:
                fn()
            except Exception as exc:
                errors_at_teardown.append(f"{type(exc).__name__}: {exc}")
        # A process told to stop may still be unwinding on a loaded machine (seen in a CI
        # dry run: one left at the instant of the check); "left" means alive 20 s later.
        deadline = time.monotonic() + 20
        while any(process_alive(pid) for pid in started_pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = [pid for pid in started_pids if process_alive(pid)]
        if server is not None:
            left += server.processes()
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)
    result["processes_left"] = left
    result["teardown_errors"] = errors_at_teardown
    result["machine"] = machine_details()
    if keep:
        result["home"] = str(tmp)
    out_path = json_out or RESULTS / f"load_{backend}.json"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    result["json"] = str(out_path)
    return result


def format_result(result: dict[str, Any]) -> str:
    lines = [
        f"backend {result['backend']}: {result['total']['searches']} searches, "
        f"{result['total']['errors']} errors, {result['total']['leaks']} leaks "
        f"({result['load']['seconds']} s of load, setup {result['timings'].get('setup_s')} s)"
    ]
    lines.append(
        f"{'channel':<8} {'workers':>7} {'searches':>8} {'/s':>6} {'errors':>6} {'leaks':>5} "
        f"{'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}"
    )
    for ch, s in result["channels"].items():
        lines.append(
            f"{ch:<8} {s['workers']:>7} {s['searches']:>8} {s['searches_per_s']:>6} {s['errors']:>6} "
            f"{s['leaks']:>5} {s['p50_ms']!s:>8} {s['p95_ms']!s:>8} {s['p99_ms']!s:>8} {s['max_ms']!s:>8}"
        )
    for c in result["changes"]:
        lines.append(
            f"  {c['name']:<15} begin {c['begin_s']:>6}s commit {c['commit_s']!s:>6}s "
            f"({c['seconds']} s) {c['error'] or ''}"
        )
    lines.append(f"liveness: {result['liveness']}")
    if result["processes_left"]:
        lines.append(f"processes left: {result['processes_left']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_searcher"]:
        return _searcher_process(argv[1:])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", choices=BACKENDS, default="lite-server")
    ap.add_argument("--milvus-uri", help="an already running Milvus (with --backend milvus-server)")
    ap.add_argument("--database-url", help="catalog URL (default: SQLite under the home)")
    ap.add_argument("--duration", type=float, default=120.0, help="seconds of load")
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--http", type=int, default=2, help="HTTP client threads")
    ap.add_argument("--copies", type=int, default=6, help="copies of the sample corpus")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--think-ms", type=float, default=0.0, help="pause between a searcher's searches")
    ap.add_argument(
        "--torch-threads",
        type=int,
        help="torch intra-op threads in every process (OMP_NUM_THREADS); default: torch's own (one per core)",
    )
    ap.add_argument("--home", type=Path, help="working directory (default: a fresh temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the working directory")
    ap.add_argument("--json", type=Path, help="result file (default bench/results/load_<backend>.json)")
    args = ap.parse_args(argv)
    if args.milvus_uri and args.backend != "milvus-server":
        ap.error("--milvus-uri goes with --backend milvus-server")
    result = run_load(
        backend=args.backend,
        duration_s=args.duration,
        threads=args.threads,
        processes=args.processes,
        http_clients=args.http,
        copies=args.copies,
        k=args.k,
        milvus_uri=args.milvus_uri,
        database_url=args.database_url,
        home=args.home,
        json_out=args.json,
        think_ms=args.think_ms,
        torch_threads=args.torch_threads,
        keep=args.keep,
    )
    print(format_result(result))
    print(f"written to {result['json']}")
    ok = (
        result["total"]["errors"] == 0
        and result["total"]["leaks"] == 0
        and not result["processes_left"]
        and all(c["error"] is None for c in result["changes"])
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
