"""Metrics and structured logs: what ingest, search and purge record, what `govrag metrics
serve` exports from the catalog, and that logs carry run ids but no document text or secrets."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from governance.identity import User
from governance.observability.logs import JsonFormatter, configure_logging
from testsupport.paths import SAMPLE_POLICY

BOB = User(id="bob@example.com", email="bob@example.com", groups=["eng"])
WATCHED = [
    ("govrag_search_seconds_count", {"outcome": "ok"}),
    ("govrag_quarantined_total", {"reason": "encrypted"}),
    ("govrag_embed_batch_size_count", {"embedder": "LocalEmbedder"}),
    ("govrag_search_postcheck_dropped_total", {}),
    ("govrag_purged_documents_total", {"reason": "source"}),
    ("govrag_ingest_documents_total", {"outcome": "new"}),
]


def _sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@dataclass
class Observed:
    settings: object
    run_id: int
    purged: int
    delta: dict[str, float]
    log_lines: list[dict]
    log_text: str


@pytest.fixture(scope="module")
def observed(tmp_path_factory, embedder, sample_corpus, make_ingestor, make_retriever) -> Observed:
    """One ingest, one search and one purge, with metrics (as deltas: the registry is
    process-wide) and JSON logs captured."""
    from governance.purge import purge_documents, select
    from governance.settings import Settings
    from governance.stores import Stores

    tmp = tmp_path_factory.mktemp("observed")
    settings = Settings(
        home=tmp / "home",
        database_url=f"sqlite:///{tmp / 'home' / 'catalog.sqlite3'}",
        milvus_uri=str(tmp / "milvus.db"),
        policy=SAMPLE_POLICY,
    )
    stream = io.StringIO()
    handler = configure_logging("json", "INFO", stream)
    before = {name: _sample(name, labels) for name, labels in WATCHED}
    stores = Stores.open(settings)
    try:
        summary = make_ingestor(stores, embedder).ingest_paths([sample_corpus])
        make_retriever(stores, embedder).search(BOB, "granite-otter rollback", k=3)
        report = purge_documents(
            stores.catalog, stores.index, select(stores.catalog, source="pdf"), reason="t", selector={"source": "pdf"}
        )
    finally:
        stores.close()
        logging.getLogger().removeHandler(handler)
    delta = {name: _sample(name, labels) - before[name] for name, labels in WATCHED}
    text = stream.getvalue()
    return Observed(
        settings, summary.run_id, len(report.documents), delta, [json.loads(line) for line in text.splitlines()], text
    )


def test_a_json_log_line_is_one_object_with_the_extra_fields_and_no_secrets():
    record = logging.makeLogRecord(
        {
            "name": "govrag.x",
            "levelno": logging.INFO,
            "levelname": "INFO",
            "msg": "failed for %s with key %s",
            "args": ("jane@example.com", "AKIAIOSFODNN7EXAMPLE"),
            "run_id": 7,
            "path": "finance/a.pdf",
        }
    )
    line = json.loads(JsonFormatter().format(record))
    assert line["run_id"] == 7 and line["path"] == "finance/a.pdf" and line["level"] == "info"
    assert "jane@example.com" not in line["msg"] and "AKIA" not in line["msg"]
    assert "[REDACTED:EMAIL]" in line["msg"] and "[REDACTED:AWS_KEY]" in line["msg"]


def test_ingest_records_documents_batches_and_quarantine(observed):
    assert observed.delta["govrag_ingest_documents_total"] == 5
    assert observed.delta["govrag_quarantined_total"] == 1  # the encrypted sample PDF
    assert observed.delta["govrag_embed_batch_size_count"] >= 1


def test_search_records_latency_and_no_post_check_drops(observed):
    assert observed.delta["govrag_search_seconds_count"] == 1
    assert observed.delta["govrag_search_postcheck_dropped_total"] == 0


def test_a_purge_counts_documents(observed):
    assert observed.delta["govrag_purged_documents_total"] == observed.purged == 5


def test_logs_carry_run_ids_but_no_document_text(observed):
    lines = observed.log_lines
    assert any(line.get("run_id") == observed.run_id and line.get("reason") == "encrypted" for line in lines)
    assert any(line.get("run_id") == observed.run_id and line.get("status") == "succeeded" for line in lines)
    assert "granite-otter" not in observed.log_text and "quartz-badger" not in observed.log_text  # PDF phrases


def _env(settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVRAG_")}
    env.update(
        GOVRAG_HOME=str(settings.home),
        GOVRAG_POLICY=str(SAMPLE_POLICY),
        GOVRAG_DATABASE_URL=settings.database_url,
        GOVRAG_MILVUS_URI=str(settings.milvus_uri),
        HF_HUB_OFFLINE="1",
    )
    return env


@pytest.mark.slow
def test_metrics_serve_exports_catalog_gauges_once_and_over_http(observed):
    env = _env(observed.settings)
    once = subprocess.run(
        [sys.executable, "-m", "govrag.cli.main", "metrics", "serve", "--once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert 'govrag_documents{status="purged"} 5.0' in once
    assert 'govrag_quarantine{reason="encrypted"} 1.0' in once
    assert 'govrag_last_run_succeeded{kind="ingest"} 1.0' in once
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(Path(observed.settings.home) / "metrics-serve.log", "wb")  # a file: a full pipe would block it
    proc = subprocess.Popen(
        [sys.executable, "-m", "govrag.cli.main", "metrics", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        deadline, body = time.monotonic() + 60, ""
        while time.monotonic() < deadline and not body:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
            except OSError:
                time.sleep(0.5)
        assert "govrag_catalog_up 1.0" in body and "process_resident_memory_bytes" in body
    finally:
        proc.terminate()
        try:
            rc = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
            raise AssertionError("govrag metrics serve ignored SIGTERM") from None
    log.close()
    assert rc == 0, (Path(observed.settings.home) / "metrics-serve.log").read_text()[-2000:]


def test_json_logs_from_the_cli_carry_the_run_id(tmp_path, sample_corpus):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVRAG_")}
    env.update(
        GOVRAG_HOME=str(tmp_path / "home"),
        GOVRAG_POLICY=str(SAMPLE_POLICY),
        GOVRAG_MILVUS_URI=str(tmp_path / "m.db"),
        HF_HUB_OFFLINE="1",
        GOVRAG_LOG_FORMAT="json",
        GOVRAG_LOG_LEVEL="INFO",
    )
    out = subprocess.run(
        [sys.executable, "-m", "govrag.cli.main", "ingest", str(sample_corpus / "finance" / "bad"), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [json.loads(line) for line in out.stderr.splitlines() if line.startswith("{")]
    run_id = json.loads(out.stdout)["run_id"]
    # Ingested on their own, the bad PDFs fall outside the policy's folder rules.
    reasons = [line.get("reason") for line in lines if line.get("run_id") == run_id]
    assert reasons.count("no_access_rule") == 3 and any(line.get("status") == "succeeded" for line in lines)
