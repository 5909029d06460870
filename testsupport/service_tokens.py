"""Keys, JWKS files and real signed tokens for the retrieval-service tests, and the stores they search."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

ISSUER = "https://idp.example.test"
AUDIENCE = "govrag-api"
HS256_SECRET = "dev-only-secret-0123456789abcdef0123456789"

ALICE = {"sub": "alice@example.com", "email": "alice@example.com", "groups": ["finance"]}
BOB = {"sub": "bob@example.com", "email": "bob@example.com", "groups": ["eng"]}
EVE = {"sub": "eve@example.com", "email": "eve@example.com", "groups": ["marketing"]}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Keys:
    rsa: rsa.RSAPrivateKey
    ec: ec.EllipticCurvePrivateKey
    jwks_file: Path

    @property
    def rsa_public_pem(self) -> bytes:
        return self.rsa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def public_jwk(key: Any, kid: str, alg: str | None) -> dict[str, Any]:
    algo = RSAAlgorithm if isinstance(key, rsa.RSAPrivateKey) else ECAlgorithm
    jwk = algo.to_jwk(key.public_key(), as_dict=True)
    jwk.update(kid=kid, use="sig")
    if alg:
        jwk["alg"] = alg
    return jwk


def make_keys(directory: Path) -> Keys:
    """A fresh RSA-2048 and P-256 key pair and a JWKS file holding their public halves."""
    directory.mkdir(parents=True, exist_ok=True)
    keys = Keys(
        rsa=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ec=ec.generate_private_key(ec.SECP256R1()),
        jwks_file=directory / "jwks.json",
    )
    write_jwks(keys.jwks_file, [public_jwk(keys.rsa, "rsa-1", "RS256"), public_jwk(keys.ec, "ec-1", "ES256")])
    return keys


def write_jwks(path: Path, jwks: list[dict[str, Any]]) -> None:
    path.write_text(json.dumps({"keys": jwks}))


def claims(base: dict[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    out: dict[str, Any] = {"iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 300, **(base or BOB)}
    for k, v in overrides.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = v
    return out


def sign(
    keys: Keys, alg: str = "RS256", payload: dict[str, Any] | None = None, kid: str | None = "default", **overrides: Any
) -> str:
    """A real token: RS256 with the RSA key, ES256 with the EC key, HS256 with the dev secret."""
    body = payload if payload is not None else claims(**overrides)
    if alg == "HS256":
        return jwt.encode(body, HS256_SECRET, algorithm="HS256")
    key = keys.rsa if alg.startswith(("RS", "PS")) else keys.ec
    if kid == "default":
        kid = "rsa-1" if key is keys.rsa else "ec-1"
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode(body, key, algorithm=alg, headers=headers)


def forge(header: dict[str, Any], payload: dict[str, Any], secret: bytes | None) -> str:
    """A hand-built token: HMAC-SHA256 over the signing input with ``secret``, or no signature."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"
    sig = "" if secret is None else b64url(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())
    return f"{signing_input}.{sig}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def service_settings(tmp: Path, keys: Keys, **overrides: Any):
    """Settings of an indexed store in ``tmp`` plus the JWKS file, issuer, audience and dev secret."""
    from testsupport.store_settings import embedded_settings

    values: dict[str, Any] = dict(
        jwks_file=keys.jwks_file, jwt_issuer=ISSUER, jwt_audience=AUDIENCE, jwt_hs256_secret=HS256_SECRET
    )
    values.update(overrides)
    return embedded_settings(tmp, **values)


def indexed_stores(tmp: Path, keys: Keys, embedder, sample_corpus: Path, **overrides: Any):
    """Stores with the sample corpus ingested (the caller closes them)."""
    from governance.stores import Stores
    from ingest.pipeline.run import Ingestor

    stores = Stores.open(service_settings(tmp, keys, **overrides))
    summary = Ingestor(stores, lambda: embedder).ingest_paths([sample_corpus])
    assert summary.new == 5
    return stores
