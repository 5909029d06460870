"""Per-subject rate limits for the retrieval service.

By default (``GOVRAG_RATE_LIMIT_STORAGE`` unset or ``memory://``) each token subject owns a
token bucket in this process: ``per_minute`` tokens that refill continuously at
``per_minute / 60`` tokens a second; a request takes one token or is refused with the seconds
until the next one. At most ``max_subjects`` buckets are kept: the least recently used one is
dropped first (it comes back full, which at worst grants that subject one extra burst;
subjects come from signed tokens, so a client cannot mint new ones to exploit it). Several
workers or replicas each apply this limit on their own.

With a shared storage URI (``redis://host:6379``, ``memcached://``, ... as the ``limits``
library reads them) the replicas share one limit per subject: at most ``per_minute``
requests in any 60 seconds (``limits``' moving window), refused with the seconds until the
oldest of them leaves the window. Subjects are stored hashed. When the storage does not
answer, requests are let through and a warning is logged: the limit is there against
floods, and a down Redis must not take search down with it.
"""

# The in-process limit is this module's token bucket, not the ``limits`` library: its fixed,
# moving and sliding windows do not refill continuously (after a burst they wait out the whole
# minute; the bucket serves the next request after 60/limit s, and Retry-After says so).

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from governance.errors import ConfigError
from governance.settings import Settings

log = logging.getLogger("govrag.api")

MEMORY = "memory://"
WARN_EVERY_SECONDS = 60.0  # a storage outage is logged once a minute, not once a request
_NAMESPACE = "govrag-search"


class Limiter(Protocol):
    """What the service asks of a rate limit."""

    def acquire(self, subject: str) -> float:
        """Take one request for ``subject``: 0.0 when allowed, else the seconds to wait."""
        ...


class RateLimiter:
    """Thread-safe token buckets keyed by subject, bounded in number (one process)."""

    def __init__(
        self, per_minute: int, *, max_subjects: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if per_minute < 0 or max_subjects < 1:
            raise ValueError("per_minute must be >= 0 and max_subjects >= 1")
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.max_subjects = max_subjects
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # subject -> (tokens, at)
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.capacity > 0

    def acquire(self, subject: str) -> float:
        """Take one token for ``subject``: 0.0 when allowed, else the seconds to wait."""
        if not self.enabled:
            return 0.0
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.pop(subject, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - at) * self.rate)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / self.rate
            self._buckets[subject] = (tokens, now)  # most recently used goes last
            while len(self._buckets) > self.max_subjects:
                self._buckets.popitem(last=False)
            return wait

    def __len__(self) -> int:
        return len(self._buckets)


class SharedRateLimiter:
    """``per_minute`` requests per subject in any 60 s, kept in a ``limits`` storage that
    several processes share (see the module docstring)."""

    def __init__(self, per_minute: int, storage_uri: str) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be >= 1")
        from limits import RateLimitItemPerMinute
        from limits.errors import ConfigurationError
        from limits.storage import storage_from_string
        from limits.strategies import MovingWindowRateLimiter

        try:
            self._storage = storage_from_string(storage_uri, wrap_exceptions=True)
        except ConfigurationError as exc:
            raise ConfigError(
                f"GOVRAG_RATE_LIMIT_STORAGE {_redacted(storage_uri)!r} cannot be used: {exc}",
                hint="a limits storage URI such as redis://host:6379 (pip install 'limits[redis]'),"
                " or memory:// for a limit per process",
            ) from exc
        self._item = RateLimitItemPerMinute(per_minute)
        self._window = MovingWindowRateLimiter(self._storage)
        self.storage_uri = storage_uri
        self._warned_at = float("-inf")

    def acquire(self, subject: str) -> float:
        """Count one request for ``subject``: 0.0 when allowed, else the seconds until the
        oldest request of the window expires."""
        from limits.errors import StorageError

        key = hashlib.sha256(subject.encode("utf-8")).hexdigest()[:32]
        try:
            if self._window.hit(self._item, _NAMESPACE, key):
                return 0.0
            reset_at = self._window.get_window_stats(self._item, _NAMESPACE, key).reset_time
        except StorageError as exc:
            if time.monotonic() - self._warned_at >= WARN_EVERY_SECONDS:
                self._warned_at = time.monotonic()
                log.warning(
                    "rate-limit storage %s did not answer (%s); requests are let through",
                    _redacted(self.storage_uri),
                    exc.__class__.__name__,
                )
            return 0.0
        return max(reset_at - time.time(), 0.001)


def make_rate_limiter(settings: Settings) -> Limiter:
    """The limit ``settings`` ask for: off, per process (the default), or shared."""
    storage = settings.rate_limit_storage or MEMORY
    if settings.api_rate_limit == 0 or storage.startswith(MEMORY):  # limits' memory:// is one process too
        return RateLimiter(settings.api_rate_limit, max_subjects=settings.api_rate_limit_max_subjects)
    return SharedRateLimiter(settings.api_rate_limit, storage)


def retry_after_header(wait_seconds: float) -> str:
    """The ``Retry-After`` value (whole seconds, at least 1) for a wait."""
    return str(max(1, math.ceil(wait_seconds)))


def _redacted(uri: str) -> str:
    """``uri`` without a password (``redis://:secret@host`` → ``redis://***@host``)."""
    scheme, sep, rest = uri.partition("://")
    creds, at, host = rest.rpartition("@")
    return f"{scheme}{sep}***@{host}" if at and creds else uri


__all__ = ["Limiter", "RateLimiter", "SharedRateLimiter", "make_rate_limiter", "retry_after_header"]
