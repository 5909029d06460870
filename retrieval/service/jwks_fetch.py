"""Fetching a JWKS without ever holding a search hostage.

Searches must not wait on the identity provider while a valid key is at hand. So:

- one fetch at a time, on a background thread; requests never fetch themselves;
- a *whole-fetch* deadline (connect, headers, body): a watchdog shuts the socket down when it
  passes, so an endpoint that drips a byte at a time cannot hold a fetch, or anything waiting
  on it, for longer;
- after a failure, the next try waits: ``BACKOFF_BASE_SECONDS`` doubled per failure, up to
  ``BACKOFF_MAX_SECONDS``;
- the keys are served from cache while a refresh is due or failing, for at most the cache time
  plus ``max_stale_seconds``; past that the service answers 503 (``KeysUnavailable``).

``JwksFetcher.fetch_now`` starts a fetch (unless one runs or the back-off forbids it) and
returns an event that is set when it ends; only the first request ever (no keys yet), and an
unknown ``kid`` (at most once per ``MIN_REFRESH_SECONDS``), wait on it, and never longer than
the deadline.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger("govrag.api.auth")

BACKOFF_BASE_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 60.0


class FetchFailed(Exception):
    """One JWKS download failed (a message safe to log)."""


def download(url: str, *, timeout: float, deadline: float, max_bytes: int) -> bytes:
    """GET ``url`` within ``deadline`` seconds in all (each socket operation within
    ``timeout``); at most ``max_bytes`` of body."""
    parts = urlsplit(url)
    conn_cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = conn_cls(parts.hostname or "", parts.port, timeout=min(timeout, deadline))
    expired = threading.Event()

    def cut() -> None:  # unblocks a recv()/send() the timeout alone would let run on
        expired.set()
        sock = conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    watchdog = threading.Timer(deadline, cut)
    watchdog.daemon = True
    started = time.monotonic()
    watchdog.start()
    try:
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn.request("GET", path, headers={"Accept": "application/json"})
        resp = conn.getresponse()
        if resp.status != 200:
            raise FetchFailed(f"HTTP {resp.status}")
        body = bytearray()
        while True:
            chunk = resp.read1(65536)
            if not chunk:
                break
            body += chunk
            if len(body) > max_bytes:
                raise FetchFailed("JWKS too large")
            if time.monotonic() - started > deadline:
                raise FetchFailed(f"JWKS download took longer than {deadline:.0f} s")
        return bytes(body)
    except FetchFailed:
        raise
    except Exception as exc:
        if expired.is_set():
            raise FetchFailed(f"JWKS download took longer than {deadline:.0f} s") from None
        raise FetchFailed(exc.__class__.__name__) from None
    finally:
        watchdog.cancel()
        conn.close()


class JwksFetcher:
    """Runs ``load()`` (download + parse) on a background thread, one at a time, with
    back-off; ``on_keys`` receives each successful result."""

    def __init__(
        self, load: Callable[[], Any], on_keys: Callable[[Any], None], *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._load, self._on_keys, self._clock = load, on_keys, clock
        self._lock = threading.Lock()
        self._running: threading.Event | None = None
        self._failures = 0
        self._next_try = float("-inf")
        self.last_error: str | None = None
        self.fetches = 0

    def fetch_now(self) -> threading.Event | None:
        """Start a fetch unless one runs (then: its event) or the back-off says wait (None)."""
        with self._lock:
            if self._running is not None:
                return self._running
            if self._clock() < self._next_try:
                return None
            done = self._running = threading.Event()
        threading.Thread(target=self._run, args=(done,), name="govrag-jwks-fetch", daemon=True).start()
        return done

    def _run(self, done: threading.Event) -> None:
        try:
            keys = self._load()
        except Exception as exc:
            with self._lock:
                self._failures += 1
                self._next_try = self._clock() + min(
                    BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (self._failures - 1)
                )
                self.last_error = str(exc)
            log.warning("JWKS fetch failed (%s); next try in at most %.0f s", exc, BACKOFF_MAX_SECONDS)
        else:
            self._on_keys(keys)
            with self._lock:
                self._failures, self._next_try, self.last_error = 0, float("-inf"), None
        finally:
            with self._lock:
                self.fetches += 1
                self._running = None
            done.set()
