"""The service never waits on the identity provider while it has a valid key: loopback JWKS
endpoints that hang, drip a byte at a time, rotate keys, or swap the key under one ``kid``."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest

from retrieval.service.auth import MIN_REFRESH_SECONDS, JwksKeys, KeysUnavailable, TokenVerifier
from testsupport.service_tokens import make_keys, public_jwk, service_settings, sign


class _Endpoint:
    """A loopback HTTP endpoint: ``mode`` is ``serve`` (the JWKS), ``hang`` (accept, never
    answer) or ``drip`` (one byte every 0.2 s). Counts connections."""

    def __init__(self, jwks: dict) -> None:
        self.jwks, self.mode, self.connections = jwks, "serve", 0
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}/jwks"
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                body = json.dumps(self.jwks).encode()
                reply = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
                    len(body),
                    body,
                )
                if self.mode == "hang":
                    self._stop.wait(30)
                elif self.mode == "drip":
                    for byte in reply:
                        if self._stop.wait(0.2):
                            return
                        conn.sendall(bytes([byte]))
                else:
                    conn.sendall(reply)
            except OSError:
                pass

    def close(self) -> None:
        self._stop.set()
        self._sock.close()


def _jwks(keys, kid: str = "rsa-1") -> dict:
    return {"keys": [public_jwk(keys.rsa, kid, "RS256")]}


def test_concurrent_first_requests_share_one_fetch_and_a_hang_costs_at_most_the_deadline(keys) -> None:
    endpoint = _Endpoint(_jwks(keys))
    endpoint.mode = "hang"
    jwks = JwksKeys(url=endpoint.url, timeout_seconds=0.5, deadline_seconds=1.0)
    errors, took = [], []

    def call() -> None:
        started = time.monotonic()
        try:
            jwks.get("rsa-1")
        except KeysUnavailable as exc:
            errors.append(exc)
        took.append(time.monotonic() - started)

    try:
        threads = [threading.Thread(target=call) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert len(errors) == 6 and max(took) < 3.0  # not 6 x the timeout
        assert endpoint.connections == 1
    finally:
        endpoint.close()


def test_a_dripping_endpoint_is_cut_at_the_whole_fetch_deadline(keys) -> None:
    endpoint = _Endpoint(_jwks(keys))
    endpoint.mode = "drip"  # every byte well within the socket timeout: only the deadline stops it
    try:
        jwks = JwksKeys(url=endpoint.url, timeout_seconds=1.0, deadline_seconds=1.5)
        started = time.monotonic()
        with pytest.raises(KeysUnavailable):
            jwks.get("rsa-1")
        assert time.monotonic() - started < 4.0
    finally:
        endpoint.close()


def test_cached_keys_are_served_while_the_provider_hangs_for_a_bounded_time(keys) -> None:
    endpoint = _Endpoint(_jwks(keys))
    now = [1000.0]
    try:
        jwks = JwksKeys(
            url=endpoint.url,
            cache_seconds=300,
            timeout_seconds=0.5,
            deadline_seconds=1.0,
            max_stale_seconds=600,
            clock=lambda: now[0],
        )
        assert jwks.get("rsa-1") is not None
        endpoint.mode = "hang"
        now[0] += 301  # due for a refresh, and the provider hangs
        started = time.monotonic()
        for _ in range(20):
            assert jwks.get("rsa-1") is not None
        assert time.monotonic() - started < 0.5  # no request waited on the refresh
        now[0] += 600  # past cache + max stale: no more keys
        time.sleep(1.5)  # let the hanging refresh hit its deadline
        with pytest.raises(KeysUnavailable, match="could not be refreshed"):
            jwks.get("rsa-1")
    finally:
        endpoint.close()


def test_failed_refreshes_back_off(keys) -> None:
    endpoint = _Endpoint(_jwks(keys))
    endpoint.mode = "hang"
    try:
        jwks = JwksKeys(url=endpoint.url, timeout_seconds=0.3, deadline_seconds=0.5)
        for _ in range(10):
            with pytest.raises(KeysUnavailable):
                jwks.get("rsa-1")
        assert endpoint.connections <= 3  # 1 s, then 2 s of back-off: not one fetch per request
    finally:
        endpoint.close()


def test_rotated_keys_are_fetched_once_for_an_unknown_kid(tmp_path: Path, keys) -> None:
    endpoint = _Endpoint(_jwks(keys))
    now = [1000.0]
    try:
        jwks = JwksKeys(url=endpoint.url, cache_seconds=300, timeout_seconds=1, clock=lambda: now[0])
        verifier = TokenVerifier(service_settings(tmp_path, keys, jwks_file=None, jwt_hs256_secret=None), keys=jwks)
        assert verifier.verify(sign(keys)).subject == "bob@example.com"
        rotated = make_keys(tmp_path / "rotated")
        endpoint.jwks = {"keys": [public_jwk(rotated.rsa, "rsa-2", "RS256")]}
        now[0] += MIN_REFRESH_SECONDS + 1
        assert verifier.verify(sign(rotated, kid="rsa-2")).subject == "bob@example.com"
        assert jwks.fetches == 2
    finally:
        endpoint.close()


def test_a_key_swapped_under_the_same_kid_is_picked_up_and_the_old_one_refused(tmp_path: Path, keys) -> None:
    from retrieval.service.auth import AuthError

    endpoint = _Endpoint(_jwks(keys, "k1"))
    now = [1000.0]
    try:
        jwks = JwksKeys(url=endpoint.url, cache_seconds=300, timeout_seconds=1, clock=lambda: now[0])
        verifier = TokenVerifier(service_settings(tmp_path, keys, jwks_file=None, jwt_hs256_secret=None), keys=jwks)
        assert verifier.verify(sign(keys, kid="k1")).subject == "bob@example.com"
        swapped = make_keys(tmp_path / "swapped")
        endpoint.jwks = _jwks(swapped, "k1")
        now[0] += MIN_REFRESH_SECONDS + 1
        assert verifier.verify(sign(swapped, kid="k1")).subject == "bob@example.com"
        with pytest.raises(AuthError):
            verifier.verify(sign(keys, kid="k1"))
    finally:
        endpoint.close()
