"""The pymilvus calls on one collection, with their timeouts and retries; nothing here knows
about ACLs or tenants (``VectorIndex`` scopes every call it makes).

Every pymilvus call carries a ``timeout`` (its gRPC deadline): ``timeout_s``
(``GOVRAG_MILVUS_TIMEOUT_S``) for reads and searches, ``write_timeout_s``
(``GOVRAG_MILVUS_WRITE_TIMEOUT_S``) for writes, flushes, loads, compactions and creating the
collection. A hung Milvus (stopped, not dead) therefore fails a call after its budget with a
one-line :class:`IndexUnavailable` instead of blocking a thread forever; a timed-out call is
not tried again (its budget is spent).

The retry is a loop, not tenacity: it reloads the collection between attempts when it was
released, and a reload and a wait are counted apart per failure kind. All attempts of one
call share a deadline (:func:`call_deadline_s`: twice the budget plus ``DEADLINE_SLACK_S``),
and each attempt's timeout is cut to what is left of it, so retries never add up to minutes.

What differs between Milvus Lite and a Milvus server is detected from the server's version
string, not configured: which scalar index type a field gets (:mod:`.collection`), whether
compaction exists (a server only), and one Milvus 2.3 bug (an upsert into a collection with a
partition key files rows under the wrong partition, milvus-io/milvus#30607: rows are deleted
and re-inserted there instead).
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal, TypeVar

from governance.errors import IndexUnavailable
from governance.vector_index.filters import ids_filter
from governance.vector_index.schema import VectorIndexSpec

log = logging.getLogger(__name__)
_T = TypeVar("_T")

# Calls that are safe to repeat -- reads (search, query, get, count) and idempotent writes
# (upsert by deterministic primary key, delete by primary key, flush) -- are tried again
# after these pauses when Milvus is unreachable or has the collection released (a restarted
# server does not reload it: it is loaded again here). Anything else fails at once.
RETRY_DELAYS_S = (0.25, 1.0)
# The default budgets of one call (the settings GOVRAG_MILVUS_TIMEOUT_S and
# GOVRAG_MILVUS_WRITE_TIMEOUT_S): reads and searches; writes, flushes, loads, compactions and
# creating the collection (a flush or a load of a large collection legitimately takes minutes).
READ_TIMEOUT_S = 10.0
WRITE_TIMEOUT_S = 300.0
DEADLINE_SLACK_S = 5.0
# An attempt is not started with less than this left before the call's deadline.
MIN_ATTEMPT_S = 0.1
READ_TIMEOUT_SETTING = "GOVRAG_MILVUS_TIMEOUT_S"
WRITE_TIMEOUT_SETTING = "GOVRAG_MILVUS_WRITE_TIMEOUT_S"
# A timeout, anywhere in the exception chain: gRPC's DEADLINE_EXCEEDED (the call's deadline
# passed), pymilvus's "Retry timeout" (its own retries of an UNAVAILABLE server used up the
# call's timeout), a future that timed out waiting for the channel.
_TIMEOUT_MARKERS = ("deadline exceeded", "deadline_exceeded", "retry timeout")
_UNREACHABLE_MARKERS = (
    "fail connecting",
    "server unavailable",
    "unavailable",
    "connection refused",
    "failed to connect",
    "socket closed",
    "connection reset",
    "broken pipe",
    "connection closed",
    "ping failed",
)
_NOT_LOADED_MARKERS = ("not loaded", "released", "call load")
UNREACHABLE_HINT = (
    "is Milvus running? Check GOVRAG_MILVUS_URI; with the embedded default run "
    "`govrag server status` (the next govrag command starts a stopped local server)"
)
NOT_LOADED_HINT = (
    "Milvus has the collection released (a restarted server does): each call loads it again and "
    "waits for that within its deadline, so try again shortly; a large collection may need a "
    "larger GOVRAG_MILVUS_TIMEOUT_S while it loads"
)


def call_deadline_s(budget_s: float) -> float:
    """How long all attempts of one call with this per-attempt budget may take together."""
    return 2 * budget_s + DEADLINE_SLACK_S


def timeout_hint(setting: str) -> str:
    """What to do about a Milvus call that got no answer within ``setting``'s budget."""
    return (
        "Milvus is hung or overloaded: check the server (with the embedded default run `govrag server "
        f"status`; a Milvus server: its logs and load); if it is only slow, raise {setting}"
    )


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and its causes and contexts, each once (a chain can loop: an exception whose
    context leads back to itself)."""
    visited: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in visited:
        visited.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def timed_out(exc: BaseException) -> bool:
    """Did a call fail because its timeout passed (anywhere in the exception chain: pymilvus
    wraps the gRPC error in its own)?"""
    for e in _chain(exc):
        if isinstance(e, TimeoutError) or type(e).__name__ == "FutureTimeoutError":
            return True
        text = str(e).lower()
        if any(m in text for m in _TIMEOUT_MARKERS):
            return True
    return False


def failure_kind(exc: BaseException) -> Literal["timeout", "unreachable", "not_loaded"] | None:
    """Which failure ``exc`` is: ``timeout`` (the call's budget is spent: not retried),
    ``unreachable`` or ``not_loaded`` (transient, retried), None (not worth retrying)."""
    if timed_out(exc):
        return "timeout"
    text = str(exc).lower()
    if any(m in text for m in _NOT_LOADED_MARKERS):
        return "not_loaded"
    if any(m in text for m in _UNREACHABLE_MARKERS):
        return "unreachable"
    return None


def describe(exc: BaseException) -> str:
    """One line from a pymilvus / gRPC error: its message without the wrapper, no newlines."""
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    code = getattr(exc, "code", None)
    line = " ".join(str(message).split())
    if isinstance(code, int) and code:
        line += f" (code {code})"
    return line[:400]


_pymilvus_logs_quiet = False


def _quiet_pymilvus_logs() -> None:
    """pymilvus logs every failed call itself, with tracebacks, on its own stderr handler.
    govrag reports the failure once, as an IndexUnavailable, so pymilvus's records go to
    govrag's (root) handlers instead, and only when the root logger is at DEBUG."""
    global _pymilvus_logs_quiet
    if _pymilvus_logs_quiet:
        return
    _pymilvus_logs_quiet = True
    debug = logging.getLogger().getEffectiveLevel() <= logging.DEBUG
    for name in ("pymilvus", "pymilvus.milvus_client", "pymilvus.bulk_writer"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True
        logger.setLevel(logging.NOTSET if name != "pymilvus" else logging.DEBUG if debug else logging.CRITICAL)


def parse_version(version: str) -> tuple[str, tuple[int, int, int]]:
    """``("lite" | "server", (major, minor, patch))`` from ``get_server_version()``:
    ``milvus_lite-3.2.2`` on Milvus Lite, ``v2.3.5-lite`` from the PyPI milvus-server,
    ``v2.4.x`` / ``2.5.x`` from a Milvus standalone or cluster."""
    m = re.search(r"(\d+)\.(\d+)\.(\d+)", version)
    numbers = (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else (0, 0, 0)
    return ("lite" if version.startswith("milvus_lite") else "server"), numbers


CONNECT_ATTEMPTS = 3


def _told_to_calm_down(exc: BaseException) -> bool:
    """Did the server close the connection with GOAWAY "too_many_pings"? (anywhere in the
    exception chain: pymilvus wraps the gRPC error in its own)."""
    return any("too many pings" in str(e).lower() or "too_many_pings" in str(e).lower() for e in _chain(exc))


def _connect(client_class: Any, uri: str, token: str, timeout_s: float = READ_TIMEOUT_S) -> tuple[Any, str]:
    """A connected client and the server's version. gRPC shares one connection between the
    channels a process opens to the same address; pymilvus pings every 10 s, more often than
    an idle milvus-lite permits, so the server may have closed that connection with GOAWAY
    "too_many_pings", and the next client's first call fails on it. A new attempt reconnects;
    any other failure is reported at once (a dead server must fail fast). Waiting for the
    channel and asking the version each take at most ``timeout_s``, and all attempts together
    at most :func:`call_deadline_s` of it (a hung server must not hold the caller forever)."""
    deadline = time.monotonic() + call_deadline_s(timeout_s)
    for attempt in range(1, CONNECT_ATTEMPTS + 1):
        budget = min(timeout_s, max(deadline - time.monotonic(), MIN_ATTEMPT_S))
        try:
            client = client_class(uri=uri, token=token, timeout=budget)
            return client, str(client.get_server_version(timeout=budget))
        except Exception as exc:
            out_of_time = time.monotonic() + 0.2 * attempt + MIN_ATTEMPT_S >= deadline
            if attempt == CONNECT_ATTEMPTS or out_of_time or not _told_to_calm_down(exc):
                raise
            log.info("Milvus at %s closed an idle connection (too many pings); connecting again", uri)
            time.sleep(0.2 * attempt)
    raise AssertionError("unreachable")  # the loop returns or raises


class MilvusCollection:
    """One collection through one pymilvus client: every call that is safe to repeat is
    retried (:meth:`_call`), and every failure becomes an :class:`IndexUnavailable` naming
    the URI. Filters come from :mod:`governance.vector_index.filters`; this class applies no
    tenant or ACL scoping of its own."""

    def __init__(
        self,
        uri: str,
        collection: str,
        token: str | None = None,
        *,
        timeout_s: float = READ_TIMEOUT_S,
        write_timeout_s: float = WRITE_TIMEOUT_S,
    ) -> None:
        if not (timeout_s > 0 and write_timeout_s > 0):
            raise ValueError(f"Milvus timeouts must be positive, got {timeout_s} and {write_timeout_s}")
        self.uri = uri
        self.collection = collection
        self.timeout_s = float(timeout_s)
        self.write_timeout_s = float(write_timeout_s)
        self.last_compaction_id: int | None = None
        try:
            from pymilvus import MilvusClient

            _quiet_pymilvus_logs()
            if uri.endswith(".db"):  # Milvus Lite in this process: physical compaction first
                from governance.milvus_process.lite_compaction import install

                install()
            self._client, self.server_version = _connect(MilvusClient, uri, token or "", self.timeout_s)
        except Exception as exc:
            if timed_out(exc):
                raise IndexUnavailable(
                    f"cannot connect to Milvus at {uri}: no answer within {self.timeout_s:g}s ({READ_TIMEOUT_SETTING})",
                    hint=timeout_hint(READ_TIMEOUT_SETTING),
                ) from exc
            raise IndexUnavailable(
                f"cannot connect to Milvus at {uri}: {describe(exc)}", hint=UNREACHABLE_HINT
            ) from exc
        self.backend, self.version = parse_version(self.server_version)
        # milvus-io/milvus#30607 (fixed in 2.4 and late 2.3 patches): upsert computes the
        # partition from the wrong field, so rows vanish from partition-key searches.
        self._partition_key_upsert_broken = self.backend == "server" and self.version < (2, 4, 0)

    # -- the collection -------------------------------------------------------------------
    def prepare(self, spec: VectorIndexSpec, *, dim: int, multi_tenant: bool, consistency: str) -> VectorIndexSpec:
        """Open the collection, checking it was made with these settings, or create it; then
        load it. The vector index it is searched by: ``spec``, or the one it was made with."""
        from governance.vector_index.collection import prepare_collection

        try:
            return prepare_collection(
                self._client,
                self.collection,
                spec,
                dim=dim,
                multi_tenant=multi_tenant,
                consistency=consistency,
                backend=self.backend,
                version=self.version,
                uri=self.uri,
                timeout_s=self.timeout_s,
                write_timeout_s=self.write_timeout_s,
            )
        except IndexUnavailable:
            raise
        except Exception as exc:
            if timed_out(exc):
                # which call it was is not known here: name both budgets
                raise IndexUnavailable(
                    f"cannot prepare collection {self.collection!r} at {self.uri}: no answer within "
                    f"{self.timeout_s:g}s ({READ_TIMEOUT_SETTING}; {self.write_timeout_s:g}s for creating and "
                    f"loading it, {WRITE_TIMEOUT_SETTING})",
                    hint=timeout_hint(READ_TIMEOUT_SETTING),
                ) from exc
            raise IndexUnavailable(
                f"cannot prepare collection {self.collection!r} at {self.uri}: {describe(exc)}",
                hint=UNREACHABLE_HINT if failure_kind(exc) == "unreachable" else None,
            ) from exc

    def describe_collection(self) -> dict[str, Any]:
        """pymilvus's description of the collection (fields, consistency level, ...)."""
        return dict(
            self._call(
                f"describing {self.collection!r}",
                lambda t: self._client.describe_collection(self.collection, timeout=t),
            )
        )

    def describe_index(self, field: str = "vector") -> dict[str, Any]:
        """pymilvus's description of the index on ``field`` (type, parameters, row counts)."""
        return dict(
            self._call(
                f"describing the index on {field}",
                lambda t: self._client.describe_index(self.collection, field, timeout=t),
            )
            or {}
        )

    def index_types(self) -> dict[str, str]:
        """Field name -> index type of every index on the collection."""
        try:
            out = {}
            for name in self._client.list_indexes(self.collection, timeout=self.timeout_s):
                info = self._client.describe_index(self.collection, name, timeout=self.timeout_s)
                out[str(info.get("field_name", name))] = str(info.get("index_type", ""))
            return out
        except Exception as exc:
            raise self._unavailable(f"describing the indexes of {self.collection!r}", exc) from exc

    def wait_until_indexed(self, rows: int, timeout_s: float, poll_s: float = 1.0) -> dict[str, Any]:
        """Poll the vector index until it covers at least ``rows`` rows with none pending, or
        ``timeout_s`` passes; the index description either way (``indexed_rows``,
        ``pending_index_rows``, ``state``) — the caller decides what a timeout means."""
        deadline = time.monotonic() + timeout_s
        while True:
            info: dict[str, Any] = self._call(
                "describing the vector index",
                lambda t: self._client.describe_index(self.collection, "vector", timeout=t),
            )
            done = int(info.get("indexed_rows", 0)) >= rows and int(info.get("pending_index_rows", 0)) == 0
            if done or time.monotonic() >= deadline:
                return info
            time.sleep(poll_s)

    # -- calls that retry -----------------------------------------------------------------
    def _unavailable(self, what: str, exc: BaseException, *, write: bool = False, note: str = "") -> IndexUnavailable:
        """The one-line error for ``what`` failing with ``exc``: a timeout names the budget and
        its setting; anything else quotes the error (and, when unreachable, asks whether Milvus runs)."""
        kind = failure_kind(exc)
        if kind == "timeout":
            budget, setting = (
                (self.write_timeout_s, WRITE_TIMEOUT_SETTING) if write else (self.timeout_s, READ_TIMEOUT_SETTING)
            )
            return IndexUnavailable(
                f"Milvus at {self.uri}: {what} got no answer within {budget:g}s ({setting}){note}",
                hint=timeout_hint(setting),
            )
        hint = {"unreachable": UNREACHABLE_HINT, "not_loaded": NOT_LOADED_HINT}.get(kind or "")
        return IndexUnavailable(f"Milvus at {self.uri}: {what} failed: {describe(exc)}{note}", hint=hint)

    def _call(self, what: str, fn: Callable[[float], _T], *, retry: bool = True, write: bool = False) -> _T:
        """``fn(timeout)``, ``timeout`` being what the pymilvus call in it must pass: the
        budget (``write_timeout_s`` for a ``write``, else ``timeout_s``), cut to what is left
        of the call's deadline (:func:`call_deadline_s` of the budget). When it fails because
        Milvus is unreachable and ``retry`` (the call is safe to repeat), try again after each
        of ``RETRY_DELAYS_S``; when the collection was released (a restarted server does not
        reload it), load it and try once more. A timeout is not tried again (the budget is
        spent), nor is anything once the deadline is near. Any other failure, or the last one,
        becomes IndexUnavailable naming this URI."""
        budget = self.write_timeout_s if write else self.timeout_s
        limit = call_deadline_s(budget)
        deadline = time.monotonic() + limit
        waits, reloaded, load_note = 0, False, ""
        while True:
            try:
                return fn(min(budget, max(deadline - time.monotonic(), MIN_ATTEMPT_S)))
            except Exception as exc:
                kind = failure_kind(exc)
                if (
                    not retry
                    or kind is None
                    or kind == "timeout"
                    or (kind == "not_loaded" and reloaded)
                    or (kind == "unreachable" and waits == len(RETRY_DELAYS_S))
                ):
                    raise self._unavailable(what, exc, write=write, note=load_note) from exc
                pause = RETRY_DELAYS_S[waits] if kind == "unreachable" else 0.0
                if time.monotonic() + pause + MIN_ATTEMPT_S >= deadline:
                    note = f" (retries stopped at the call's {limit:g}s deadline)"
                    raise self._unavailable(what, exc, write=write, note=note) from exc
                log.info("Milvus at %s: %s failed (%s); trying again", self.uri, what, kind)
                if kind == "not_loaded":
                    reloaded = True
                    load_timeout = min(self.write_timeout_s, max(deadline - time.monotonic(), MIN_ATTEMPT_S))
                    try:
                        self._client.load_collection(self.collection, timeout=load_timeout)
                    except Exception as load_exc:  # the next attempt reports what is wrong
                        log.info("loading %r at %s failed: %s", self.collection, self.uri, describe(load_exc))
                        load_note = (
                            f" (loading it again did not finish within the call's {limit:g}s deadline)"
                            if timed_out(load_exc)
                            else f" (loading it again failed: {describe(load_exc)})"
                        )
                else:
                    time.sleep(pause)
                    waits += 1

    def upsert(self, entities: Sequence[dict[str, Any]], *, partition_key: bool = False, batch: int = 2000) -> None:
        """Insert or overwrite rows in batches (primary keys are deterministic, so a retry is
        harmless). ``partition_key``: the collection has one (multi-tenancy), so a Milvus
        server before 2.4 gets a delete and an insert instead of an upsert."""
        by_delete_insert = partition_key and self._partition_key_upsert_broken

        def write(chunk: list[dict[str, Any]], timeout: float) -> None:
            if by_delete_insert:  # repeated as a pair, so a retry never doubles a row
                self._client.delete(self.collection, filter=ids_filter([r["id"] for r in chunk]), timeout=timeout)
                self._client.insert(self.collection, data=chunk, timeout=timeout)
            else:
                self._client.upsert(self.collection, data=chunk, timeout=timeout)

        for i in range(0, len(entities), batch):
            chunk = list(entities[i : i + batch])
            self._call(
                f"writing {len(chunk)} vectors to {self.collection!r}", functools.partial(write, chunk), write=True
            )

    def insert(self, entities: Sequence[dict[str, Any]]) -> None:
        """Insert rows whose ids are new (benchmarks loading millions of rows): not retried,
        since a repeated insert would double them."""
        self._call(
            f"inserting {len(entities)} vectors into {self.collection!r}",
            lambda t: self._client.insert(self.collection, data=list(entities), timeout=t),
            retry=False,
            write=True,
        )

    def delete(self, expr: str, *, rows: int) -> None:
        """Delete the rows ``expr`` matches (``rows``: how many, for the error message)."""
        self._call(
            f"deleting {rows} vectors from {self.collection!r}",
            lambda t: self._client.delete(self.collection, filter=expr, timeout=t),
            write=True,
        )

    def search(
        self,
        data: list[list[float]],
        *,
        filter: str,
        limit: int,
        output_fields: Sequence[str],
        search_params: dict[str, Any],
        consistency_level: str,
        filter_params: dict[str, Any] | None = None,
    ) -> list[list[dict[str, Any]]]:
        """pymilvus's ``search``: per query vector, its hits (``id``, ``distance``, ``entity``).
        ``filter_params``: the values of a templated ``filter`` (Milvus >= 2.5 only)."""
        # Sent only when given: Milvus 2.3.5 and Lite refuse a template outright.
        templated = {"filter_params": filter_params} if filter_params is not None else {}
        return self._call(
            f"search in {self.collection!r}",
            lambda t: self._client.search(
                self.collection,
                data=data,
                filter=filter,
                limit=limit,
                output_fields=list(output_fields),
                search_params=search_params,
                consistency_level=consistency_level,
                timeout=t,
                **templated,
            ),
        )

    def query(
        self,
        filter: str,
        output_fields: Sequence[str],
        limit: int,
        *,
        consistency_level: str = "Strong",
        filter_params: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """The rows ``filter`` matches, at most ``limit`` (``filter_params``: as for :meth:`search`)."""
        templated = {"filter_params": filter_params} if filter_params is not None else {}
        return list(
            self._call(
                f"query on {self.collection!r}",
                lambda t: self._client.query(
                    self.collection,
                    filter=filter,
                    output_fields=list(output_fields),
                    limit=limit,
                    consistency_level=consistency_level,
                    timeout=t,
                    **templated,
                ),
            )
        )

    @property
    def templates_filters(self) -> bool:
        """Whether this server takes filter templates (``filter_params``): a Milvus server
        from 2.5 on. Milvus Lite reports its own version (``milvus_lite-3.2.2``), whose
        numbers say nothing about templating, and refuses templates: never."""
        return self.backend == "server" and self.version >= (2, 5, 0)

    @property
    def scans_filters_in_python(self) -> bool:
        """Whether a filtered query evaluates its filter row by row (Milvus Lite 3.x: ~165 ms
        at 100k rows whatever the filter) while a read by primary key is cheap: where the
        search's listed plan pays. On a Milvus server the query uses its scalar indexes and
        reading 87 rows by primary key took longer than the filtered search (22.6 against
        10.4 ms at 1M rows, milvus-server 2.3.5)."""
        return self.backend == "lite"

    def get(
        self, ids: Sequence[int], output_fields: Sequence[str], *, consistency_level: str = "Strong"
    ) -> list[dict[str, Any]]:
        """The rows with these primary keys."""
        return list(
            self._call(
                f"get on {self.collection!r}",
                lambda t: self._client.get(
                    self.collection,
                    ids=list(ids),
                    output_fields=list(output_fields),
                    consistency_level=consistency_level,
                    timeout=t,
                ),
            )
        )

    def count(self, filter: str = "") -> int:
        """Rows ``filter`` matches (all rows: ``""``), Strong."""
        res = self._call(
            f"count on {self.collection!r}",
            lambda t: self._client.query(
                self.collection, filter=filter, output_fields=["count(*)"], consistency_level="Strong", timeout=t
            ),
        )
        return int(res[0]["count(*)"])

    def flush(self) -> None:
        """Seal what was written so searches use the built vector index."""
        self._call(
            f"flush of {self.collection!r}", lambda t: self._client.flush(self.collection, timeout=t), write=True
        )

    # -- calls that do not retry ----------------------------------------------------------
    def iter_rows(self, filter: str, fields: Sequence[str], batch_size: int = 2000) -> Iterator[dict[str, Any]]:
        """The rows ``filter`` matches with ``fields``, in batches, with pymilvus's query
        iterator (no 16k offset window); each page within ``timeout_s``."""
        try:
            it = self._client.query_iterator(
                self.collection,
                batch_size=batch_size,
                filter=filter,
                output_fields=list(fields),
                timeout=self.timeout_s,
            )
        except Exception as exc:
            raise self._unavailable(f"iterating {self.collection!r}", exc) from exc
        try:
            while True:
                try:
                    rows = it.next()  # each page with the iterator's timeout
                except Exception as exc:
                    raise self._unavailable(f"iterating {self.collection!r}", exc) from exc
                if not rows:
                    return
                yield from rows
        finally:
            it.close()

    def compact(self) -> bool:
        """Ask the server to compact, so deleted rows are physically removed; True once the
        server has accepted the request and knows the job (:attr:`last_compaction_id`)."""
        try:
            job = int(self._client.compact(self.collection, timeout=self.write_timeout_s))
            state = self._client.get_compaction_state(job, timeout=self.timeout_s) if job else "UndefiedState"
        except Exception as exc:
            log.warning("compaction request for %r at %s failed: %s", self.collection, self.uri, describe(exc))
            return False
        log.info("compaction %s of %r requested: %s", job, self.collection, state)
        if not job or state == "UndefiedState":  # (sic: pymilvus's name for an unknown job)
            return False
        self.last_compaction_id = job
        return True

    def compaction_state(self, job_id: int | None = None) -> str:
        """``Executing`` or ``Completed`` for a compaction job (default: the last one asked)."""
        job = job_id if job_id is not None else self.last_compaction_id
        if job is None:
            raise ValueError("no compaction was requested")
        try:
            return str(self._client.get_compaction_state(job, timeout=self.timeout_s))
        except Exception as exc:
            raise self._unavailable(f"compaction state of job {job}", exc) from exc

    def drop(self) -> None:
        """Drop the collection and its data."""
        try:
            self._client.drop_collection(self.collection, timeout=self.write_timeout_s)
        except Exception as exc:
            raise self._unavailable(f"dropping {self.collection!r}", exc, write=True) from exc

    def close(self) -> None:
        """Close the client (an in-process Milvus Lite file stays locked while one is open).
        No call to the server: closing the channel takes no timeout."""
        try:
            self._client.close()
        except Exception:  # closing a dead connection is not an error worth raising
            log.debug("closing Milvus client failed", exc_info=True)
