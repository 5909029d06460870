"""The retriever behind the service, opened on first use, and the readiness checks."""

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from governance.errors import CatalogError, GovragError, IndexUnavailable
from governance.settings import Settings
from retrieval.search import Retriever

log = logging.getLogger("govrag.api")


class Backend:
    """The retriever the service searches with: injected, or opened from settings on first use.

    While the stores cannot be opened, a failed attempt is remembered for
    ``REOPEN_AFTER_S`` so that a burst of requests (or readiness probes) against a dead
    Milvus or database answers 503 at once instead of each one trying to connect again.
    """

    REOPEN_AFTER_S = 2.0

    def __init__(self, settings: Settings, retriever: Retriever | None) -> None:
        self.settings = settings
        self._retriever = retriever
        self._owned = retriever is None
        self._lock = threading.Lock()
        self._failure: tuple[float, GovragError] | None = None

    def retriever(self) -> Retriever:
        with self._lock:
            if self._retriever is None:
                from embedding import make_embedder
                from governance.stores import Stores

                if self._failure and time.monotonic() - self._failure[0] < self.REOPEN_AFTER_S:
                    raise self._failure[1].with_traceback(None)  # don't let its traceback grow
                try:
                    stores = Stores.open(self.settings, serve_tenants=True)
                except GovragError as exc:
                    self._failure = (time.monotonic(), exc)
                    raise
                self._failure = None
                self._retriever = Retriever(stores, lambda: make_embedder(stores.settings))
            return self._retriever

    def warm(self) -> None:
        """Open the stores and load the embedder ahead of the first search (best effort)."""
        try:
            self.retriever().embedder.embed(["warm up"])
        except Exception as exc:
            log.warning("warm-up failed (%s); /readyz reports what is missing", exc.__class__.__name__)

    def readiness(self) -> dict[str, str]:
        checks = {"catalog": "unknown", "milvus": "unknown"}
        try:
            retriever = self.retriever()
        except IndexUnavailable:
            checks["milvus"] = "unavailable"
            checks["catalog"] = self._probe_catalog()
            return checks
        except CatalogError:
            checks["catalog"] = "unavailable"
            return checks
        except Exception as exc:
            log.warning("opening the stores failed: %s", exc.__class__.__name__)
            checks["config"] = "unavailable"
            return checks
        checks["catalog"] = _check(lambda: retriever.stores.catalog.scopes.scope_count(), "catalog")
        checks["milvus"] = _check(lambda: retriever.stores.index.count(), "milvus")
        return checks

    def _probe_catalog(self) -> str:
        from governance.catalog import Catalog

        def probe() -> None:
            catalog = Catalog(self.settings.resolved_database_url, migrate=False)
            try:
                catalog.scopes.scope_count()
            finally:
                catalog.dispose()

        return _check(probe, "catalog")

    def close(self) -> None:
        if self._owned and self._retriever is not None:
            self._retriever.close()
            self._retriever = None


def _check(fn: Callable[[], Any], what: str) -> str:
    try:
        fn()
        return "ok"
    except Exception as exc:
        log.warning("readiness check %s failed: %s", what, exc.__class__.__name__)
        return "unavailable"
