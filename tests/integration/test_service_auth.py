"""The retrieval service's token check, with real RS256 / ES256 / HS256 tokens signed here."""

from __future__ import annotations

import http.server
import json
import threading
import time

import jwt
import pytest
from fastapi.testclient import TestClient

from governance.errors import ConfigError
from retrieval.service import create_app
from retrieval.service.auth import JwksKeys, KeysUnavailable, TokenVerifier
from testsupport.service_tokens import (
    BOB,
    HS256_SECRET,
    bearer,
    claims,
    forge,
    indexed_stores,
    make_keys,
    public_jwk,
    service_settings,
    sign,
    write_jwks,
)

QUERY = {"query": "granite-otter rollback script", "k": 3}
RUNBOOK = "pdf:engineering/deploy-runbook.pdf"


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, keys, embedder, sample_corpus):
    stores = indexed_stores(tmp_path_factory.mktemp("auth-index"), keys, embedder, sample_corpus)
    yield stores
    stores.close()


@pytest.fixture
def client(indexed, keys, embedder, make_retriever):
    app = create_app(indexed.settings, retriever=make_retriever(indexed, embedder))
    with TestClient(app) as c:
        yield c


@pytest.mark.parametrize("alg", ["RS256", "ES256", "HS256"])
def test_a_valid_token_gets_the_subjects_hits(client, keys, alg):
    r = client.post("/v1/search", json=QUERY, headers=bearer(sign(keys, alg)))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["hits"][0]["document_id"] == RUNBOOK
    assert body["request_id"] == r.headers["x-request-id"]
    assert set(body["hits"][0]) == {
        "chunk_id",
        "document_id",
        "source",
        "title",
        "uri",
        "text",
        "score",
        "source_version",
        "expires_at",
    }


def test_a_token_just_past_exp_is_still_accepted_within_the_leeway(client, keys):
    now = int(time.time())
    r = client.post("/v1/search", json=QUERY, headers=bearer(sign(keys, exp=now - 5, iat=now - 60)))
    assert r.status_code == 200, r.text


def _refused(keys):
    """(name, Authorization header value) pairs that must all get 401."""
    now = int(time.time())
    pem = keys.rsa_public_pem
    jwk_json = json.dumps(public_jwk(keys.rsa, "rsa-1", "RS256")).encode()
    other = make_keys(keys.jwks_file.parent / "other")  # right kid, wrong key
    good = sign(keys, "RS256")
    head, payload, sig = good.split(".")
    flipped = "A" if sig[10] != "A" else "B"
    return [
        ("wrong issuer", "Bearer " + sign(keys, iss="https://evil.example")),
        ("wrong audience", "Bearer " + sign(keys, aud="someone-else")),
        ("no audience", "Bearer " + sign(keys, aud=None)),
        ("no issuer", "Bearer " + sign(keys, iss=None)),
        ("expired", "Bearer " + sign(keys, exp=now - 120, iat=now - 600)),
        ("expired ES256", "Bearer " + sign(keys, "ES256", exp=now - 3600)),
        ("missing exp", "Bearer " + sign(keys, exp=None)),
        ("not yet valid", "Bearer " + sign(keys, nbf=now + 600)),
        ("alg none", "Bearer " + forge({"alg": "none", "typ": "JWT"}, claims(), None)),
        ("alg none with kid", "Bearer " + forge({"alg": "none", "kid": "rsa-1"}, claims(), None)),
        ("alg None spelled oddly", "Bearer " + forge({"alg": "NONE", "kid": "rsa-1"}, claims(), None)),
        (
            "HS256 signed with the RSA public key PEM",
            "Bearer " + forge({"alg": "HS256", "kid": "rsa-1"}, claims(), pem),
        ),
        ("HS256 signed with the public JWK", "Bearer " + forge({"alg": "HS256", "kid": "rsa-1"}, claims(), jwk_json)),
        ("HS256 with another secret", "Bearer " + jwt.encode(claims(), "x" * 40, algorithm="HS256")),
        ("unknown kid", "Bearer " + sign(keys, kid="rsa-2")),
        ("no kid with several keys", "Bearer " + sign(keys, kid=None)),
        ("right kid, other key", "Bearer " + sign(other, kid="rsa-1")),
        ("ES256 header naming the RSA key", "Bearer " + sign(keys, "ES256", kid="rsa-1")),
        ("algorithm not allowed (PS256)", "Bearer " + sign(keys, "PS256")),
        ("tampered signature", f"Bearer {head}.{payload}.{sig[:10]}{flipped}{sig[11:]}"),
        (
            "tampered payload",
            "Bearer "
            + ".".join([head, sign(keys, payload=claims(BOB | {"groups": ["finance"]}), kid=None).split(".")[1], sig]),
        ),
        ("garbage", "Bearer not-a-token"),
        ("empty bearer", "Bearer "),
        ("missing bearer", None),
        ("basic auth", "Basic YWxpY2U6c2VjcmV0"),
        ("token without the scheme", good),
    ]


def test_every_bad_token_gets_401_with_a_challenge_and_no_internals(client, keys):
    for name, header in _refused(keys):
        headers = {} if header is None else {"Authorization": header}
        r = client.post("/v1/search", json=QUERY, headers=headers)
        assert r.status_code == 401, (name, r.status_code, r.text)
        assert r.headers["www-authenticate"].startswith('Bearer realm="govrag"'), name
        body = r.json()
        assert set(body) == {"error", "request_id"}, name
        assert "Traceback" not in r.text and "jwt" not in r.text.lower(), name


def test_an_expired_token_says_so_in_the_challenge(client, keys):
    r = client.post("/v1/search", json=QUERY, headers=bearer(sign(keys, exp=int(time.time()) - 600)))
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["www-authenticate"]
    assert r.json()["error"] == "token expired"


def test_unusable_claims_get_403_not_access(client, keys):
    for bad in ({"sub": "x", "groups": ["eng\nfinance"]}, {"sub": "a\x00b"}, {"groups": ["eng"]}):
        r = client.post("/v1/search", json=QUERY, headers=bearer(sign(keys, payload=claims(bad))))
        assert r.status_code in (401, 403), r.text
        assert "hits" not in r.json()


def test_without_a_dev_secret_hs256_tokens_are_refused(indexed, keys, embedder, make_retriever):
    settings = service_settings(indexed.settings.home.parent, keys, jwt_hs256_secret=None)
    with TestClient(create_app(settings, retriever=make_retriever(indexed, embedder))) as c:
        assert c.post("/v1/search", json=QUERY, headers=bearer(sign(keys, "HS256"))).status_code == 401
        confused = forge({"alg": "HS256", "kid": "rsa-1"}, claims(), keys.rsa_public_pem)
        assert c.post("/v1/search", json=QUERY, headers=bearer(confused)).status_code == 401
        assert c.post("/v1/search", json=QUERY, headers=bearer(sign(keys, "RS256"))).status_code == 200


def test_a_key_added_to_the_jwks_file_is_picked_up_without_a_restart(tmp_path, indexed, keys, embedder, make_retriever):
    rotated = make_keys(tmp_path / "rotated")
    jwks = tmp_path / "jwks.json"
    write_jwks(jwks, [public_jwk(keys.rsa, "rsa-1", "RS256")])
    settings = service_settings(indexed.settings.home.parent, keys, jwks_file=jwks)
    with TestClient(create_app(settings, retriever=make_retriever(indexed, embedder))) as c:
        new_token = sign(rotated, kid="rsa-2025")
        assert c.post("/v1/search", json=QUERY, headers=bearer(new_token)).status_code == 401
        time.sleep(0.01)
        write_jwks(jwks, [public_jwk(keys.rsa, "rsa-1", "RS256"), public_jwk(rotated.rsa, "rsa-2025", None)])
        assert c.post("/v1/search", json=QUERY, headers=bearer(new_token)).status_code == 200


@pytest.mark.parametrize(
    "change, message",
    [
        ({"jwt_algorithms": "RS256,none"}, "unsupported"),
        ({"jwt_algorithms": "HS256", "jwt_hs256_secret": None}, "HS256"),
        ({"jwt_hs256_secret": "short"}, "at least"),
        ({"jwks_file": None, "jwt_hs256_secret": None}, "no way to verify"),
    ],
)
def test_unsafe_or_empty_auth_settings_are_refused_at_startup(tmp_path, keys, change, message):
    with pytest.raises(ConfigError, match=message):
        create_app(service_settings(tmp_path, keys, **change))


def _until(condition, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


class _JwksServer:
    """A local HTTP server publishing a JWKS; counts fetches."""

    def __init__(self, jwks: dict) -> None:
        self.jwks, self.fetches = jwks, 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.fetches += 1
                body = json.dumps(outer.jwks).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/.well-known/jwks.json"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_jwks_url_is_cached_and_an_unknown_kid_refetches_at_most_every_30s(tmp_path, keys):
    server = _JwksServer({"keys": [public_jwk(keys.rsa, "rsa-1", "RS256")]})
    now = [1000.0]
    try:
        jwks = JwksKeys(url=server.url, cache_seconds=300, timeout_seconds=2, clock=lambda: now[0])
        verifier = TokenVerifier(service_settings(tmp_path, keys, jwks_file=None, jwt_hs256_secret=None), keys=jwks)
        for _ in range(5):
            assert verifier.verify(sign(keys)).user.id == "bob@example.com"
        assert server.fetches == 1
        for _ in range(5):  # a flood of unknown kids cannot turn into a flood of fetches
            with pytest.raises(Exception):
                verifier.verify(sign(keys, kid="nope"))
        assert server.fetches == 1
        rotated = make_keys(tmp_path / "rotated")
        server.jwks = {"keys": [public_jwk(keys.rsa, "rsa-1", "RS256"), public_jwk(rotated.ec, "ec-9", "ES256")]}
        now[0] += 31  # the provider rotated; the next unknown kid refetches once
        assert verifier.verify(sign(rotated, "ES256", kid="ec-9")).subject == "bob@example.com"
        assert server.fetches == 2
        now[0] += 301  # cache expired: the next request is served from cache and refreshes in the background
        verifier.verify(sign(keys))
        _until(lambda: server.fetches == 3)
    finally:
        server.close()


def test_an_unreachable_jwks_url_is_503_not_401_nor_a_hang(tmp_path, indexed, keys, embedder, make_retriever):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    settings = service_settings(
        tmp_path,
        keys,
        jwks_file=None,
        jwks_url=f"http://127.0.0.1:{dead}/jwks",
        jwks_timeout_seconds=1,
        jwt_hs256_secret=None,
    )
    with TestClient(create_app(settings, retriever=make_retriever(indexed, embedder))) as c:
        started = time.monotonic()
        r = c.post("/v1/search", json=QUERY, headers=bearer(sign(keys)))
        assert r.status_code == 503 and r.json()["error"] == "token verification keys unavailable"
        assert time.monotonic() - started < 5
    with pytest.raises(KeysUnavailable):
        JwksKeys(url=f"http://127.0.0.1:{dead}/jwks", timeout_seconds=1).get("rsa-1")


def test_a_jwks_never_supplies_an_hmac_secret(tmp_path, keys):
    jwks = tmp_path / "jwks.json"
    write_jwks(
        jwks,
        [
            {"kty": "oct", "kid": "rsa-1", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0", "alg": "HS256"},
            public_jwk(keys.rsa, "rsa-1", "RS256"),
        ],
    )
    verifier = TokenVerifier(
        service_settings(tmp_path, keys, jwks_file=jwks, jwt_hs256_secret=None, jwt_algorithms="RS256,ES256")
    )
    assert verifier.algorithms == {"RS256", "ES256"}
    forged = jwt.encode(claims(), "secret" * 6, algorithm="HS256", headers={"kid": "rsa-1"})
    with pytest.raises(Exception, match="not accepted"):
        verifier.verify(forged)
    assert verifier.verify(sign(keys)).user.groups == ("eng",)


def test_hs256_dev_secret_is_the_only_hmac_key(tmp_path, keys):
    verifier = TokenVerifier(service_settings(tmp_path, keys))
    assert verifier.verify(jwt.encode(claims(), HS256_SECRET, algorithm="HS256")).subject == "bob@example.com"


def test_email_verified_false_drops_the_email_from_the_principals(tmp_path, keys):
    verifier = TokenVerifier(service_settings(tmp_path, keys))
    token = sign(keys, payload=claims(sub="u-7", email="ceo@example.com", email_verified=False))
    identity = verifier.verify(token)
    assert identity.user.email is None and "user:ceo@example.com" not in identity.user.principals()


def test_require_email_verified_setting_drops_an_email_without_the_claim(tmp_path, keys):
    settings = service_settings(tmp_path, keys).model_copy(update={"require_email_verified": True})
    token = sign(keys, payload=claims(sub="u-7", email="ceo@example.com"))
    assert TokenVerifier(settings).verify(token).user.email is None
    token = sign(keys, payload=claims(sub="u-7", email="ceo@example.com", email_verified=True))
    assert TokenVerifier(settings).verify(token).user.email == "ceo@example.com"
