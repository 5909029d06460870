"""The Milvus collection of chunk vectors: its schema, its indexes and every filter expression
sent to Milvus.

The same code runs on Milvus Lite 3.2 (a ``.db`` path, or a ``milvus-lite server`` URL) and
on a Milvus server (``http(s)://host:port``; tested with milvus-server 2.3.5, see
docs/milvus.md).

- :mod:`.filters` builds every filter expression (nothing a user or a document supplies is
  pasted into one) and checks the values in them;
- :mod:`.schema` holds the fields, their limits and the vector index types;
  :mod:`.rows` the row written (:class:`VectorRow`) and the hit read (:class:`RawHit`);
- :mod:`.client` makes the pymilvus calls with their retries, :mod:`.collection` creates or
  checks the collection;
- :mod:`.cascade` runs the filtered searches (fan-out, cascade, its memory);
- :mod:`.index` is :class:`VectorIndex`, what callers use.
"""

from governance.scope_ids import INT64_MAX, INT64_MIN
from governance.vector_index.cascade import (
    CASCADE_MEMO_MAX_IDS,
    CASCADE_MEMO_S,
    CASCADE_MEMO_SIZE,
    EXACT_SCAN_LIMIT,
    SEARCH_FANOUT,
    CascadeMemo,
    SearchCascade,
)
from governance.vector_index.client import (
    RETRY_DELAYS_S,
    UNREACHABLE_HINT,
    MilvusCollection,
)
from governance.vector_index.filters import (
    FANOUT_MIN_IDS,
    MAX_FILTER_IDS,
    all_rows_filter,
    check_int,
    check_tenant,
    checked_ints,
    checked_search_filter,
    document_filter,
    documents_filter,
    expired_filter,
    ids_filter,
    int_list,
    quote_string,
    scope_id_shares,
    search_filter,
    tenant_filter,
    within_tenant,
)
from governance.vector_index.index import VectorIndex
from governance.vector_index.rows import ROW_FIELDS, RawHit, VectorRow, expiry_epoch
from governance.vector_index.schema import (
    CONSISTENCY_LEVELS,
    HNSW_PARAMS,
    INDEXED_SCALAR_FIELDS,
    IVF_NLIST,
    IVF_NPROBE,
    KEPT_CHARS,
    MAX_TEXT,
    NEVER_EXPIRES,
    OUTPUT_FIELDS,
    SCALAR_FIELDS,
    SCALAR_INDEX_PREFERENCE,
    TENANT_FIELD,
    VECTOR_INDEX_TYPES,
    VectorIndexSpec,
    VectorIndexType,
)

__all__ = [
    "CASCADE_MEMO_MAX_IDS",
    "CASCADE_MEMO_S",
    "CASCADE_MEMO_SIZE",
    "CONSISTENCY_LEVELS",
    "EXACT_SCAN_LIMIT",
    "FANOUT_MIN_IDS",
    "HNSW_PARAMS",
    "INDEXED_SCALAR_FIELDS",
    "INT64_MAX",
    "INT64_MIN",
    "IVF_NLIST",
    "IVF_NPROBE",
    "KEPT_CHARS",
    "MAX_FILTER_IDS",
    "MAX_TEXT",
    "NEVER_EXPIRES",
    "OUTPUT_FIELDS",
    "RETRY_DELAYS_S",
    "ROW_FIELDS",
    "SCALAR_FIELDS",
    "SCALAR_INDEX_PREFERENCE",
    "SEARCH_FANOUT",
    "TENANT_FIELD",
    "UNREACHABLE_HINT",
    "VECTOR_INDEX_TYPES",
    "CascadeMemo",
    "MilvusCollection",
    "RawHit",
    "SearchCascade",
    "VectorIndex",
    "VectorIndexSpec",
    "VectorIndexType",
    "VectorRow",
    "all_rows_filter",
    "check_int",
    "check_tenant",
    "checked_ints",
    "checked_search_filter",
    "document_filter",
    "documents_filter",
    "expired_filter",
    "expiry_epoch",
    "ids_filter",
    "int_list",
    "quote_string",
    "scope_id_shares",
    "search_filter",
    "tenant_filter",
    "within_tenant",
]
