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
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from governance.identity import User
from governance.observability.logs import JsonFormatter, configure_logging
from tests.conftest import SAMPLE_POLICY, make_ingestor, make_retriever

BOB = User(id="bob@example.com", email="bob@example.com", groups=["eng"])


def _sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


@pytest.fixture
def json_logs():
    stream = io.StringIO()
    handler = configure_logging("json", "INFO", stream)
    yield stream
    logging.getLogger().removeHandler(handler)


def test_a_json_log_line_is_one_object_with_the_extra_fields_and_no_secrets():
    record = logging.makeLogRecord({"name": "govrag.x", "levelno": logging.INFO, "levelname": "INFO",
                                    "msg": "failed for %s with key %s", "args": ("jane@example.com", "AKIAIOSFODNN7EXAMPLE"),
                                    "run_id": 7, "path": "finance/a.pdf"})
    line = json.loads(JsonFormatter().format(record))
    assert line["run_id"] == 7 and line["path"] == "finance/a.pdf" and line["level"] == "info"
    assert "jane@example.com" not in line["msg"] and "AKIA" not in line["msg"]
    assert "[REDACTED:EMAIL]" in line["msg"] and "[REDACTED:AWS_KEY]" in line["msg"]


def test_ingest_and_search_record_metrics_and_log_run_ids_without_document_text(sqlite_stores, embedder, sample_corpus,
                                                                               json_logs):
    searches, quarantined = _sample("govrag_search_seconds_count", {"outcome": "ok"}), _sample(
        "govrag_quarantined_total", {"reason": "encrypted"})
    batches = _sample("govrag_embed_batch_size_count", {"embedder": "LocalEmbedder"})
    dropped = _sample("govrag_search_postcheck_dropped_total")  # other tests drop on purpose
    summary = make_ingestor(sqlite_stores, embedder).ingest_paths([sample_corpus])
    make_retriever(sqlite_stores, embedder).search(BOB, "granite-otter rollback", k=3)
    assert _sample("govrag_search_seconds_count", {"outcome": "ok"}) == searches + 1
    assert _sample("govrag_quarantined_total", {"reason": "encrypted"}) == quarantined + 1
    assert _sample("govrag_embed_batch_size_count", {"embedder": "LocalEmbedder"}) > batches
    assert _sample("govrag_search_postcheck_dropped_total") == dropped
    lines = [json.loads(line) for line in json_logs.getvalue().splitlines()]
    assert any(line.get("run_id") == summary.run_id and line.get("reason") == "encrypted" for line in lines)
    assert any(line.get("run_id") == summary.run_id and line.get("status") == "succeeded" for line in lines)
    text = json_logs.getvalue()
    assert "granite-otter" not in text and "quartz-badger" not in text  # phrases inside the sample PDFs


def test_a_purge_counts_documents_and_vectors(sqlite_stores, embedder, sample_corpus):
    from governance.purge import purge_documents, select

    make_ingestor(sqlite_stores, embedder).ingest_paths([sample_corpus])
    before = _sample("govrag_purged_documents_total", {"reason": "source"})
    report = purge_documents(sqlite_stores.catalog, sqlite_stores.index, select(sqlite_stores.catalog, source="pdf"),
                             reason="t", selector={"source": "pdf"})
    assert _sample("govrag_purged_documents_total", {"reason": "source"}) == before + len(report.documents) > before


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVRAG_")}
    env.update(GOVRAG_HOME=str(tmp_path / "home"), GOVRAG_POLICY=str(SAMPLE_POLICY),
               GOVRAG_MILVUS_URI=str(tmp_path / "m.db"), HF_HUB_OFFLINE="1")
    return env


@pytest.mark.slow
def test_metrics_serve_exports_catalog_gauges_over_http(tmp_path, sample_corpus):
    env = _env(tmp_path)
    subprocess.run([sys.executable, "-m", "govrag.cli.main", "ingest", str(sample_corpus)], env=env, check=True,
                   capture_output=True, timeout=600)
    once = subprocess.run([sys.executable, "-m", "govrag.cli.main", "metrics", "serve", "--once"], env=env,
                          capture_output=True, text=True, timeout=120, check=True).stdout
    assert 'govrag_documents{status="active"} 5.0' in once
    assert 'govrag_quarantine{reason="encrypted"} 1.0' in once
    assert 'govrag_last_run_succeeded{kind="ingest"} 1.0' in once
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "govrag.cli.main", "metrics", "serve", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
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
        proc.wait(timeout=30)


def test_json_logs_from_the_cli_carry_the_run_id(tmp_path, sample_corpus):
    env = {**_env(tmp_path), "GOVRAG_LOG_FORMAT": "json", "GOVRAG_LOG_LEVEL": "INFO"}
    out = subprocess.run([sys.executable, "-m", "govrag.cli.main", "ingest", str(sample_corpus / "finance" / "bad"),
                          "--json"], env=env, capture_output=True, text=True, timeout=600)
    lines = [json.loads(line) for line in out.stderr.splitlines() if line.startswith("{")]
    run_id = json.loads(out.stdout)["run_id"]
    # Ingested on their own, the bad PDFs fall outside the policy's folder rules.
    reasons = [line.get("reason") for line in lines if line.get("run_id") == run_id]
    assert reasons.count("no_access_rule") == 3 and any(line.get("status") == "succeeded" for line in lines)
