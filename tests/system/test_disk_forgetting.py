"""Nothing unredacted or forgotten stays on disk.

A Slack export zip carries planted secrets (an AWS key, a GitHub token, a password) and the
personal data of one subject (email, display name, a phrase only she wrote, in a thread of
her own, a reply in someone else's thread, a DM and a group DM). It is ingested through the
real CLI (redaction on, and off: ``tag`` keeps the text), once through a real Dagster
materialization, and once by a process killed mid-run; the document that carries the secrets
is purged and the subject erased (while another connection holds the catalog open, as a
search service would), and then every file under GOVRAG_HOME, the temp folder govrag's
processes used, and DAGSTER_HOME is read byte by byte — recursively, hidden files, SQLite
``-wal``/``-shm`` files and the Milvus Lite data included; Parquet and Arrow files (which
compress) are decoded too.

Allowed to remain, exactly as docs/governance.md names it: the erased principal (her email)
in the forgotten-subjects record, the audit log and the scope memberships the source still
states — checked page by page in the catalog file (SQLite ``dbstat``). Nothing else: no
secret, no display name, no phrase anywhere, and her email nowhere else.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from testsupport.paths import REPO
from testsupport.sources_fixtures import SConv, SUser, add_messages, date_of, msg, ts_of, write_slack_export

SECRETS = (
    "AKIAQ3EXAMPLEPLANT7Z",  # AWS access key id
    "ghp_PlantedGithubToken0123456789abcdefXY",  # GitHub token
    "Hunter2-Planted-Secret",
)  # the value of a password assignment
# What the grep looks for: the start of each secret, so that a secret cut in half (a title
# snippet) is found too.
SECRET_NEEDLES = tuple(s[:16] for s in SECRETS)
SUBJECT_EMAIL = "zelda.q@acme-disk.example"
SUBJECT = f"user:{SUBJECT_EMAIL}"
SUBJECT_NAME = "zquartermain"  # her Slack display name
SUBJECT_PHRASE = "periwinkle-narwhal-sonata"  # only she wrote it
KEEP_PHRASE = "cobalt-heron-ledger"  # bob's words: must survive the erasure
PII = (SUBJECT_NAME, SUBJECT_PHRASE, SUBJECT_EMAIL)
# docs/governance.md, "What the catalog keeps after a purge": the erased principal stays in
# the forgotten-subjects record, the audit log and the scope memberships; nowhere else.
EMAIL_MAY_STAY_IN = frozenset({"forgotten_subjects", "audit_events", "scope_principals"})
SECRET_THREAD = 100.0  # offsets of the thread roots (see _export)
HER_THREAD = 200.0
SHARED_THREAD = 300.0
DM_DAY = 400.0


def _export(dest: Path) -> Path:
    """The export zip: #ops holds bob's thread with the secrets (its root, which the thread's
    title quotes, included); #general her own thread and bob's thread she replied in; a DM
    and a group DM where both write."""
    users = [
        SUser("U1", SUBJECT_NAME, SUBJECT_EMAIL, team="T0DISK"),
        SUser("U2", "bobbyops", "bob@acme-disk.example", team="T0DISK"),
    ]
    ops = SConv("C2", "ops", "public", ["U1", "U2"])
    add_messages(
        ops,
        [
            msg(
                "U2",
                f"Rotating the deploy credentials: {SECRETS[0]} and {SECRETS[1]}",
                SECRET_THREAD,
                thread_ts=ts_of(SECRET_THREAD),
                reply_count=1,
            ),
            msg(
                "U2",
                f"db config says password={SECRETS[2]} until Friday",
                SECRET_THREAD + 5,
                thread_ts=ts_of(SECRET_THREAD),
                parent_user_id="U2",
            ),
        ],
    )
    general = SConv("C1", "general", "public", ["U1", "U2"])
    add_messages(
        general,
        [
            msg(
                "U1",
                f"My offsite plan is the {SUBJECT_PHRASE} retreat",
                HER_THREAD,
                thread_ts=ts_of(HER_THREAD),
                reply_count=1,
            ),
            msg("U1", "and I bring the snacks", HER_THREAD + 5, thread_ts=ts_of(HER_THREAD), parent_user_id="U1"),
            msg(
                "U2",
                f"Which venue for the {KEEP_PHRASE} offsite?",
                SHARED_THREAD,
                thread_ts=ts_of(SHARED_THREAD),
                reply_count=1,
            ),
            msg(
                "U1",
                f"I vote for the {SUBJECT_PHRASE} hall",
                SHARED_THREAD + 5,
                thread_ts=ts_of(SHARED_THREAD),
                parent_user_id="U2",
            ),
        ],
    )
    dm = SConv("D1", "D1", "im", ["U1", "U2"])
    add_messages(
        dm,
        [
            msg("U2", f"lunch after the {KEEP_PHRASE} review?", DM_DAY),
            msg("U1", f"sure, {SUBJECT_PHRASE} cafe", DM_DAY + 5),
        ],
    )
    # Slack names a group DM (and its folder) after its members' handles.
    group = SConv("G9", f"mpdm-{SUBJECT_NAME}--bobbyops-1", "mpim", ["U1", "U2"])
    add_messages(
        group,
        [
            msg("U2", f"agenda for the {KEEP_PHRASE} sync", DM_DAY),
            msg("U1", f"adding {SUBJECT_PHRASE} to it", DM_DAY + 5),
        ],
    )
    return write_slack_export(
        dest / "acme-disk-slack",
        users,
        [ops, general, dm, group],
        as_zip=True,
        team_info={"id": "T0DISK", "name": "Acme Disk", "domain": "acme-disk"},
    )


def _policy(dest: Path, action: str) -> Path:
    path = dest / f"policy-{action}.yaml"
    path.write_text(
        textwrap.dedent(f"""\
        version: 1
        retention:
          - match: {{}}
            keep_for: 1095d
        workspaces:
          default: source-members
        redaction:
          - match: {{}}
            action: {action}
        """)
    )
    return path


# -- reading every byte ----------------------------------------------------------------------
def _decoded(path: Path, data: bytes) -> Iterator[tuple[str, bytes]]:
    """Other readings of a file whose bytes may hide text: Parquet and Arrow (compressed
    column pages), gzip, zip."""
    try:
        if data[:4] == b"PAR1":
            import pyarrow.parquet as pq

            yield "parquet", _table_text(pq.read_table(io.BytesIO(data)))
        elif data[:6] == b"ARROW1" or data[:4] == b"\xff\xff\xff\xff":
            import pyarrow as pa

            reader = (
                pa.ipc.open_file(io.BytesIO(data)) if data[:6] == b"ARROW1" else pa.ipc.open_stream(io.BytesIO(data))
            )
            yield "arrow", _table_text(reader.read_all())
        elif data[:2] == b"\x1f\x8b":
            yield "gzip", gzip.decompress(data)
        elif data[:4] == b"PK\x03\x04":
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                for name in zf.namelist():
                    yield f"zip:{name}", zf.read(name)
    except Exception as exc:
        yield f"undecodable ({type(exc).__name__})", b""


def _table_text(table) -> bytes:  # type: ignore[no-untyped-def]
    import pyarrow as pa

    out = []
    for col in table.columns:
        t = col.type
        if (pa.types.is_list(t) or pa.types.is_fixed_size_list(t)) and pa.types.is_floating(t.value_type):
            continue  # vectors
        out.append(json.dumps(col.to_pylist(), default=str, ensure_ascii=False))
    return "\n".join(out).encode("utf-8", "surrogatepass")


def _files(root: Path) -> Iterator[Path]:
    for dirpath, _dirs, files in os.walk(root, followlinks=False):
        for f in files:
            p = Path(dirpath) / f
            if p.is_file() and not p.is_symlink():
                yield p


def _sqlite_page_owners(db: Path, with_wal: bool) -> tuple[int, dict[int, str]]:
    """(page size, page number -> the table that page belongs to) of a SQLite file, read
    from a copy (the evidence stays untouched); free pages are in no table."""
    work = db.parent.parent / f".inspect-{db.name}-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        shutil.copy(db, work / db.name)
        if with_wal and Path(f"{db}-wal").exists():
            shutil.copy(f"{db}-wal", work / f"{db.name}-wal")
        conn = sqlite3.connect(work / db.name)
        try:
            table_of = dict(conn.execute("SELECT name, tbl_name FROM sqlite_master"))
            owners = {int(p): table_of.get(n, n) for p, n in conn.execute("SELECT pageno, name FROM dbstat")}
            page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
        finally:
            conn.close()
        return page_size, owners
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _allowed_in_catalog(path: Path, data: bytes, needle: bytes, catalog: Path) -> list[int]:
    """Offsets of ``needle`` in the catalog file (or its WAL) that lie in a page of a table
    that may keep the erased principal; every other hit is a leak."""
    if path == catalog:
        page_size, owners = _sqlite_page_owners(catalog, with_wal=False)
        page_of = lambda off: off // page_size + 1  # noqa: E731
    elif path == Path(f"{catalog}-wal"):
        page_size, owners = _sqlite_page_owners(catalog, with_wal=True)

        def page_of(off: int) -> int:  # WAL: a 32-byte header, then frames of 24 + page_size bytes
            frame = (off - 32) // (24 + page_size)
            start = 32 + frame * (24 + page_size)
            return int.from_bytes(data[start : start + 4], "big") if off >= start + 24 else -1
    else:
        return []
    return [off for off in _offsets(data.lower(), needle) if owners.get(page_of(off)) in EMAIL_MAY_STAY_IN]


def _offsets(data: bytes, needle: bytes) -> list[int]:
    out, i = [], data.find(needle)
    while i >= 0:
        out.append(i)
        i = data.find(needle, i + 1)
    return out


def grep(roots: list[Path], needles: tuple[str, ...], *, catalog: Path | None = None) -> list[str]:
    """Every place a needle survives (case-insensitive), as ``file [reading]: needle (n)``.
    The subject's email is allowed only in the catalog pages of ``EMAIL_MAY_STAY_IN``."""
    found = []
    for root in roots:
        for path in _files(root):
            try:
                data = path.read_bytes()
            except OSError:  # removed while we walk
                continue
            for reading, content in [("bytes", data), *_decoded(path, data)]:
                low = content.lower()
                for needle in needles:
                    n = needle.lower().encode()
                    hits = _offsets(low, n)
                    if hits and needle == SUBJECT_EMAIL and catalog is not None and reading == "bytes":
                        allowed = set(_allowed_in_catalog(path, content, n, catalog))
                        hits = [h for h in hits if h not in allowed]
                    if hits:
                        found.append(f"{path.relative_to(root.parent)} [{reading}]: {needle} ({len(hits)})")
    return found


# -- running govrag ---------------------------------------------------------------------------
@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, embedder) -> Iterator[Path]:
    """GOVRAG_HOME with the default stores (catalog SQLite and the milvus-lite server under
    it), TMPDIR pointed at a folder of the test, and the session's embedder."""
    from governance.milvus_process.local import stop_server
    from governance.settings import get_settings

    home = tmp_path / "home"
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr("tempfile.tempdir", str(tmp))
    monkeypatch.setattr("embedding.make_embedder", lambda settings=None: embedder)
    get_settings.cache_clear()
    try:
        yield home
    finally:
        stop_server(home)


def cli(*args: str) -> dict:
    from typer.testing import CliRunner

    from governance.settings import get_settings
    from govrag.cli.main import app

    get_settings.cache_clear()
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, (args, result.output, result.exception)
    return json.loads(result.stdout)


def _doc_id(channel: str, offset: float) -> str:
    return f"slack:T0DISK:{channel}:{ts_of(offset)}"


def _index_files_without_data(home: Path) -> list[str]:
    """Milvus Lite index files whose data file is gone (they hold the removed rows' vectors)."""
    out = []
    for index_dir in (home / "milvus").rglob("indexes"):
        stems = {p.stem for p in (index_dir.parent / "data").glob("*.parquet")}
        out += [p.name for p in index_dir.iterdir() if p.name.split(".")[0] not in stems]
    return out


def _roots(tmp_path: Path, *extra: Path) -> list[Path]:
    return [tmp_path / "home", tmp_path / "tmp", *extra]


@pytest.mark.parametrize("action", ["redact", "tag"])
def test_purge_and_erasure_leave_no_secret_or_personal_data_on_disk(home, tmp_path, monkeypatch, action):
    export = _export(tmp_path / "src")
    monkeypatch.setenv("GOVRAG_POLICY", str(_policy(tmp_path, action)))
    catalog = home / "catalog.sqlite3"

    summary = cli("ingest", str(export))
    assert summary["new"] == 5 and summary["quarantined"] == 0, summary
    after_ingest = grep(_roots(tmp_path), SECRET_NEEDLES, catalog=catalog)
    if action == "redact":
        assert summary["redactions"], summary
        assert not after_ingest, "secrets on disk right after a redacting ingest:\n" + "\n".join(after_ingest)
    else:  # tag keeps the text: the secrets are in the stores, so the grep must see them
        assert summary["tagged"] == 1 and any("milvus" in hit for hit in after_ingest), after_ingest
    assert grep(_roots(tmp_path), (SUBJECT_PHRASE,)), "the grep cannot see the subject's words"

    # Another process (a search service) has the catalog open all along: SQLite then cannot
    # drop its write-ahead log when the purge's connection closes, and the log keeps pages.
    service = sqlite3.connect(catalog)
    service.execute("SELECT count(*) FROM documents").fetchall()
    try:
        purged = cli("purge", "--document", _doc_id("C2", SECRET_THREAD))
        assert purged["verified"] and len(purged["documents"]) == 1
        erased = cli("purge", "--subject", SUBJECT)
        left = grep(_roots(tmp_path), (*SECRET_NEEDLES, *PII), catalog=catalog)
        assert not left, "left on disk after purge and erasure, catalog open elsewhere:\n" + "\n".join(left)
    finally:
        service.close()
    assert erased["documents"] == [_doc_id("C1", HER_THREAD)]
    day = date_of(ts_of(DM_DAY))
    assert sorted(erased["reindexed"]) == sorted(
        [_doc_id("C1", SHARED_THREAD), f"slack:T0DISK:D1:day:{day}", f"slack:T0DISK:G9:day:{day}"]
    )

    left = grep(_roots(tmp_path), (*SECRET_NEEDLES, *PII), catalog=catalog)
    assert not left, "left on disk after purge and erasure:\n" + "\n".join(left)
    assert grep(_roots(tmp_path), (KEEP_PHRASE,)), "the erasure removed more than the subject's words"
    assert not (home / "work").exists() or not any((home / "work").iterdir())
    assert not _index_files_without_data(home)


CRASHING_INGEST = textwrap.dedent("""
    import os, signal, sys
    import embedding

    def killed(*args, **kwargs):  # the run dies the moment it needs the embedder: after extraction
        os.kill(os.getpid(), signal.SIGKILL)

    embedding.make_embedder = killed
    from govrag.cli.main import main

    sys.argv = ["govrag", "ingest", sys.argv[1]]
    main()
""")


def test_a_killed_ingest_leaves_its_extraction_and_doctor_repair_removes_it(home, tmp_path, monkeypatch):
    export = _export(tmp_path / "src")
    monkeypatch.setenv("GOVRAG_POLICY", str(_policy(tmp_path, "redact")))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", CRASHING_INGEST, str(export)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == -9, proc.stderr[-3000:]
    left = grep(_roots(tmp_path), SECRET_NEEDLES)
    assert left and all("/work/" in hit for hit in left), left  # the export in clear, and only that

    report = cli("doctor", "--repair")
    assert report["repair"]["work_folders_removed"] == 1, report
    left = grep(_roots(tmp_path), SECRET_NEEDLES, catalog=home / "catalog.sqlite3")
    assert not left, "left on disk after doctor --repair:\n" + "\n".join(left)


def test_dagster_ingest_then_purge_and_erasure_leave_nothing_in_either_home(home, tmp_path, monkeypatch):
    """One real materialization of the ingest job's assets on an instance under a temporary
    DAGSTER_HOME; the text is tagged, not redacted, so the secrets do reach the stores."""
    import dagster as dg

    from dagster_project.defs.assets import ingest_assets
    from dagster_project.defs.resources import DropFolderResource, EmbedderResource, GovragStoresResource

    drop = tmp_path / "drop"
    export = _export(tmp_path / "src")
    drop.mkdir()
    shutil.copy(export, drop / export.name)
    monkeypatch.setenv("GOVRAG_POLICY", str(_policy(tmp_path, "tag")))
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    # Entered, so Dagster's definitions-state storage is this instance's, not one an earlier
    # test left behind in the context (its instance gone: "undefined DagsterInstance weakref").
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("sources", [export.name])
        result = dg.materialize(
            ingest_assets,
            partition_key=export.name,
            instance=instance,
            resources={
                "stores": GovragStoresResource(),
                "embedder": EmbedderResource(),
                "drop_folder": DropFolderResource(drop_dir=str(drop), settle_seconds=0),
            },
        )
        assert result.success
    roots = _roots(tmp_path, dagster_home)
    assert any("milvus" in hit for hit in grep(roots, SECRET_NEEDLES)), "the tagged secrets should be indexed"

    cli("purge", "--document", _doc_id("C2", SECRET_THREAD))
    cli("purge", "--subject", SUBJECT)
    left = grep(roots, (*SECRET_NEEDLES, *PII), catalog=home / "catalog.sqlite3")
    assert not left, "left on disk after purge and erasure:\n" + "\n".join(left)
