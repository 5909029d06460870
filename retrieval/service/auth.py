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

Not PyJWT's ``PyJWKClient`` for the JWKS: it fetches on the request's thread with a per-read
timeout only (an endpoint that drips bytes holds the search), serves no key past its cache
lifespan while the provider is down, refetches for every unknown ``kid`` with no rate limit
or back-off, and takes no clock; :class:`JwksKeys` with ``retrieval.service.jwks_fetch``
does all four (tests/integration/test_service_jwks.py).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from jwt import PyJWK

from governance.errors import AccessDenied, ConfigError, GovragError
from governance.identity import User
from governance.settings import Settings

log = logging.getLogger("govrag.api.auth")

ASYMMETRIC = {
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "PS256": ("RSA", None),
    "PS384": ("RSA", None),
    "PS512": ("RSA", None),
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
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
    """Public keys from a JWKS file (re-read when it changes) or URL.

    From a URL, keys are fetched in the background (``retrieval.service.jwks_fetch``): a
    request waits for the identity provider only when there is no key yet, or for an unknown
    ``kid`` (at most once per ``MIN_REFRESH_SECONDS``), and never longer than the fetch
    deadline. Cached keys are served while a refresh is due or failing, for at most
    ``cache_seconds + max_stale_seconds``."""

    def __init__(
        self,
        *,
        file: Path | None = None,
        url: str | None = None,
        cache_seconds: float = 300.0,
        timeout_seconds: float = 5.0,
        max_stale_seconds: float = 3600.0,
        deadline_seconds: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if (file is None) == (url is None):
            raise ConfigError("give exactly one of a JWKS file and a JWKS URL")
        if url is not None and not url.lower().startswith(("https://", "http://")):
            raise ConfigError(f"GOVRAG_JWKS_URL must be an http(s) URL, got {url[:60]!r}")
        from retrieval.service.jwks_fetch import JwksFetcher

        self.file, self.url = file, url
        self.cache_seconds, self.timeout_seconds = cache_seconds, timeout_seconds
        self.max_stale_seconds = max_stale_seconds
        self.deadline_seconds = deadline_seconds if deadline_seconds is not None else 2 * timeout_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str | None, _Key] | None = None
        self._loaded_at = 0.0
        self._forced_at = float("-inf")
        self._file_stamp: tuple[int, int] | None = None
        self._fetcher = JwksFetcher(self._download, self._store, clock=clock)

    @property
    def fetches(self) -> int:
        """Fetches finished (for tests and metrics)."""
        return self._fetcher.fetches

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

    def _download(self) -> dict[str | None, _Key]:
        from retrieval.service.jwks_fetch import download

        assert self.url is not None
        try:
            data = json.loads(
                download(
                    self.url, timeout=self.timeout_seconds, deadline=self.deadline_seconds, max_bytes=MAX_JWKS_BYTES
                )
            )
        except ValueError as exc:
            raise KeysUnavailable(f"the JWKS from {self.url} is not JSON") from exc
        except Exception as exc:
            raise KeysUnavailable(f"cannot fetch the JWKS from {self.url}: {exc}") from exc
        return _parse_jwks(data, self.url)

    def _store(self, keys: dict[str | None, _Key]) -> None:
        with self._lock:
            self._keys, self._loaded_at = keys, self._clock()

    def _wait(self, done: Any) -> None:
        if done is not None:
            done.wait(self.deadline_seconds + 1.0)

    def get(self, kid: str | None) -> _Key | None:
        """The key with this ``kid`` (``None``: the only key, if the set holds exactly one)."""
        if self.file is not None:
            with self._lock:
                self._load_file()
                return self._lookup(kid)
        with self._lock:
            have = self._keys is not None
            stale = not have or self._clock() - self._loaded_at >= self.cache_seconds
        if stale:
            done = self._fetcher.fetch_now()  # in the background; only a first request waits
            if not have:
                self._wait(done)
        with self._lock:
            if self._keys is None:
                raise KeysUnavailable(f"no JWKS from {self.url} yet: {self._fetcher.last_error or 'fetch pending'}")
            age = self._clock() - self._loaded_at
            if age > self.cache_seconds + self.max_stale_seconds:
                raise KeysUnavailable(
                    f"the JWKS from {self.url} could not be refreshed for {age:.0f} s "
                    f"(last error: {self._fetcher.last_error})"
                )
            found = self._lookup(kid)
            force = found is None and self._clock() - max(self._loaded_at, self._forced_at) >= MIN_REFRESH_SECONDS
            if force:
                self._forced_at = self._clock()
        if force:  # the provider may have rotated its keys: one rate-limited refresh, waited for
            self._wait(self._fetcher.fetch_now())
            with self._lock:
                found = self._lookup(kid)
        return found

    def refresh_soon(self) -> None:
        """A token failed its signature with a known ``kid``: the provider may have replaced
        the key under the same ``kid``. One rate-limited refresh, waited for."""
        if self.url is None:
            return
        with self._lock:
            if self._clock() - max(self._loaded_at, self._forced_at) < MIN_REFRESH_SECONDS:
                return
            self._forced_at = self._clock()
        self._wait(self._fetcher.fetch_now())

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
                hint=f"use some of {', '.join([*ASYMMETRIC, 'HS256'])}; 'none' is never accepted",
            )
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
            keys = JwksKeys(
                file=settings.jwks_file,
                url=settings.jwks_url,
                cache_seconds=settings.jwks_cache_seconds,
                timeout_seconds=settings.jwks_timeout_seconds,
                max_stale_seconds=settings.jwks_max_stale_seconds,
                deadline_seconds=settings.jwks_deadline_seconds,
            )
        self.keys = keys
        if self.keys is None and self._secret is None:
            raise ConfigError(
                "the retrieval service has no way to verify tokens",
                hint="set GOVRAG_JWKS_FILE or GOVRAG_JWKS_URL (or, for development, GOVRAG_JWT_HS256_SECRET)",
            )
        if self.keys is None:
            self.asymmetric = []
            self.algorithms = frozenset({"HS256"})
        self.issuer = settings.jwt_issuer
        self.audience = settings.jwt_audience
        self.leeway = settings.jwt_leeway_seconds
        if self.issuer is None or self.audience is None:
            log.warning(
                "GOVRAG_JWT_ISSUER/GOVRAG_JWT_AUDIENCE not set: tokens of any issuer/audience "
                "signed by a trusted key are accepted"
            )

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

    def _decode(self, token: str, key: Any, alg: str) -> Any:
        required = ["exp"] + (["iss"] if self.issuer else []) + (["aud"] if self.audience else [])
        try:
            return jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={
                    "require": required,
                    "verify_signature": True,
                    "verify_exp": True,
                    "verify_nbf": True,
                    "verify_iat": True,
                    "verify_aud": True,
                    "verify_iss": True,
                },
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthError("token expired", reason="expired") from exc
        except jwt.InvalidSignatureError:
            raise
        except jwt.PyJWTError as exc:
            raise AuthError(f"token rejected: {exc.__class__.__name__}") from exc

    def verify(self, token: str) -> Identity:
        """The caller a token proves, or :class:`AuthError` / :class:`KeysUnavailable`."""
        if not token or len(token) > MAX_TOKEN_BYTES:
            raise AuthError("token empty or too long")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthError("malformed token") from exc
        key, alg = self._key_for(header)
        try:
            claims = self._decode(token, key, alg)
        except jwt.InvalidSignatureError:
            if alg == "HS256" or self.keys is None:
                raise AuthError("token rejected: InvalidSignatureError") from None
            # The provider may have replaced the key under the same kid: one rate-limited
            # refresh, then the token must verify against what the provider publishes now.
            self.keys.refresh_soon()
            key, alg = self._key_for(header)
            try:
                claims = self._decode(token, key, alg)
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
