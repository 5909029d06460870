"""One run of `govrag api serve` in its own process, answering over HTTP (the service in
this process, on a real ingested sample corpus: tests/integration/test_service_api.py)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from governance.milvus_process.local import free_port
from testsupport.paths import SAMPLE_POLICY
from testsupport.service_tokens import AUDIENCE, ISSUER, bearer, indexed_stores, sign


def _request(port, method, path, body=None, headers=None, chunks=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        if chunks is not None:
            conn.putrequest(method, path)
            for k, v in (headers or {}).items():
                conn.putheader(k, v)
            conn.putheader("Transfer-Encoding", "chunked")
            conn.endheaders()
            try:
                for chunk in chunks:
                    conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                conn.send(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server answered 413 and closed before the rest arrived
        else:
            conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


@pytest.mark.slow
def test_govrag_api_serve_answers_over_http(tmp_path, keys, embedder, sample_corpus):
    from governance.milvus_process.local import stop_server

    # The embedded default: a local milvus-lite server under GOVRAG_HOME that this test
    # process (ingest) and the service process share.
    stores = indexed_stores(tmp_path, keys, embedder, sample_corpus, milvus_uri=None)
    stores.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVRAG_")}
    env.update(
        GOVRAG_HOME=str(tmp_path / "home"),
        GOVRAG_DATABASE_URL=f"sqlite:///{tmp_path / 'catalog.sqlite3'}",
        GOVRAG_POLICY=str(SAMPLE_POLICY),
        GOVRAG_COLLECTION="test_chunks",
        GOVRAG_JWKS_FILE=str(keys.jwks_file),
        GOVRAG_JWT_ISSUER=ISSUER,
        GOVRAG_JWT_AUDIENCE=AUDIENCE,
        GOVRAG_API_MAX_BODY_BYTES="4096",
        HF_HUB_OFFLINE="1",
    )
    port = free_port()
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "govrag.cli.main", "api", "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if _request(port, "GET", "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "server did not come up"
            time.sleep(0.2)
        status, _, body = _request(port, "GET", "/readyz")
        assert status == 200, body
        headers = bearer(sign(keys)) | {"Content-Type": "application/json"}
        status, resp_headers, body = _request(
            port, "POST", "/v1/search", json.dumps({"query": "granite-otter rollback script", "k": 3}).encode(), headers
        )
        assert status == 200, body
        hits = json.loads(body)["hits"]
        assert hits[0]["document_id"] == "pdf:engineering/deploy-runbook.pdf"
        assert resp_headers["x-request-id"] == json.loads(body)["request_id"]
        assert _request(port, "POST", "/v1/search", b'{"query": "x"}', {"Content-Type": "application/json"})[0] == 401
        status, _, body = _request(port, "POST", "/v1/search", headers=headers, chunks=[b"x" * 1024] * 8)
        assert status == 413, body
        status, _, body = _request(port, "GET", "/metrics")
        assert status == 200 and b'route="/v1/search"' in body
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        finally:
            log.close()
            stop_server(tmp_path / "home")
    server_log = (tmp_path / "serve.log").read_text()
    # uvicorn shuts down cleanly, then re-raises the signal it caught (exit status -15).
    assert rc in (0, -signal.SIGTERM) and "Application shutdown complete" in server_log, server_log
    assert "event=search" in server_log and "status=200" in server_log and "granite-otter" not in server_log
