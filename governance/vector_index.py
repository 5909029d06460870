"""The one module that owns the Milvus collection: its schema, its indexes and every filter
expression sent to Milvus.

Nothing a user or a document supplies is pasted into an expression. Search filters hold only
integers (scope ids and epoch seconds) checked here to be real ints; the string filters
(``document_id``, ``tenant``) are built by :func:`quote_string`, which rejects control
characters and escapes quotes and backslashes.

The same code runs on Milvus Lite 3.2 (a ``.db`` path, or a ``milvus-lite server`` URL) and
on a Milvus server (``http(s)://host:port``; tested with milvus-server 2.3.5, see
docs/milvus.md). What differs is detected from the server's version string, not configured:
which scalar index type a field gets (INVERTED where it exists, else STL_SORT for numbers and
Trie for strings, else none with a log line), whether compaction exists (a server only), and
one Milvus 2.3 bug (an upsert into a collection with a partition key files rows under the
wrong partition, milvus-io/milvus#30607: rows are deleted and re-inserted there instead).
"""

from __future__ import annotations

import copy
import logging
import math
import re
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Iterable, Iterator, Literal, Sequence, TypeVar

import numpy as np

from governance.errors import AccessDenied, ConfigError, IndexSchemaMismatch, IndexUnavailable
from governance.tenancy import MAX_TENANT_BYTES
from governance.tenancy import check_tenant as _check_tenant_name

log = logging.getLogger(__name__)
_T = TypeVar("_T")

# Calls that are safe to repeat -- reads (search, query, get, count) and idempotent writes
# (upsert by deterministic primary key, delete by primary key, flush) -- are tried again
# after these pauses when Milvus is unreachable or has the collection released (a restarted
# server does not reload it: it is loaded again here). Anything else fails at once.
RETRY_DELAYS_S = (0.25, 1.0)
_UNREACHABLE_MARKERS = ("fail connecting", "server unavailable", "unavailable", "connection refused",
                        "failed to connect", "deadline exceeded", "socket closed", "connection reset",
                        "broken pipe", "connection closed", "ping failed")
_NOT_LOADED_MARKERS = ("not loaded", "released", "call load")
UNREACHABLE_HINT = ("is Milvus running? Check GOVRAG_MILVUS_URI; with the embedded default run "
                    "`govrag server status` (the next govrag command starts a stopped local server)")


def _failure_kind(exc: BaseException) -> Literal["unreachable", "not_loaded"] | None:
    """Which transient failure ``exc`` is (None: not one worth retrying)."""
    text = str(exc).lower()
    if any(m in text for m in _NOT_LOADED_MARKERS):
        return "not_loaded"
    if any(m in text for m in _UNREACHABLE_MARKERS):
        return "unreachable"
    return None


def _describe(exc: BaseException) -> str:
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


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
NEVER_EXPIRES = 253402300799  # 9999-12-31T23:59:59Z: documents no retention rule covers
MAX_TEXT = 8192
MAX_FILTER_IDS = 100_000
EXACT_SCAN_LIMIT = 4096
# Milvus 2.3's proxy parses a filter at ~8.5 us per listed id on this machine (measured on an
# empty collection: 10,000 ids ~87 ms, against ~1.4 ms for no filter; docs/benchmarks.md), and
# parses one request on one core. A user with thousands of allowed scopes is therefore served
# by up to SEARCH_FANOUT concurrent searches, each listing a contiguous share (no fewer than
# FANOUT_MIN_IDS ids) of the allowed scopes, merged by score: the same top-k, sooner.
SEARCH_FANOUT = 4
FANOUT_MIN_IDS = 500
# Where a filter's search cascade (index search, all IVF clusters, exact scan) last ended is
# remembered per allowed-scope list of up to this many ids, for this long, for this many lists.
CASCADE_MEMO_MAX_IDS = 256
CASCADE_MEMO_S = 300.0
CASCADE_MEMO_SIZE = 4096
OUTPUT_FIELDS = ["document_id", "source", "source_version", "scope_id", "expires_at", "title", "uri", "text"]
TENANT_FIELD = "tenant"  # only with multi-tenancy: a VARCHAR partition key
CONSISTENCY_LEVELS = ("Strong", "Bounded", "Session", "Eventually")
HNSW_PARAMS = {"M": 16, "efConstruction": 200}
# Vector index types: HNSW (default; best latency/recall, slowest to build: ~286 s per 100k
# rows on 2 cores) or IVF (k-means clusters: much faster to build, lower recall at a given
# latency; meant for millions of chunks on a Milvus server, so refused on Milvus Lite, whose
# local, small collections keep HNSW). See docs/milvus.md.
VectorIndexType = Literal["HNSW", "IVF_FLAT", "IVF_SQ8"]
VECTOR_INDEX_TYPES: tuple[str, ...] = ("HNSW", "IVF_FLAT", "IVF_SQ8")
IVF_NLIST = 1024  # clusters per segment; ~sqrt(rows per segment) x a few
IVF_NPROBE = 32  # clusters searched per query (3% of nlist)
# Scalar indexes on the filtered fields, best first per kind: Milvus Lite 3.x and Milvus
# >= 2.4 build INVERTED; Milvus 2.3 has STL_SORT (numbers) and Trie (strings) only.
SCALAR_INDEX_PREFERENCE: dict[str, tuple[str, ...]] = {"int64": ("INVERTED", "STL_SORT"),
                                                       "varchar": ("INVERTED", "Trie")}
INDEXED_SCALAR_FIELDS = ("scope_id", "expires_at", "document_id")

# field name -> (kind, max_length); kept in one place so the schema and the doctor agree.
SCALAR_FIELDS: dict[str, tuple[str, int | None]] = {
    "document_id": ("varchar", 1024),
    "source": ("varchar", 32),
    "source_version": ("int64", None),
    "scope_id": ("int64", None),
    "classification": ("varchar", 64),
    "expires_at": ("int64", None),
    "title": ("varchar", 1024),
    "uri": ("varchar", 2048),
    "text": ("varchar", MAX_TEXT * 4),  # max_length counts bytes; 4 per char covers UTF-8
}


def _check_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what} must be an int, got {type(value).__name__}: {value!r}")
    value = int(value)
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValueError(f"{what} {value} is outside int64")
    return value


def checked_ints(values: Iterable[Any], what: str) -> list[int]:
    """The values as int64s, deduplicated and sorted (stable expressions), at most
    MAX_FILTER_IDS of them; anything else is refused."""
    checked = sorted({_check_int(v, what) for v in values})
    if len(checked) > MAX_FILTER_IDS:
        raise ValueError(f"{len(checked)} {what}s in one filter (limit {MAX_FILTER_IDS})")
    return checked


def int_list(values: Iterable[Any], what: str) -> str:
    """``[1,2,3]`` from checked ints (deduplicated, sorted for stable expressions)."""
    return _int_literal(checked_ints(values, what))


def _int_literal(checked: Sequence[int]) -> str:
    return "[" + ",".join(map(str, checked)) + "]"


def quote_string(value: str) -> str:
    """A Milvus string literal for ``value``: double-quoted, ``\\`` and ``"`` escaped."""
    if not isinstance(value, str):
        raise TypeError(f"expected str, got {type(value).__name__}")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError(f"control characters are not allowed in a filter value: {value[:40]!r}")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def check_tenant(tenant: Any) -> str:
    """A usable tenant name: a non-empty string of at most 256 bytes, no control characters."""
    _check_tenant_name(tenant)
    quote_string(tenant)
    return tenant


def tenant_filter(tenant: str) -> str:
    return f"{TENANT_FIELD} == {quote_string(check_tenant(tenant))}"


def search_filter(scope_ids: Sequence[int], now_epoch: int, tenant: str | None = None) -> str:
    """The ACL + expiry filter of every search (and, with multi-tenancy, the caller's tenant,
    which a server also uses to search only that tenant's partitions). An empty scope list
    is refused: the caller must return no hits instead of searching (an empty ``in []``
    must never be relied on)."""
    if not scope_ids:
        raise ValueError("search_filter needs at least one allowed scope id")
    return _search_filter(checked_ints(scope_ids, "scope id"), _check_int(now_epoch, "time"), tenant)


def _search_filter(checked_scope_ids: Sequence[int], checked_now: int, tenant: str | None) -> str:
    # Only for ids and a time that went through the checks above (search() checks each once,
    # not once per share: ~6 ms for 10,000 ids).
    expr = f"scope_id in {_int_literal(checked_scope_ids)} and expires_at > {checked_now}"
    return expr if tenant is None else f"{tenant_filter(tenant)} and {expr}"


def scope_id_shares(scope_ids: Sequence[int], fanout: int, min_ids: int = FANOUT_MIN_IDS) -> list[list[int]]:
    """The allowed scope ids (checked, deduplicated, sorted) in at most ``fanout`` contiguous
    shares of at least ``min_ids`` ids each; one share when the list is short."""
    ids = checked_ints(scope_ids, "scope id")
    parts = max(1, min(fanout, len(ids) // max(1, min_ids)))
    size = math.ceil(len(ids) / parts) if ids else 0
    return [ids[i : i + size] for i in range(0, len(ids), size)] if ids else []


def all_rows_filter() -> str:
    """A filter every row matches. (Not ``id >= INT64_MIN``: Milvus 2.3's parser reads the
    minus sign apart and cannot parse 9223372036854775808.)"""
    return "id < 0 or id >= 0"


def ids_filter(ids: Sequence[int]) -> str:
    return f"id in {int_list(ids, 'chunk id')}"


def document_filter(document_id: str) -> str:
    return f"document_id == {quote_string(document_id)}"


def documents_filter(document_ids: Sequence[str]) -> str:
    if not document_ids:
        raise ValueError("documents_filter needs at least one document id")
    return "document_id in [" + ",".join(quote_string(d) for d in document_ids) + "]"


def expired_filter(now_epoch: int, exclude_documents: Sequence[str] = ()) -> str:
    """Rows expired at ``now_epoch``, except those of ``exclude_documents`` (legal holds)."""
    expr = f"expires_at <= {_check_int(now_epoch, 'time')}"
    if exclude_documents:
        expr += " and not (" + documents_filter(exclude_documents) + ")"
    return expr


@dataclass(frozen=True)
class RawHit:
    """A Milvus hit before the catalog post-check."""

    id: int
    score: float
    fields: dict[str, Any]


def _parse_version(version: str) -> tuple[str, tuple[int, int, int]]:
    """``("lite" | "server", (major, minor, patch))`` from ``get_server_version()``:
    ``milvus_lite-3.2.2`` on Milvus Lite, ``v2.3.5-lite`` from the PyPI milvus-server,
    ``v2.4.x`` / ``2.5.x`` from a Milvus standalone or cluster."""
    m = re.search(r"(\d+)\.(\d+)\.(\d+)", version)
    numbers = (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else (0, 0, 0)
    return ("lite" if version.startswith("milvus_lite") else "server"), numbers


class VectorIndex:
    """A Milvus collection of chunk vectors with ACL, version and expiry metadata.

    ``multi_tenant`` adds a ``tenant`` field (a partition key, so a server keeps each
    tenant's rows in their own partitions) and makes every search carry the caller's
    tenant; ``tenant`` is what rows without one get.

    Consistency: the collection is made with ``consistency`` (Strong), and the reads that
    must see what was just written or deleted (``query``, ``get``, ``count``: purge
    verification, recovery, the doctor) ask for Strong explicitly. Searches use
    ``search_consistency`` (Session): they see this process's own writes, and do not wait
    for the server's next time tick otherwise — on milvus-server 2.3 a Strong search costs
    ~200 ms (the 200 ms time tick) against ~3.5 ms for Session at 20k rows. Another
    process's latest deletes can be a few ms late in a Session search; the catalog
    post-check of every hit (retrieval.search) is what keeps them out of results.
    """

    def __init__(self, uri: str, collection: str, dim: int = 384, token: str | None = None, *,
                 multi_tenant: bool = False, tenant: str = "", consistency: str = "Strong",
                 search_consistency: str = "Session", index_type: VectorIndexType = "HNSW",
                 nlist: int = IVF_NLIST, nprobe: int = IVF_NPROBE, search_fanout: int = SEARCH_FANOUT) -> None:
        if index_type not in VECTOR_INDEX_TYPES:
            raise ConfigError(f"unknown vector index type {index_type!r}; one of {', '.join(VECTOR_INDEX_TYPES)}")
        for level in (consistency, search_consistency):
            if level not in CONSISTENCY_LEVELS:
                raise ConfigError(f"unknown consistency level {level!r}; one of {', '.join(CONSISTENCY_LEVELS)}")
        if multi_tenant and tenant:
            try:
                check_tenant(tenant)
            except ValueError as exc:
                raise ConfigError(f"GOVRAG_TENANT is unusable: {exc}") from exc
        self.uri = uri
        self.collection = collection
        self.dim = dim
        self.multi_tenant = multi_tenant
        self.tenant = tenant
        self.consistency = consistency
        self.search_consistency = search_consistency
        self.index_type: str = index_type
        self.nlist = nlist
        self.nprobe = nprobe
        self.search_fanout = max(1, int(search_fanout))
        self._fanout_pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._cascade_memo: OrderedDict[Hashable, tuple[int, float]] = OrderedDict()
        self.last_compaction_id: int | None = None
        try:
            from pymilvus import MilvusClient

            _quiet_pymilvus_logs()
            if uri.endswith(".db"):  # Milvus Lite in this process: physical compaction first
                from governance.milvus_process.lite_compaction import install

                install()
            self._client = MilvusClient(uri=uri, token=token or "")
            self.server_version = str(self._client.get_server_version())
        except Exception as exc:
            raise IndexUnavailable(f"cannot connect to Milvus at {uri}: {_describe(exc)}",
                                   hint=UNREACHABLE_HINT) from exc
        self.backend, self.version = _parse_version(self.server_version)
        # milvus-io/milvus#30607 (fixed in 2.4 and late 2.3 patches): upsert computes the
        # partition from the wrong field, so rows vanish from partition-key searches.
        self._upsert_by_delete_insert = multi_tenant and self.backend == "server" and self.version < (2, 4, 0)
        if self.backend == "lite" and index_type != "HNSW":
            self.close()
            raise ConfigError(f"vector index {index_type} needs a Milvus server; Milvus Lite ({self.server_version}) "
                              "is used with HNSW", hint="unset GOVRAG_MILVUS_INDEX, or point GOVRAG_MILVUS_URI "
                              "at a Milvus server")
        try:
            self.ensure_collection()
        except BaseException:
            self.close()  # an in-process Milvus Lite file stays locked while a client is open
            raise

    # -- schema ---------------------------------------------------------------------------
    def ensure_collection(self) -> None:
        """Open the collection, checking it was made with these settings, or create it with
        its vector index and the scalar indexes this backend supports; then load it."""
        try:
            if self._client.has_collection(self.collection):
                self._check_schema(self._client.describe_collection(self.collection))
                self._adopt_vector_index()
            else:
                self._create_collection()
            self._client.load_collection(self.collection)
        except IndexUnavailable:
            raise
        except Exception as exc:
            raise IndexUnavailable(f"cannot prepare collection {self.collection!r} at {self.uri}: {_describe(exc)}",
                                   hint=UNREACHABLE_HINT if _failure_kind(exc) == "unreachable" else None) from exc

    def _create_collection(self) -> None:
        from pymilvus import DataType, MilvusClient

        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
        for name, (kind, max_length) in SCALAR_FIELDS.items():
            if kind == "varchar":
                schema.add_field(name, DataType.VARCHAR, max_length=max_length)
            else:
                schema.add_field(name, DataType.INT64)
        if self.multi_tenant:
            schema.add_field(TENANT_FIELD, DataType.VARCHAR, max_length=MAX_TENANT_BYTES, is_partition_key=True)
        self._client.create_collection(self.collection, schema=schema, consistency_level=self.consistency)
        vector_index = self._client.prepare_index_params()
        vector_index.add_index(field_name="vector", index_type=self.index_type, metric_type="COSINE",
                               params=HNSW_PARAMS if self.index_type == "HNSW" else {"nlist": self.nlist})
        self._client.create_index(self.collection, vector_index)
        # Scalar indexes keep the ACL, expiry, document and tenant filters cheap.
        for field in INDEXED_SCALAR_FIELDS + ((TENANT_FIELD,) if self.multi_tenant else ()):
            kind = "varchar" if field == TENANT_FIELD else SCALAR_FIELDS[field][0]
            self._create_scalar_index(field, self._scalar_index_kinds(kind))

    def _adopt_vector_index(self) -> None:
        """Search an existing collection with the parameters of the vector index it has (the
        type is fixed when the collection is made; a different setting is logged)."""
        info = self._client.describe_index(self.collection, "vector") or {}
        found = str(info.get("index_type", ""))
        if found in VECTOR_INDEX_TYPES and found != self.index_type:
            log.warning("collection %r has a %s vector index, not %s; searching it as %s (the index type is "
                        "fixed when a collection is made)", self.collection, found, self.index_type, found)
            self.index_type = found
        if "nlist" in info:
            self.nlist = int(info["nlist"])

    def _scalar_index_kinds(self, kind: str) -> tuple[str, ...]:
        """Index types to try on a field of ``kind``, best first. A 2.3 server is known to
        lack INVERTED (it answers "expected=STL_SORT"), so it is not asked; anything newer
        or unknown is asked in order."""
        kinds = SCALAR_INDEX_PREFERENCE[kind]
        if self.backend == "server" and self.version < (2, 4, 0):
            kinds = tuple(k for k in kinds if k != "INVERTED")
        return kinds

    def _create_scalar_index(self, field: str, kinds: Sequence[str]) -> str | None:
        """The first of ``kinds`` this backend builds on ``field`` (None: none, logged)."""
        errors = []
        for kind in kinds:
            params = self._client.prepare_index_params()
            params.add_index(field_name=field, index_type=kind)
            try:
                self._client.create_index(self.collection, params)
                return kind
            except Exception as exc:  # this backend lacks the type: try the next one
                errors.append(f"{kind}: {exc}")
        log.warning("no scalar index on %s.%s at %s (%s); filters on it scan rows",
                    self.collection, field, self.uri, "; ".join(errors))
        return None

    def _check_schema(self, description: dict[str, Any]) -> None:
        fields = {f["name"]: f for f in description.get("fields", [])}
        problems = []
        tenant = fields.get(TENANT_FIELD)
        if self.multi_tenant and tenant is None:
            problems.append("it has no `tenant` field, but multi-tenancy is on (GOVRAG_MULTI_TENANT=true)")
        if tenant is not None and not self.multi_tenant:
            problems.append("it has a `tenant` field, but multi-tenancy is off (GOVRAG_MULTI_TENANT=false), "
                            "so searches would not be limited to the caller's tenant")
        vector = fields.get("vector")
        dim = int((vector or {}).get("params", {}).get("dim", 0) or 0)
        if dim != self.dim:
            problems.append(f"its vectors have {dim} dimensions, the embedder makes {self.dim}")
        missing = [name for name in SCALAR_FIELDS if name not in fields]
        if missing:
            problems.append(f"it lacks the fields {', '.join(missing)}")
        if problems:
            raise IndexSchemaMismatch(
                f"collection {self.collection!r} at {self.uri} was made with other settings: " + "; ".join(problems),
                hint="set GOVRAG_MULTI_TENANT (and the embedder) back to what the collection was made with, "
                     "or set GOVRAG_COLLECTION to a new collection and re-ingest into it",
            )

    def wait_until_indexed(self, rows: int, timeout_s: float, poll_s: float = 1.0) -> dict[str, Any]:
        """Poll the vector index until it covers at least ``rows`` rows with none pending, or
        ``timeout_s`` passes; the index description either way (``indexed_rows``,
        ``pending_index_rows``, ``state``) — the caller decides what a timeout means."""
        deadline = time.monotonic() + timeout_s
        while True:
            info: dict[str, Any] = self._call("describing the vector index",
                                              lambda: self._client.describe_index(self.collection, "vector"))
            done = int(info.get("indexed_rows", 0)) >= rows and int(info.get("pending_index_rows", 0)) == 0
            if done or time.monotonic() >= deadline:
                return info
            time.sleep(poll_s)

    def index_types(self) -> dict[str, str]:
        """Field name -> index type of every index on the collection."""
        try:
            out = {}
            for name in self._client.list_indexes(self.collection):
                info = self._client.describe_index(self.collection, name)
                out[str(info.get("field_name", name))] = str(info.get("index_type", ""))
            return out
        except Exception as exc:
            raise IndexUnavailable(f"cannot describe the indexes of {self.collection!r}: {exc}") from exc

    # -- calls to Milvus ------------------------------------------------------------------
    def _call(self, what: str, fn: Callable[[], _T], *, retry: bool = True) -> _T:
        """``fn()``; when it fails because Milvus is unreachable and ``retry`` (the call is
        safe to repeat), try again after each of ``RETRY_DELAYS_S``; when the collection was
        released (a restarted server does not reload it), load it and try once more. Any
        other failure, or the last one, becomes IndexUnavailable naming this URI."""
        waits, reloaded = 0, False
        while True:
            try:
                return fn()
            except Exception as exc:
                kind = _failure_kind(exc)
                if (not retry or kind is None or (kind == "not_loaded" and reloaded)
                        or (kind == "unreachable" and waits == len(RETRY_DELAYS_S))):
                    hint = UNREACHABLE_HINT if kind == "unreachable" else None
                    raise IndexUnavailable(f"Milvus at {self.uri}: {what} failed: {_describe(exc)}",
                                           hint=hint) from exc
                log.info("Milvus at %s: %s failed (%s); trying again", self.uri, what, kind)
                if kind == "not_loaded":
                    reloaded = True
                    try:
                        self._client.load_collection(self.collection)
                    except Exception as load_exc:  # the next attempt reports what is wrong
                        log.info("loading %r at %s failed: %s", self.collection, self.uri, _describe(load_exc))
                else:
                    time.sleep(RETRY_DELAYS_S[waits])
                    waits += 1

    # -- writes ---------------------------------------------------------------------------
    def upsert(self, rows: list[dict[str, Any]], batch: int = 2000) -> None:
        """Insert or overwrite rows (primary keys are deterministic, so a retry is harmless).
        With multi-tenancy, rows without a ``tenant`` get this index's ``tenant``."""
        for row in rows:
            if len(row["text"]) > MAX_TEXT:
                row["text"] = row["text"][:MAX_TEXT]
            if self.multi_tenant:
                tenant = row.get(TENANT_FIELD) or self.tenant
                if not tenant:
                    raise ConfigError("multi-tenancy is on, but a row carries no tenant and GOVRAG_TENANT is empty",
                                      hint="set GOVRAG_TENANT to the tenant this ingest writes")
                try:
                    row[TENANT_FIELD] = check_tenant(tenant)
                except ValueError as exc:
                    raise ConfigError(f"unusable tenant: {exc}") from exc
            else:
                row.pop(TENANT_FIELD, None)
        def write(chunk: list[dict[str, Any]]) -> None:
            if self._upsert_by_delete_insert:  # repeated as a pair, so a retry never doubles a row
                self._client.delete(self.collection, filter=ids_filter([r["id"] for r in chunk]))
                self._client.insert(self.collection, data=chunk)
            else:
                self._client.upsert(self.collection, data=chunk)

        for i in range(0, len(rows), batch):
            chunk = rows[i : i + batch]
            self._call(f"writing {len(chunk)} vectors to {self.collection!r}", lambda: write(chunk))

    def with_tenant(self, tenant: str) -> "VectorIndex":
        """This index (same connection) writing and maintaining ``tenant``'s rows; closing
        the original closes both."""
        if not self.multi_tenant:
            return self
        try:
            check_tenant(tenant)
        except ValueError as exc:
            raise ConfigError(f"unusable tenant: {exc}") from exc
        view = copy.copy(self)
        view.tenant = tenant
        return view

    def own_rows(self, expr: str) -> str:
        """``expr`` limited to this index's tenant when multi-tenancy is on: every maintenance
        read and delete (purge, sweeps, repair) touches one tenant's rows, never another's."""
        if not self.multi_tenant:
            return expr
        if not self.tenant:
            raise ConfigError("multi-tenancy is on, but GOVRAG_TENANT is empty: maintenance works on one tenant",
                              hint="set GOVRAG_TENANT to the tenant to work on")
        return f"{tenant_filter(self.tenant)} and ({expr})"

    def delete_ids(self, ids: Sequence[int], batch: int = 5000) -> int:
        ids = list(ids)
        for i in range(0, len(ids), batch):
            expr = self.own_rows(ids_filter(ids[i : i + batch]))
            self._call(f"deleting {len(ids)} vectors from {self.collection!r}",
                       lambda: self._client.delete(self.collection, filter=expr))
        return len(ids)

    # -- reads ----------------------------------------------------------------------------
    def search(
        self, vector: np.ndarray, *, k: int, scope_ids: Sequence[int], now_epoch: int, ef: int | None = None,
        tenant: str | None = None, consistency: str | None = None,
    ) -> list[RawHit]:
        """Nearest chunks among those whose scope is allowed and which have not expired
        (and, on a multi-tenant index, of ``tenant``: a caller without one is refused)."""
        if not scope_ids:
            return []
        if self.multi_tenant:
            if not tenant:
                raise AccessDenied("this index is multi-tenant and the caller carries no tenant",
                                   hint="give the user a tenant (the `tenant` or `tid` claim)")
            try:
                check_tenant(tenant)
            except ValueError as exc:
                raise AccessDenied(f"unusable tenant: {exc}") from exc
        shares = scope_id_shares(scope_ids, self.search_fanout)
        now = _check_int(now_epoch, "time")
        fields = [*OUTPUT_FIELDS, TENANT_FIELD] if self.multi_tenant else OUTPUT_FIELDS
        level = consistency or self.search_consistency

        def one(share: list[int]) -> list[RawHit]:
            expr = _search_filter(share, now, tenant if self.multi_tenant else None)
            key = (tuple(share), tenant, k, ef) if len(share) <= CASCADE_MEMO_MAX_IDS else None
            return self._search_one(vector, k=k, expr=expr, fields=fields, ef=ef, consistency=level, key=key)

        if len(shares) == 1:
            hits = one(shares[0])
        else:
            # Every share must answer: a failed share fails the search (never a partial answer).
            shares_hits = list(self._pool().map(one, shares))
            hits = sorted((h for share in shares_hits for h in share), key=lambda h: (-h.score, h.id))[:k]
        if self.multi_tenant:  # defence in depth: the filter already holds the tenant
            hits = [h for h in hits if h.fields.get(TENANT_FIELD) == tenant]
        return hits

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._fanout_pool is None:
                self._fanout_pool = ThreadPoolExecutor(self.search_fanout, thread_name_prefix="govrag-search")
            return self._fanout_pool

    def _search_one(self, vector: np.ndarray, *, k: int, expr: str, fields: Sequence[str], ef: int | None,
                    consistency: str, key: Hashable | None = None) -> list[RawHit]:
        """The cascade for one filter: the index search; for IVF, the same over every cluster;
        then the exact scan of the matching rows. Each step runs only when the one before
        returned fewer than k hits, and is at least as complete. Where the last search of the
        same filter had to go down the cascade, this one starts where that one ended (for
        ``CASCADE_MEMO_S``): a user with few readable rows pays one round trip, not three."""
        steps: list[dict[str, int] | None] = [self.search_params(k, ef)]
        if self.index_type != "HNSW" and self.nprobe < self.nlist:
            # IVF searches only nprobe clusters, so a selective filter leaves too few matching
            # rows in them. Searching every cluster scores only the rows the filter lets
            # through: ~4 ms at 300k rows where the exact scan cost 6-27 ms (measured).
            steps.append({"nprobe": self.nlist})
        # Last: a very selective filter can starve the filtered index walk (Milvus Lite 3.2.2
        # HNSW: 4 of 10 hits with ~95 matching rows in 100k), and a segment not yet indexed is
        # searched through an interim index. When few rows match, scan them exactly, so a user
        # with few scopes never misses a document.
        steps.append(None)
        step = self._memo_start(key)
        hits: list[RawHit] | None = None
        while True:
            params = steps[step]
            if params is None:
                exact = self._exact_search(vector, k=k, expr=expr, fields=fields, consistency=consistency)
                if exact is None:  # too many rows match to scan them
                    if hits is None:  # started here from memory, and the rows have grown since
                        step = 0
                        continue
                    step -= 1  # the index answer stands; next time, start there
                    break
                hits = exact
            else:
                hits = self._ann(vector, k=k, expr=expr, fields=fields, params=params, consistency=consistency)
            if len(hits) >= k or step == len(steps) - 1:
                break
            step += 1
        self._memo_set(key, step)
        return hits

    def _memo_start(self, key: Hashable | None) -> int:
        if key is None:
            return 0
        with self._lock:
            entry = self._cascade_memo.get(key)
        return entry[0] if entry is not None and entry[1] > time.monotonic() else 0

    def _memo_set(self, key: Hashable | None, step: int) -> None:
        if key is None:
            return
        with self._lock:
            if step == 0:
                self._cascade_memo.pop(key, None)
                return
            self._cascade_memo[key] = (step, time.monotonic() + CASCADE_MEMO_S)
            self._cascade_memo.move_to_end(key)
            while len(self._cascade_memo) > CASCADE_MEMO_SIZE:
                self._cascade_memo.popitem(last=False)

    def _ann(self, vector: np.ndarray, *, k: int, expr: str, fields: Sequence[str], params: dict[str, int],
             consistency: str) -> list[RawHit]:
        res = self._call(f"search in {self.collection!r}", lambda: self._client.search(
            self.collection,
            data=[np.asarray(vector, dtype=np.float32).tolist()],
            filter=expr,
            limit=k,
            output_fields=list(fields),
            search_params={"metric_type": "COSINE", "params": params},
            consistency_level=consistency,
        ))
        return [RawHit(id=int(h["id"]), score=float(h["distance"]), fields=dict(h.get("entity", {})))
                for h in (res[0] if res else [])]

    def search_params(self, k: int, ef: int | None = None) -> dict[str, int]:
        """The vector index's search parameters: ``ef`` (HNSW) or ``nprobe`` (IVF)."""
        if self.index_type == "HNSW":
            return {"ef": max(ef or 0, k * 4, 64)}
        return {"nprobe": self.nprobe}

    def _exact_search(self, vector: np.ndarray, *, k: int, expr: str,
                      fields: Sequence[str] = tuple(OUTPUT_FIELDS),
                      consistency: str = "Strong") -> list[RawHit] | None:
        # The search's own consistency level: a Strong query costs a server's 200 ms time
        # tick (~400 ms measured on 2.3.5), a Session one a few ms.
        # The search filter already names the caller's tenant (not necessarily this index's).
        rows = self._query(expr, ("vector", *fields), EXACT_SCAN_LIMIT, consistency=consistency)
        if len(rows) >= EXACT_SCAN_LIMIT:
            return None  # not selective: the index answer stands
        if not rows:
            return []
        q = np.asarray(vector, dtype=np.float32)
        mat = np.asarray([r["vector"] for r in rows], dtype=np.float32)
        scores = mat @ q / (np.linalg.norm(mat, axis=1) * (np.linalg.norm(q) or 1.0) + 1e-12)
        order = np.argsort(-scores)[:k]
        return [RawHit(id=int(rows[i]["id"]), score=float(scores[i]),
                       fields={f: rows[i][f] for f in fields if f in rows[i]}) for i in order]

    def query(self, expr: str, fields: Sequence[str] = ("id",), limit: int = 16384, *,
              consistency: str = "Strong") -> list[dict[str, Any]]:
        """Rows of this index's tenant (:meth:`own_rows`) matching an expression built by this
        module's filter functions (Strong by default: a query right after a delete must not
        see the deleted rows)."""
        return self._query(self.own_rows(expr), fields, limit, consistency=consistency)

    def _query(self, expr: str, fields: Sequence[str], limit: int, *, consistency: str) -> list[dict[str, Any]]:
        return list(self._call(f"query on {self.collection!r}", lambda: self._client.query(
            self.collection, filter=expr, output_fields=list(fields), limit=limit, consistency_level=consistency)))

    def iter_rows(self, fields: Sequence[str], batch_size: int = 2000) -> Iterator[dict[str, Any]]:
        """Every row of this index's tenant (all rows without multi-tenancy) with ``fields``
        (``id`` always), in batches, with pymilvus's query iterator (no 16k offset window)."""
        fields = list(dict.fromkeys(["id", *fields]))
        try:
            it = self._client.query_iterator(self.collection, batch_size=batch_size,
                                             filter=self.own_rows(all_rows_filter()), output_fields=fields)
        except ConfigError:
            raise
        except Exception as exc:
            raise IndexUnavailable(f"cannot iterate {self.collection!r}: {exc}") from exc
        try:
            while True:
                try:
                    rows = it.next()
                except Exception as exc:
                    raise IndexUnavailable(f"iterating {self.collection!r} failed: {exc}") from exc
                if not rows:
                    return
                yield from rows
        finally:
            it.close()

    def get(self, ids: Sequence[int], fields: Sequence[str] = ("id",), *,
            consistency: str = "Strong") -> list[dict[str, Any]]:
        if not ids:
            return []
        own = self.tenant if self.multi_tenant and self.tenant else None
        wanted = list(dict.fromkeys([*fields, TENANT_FIELD])) if own else list(fields)
        rows = list(self._call(f"get on {self.collection!r}", lambda: self._client.get(
            self.collection, ids=list(ids), output_fields=wanted, consistency_level=consistency)))
        return [r for r in rows if r.get(TENANT_FIELD) == own] if own else rows

    def count(self) -> int:
        """Rows in the collection; with multi-tenancy and a tenant set, that tenant's rows."""
        expr = tenant_filter(self.tenant) if self.multi_tenant and self.tenant else ""
        res = self._call(f"count on {self.collection!r}", lambda: self._client.query(
            self.collection, filter=expr, output_fields=["count(*)"], consistency_level="Strong"))
        return int(res[0]["count(*)"])

    def flush(self) -> None:
        """Seal what was written so searches use the built vector index. Measured on Milvus
        Lite 3.2.2 (20k rows, 2 cores): ~900 ms per search before a flush, ~60 ms after."""
        self._call(f"flush of {self.collection!r}", lambda: self._client.flush(self.collection))

    def compact(self) -> bool:
        """Ask the server to compact, so deleted rows are physically removed; True once the
        server has accepted the request and knows the job (:attr:`last_compaction_id`).
        Milvus Lite's own compaction does nothing (job 0, so False); govrag's Lite servers
        rewrite the data files that hold deleted rows before they answer
        (``governance.milvus_process.lite_compaction``)."""
        try:
            job = int(self._client.compact(self.collection))
            state = self._client.get_compaction_state(job) if job else "UndefiedState"
        except Exception as exc:
            log.warning("compaction request for %r at %s failed: %s", self.collection, self.uri, exc)
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
            return str(self._client.get_compaction_state(job))
        except Exception as exc:
            raise IndexUnavailable(f"compaction state of job {job} failed: {exc}") from exc

    def expired_rows(self, now_epoch: int, *, exclude_documents: Sequence[str] = (),
                     limit: int = 16384) -> list[dict[str, Any]] | None:
        """``id`` and ``document_id`` of expired rows (an integer filter the scalar index
        answers), or None when there are more than ``limit`` (the caller must then query by
        document instead)."""
        rows = self.query(expired_filter(now_epoch, exclude_documents), fields=("id", "document_id"), limit=limit)
        return None if len(rows) >= limit else rows

    def ids_of_document(self, document_id: str) -> list[int]:
        """Ids of every vector of a document, by query (not by search)."""
        return [int(r["id"]) for r in self.query(document_filter(document_id), fields=("id",))]

    def ids_of_documents(self, document_ids: Sequence[str], batch: int = 200) -> list[int]:
        """Ids of every vector of these documents, by query, a few queries in all."""
        return [int(r["id"]) for r in self.rows_of_documents(document_ids, ("id",), batch)]

    def rows_of_documents(self, document_ids: Sequence[str], fields: Sequence[str],
                          batch: int = 200) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        ids = list(document_ids)
        for i in range(0, len(ids), batch):
            out += self.query(documents_filter(ids[i : i + batch]), fields=tuple(dict.fromkeys(["id", *fields])),
                              limit=16384)
        return out

    def drop(self) -> None:
        try:
            self._client.drop_collection(self.collection)
        except Exception as exc:
            raise IndexUnavailable(f"dropping {self.collection!r} failed: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            pool, self._fanout_pool = self._fanout_pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        try:
            self._client.close()
        except Exception:  # closing a dead connection is not an error worth raising
            log.debug("closing Milvus client failed", exc_info=True)


def expiry_epoch(expires_at: datetime | None) -> int:
    """The ``expires_at`` a vector carries: epoch seconds rounded *up*, or NEVER_EXPIRES.

    Rounded up because the search filter is ``expires_at > int(now)``: rounding down hid a
    document in the last fraction of a second it was still valid (found by the leak fuzzer).
    Rounded up, Milvus may keep it for < 1 s too long, and the catalog post-check, which
    compares exact times, drops it — the post-check stays the authority."""
    if expires_at is None:
        return NEVER_EXPIRES
    return math.ceil(expires_at.timestamp())
