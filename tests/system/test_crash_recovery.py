"""Invariant 3: kill -9 at any point of an ingest or a purge leaves a state the next run
repairs — no duplicates, no orphan vectors, no lost documents (at least 20 kill points)."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from testsupport.paths import SAMPLE_POLICY

pytestmark = pytest.mark.slow

WORKER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from governance.stores import Stores
    from embedding.local import LocalEmbedder
    from ingest.pipeline.run import Ingestor
    from governance import purge
    stores = Stores.open()
    embedder = LocalEmbedder()
    embedder.embed(["warm"])
    print("ready", flush=True)
    if sys.argv[1] == "ingest":
        Ingestor(stores, lambda: embedder).ingest_paths([Path(sys.argv[2])])
    else:
        ids = purge.select(stores.catalog, expired=True)
        purge.purge_documents(stores.catalog, stores.index, ids, reason="expired", selector={"expired": True})
    print("done", flush=True)
""")


def _run(env, *args, kill_after: float | None):
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    line = proc.stdout.readline()
    assert line.strip() == "ready", proc.stderr.read()
    if kill_after is None:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        return True
    time.sleep(kill_after)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return False


def _add_documents(corpus: Path, sample: Path, n: int) -> None:
    """New documents and a changed one, so every attempt has work to be killed in."""
    from govrag.sample_corpus import DOCS, SampleDoc, _write_pdf

    for doc in DOCS[:4]:
        _write_pdf(corpus / doc.path.replace("/", f"/batch{n}/", 1), doc)
    hb = next(d for d in DOCS if d.path.startswith("handbook/"))
    _write_pdf(
        corpus / hb.path, SampleDoc(hb.path, hb.title, hb.sections + ((f"Update {n}", f"Revision number {n}."),))
    )


def _check(stores, catalog_docs_expected: int | None = None):
    from sqlalchemy import func, select

    from governance.catalog.models import ChunkRow, Document
    from governance.consistency import check_consistency

    report = check_consistency(stores.catalog, stores.index, scan_secrets=False)
    assert report.agrees, report.counts()
    assert report.pending_vectors.count == 0, report.counts()
    rows = stores.index.query("id >= 0", fields=["id", "document_id"])
    assert len(rows) == len({r["id"] for r in rows})
    per_doc = Counter(r["document_id"] for r in rows)
    with stores.catalog.session() as s:
        active = dict(
            s.execute(
                select(Document.id, func.count(ChunkRow.id))
                .join(ChunkRow, (ChunkRow.document_id == Document.id) & (ChunkRow.version == Document.current_version))
                .where(Document.status == "active")
                .group_by(Document.id)
            ).all()
        )
    assert per_doc == Counter(active)  # every active document exactly once, nothing else
    if catalog_docs_expected is not None:
        assert len(active) == catalog_docs_expected
    return active


def test_kill_minus_nine_during_ingest_and_purge_is_repaired_by_the_next_run(tmp_path, sample_corpus):
    from governance.catalog.models import Document
    from governance.milvus_process.local import ensure_server, stop_server
    from governance.settings import Settings
    from governance.stores import Stores

    home = tmp_path / "home"
    uri = ensure_server(home).uri
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVRAG_")}
    env.update(GOVRAG_HOME=str(home), GOVRAG_MILVUS_URI=uri, GOVRAG_POLICY=str(SAMPLE_POLICY), HF_HUB_OFFLINE="1")
    corpus = tmp_path / "corpus"
    shutil.copytree(sample_corpus, corpus)
    rng = random.Random(7)
    kills = 0
    try:
        for n in range(16):  # 16 ingest kill points
            _add_documents(corpus, sample_corpus, n)
            _run(env, "ingest", str(corpus), kill_after=rng.uniform(0.0, 4.0))
            kills += 1
        _run(env, "ingest", str(corpus), kill_after=None)
        stores = Stores.open(Settings(home=home, milvus_uri=uri, policy=SAMPLE_POLICY))
        try:
            active = _check(stores, catalog_docs_expected=5 + 16 * 4)
            expire = sorted(active)[::2]
            with stores.catalog.session() as s:
                for doc_id in expire:
                    s.get(Document, doc_id).expires_at = datetime.now(UTC) - timedelta(days=1)
        finally:
            stores.close()
        for _ in range(6):  # 6 purge kill points
            _run(env, "purge", kill_after=rng.uniform(0.0, 1.5))
            kills += 1
        _run(env, "purge", kill_after=None)
        stores = Stores.open(Settings(home=home, milvus_uri=uri, policy=SAMPLE_POLICY))
        try:
            remaining = _check(stores)
            assert not set(expire) & set(remaining)
            assert len(remaining) == len(active) - len(expire)
            assert stores.index.ids_of_documents(expire) == []
        finally:
            stores.close()
    finally:
        stop_server(home)
    assert kills >= 20
