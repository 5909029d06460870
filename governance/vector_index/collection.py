"""Creating the collection, or checking an existing one: its fields
(:mod:`governance.vector_index.schema`), its vector index and the scalar indexes the backend
supports (INVERTED where it exists, else STL_SORT for numbers and Trie for strings, else none
with a log line).

Every call to the server carries a timeout: ``timeout_s`` for the reads (does it exist, its
description, its index), ``write_timeout_s`` for creating it, its indexes and loading it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from governance.errors import IndexSchemaMismatch
from governance.tenancy import MAX_TENANT_BYTES
from governance.vector_index.client import timed_out
from governance.vector_index.schema import (
    INDEXED_SCALAR_FIELDS,
    SCALAR_FIELDS,
    SCALAR_INDEX_PREFERENCE,
    TENANT_FIELD,
    VECTOR_INDEX_TYPES,
    VectorIndexSpec,
    schema_problems,
)

log = logging.getLogger(__name__)


def prepare_collection(
    client: Any,
    collection: str,
    spec: VectorIndexSpec,
    *,
    dim: int,
    multi_tenant: bool,
    consistency: str,
    backend: str,
    version: tuple[int, int, int],
    uri: str,
    timeout_s: float,
    write_timeout_s: float,
) -> VectorIndexSpec:
    """Open ``collection`` on a pymilvus ``client``, checking it was made with these settings,
    or create it with its vector index and the scalar indexes this backend supports; then
    load it. Returns the vector index to search it by: an existing collection keeps the one
    it was made with."""
    if client.has_collection(collection, timeout=timeout_s):
        problems = schema_problems(
            client.describe_collection(collection, timeout=timeout_s), dim=dim, multi_tenant=multi_tenant
        )
        if problems:
            raise IndexSchemaMismatch(
                f"collection {collection!r} at {uri} was made with other settings: " + "; ".join(problems),
                hint="set GOVRAG_MULTI_TENANT (and the embedder) back to what the collection was made with, "
                "or set GOVRAG_COLLECTION to a new collection and re-ingest into it",
            )
        spec = _adopt_vector_index(client, collection, spec, timeout_s=timeout_s)
    else:
        _create(
            client,
            collection,
            spec,
            dim=dim,
            multi_tenant=multi_tenant,
            consistency=consistency,
            backend=backend,
            version=version,
            uri=uri,
            timeout_s=write_timeout_s,
        )
    client.load_collection(collection, timeout=write_timeout_s)
    return spec


def _create(
    client: Any,
    collection: str,
    spec: VectorIndexSpec,
    *,
    dim: int,
    multi_tenant: bool,
    consistency: str,
    backend: str,
    version: tuple[int, int, int],
    uri: str,
    timeout_s: float,
) -> None:
    from pymilvus import DataType, MilvusClient

    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    for name, (kind, max_length) in SCALAR_FIELDS.items():
        if kind == "varchar":
            schema.add_field(name, DataType.VARCHAR, max_length=max_length)
        else:
            schema.add_field(name, DataType.INT64)
    if multi_tenant:
        schema.add_field(TENANT_FIELD, DataType.VARCHAR, max_length=MAX_TENANT_BYTES, is_partition_key=True)
    client.create_collection(collection, schema=schema, consistency_level=consistency, timeout=timeout_s)
    vector_index = client.prepare_index_params()
    vector_index.add_index(
        field_name="vector", index_type=spec.index_type, metric_type="COSINE", params=spec.index_params()
    )
    client.create_index(collection, vector_index, timeout=timeout_s)
    # Scalar indexes keep the ACL, expiry, document and tenant filters cheap.
    for field in INDEXED_SCALAR_FIELDS + ((TENANT_FIELD,) if multi_tenant else ()):
        kind = "varchar" if field == TENANT_FIELD else SCALAR_FIELDS[field][0]
        _create_scalar_index(
            client, collection, field, _scalar_index_kinds(kind, backend, version), uri=uri, timeout_s=timeout_s
        )


def _adopt_vector_index(client: Any, collection: str, spec: VectorIndexSpec, *, timeout_s: float) -> VectorIndexSpec:
    """Search an existing collection with the parameters of the vector index it has (the
    type is fixed when the collection is made; a different setting is logged)."""
    info = client.describe_index(collection, "vector", timeout=timeout_s) or {}
    found = str(info.get("index_type", ""))
    index_type, nlist = spec.index_type, spec.nlist
    if found in VECTOR_INDEX_TYPES and found != index_type:
        log.warning(
            "collection %r has a %s vector index, not %s; searching it as %s (the index type is "
            "fixed when a collection is made)",
            collection,
            found,
            index_type,
            found,
        )
        index_type = found
    if "nlist" in info:
        nlist = int(info["nlist"])
    return VectorIndexSpec(index_type=index_type, nlist=nlist, nprobe=spec.nprobe)


def _scalar_index_kinds(kind: str, backend: str, version: tuple[int, int, int]) -> tuple[str, ...]:
    """Index types to try on a field of ``kind``, best first. A 2.3 server is known to
    lack INVERTED (it answers "expected=STL_SORT"), so it is not asked; anything newer
    or unknown is asked in order."""
    kinds = SCALAR_INDEX_PREFERENCE[kind]
    if backend == "server" and version < (2, 4, 0):
        kinds = tuple(k for k in kinds if k != "INVERTED")
    return kinds


def _create_scalar_index(
    client: Any, collection: str, field: str, kinds: Sequence[str], *, uri: str, timeout_s: float
) -> str | None:
    """The first of ``kinds`` this backend builds on ``field`` (None: none, logged)."""
    errors = []
    for kind in kinds:
        params = client.prepare_index_params()
        params.add_index(field_name=field, index_type=kind)
        try:
            client.create_index(collection, params, timeout=timeout_s)
            return kind
        except Exception as exc:  # this backend lacks the type: try the next one
            if timed_out(exc):  # a hung server, not a missing index type
                raise
            errors.append(f"{kind}: {exc}")
    log.warning(
        "no scalar index on %s.%s at %s (%s); filters on it scan rows", collection, field, uri, "; ".join(errors)
    )
    return None
