"""The one module that owns the Milvus collection: its schema, its indexes and every filter
expression sent to Milvus.

Nothing a user or a document supplies is pasted into an expression. Search filters hold only
integers (scope ids and epoch seconds) checked here to be real ints; the only string filter
(``document_id``) is built by :func:`quote_string`, which rejects control characters and
escapes quotes and backslashes.
"""

from __future__ import annotations

import logging
from datetime import datetime
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from governance.errors import IndexUnavailable

log = logging.getLogger(__name__)

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
NEVER_EXPIRES = 253402300799  # 9999-12-31T23:59:59Z: documents no retention rule covers
MAX_TEXT = 8192
MAX_FILTER_IDS = 100_000
EXACT_SCAN_LIMIT = 4096
OUTPUT_FIELDS = ["document_id", "source", "source_version", "scope_id", "expires_at", "title", "uri", "text"]

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


def int_list(values: Iterable[Any], what: str) -> str:
    """``[1,2,3]`` from checked ints (deduplicated, sorted for stable expressions)."""
    checked = sorted({_check_int(v, what) for v in values})
    if len(checked) > MAX_FILTER_IDS:
        raise ValueError(f"{len(checked)} {what}s in one filter (limit {MAX_FILTER_IDS})")
    return "[" + ",".join(str(v) for v in checked) + "]"


def quote_string(value: str) -> str:
    """A Milvus string literal for ``value``: double-quoted, ``\\`` and ``"`` escaped."""
    if not isinstance(value, str):
        raise TypeError(f"expected str, got {type(value).__name__}")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError(f"control characters are not allowed in a filter value: {value[:40]!r}")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def search_filter(scope_ids: Sequence[int], now_epoch: int) -> str:
    """The ACL + expiry filter of every search. An empty scope list is refused: the caller
    must return no hits instead of searching (an empty ``in []`` must never be relied on)."""
    if not scope_ids:
        raise ValueError("search_filter needs at least one allowed scope id")
    return f"scope_id in {int_list(scope_ids, 'scope id')} and expires_at > {_check_int(now_epoch, 'time')}"


def all_rows_filter() -> str:
    """A filter every row matches (ids are int64)."""
    return f"id >= {INT64_MIN}"


def ids_filter(ids: Sequence[int]) -> str:
    return f"id in {int_list(ids, 'chunk id')}"


def document_filter(document_id: str) -> str:
    return f"document_id == {quote_string(document_id)}"


def documents_filter(document_ids: Sequence[str]) -> str:
    if not document_ids:
        raise ValueError("documents_filter needs at least one document id")
    return "document_id in [" + ",".join(quote_string(d) for d in document_ids) + "]"


def expired_filter(now_epoch: int) -> str:
    return f"expires_at <= {_check_int(now_epoch, 'time')}"


@dataclass(frozen=True)
class RawHit:
    """A Milvus hit before the catalog post-check."""

    id: int
    score: float
    fields: dict[str, Any]


class VectorIndex:
    """A Milvus collection of chunk vectors with ACL, version and expiry metadata."""

    def __init__(self, uri: str, collection: str, dim: int = 384, token: str | None = None) -> None:
        self.uri = uri
        self.collection = collection
        self.dim = dim
        try:
            from pymilvus import MilvusClient

            self._client = MilvusClient(uri=uri, token=token or "")
        except Exception as exc:
            raise IndexUnavailable(
                f"cannot connect to Milvus at {uri}: {exc}",
                hint="check GOVRAG_MILVUS_URI; for the embedded default run `govrag server status`",
            ) from exc
        self.ensure_collection()

    # -- schema ---------------------------------------------------------------------------
    def ensure_collection(self) -> None:
        from pymilvus import DataType, MilvusClient

        try:
            if self._client.has_collection(self.collection):
                self._client.load_collection(self.collection)
                return
            schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("id", DataType.INT64, is_primary=True)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
            for name, (kind, max_length) in SCALAR_FIELDS.items():
                if kind == "varchar":
                    schema.add_field(name, DataType.VARCHAR, max_length=max_length)
                else:
                    schema.add_field(name, DataType.INT64)
            index_params = self._client.prepare_index_params()
            index_params.add_index(
                field_name="vector", index_type="HNSW", metric_type="COSINE",
                params={"M": 16, "efConstruction": 200},
            )
            # Scalar indexes keep the ACL and expiry filters cheap (INVERTED is the one
            # scalar index both Milvus Lite 3.x and the server implement).
            for field in ("scope_id", "expires_at", "document_id"):
                index_params.add_index(field_name=field, index_type="INVERTED")
            self._client.create_collection(
                self.collection, schema=schema, index_params=index_params,
                consistency_level="Strong",
            )
            self._client.load_collection(self.collection)
        except Exception as exc:
            raise IndexUnavailable(f"cannot prepare collection {self.collection!r} at {self.uri}: {exc}") from exc

    # -- writes ---------------------------------------------------------------------------
    def upsert(self, rows: list[dict[str, Any]], batch: int = 2000) -> None:
        """Insert or overwrite rows (primary keys are deterministic, so a retry is harmless)."""
        for row in rows:
            if len(row["text"]) > MAX_TEXT:
                row["text"] = row["text"][:MAX_TEXT]
        try:
            for i in range(0, len(rows), batch):
                self._client.upsert(self.collection, data=rows[i : i + batch])
        except Exception as exc:
            raise IndexUnavailable(f"writing {len(rows)} vectors to {self.collection!r} failed: {exc}") from exc

    def delete_ids(self, ids: Sequence[int], batch: int = 5000) -> int:
        ids = list(ids)
        try:
            for i in range(0, len(ids), batch):
                self._client.delete(self.collection, filter=ids_filter(ids[i : i + batch]))
        except Exception as exc:
            raise IndexUnavailable(f"deleting {len(ids)} vectors from {self.collection!r} failed: {exc}") from exc
        return len(ids)

    # -- reads ----------------------------------------------------------------------------
    def search(
        self, vector: np.ndarray, *, k: int, scope_ids: Sequence[int], now_epoch: int, ef: int | None = None
    ) -> list[RawHit]:
        """Nearest chunks among those whose scope is allowed and which have not expired."""
        if not scope_ids:
            return []
        expr = search_filter(scope_ids, now_epoch)
        try:
            res = self._client.search(
                self.collection,
                data=[np.asarray(vector, dtype=np.float32).tolist()],
                filter=expr,
                limit=k,
                output_fields=OUTPUT_FIELDS,
                search_params={"metric_type": "COSINE", "params": {"ef": max(ef or 0, k * 4, 64)}},
            )
        except Exception as exc:
            raise IndexUnavailable(f"search in {self.collection!r} failed: {exc}") from exc
        hits = []
        for h in res[0] if res else []:
            entity = h.get("entity", {})
            hits.append(RawHit(id=int(h["id"]), score=float(h["distance"]), fields=dict(entity)))
        if len(hits) < k:
            # A very selective filter can starve the filtered HNSW walk (seen on Milvus Lite
            # 3.2.2: 4 of 10 hits with ~95 matching rows in 100k). When few rows match, scan
            # them exactly instead, so a user with few scopes never misses a document.
            exact = self._exact_search(vector, k=k, expr=expr)
            if exact is not None:
                return exact
        return hits

    def _exact_search(self, vector: np.ndarray, *, k: int, expr: str) -> list[RawHit] | None:
        rows = self.query(expr, fields=("vector", *OUTPUT_FIELDS), limit=EXACT_SCAN_LIMIT)
        if len(rows) >= EXACT_SCAN_LIMIT:
            return None  # not selective: the index answer stands
        if not rows:
            return []
        q = np.asarray(vector, dtype=np.float32)
        mat = np.asarray([r["vector"] for r in rows], dtype=np.float32)
        scores = mat @ q / (np.linalg.norm(mat, axis=1) * (np.linalg.norm(q) or 1.0) + 1e-12)
        order = np.argsort(-scores)[:k]
        return [RawHit(id=int(rows[i]["id"]), score=float(scores[i]),
                       fields={f: rows[i][f] for f in OUTPUT_FIELDS if f in rows[i]}) for i in order]

    def query(self, expr: str, fields: Sequence[str] = ("id",), limit: int = 16384) -> list[dict[str, Any]]:
        """Rows matching an expression built by this module's filter functions."""
        try:
            return list(self._client.query(self.collection, filter=expr, output_fields=list(fields), limit=limit))
        except Exception as exc:
            raise IndexUnavailable(f"query on {self.collection!r} failed: {exc}") from exc

    def get(self, ids: Sequence[int], fields: Sequence[str] = ("id",)) -> list[dict[str, Any]]:
        if not ids:
            return []
        try:
            return list(self._client.get(self.collection, ids=list(ids), output_fields=list(fields)))
        except Exception as exc:
            raise IndexUnavailable(f"get on {self.collection!r} failed: {exc}") from exc

    def count(self) -> int:
        try:
            res = self._client.query(self.collection, filter="", output_fields=["count(*)"])
            return int(res[0]["count(*)"])
        except Exception as exc:
            raise IndexUnavailable(f"count on {self.collection!r} failed: {exc}") from exc

    def flush(self) -> None:
        """Seal what was written so searches use the built vector index. Measured on Milvus
        Lite 3.2.2 (20k rows, 2 cores): ~900 ms per search before a flush, ~60 ms after."""
        try:
            self._client.flush(self.collection)
        except Exception as exc:
            raise IndexUnavailable(f"flush of {self.collection!r} failed: {exc}") from exc

    def compact(self) -> bool:
        """Ask the server to compact, so deleted rows are physically removed. Milvus Lite
        has no compaction (returns False); a server returns True once requested."""
        try:
            self._client.compact(self.collection)
            return True
        except Exception as exc:  # Lite: not implemented
            log.info("compaction not available on %s: %s", self.uri, exc)
            return False

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
        self._client.drop_collection(self.collection)

    def close(self) -> None:
        try:
            self._client.close()
        except Exception:  # closing a dead connection is not an error worth raising
            log.debug("closing Milvus client failed", exc_info=True)


def expiry_epoch(expires_at: datetime | None) -> int:
    """The ``expires_at`` a vector carries: epoch seconds, or NEVER_EXPIRES for no expiry."""
    return NEVER_EXPIRES if expires_at is None else int(expires_at.timestamp())
