"""Bearer-token verification for the retrieval service.

A token is accepted only when all of these hold:

- its header ``alg`` is one the settings allow (``GOVRAG_JWT_ALGORITHMS``, plus HS256 when
  the development secret ``GOVRAG_JWT_HS256_SECRET`` is set); ``none`` is never allowed;
- the key is picked by the algorithm family, never by what the token claims about itself:
  HS* tokens are checked only against the configured secret, RS*/PS*/ES* tokens only against
  a public key from the JWKS whose ``kid``, key type (and curve) match. A JWKS never supplies
  an HMAC secret, so a token "signed" with a public key as an HMAC secret cannot verify;
- the signature verifies, ``exp`` is present and not past (with a small leeway), ``nbf`` /
  ``iat`` are sane, and ``iss`` / ``aud`` equal the configured issuer / audience when set;
- its claims map to a :class:`governance.identity.User` (the same mapping as
  ``retrieval.search`` applies to a claims dict).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import jwt
from jwt import PyJWK

from governance.errors import AccessDenied, ConfigError, GovragError
from governance.identity import User
from governance.settings import Settings

log = logging.getLogger("govrag.api.auth")

ASYMMETRIC = {
    "RS256": ("RSA", None), "RS384": ("RSA", None), "RS512": ("RSA", None),
    "PS256": ("RSA", None), "PS384": ("RSA", None), "PS512": ("RSA", None),
    "ES256": ("EC", "P-256"), "ES384": ("EC", "P-384"), "ES512": ("EC", "P-521"),
}
MAX_TOKEN_BYTES = 16_384
MAX_JWKS_BYTES = 1_048_576
MIN_HS256_SECRET = 32
MIN_REFRESH_SECONDS = 30.0  # an unknown kid refetches the JWKS at most this often


class AuthError(GovragError):
    """The request carries no usable bearer token (HTTP 401). ``reason`` is a metric label."""

    def __init__(self, message: str, *, reason: str = "invalid") -> None:
        super().__init__(message)
        self.reason = reason


class KeysUnavailable(GovragError):
    """The JWKS cannot be read or fetched, so no token can be checked (HTTP 503)."""


@dataclass(frozen=True)
class _Key:
    """One public key of a JWKS, with what the JWK says about its type and use."""

    jwk: PyJWK
    kty: str
    crv: str | None
    alg: str | None


@dataclass(frozen=True)
class Identity:
    """A verified caller: the user for ``retrieval.search`` and the token's claims."""

    user: User
    subject: str
    claims: dict[str, Any]


def _parse_jwks(data: Any, origin: str) -> dict[str | None, _Key]:
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise KeysUnavailable(f"{origin} is not a JWKS (no 'keys' list)")
    keys: dict[str | None, _Key] = {}
    for entry in data["keys"]:
        if not isinstance(entry, dict):
            continue
        if entry.get("kty") not in ("RSA", "EC"):
            continue  # never take a symmetric ("oct") key from a key set
        if entry.get("use", "sig") != "sig":
            continue
        if entry.get("alg") is not None and entry.get("alg") not in ASYMMETRIC:
            continue
        try:
            keys[entry.get("kid")] = _Key(PyJWK(entry), entry["kty"], entry.get("crv"), entry.get("alg"))
        except Exception as exc:  # malformed key: skip it, keep the others
            log.warning("skipping unusable key %r in %s: %s", entry.get("kid"), origin, exc.__class__.__name__)
    return keys


class JwksKeys:
    """Public keys from a JWKS file (re-read when it changes) or URL (cached, bounded refetch)."""

    def __init__(self, *, file: Path | None = None, url: str | None = None, cache_seconds: float = 300.0,
                 timeout_seconds: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        if (file is None) == (url is None):
            raise ConfigError("give exactly one of a JWKS file and a JWKS URL")
        if url is not None and not url.lower().startswith(("https://", "http://")):
            raise ConfigError(f"GOVRAG_JWKS_URL must be an http(s) URL, got {url[:60]!r}")
        self.file, self.url = file, url
        self.cache_seconds, self.timeout_seconds = cache_seconds, timeout_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str | None, _Key] | None = None
        self._loaded_at = 0.0
        self._file_stamp: tuple[int, int] | None = None

    def _load_file(self) -> None:
        assert self.file is not None
        try:
            st = self.file.stat()
            stamp = (st.st_mtime_ns, st.st_size)
            if self._keys is not None and stamp == self._file_stamp:
                return
            if st.st_size > MAX_JWKS_BYTES:
                raise KeysUnavailable(f"JWKS file {self.file} is larger than {MAX_JWKS_BYTES} bytes")
            data = json.loads(self.file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise KeysUnavailable(f"cannot read the JWKS file {self.file}: {exc.__class__.__name__}") from exc
        self._keys = _parse_jwks(data, str(self.file))
        self._file_stamp = stamp

    def _fetch(self) -> None:
        assert self.url is not None
        request = urllib.request.Request(self.url, headers={"Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_seconds) as resp:  # noqa: S310 (scheme checked)
                body = resp.read(MAX_JWKS_BYTES + 1)
            if len(body) > MAX_JWKS_BYTES:
                raise ValueError("JWKS too large")
            data = json.loads(body)
        except Exception as exc:
            raise KeysUnavailable(f"cannot fetch the JWKS from {self.url}: {exc.__class__.__name__}") from exc
        self._keys = _parse_jwks(data, self.url)
        self._loaded_at = self._clock()

    def _refresh_url(self, *, force: bool) -> None:
        age = self._clock() - self._loaded_at
        stale = self._keys is None or age >= self.cache_seconds
        if not stale and not (force and age >= MIN_REFRESH_SECONDS):
            return
        try:
            self._fetch()
        except KeysUnavailable:
            if self._keys is None:
                raise
            # Keep serving the last good key set; try again after the minimum interval.
            log.warning("JWKS refresh from %s failed; using the cached keys", self.url)
            self._loaded_at = self._clock() - self.cache_seconds + MIN_REFRESH_SECONDS

    def get(self, kid: str | None) -> _Key | None:
        """The key with this ``kid`` (``None``: the only key, if the set holds exactly one)."""
        with self._lock:
            if self.file is not None:
                self._load_file()
            else:
                self._refresh_url(force=False)
            found = self._lookup(kid)
            if found is None and self.url is not None:
                self._refresh_url(force=True)  # the provider may have rotated its keys
                found = self._lookup(kid)
            return found

    def _lookup(self, kid: str | None) -> _Key | None:
        keys = self._keys or {}
        if kid is None:
            return next(iter(keys.values())) if len(keys) == 1 else None
        return keys.get(kid)


class TokenVerifier:
    """Checks bearer tokens against the settings (see the module docstring)."""

    def __init__(self, settings: Settings, *, keys: JwksKeys | None = None) -> None:
        requested = [a.strip() for a in settings.jwt_algorithms.split(",") if a.strip()]
        unknown = [a for a in requested if a not in ASYMMETRIC and a != "HS256"]
        if unknown:
            raise ConfigError(
                f"GOVRAG_JWT_ALGORITHMS lists unsupported algorithms {unknown}",
                hint=f"use some of {', '.join([*ASYMMETRIC, 'HS256'])}; 'none' is never accepted")
        secret = settings.jwt_hs256_secret.get_secret_value() if settings.jwt_hs256_secret else None
        if secret is not None and len(secret) < MIN_HS256_SECRET:
            raise ConfigError(f"GOVRAG_JWT_HS256_SECRET must be at least {MIN_HS256_SECRET} characters")
        if "HS256" in requested and secret is None:
            raise ConfigError("GOVRAG_JWT_ALGORITHMS lists HS256 but GOVRAG_JWT_HS256_SECRET is not set")
        self._secret = secret.encode() if secret else None
        self.require_email_verified = settings.require_email_verified
        self.asymmetric = [a for a in requested if a in ASYMMETRIC]
        self.algorithms = frozenset(self.asymmetric + (["HS256"] if secret else []))
        if keys is None and (settings.jwks_file or settings.jwks_url):
            if settings.jwks_file and settings.jwks_url:
                raise ConfigError("set only one of GOVRAG_JWKS_FILE and GOVRAG_JWKS_URL")
            keys = JwksKeys(file=settings.jwks_file, url=settings.jwks_url,
                            cache_seconds=settings.jwks_cache_seconds, timeout_seconds=settings.jwks_timeout_seconds)
        self.keys = keys
        if self.keys is None and self._secret is None:
            raise ConfigError(
                "the retrieval service has no way to verify tokens",
                hint="set GOVRAG_JWKS_FILE or GOVRAG_JWKS_URL (or, for development, GOVRAG_JWT_HS256_SECRET)")
        if self.keys is None:
            self.asymmetric = []
            self.algorithms = frozenset({"HS256"})
        self.issuer = settings.jwt_issuer
        self.audience = settings.jwt_audience
        self.leeway = settings.jwt_leeway_seconds
        if self.issuer is None or self.audience is None:
            log.warning("GOVRAG_JWT_ISSUER/GOVRAG_JWT_AUDIENCE not set: tokens of any issuer/audience "
                        "signed by a trusted key are accepted")

    def _key_for(self, header: dict[str, Any]) -> tuple[Any, str]:
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise AuthError(f"algorithm {str(alg)[:20]!r} not accepted")
        if alg == "HS256":
            assert self._secret is not None
            return self._secret, alg
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise AuthError("kid is not a string")
        assert self.keys is not None
        found = self.keys.get(kid)
        if found is None:
            raise AuthError("unknown signing key")
        kty, crv = ASYMMETRIC[alg]
        if found.kty != kty or (crv is not None and found.crv != crv):
            raise AuthError("key type does not match the algorithm")
        if found.alg is not None and found.alg != alg:
            raise AuthError("key is published for another algorithm")
        return found.jwk.key, alg

    def verify(self, token: str) -> Identity:
        """The caller a token proves, or :class:`AuthError` / :class:`KeysUnavailable`."""
        if not token or len(token) > MAX_TOKEN_BYTES:
            raise AuthError("token empty or too long")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthError("malformed token") from exc
        key, alg = self._key_for(header)
        required = ["exp"] + (["iss"] if self.issuer else []) + (["aud"] if self.audience else [])
        try:
            claims = jwt.decode(
                token, key=key, algorithms=[alg], audience=self.audience, issuer=self.issuer,
                leeway=self.leeway,
                options={"require": required, "verify_signature": True, "verify_exp": True,
                         "verify_nbf": True, "verify_iat": True, "verify_aud": True, "verify_iss": True},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthError("token expired", reason="expired") from exc
        except jwt.PyJWTError as exc:
            raise AuthError(f"token rejected: {exc.__class__.__name__}") from exc
        if not isinstance(claims, dict):
            raise AuthError("claims are not an object")
        try:
            user = User.from_claims(claims, require_email_verified=self.require_email_verified)
        except AccessDenied as exc:
            raise AuthError("claims cannot be mapped to a user", reason="claims") from exc
        return Identity(user=user, subject=user.id, claims=claims)


__all__ = ["AuthError", "Identity", "JwksKeys", "KeysUnavailable", "TokenVerifier"]
