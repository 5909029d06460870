"""The retrieval HTTP service end to end on a real ingested sample corpus: ACL-correct hits,
limits, error shapes, readiness, OpenAPI and metrics (one run of `govrag api serve` in its
own process: tests/system/test_service_api.py)."""

from __future__ import annotations

import json
import logging
import re
import socket

import pytest
from fastapi.testclient import TestClient

from governance.contracts import Hit
from governance.errors import CatalogError, EmbedderUnavailable, IndexUnavailable
from retrieval.service import create_app
from retrieval.service.ratelimit import RateLimiter
from testsupport.service_tokens import (
    ALICE,
    BOB,
    EVE,
    bearer,
    claims,
    indexed_stores,
    service_settings,
    sign,
)

MIXED = "revenue budget forecast deployment rollback"


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, keys, embedder, sample_corpus):
    stores = indexed_stores(tmp_path_factory.mktemp("api-index"), keys, embedder, sample_corpus)
    yield stores
    stores.close()


@pytest.fixture
def client(indexed, embedder, make_retriever):
    with TestClient(create_app(indexed.settings, retriever=make_retriever(indexed, embedder))) as c:
        yield c


def _search(client, keys, who=BOB, query=MIXED, k=20, **claim_overrides):
    return client.post(
        "/v1/search", json={"query": query, "k": k}, headers=bearer(sign(keys, payload=claims(who, **claim_overrides)))
    )


def _docs(response) -> set[str]:
    assert response.status_code == 200, response.text
    return {h["document_id"] for h in response.json()["hits"]}


# -- access -------------------------------------------------------------------------------
def test_two_users_with_different_groups_see_different_hits_for_the_same_query(client, keys):
    alice, bob = _docs(_search(client, keys, ALICE)), _docs(_search(client, keys, BOB))
    assert {"pdf:finance/q3-revenue-report.pdf", "pdf:finance/budget-2027.pdf"} <= alice
    assert not any(d.startswith("pdf:engineering/") for d in alice)
    assert "pdf:engineering/deploy-runbook.pdf" in bob
    assert not any(d.startswith("pdf:finance/") for d in bob)
    assert "pdf:handbook/holidays-and-leave.pdf" in alice & bob
    assert _docs(_search(client, keys, EVE)) == set()


def test_a_role_claim_expanded_by_the_policy_grants_access(client, keys):
    cfo = {"sub": "carol@example.com", "roles": ["cfo"]}
    assert "pdf:finance/budget-2027.pdf" in _docs(_search(client, keys, cfo, "amber-falcon reserve", k=5))


HOSTILE = [
    '"',
    "'",
    "]",
    "[",
    "\\",
    '\\\\"',
    ") or (1==1",
    '" or true or "',
    "x or true",
    "or true",
    'finance" or "1"=="1',
    "finance]",
    "[finance",
    "finance\\",
    "group:finance",
    "scope_id >= 0",
    "*",
    "%",
    "日本語のグループ",
    "x" * 600,
]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_group_and_role_names_in_a_signed_token_never_widen_access(client, keys, name):
    who = {
        "sub": f"mallory{name}",
        "groups": [name, f"{name} or group:finance", f'{name}" or "finance'],
        "roles": [name, f"cfo{name}"],
    }
    r = _search(client, keys, who, "revenue budget amber-falcon reserve", k=50)
    if r.status_code == 403:  # refused outright (e.g. too long): fine, nothing leaked
        assert r.json()["error"] == "token claims cannot be used"
        return
    assert _docs(r) == set(), name


def test_hostile_claim_shapes_are_refused_or_harmless(client, keys):
    for who in (
        {"sub": "m", "groups": 'finance" or "1"=="1'},
        {"sub": "m", "groups": [["finance"]]},
        {"sub": "m", "groups": [{"name": "finance"}]},
        {"sub": "m", "groups": [None]},
        {"sub": "m", "groups": ["eng\u0000"]},
        {"sub": ["alice@example.com"]},
        {"sub": {"$ne": ""}},
    ):
        r = _search(client, keys, who, "revenue budget", k=50)
        assert r.status_code in (401, 403) or _docs(r) == set(), (who, r.text)  # pyjwt refuses a non-string sub


@pytest.mark.parametrize(
    "who",
    [
        {"sub": "m", "groups": ["finance\n"]},
        {"sub": "m", "groups": ["\tfinance"]},
        {"sub": "m\r", "groups": ["finance"]},
        {"sub": "m", "groups": {"finance": True}},
        {"sub": "m", "groups": "finance"},
        {"sub": "m", "roles": [["cfo"]]},
    ],
)
def test_claims_with_control_characters_or_wrong_shapes_get_403(client, keys, who):
    r = _search(client, keys, who, "revenue budget", k=50)
    assert r.status_code == 403 and r.json()["error"] == "token claims cannot be used", (who, r.text)


# -- request validation and limits --------------------------------------------------------
@pytest.mark.parametrize(
    "body",
    [
        {"query": "revenue", "k": 0},
        {"query": "revenue", "k": 101},
        {"query": "revenue", "k": -1},
        {"query": "revenue", "k": True},
        {"query": "revenue", "k": 2.5},
        {"query": "revenue", "k": "5"},
        {"query": "revenue", "k": None},
        {"query": ""},
        {"query": "   "},
        {"query": "x" * 4097},
        {"k": 5},
        {"query": 42},
        {"query": "revenue", "user": {"groups": ["finance"]}},
        ["revenue"],
    ],
)
def test_invalid_requests_get_422_with_a_json_error(client, keys, body):
    r = client.post("/v1/search", json=body, headers=bearer(sign(keys)))
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "invalid request" and r.json()["request_id"] and r.json()["detail"]


def test_k_at_the_bounds_is_accepted(client, keys):
    assert len(_search(client, keys, BOB, k=1).json()["hits"]) == 1
    assert _search(client, keys, BOB, k=100).status_code == 200


def test_malformed_json_is_422(client, keys):
    r = client.post(
        "/v1/search", content=b'{"query": "x", "k":', headers=bearer(sign(keys)) | {"Content-Type": "application/json"}
    )
    assert r.status_code == 422 and "Traceback" not in r.text


def test_an_oversized_body_is_413_before_parsing(indexed, keys, embedder, make_retriever):
    settings = indexed.settings.model_copy(update={"api_max_body_bytes": 2048})
    with TestClient(create_app(settings, retriever=make_retriever(indexed, embedder))) as c:
        big = json.dumps({"query": "x" * 3000, "k": 3}).encode()
        r = c.post("/v1/search", content=big, headers=bearer(sign(keys)) | {"Content-Type": "application/json"})
        assert r.status_code == 413 and r.json()["request_id"]
        r = c.post(
            "/v1/search",
            content=iter([big[:1000], big[1000:]]),  # chunked: no Content-Length
            headers=bearer(sign(keys)) | {"Content-Type": "application/json"},
        )
        assert r.status_code == 413
        assert c.post("/v1/search", json={"query": "x" * 1500}, headers=bearer(sign(keys))).status_code == 200


def test_the_body_limit_stops_reading_a_stream_without_content_length():
    """ASGI level: a body arriving in many chunks is cut off at the limit, unread beyond it."""
    import asyncio

    from retrieval.service.app import ServiceMiddleware

    reached_app, reads, sent = [], [0], []

    async def app(scope, receive, send):  # pragma: no cover - must not be reached
        reached_app.append(True)

    async def receive():
        reads[0] += 1
        return {"type": "http.request", "body": b"x" * 1000, "more_body": True}  # never ends

    async def send(message):
        sent.append(message)

    mw = ServiceMiddleware(app, max_body_bytes=4096, routes=frozenset({"/v1/search"}))
    scope = {"type": "http", "method": "POST", "path": "/v1/search", "headers": [(b"transfer-encoding", b"chunked")]}
    asyncio.run(mw(scope, receive, send))
    assert not reached_app and reads[0] == 5
    assert sent[0]["status"] == 413


def test_rate_limit_gives_429_with_retry_after_then_recovers(indexed, keys, embedder, make_retriever):
    now = [0.0]
    limiter = RateLimiter(3, clock=lambda: now[0])
    with TestClient(
        create_app(indexed.settings, retriever=make_retriever(indexed, embedder), rate_limiter=limiter)
    ) as c:
        codes = [_search(c, keys, BOB, "leave", k=1).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        r = _search(c, keys, BOB, "leave", k=1)
        assert r.status_code == 429 and r.headers["retry-after"] == "20" and r.json()["error"] == "rate limit reached"
        assert _search(c, keys, ALICE, "leave", k=1).status_code == 200  # per subject
        now[0] += 20
        assert _search(c, keys, BOB, "leave", k=1).status_code == 200
        assert _search(c, keys, BOB, "leave", k=1).status_code == 429


def test_rate_limit_comes_from_settings(indexed, keys, embedder, make_retriever):
    settings = indexed.settings.model_copy(update={"api_rate_limit": 2})
    with TestClient(create_app(settings, retriever=make_retriever(indexed, embedder))) as c:
        codes = [_search(c, keys, EVE, "leave", k=1).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        assert int(_search(c, keys, EVE, "leave", k=1).headers["retry-after"]) == 30


def test_rate_limiter_memory_is_bounded():
    limiter = RateLimiter(1, max_subjects=100)
    for i in range(10_000):
        limiter.acquire(f"user{i}")
    assert len(limiter) == 100
    assert limiter.acquire("user9999") > 0  # the most recent ones are kept
    assert RateLimiter(0).acquire("anyone") == 0.0  # 0 = off


def test_a_shared_rate_limit_storage_counts_a_moving_window_and_never_fails_search(monkeypatch, caplog):
    from limits.errors import StorageError

    from governance.errors import ConfigError
    from governance.settings import Settings
    from retrieval.service.ratelimit import SharedRateLimiter, make_rate_limiter, retry_after_header

    shared = SharedRateLimiter(2, "memory://")  # as with redis://, in this process's memory
    assert [shared.acquire("bob@example.com") for _ in range(2)] == [0.0, 0.0]
    wait = shared.acquire("bob@example.com")
    assert 55 < wait <= 60 and retry_after_header(wait) == "60"  # the oldest request leaves in a minute
    assert shared.acquire("alice@example.com") == 0.0  # per subject
    assert isinstance(make_rate_limiter(Settings(api_rate_limit=2)), RateLimiter)  # default: per process
    assert isinstance(make_rate_limiter(Settings(api_rate_limit=2, rate_limit_storage="memory://")), RateLimiter)
    with pytest.raises(ConfigError, match="GOVRAG_RATE_LIMIT_STORAGE 'bogus://\\*\\*\\*@host'"):
        make_rate_limiter(Settings(api_rate_limit=2, rate_limit_storage="bogus://user:pw@host"))

    def down(*_args, **_kwargs):
        raise StorageError(ConnectionError("refused"))

    monkeypatch.setattr(shared._window, "hit", down)
    with caplog.at_level(logging.WARNING, logger="govrag.api"):
        assert shared.acquire("bob@example.com") == 0.0 and shared.acquire("bob@example.com") == 0.0
    assert len([r for r in caplog.records if "did not answer" in r.getMessage()]) == 1


# -- errors -------------------------------------------------------------------------------
class _Broken:
    """A retriever whose search fails the given way."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def search(self, user, query, k=10) -> list[Hit]:
        raise self.exc


def test_an_internal_error_is_a_500_json_without_traceback_or_exception_text(indexed, keys, caplog):
    secret = "sqlite3.OperationalError at /srv/secret/path.py line 42 password=hunter2"
    with TestClient(create_app(indexed.settings, retriever=_Broken(RuntimeError(secret)))) as c:
        with caplog.at_level(logging.ERROR, logger="govrag.api"):
            r = c.post("/v1/search", json={"query": "x"}, headers=bearer(sign(keys)))
    assert r.status_code == 500
    assert set(r.json()) == {"error", "request_id"} and r.json()["error"] == "internal error"
    for leak in ("Traceback", "RuntimeError", "hunter2", "/srv/secret", 'File "'):
        assert leak not in r.text
    logged = [rec for rec in caplog.records if rec.exc_info]
    assert logged and r.json()["request_id"] in logged[0].getMessage()  # the operator can find it


@pytest.mark.parametrize(
    "exc, message",
    [
        (IndexUnavailable("cannot connect to Milvus at http://10.0.0.5:19530: secret"), "vector index unavailable"),
        (EmbedderUnavailable("triton at 10.0.0.6 refused"), "embedder unavailable"),
        (CatalogError("psycopg.OperationalError: 10.0.0.7:5432 refused"), "catalog unavailable"),
        (
            type("SchemaMismatch", (IndexUnavailable,), {})("collection at 10.0.0.5 has dim 768"),
            "vector index unavailable",
        ),
    ],
)
def test_backend_outages_are_503_without_internal_detail(indexed, keys, exc, message):
    with TestClient(create_app(indexed.settings, retriever=_Broken(exc))) as c:
        r = c.post("/v1/search", json={"query": "x"}, headers=bearer(sign(keys)))
    assert r.status_code == 503 and r.json()["error"] == message and "10.0.0" not in r.text
    assert r.headers["retry-after"]


def test_unknown_paths_and_methods_get_json_errors(client):
    assert client.get("/nope").json()["error"] == "not found"
    r = client.get("/v1/search")
    assert r.status_code == 405 and r.json()["request_id"]


# -- health, readiness --------------------------------------------------------------------
def test_healthz_and_readyz_on_live_stores(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["checks"] == {"catalog": "ok", "milvus": "ok"}


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_readyz_is_503_and_names_milvus_when_its_uri_is_dead(tmp_path, keys):
    settings = service_settings(tmp_path, keys, milvus_uri=f"http://127.0.0.1:{_dead_port()}")
    with TestClient(create_app(settings)) as c:
        assert c.get("/healthz").status_code == 200
        for _ in range(2):  # the second answer comes from the remembered failure, at once
            r = c.get("/readyz")
            assert r.status_code == 503
            assert r.json()["checks"] == {"catalog": "ok", "milvus": "unavailable"}
        s = c.post("/v1/search", json={"query": "x"}, headers=bearer(sign(keys)))
        assert s.status_code == 503 and s.json()["error"] == "vector index unavailable"
        assert "127.0.0.1" not in s.text


def test_readyz_is_503_and_names_the_catalog_when_the_database_is_dead(tmp_path, keys):
    url = f"postgresql+psycopg://govrag:pw@127.0.0.1:{_dead_port()}/govrag?connect_timeout=2"
    with TestClient(create_app(service_settings(tmp_path, keys, database_url=url))) as c:
        r = c.get("/readyz")
        assert r.status_code == 503 and r.json()["checks"]["catalog"] == "unavailable"
        assert "pw" not in r.text


# -- OpenAPI, metrics, logs ----------------------------------------------------------------
def test_openapi_lists_search_with_the_bearer_scheme(client):
    spec = client.get("/openapi.json").json()
    op = spec["paths"]["/v1/search"]["post"]
    assert op["security"] == [{"bearerAuth": []}]
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": spec["components"]["securitySchemes"]["bearerAuth"]["description"],
    }
    assert {"401", "413", "422", "429", "503"} <= set(op["responses"])
    k = spec["components"]["schemas"]["SearchRequest"]["properties"]["k"]
    assert (k["minimum"], k["maximum"]) == (1, 100)
    assert {"/healthz", "/readyz", "/metrics"} <= set(spec["paths"])


def test_metrics_are_prometheus_text_with_http_and_search_series(client, keys):
    _search(client, keys, BOB, "leave", k=1)
    client.post("/v1/search", json={"query": "x"})
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert re.search(
        r'govrag_http_requests_total\{method="POST",route="/v1/search",status="200"\} [1-9]', text
    ) or re.search(r'govrag_http_requests_total\{route="/v1/search",method="POST",status="200"\} [1-9]', text)
    assert 'govrag_http_auth_failures_total{reason="missing"}' in text
    assert "# TYPE govrag_search_seconds histogram" in text
    assert "bob@example.com" not in text and "leave" not in text


def test_each_search_logs_one_structured_line_without_query_or_token(client, keys, caplog):
    token = sign(keys)
    with caplog.at_level(logging.INFO, logger="govrag.api"):
        r = client.post("/v1/search", json={"query": "granite-otter secret question", "k": 2}, headers=bearer(token))
        client.post("/v1/search", json={"query": "granite-otter refused"})
    records = [rec for rec in caplog.records if rec.name == "govrag.api" and getattr(rec, "event", None) == "search"]
    assert len(records) == 2
    line = records[0]
    assert (line.status, line.k, line.hits, line.error) == (200, 2, 2, None)
    assert line.request_id == r.json()["request_id"] and len(line.subject) == 16
    assert line.getMessage().startswith(f"event=search request_id={line.request_id} status=200 ")
    assert (records[1].status, records[1].error, records[1].subject) == (401, "auth:missing", None)
    everything = "\n".join(rec.getMessage() for rec in caplog.records)
    assert "granite-otter" not in everything and token not in everything and "bob@example.com" not in everything
