"""Per-subject token buckets for the retrieval service.

Each token subject owns a bucket of ``per_minute`` tokens that refills continuously at
``per_minute / 60`` tokens a second; a request takes one token or is refused with the
seconds until the next one. At most ``max_subjects`` buckets are kept: the least recently
used one is dropped first (it comes back full, which at worst grants that subject one extra
burst; subjects come from signed tokens, so a client cannot mint new ones to exploit it).
The limit is per process: several workers or replicas each apply it on their own.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from typing import Callable


class RateLimiter:
    """Thread-safe token buckets keyed by subject, bounded in number."""

    def __init__(self, per_minute: int, *, max_subjects: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
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


def retry_after_header(wait_seconds: float) -> str:
    """The ``Retry-After`` value (whole seconds, at least 1) for a wait."""
    return str(max(1, math.ceil(wait_seconds)))


__all__ = ["RateLimiter", "retry_after_header"]
