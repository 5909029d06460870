"""The collection's shape: its fields and their limits, its vector index types, and the check
that an existing collection was made with the same settings.

Kept free of pymilvus, so the row contract (:mod:`governance.vector_index.rows`), the filter
builder and the doctor read the same limits the collection is created with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

NEVER_EXPIRES = 253402300799  # 9999-12-31T23:59:59Z: documents no retention rule covers
DEFAULT_DIM = 384
MAX_TEXT = 8192  # characters of chunk text a vector keeps
TENANT_FIELD = "tenant"  # only with multi-tenancy: a VARCHAR partition key
OUTPUT_FIELDS = ["document_id", "source", "source_version", "scope_id", "expires_at", "title", "uri", "text"]
CONSISTENCY_LEVELS = ("Strong", "Bounded", "Session", "Eventually")

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
# Display strings a row cuts to this many characters (and then to the field's bytes) rather
# than refuse: a long title must not stop an ingest. Other strings are identities: refused.
KEPT_CHARS: dict[str, int] = {"title": 1000, "uri": 2000, "text": MAX_TEXT}

# Vector index types: HNSW (default; best latency/recall, slowest to build: ~286 s per 100k
# rows on 2 cores) or IVF (k-means clusters: much faster to build, lower recall at a given
# latency; meant for millions of chunks on a Milvus server, so refused on Milvus Lite, whose
# local, small collections keep HNSW). See docs/milvus.md.
VectorIndexType = Literal["HNSW", "IVF_FLAT", "IVF_SQ8"]
VECTOR_INDEX_TYPES: tuple[str, ...] = ("HNSW", "IVF_FLAT", "IVF_SQ8")
HNSW_PARAMS = {"M": 16, "efConstruction": 200}
IVF_NLIST = 1024  # clusters per segment; ~sqrt(rows per segment) x a few
IVF_NPROBE = 32  # clusters searched per query (3% of nlist)
# A filtered IVF search probes clusters holding about this many matching rows per hit wanted
# (VectorIndexSpec.search_params). Measured with clustered vectors for a reader of 1 % of the
# chunks (docs/benchmarks.md): 32 clusters holding ~60 matching rows per search (200k chunks)
# gave recall@10 0.925, holding ~300 (1M) 0.96, every cluster 1.00. An unfiltered search's
# 32 clusters hold ~3,000 rows per hit at 1M.
IVF_PROBED_MATCHES_PER_HIT = 300
# A filtered HNSW search of a reader holding share s of the collection's live rows uses
# ef >= HNSW_EF_PER_HIT_SHARE x k / s, at most HNSW_MAX_FILTERED_EF. Milvus Lite 3.2.2's
# filtered HNSW walk runs out of matching neighbours before it finds the best k when few rows
# match: at 100k clustered rows, recall@10 with ef 64 was 0.34 for a 0.3 % reader, 0.60-0.72
# for 1 %, 0.94 for 3 %; ef 2,048 gave 0.98 / 1.00 / 1.00, ef 4,096 1.00 throughout, at
# 1.4x / 1.7x the ef-64 search's latency (docs/benchmarks.md). Past the cap the cost grows
# faster than recall (ef 8,192: 2.4x, 16,384: 4.6x). For a 1 % reader of 100k rows, 2.5
# took 1.39-1.53x the unfiltered search at recall@10 1.00; 2 took 1.31-1.43x but lost a hit
# in 20 queries (0.99) in the benchmark; 3 took 1.51x.
HNSW_EF_PER_HIT_SHARE = 2.5
HNSW_MAX_FILTERED_EF = 4096
# Scalar indexes on the filtered fields, best first per kind: Milvus Lite 3.x and Milvus
# >= 2.4 build INVERTED; Milvus 2.3 has STL_SORT (numbers) and Trie (strings) only.
SCALAR_INDEX_PREFERENCE: dict[str, tuple[str, ...]] = {
    "int64": ("INVERTED", "STL_SORT"),
    "varchar": ("INVERTED", "Trie"),
}
INDEXED_SCALAR_FIELDS = ("scope_id", "expires_at", "document_id")


@dataclass(frozen=True)
class VectorIndexSpec:
    """The vector index a collection is made with and searched by: its type, its IVF cluster
    count (``nlist``) and how many clusters a search probes (``nprobe``)."""

    index_type: str = "HNSW"
    nlist: int = IVF_NLIST
    nprobe: int = IVF_NPROBE

    def index_params(self) -> dict[str, int]:
        """The build parameters of the vector index."""
        return dict(HNSW_PARAMS) if self.index_type == "HNSW" else {"nlist": self.nlist}

    def search_params(
        self, k: int, ef: int | None = None, matching_rows: int | None = None, total_rows: int | None = None
    ) -> dict[str, int]:
        """The vector index's search parameters: ``ef`` (HNSW) or ``nprobe`` (IVF).

        ``matching_rows``: how many rows the search's filter lets through, when known, of
        ``total_rows`` live rows. A filtered HNSW search widens ``ef`` as that share narrows
        (``HNSW_EF_PER_HIT_SHARE × k / share``, up to ``HNSW_MAX_FILTERED_EF``): its walk
        through the graph otherwise meets too few matching rows to find the best k. An IVF
        search then probes enough clusters to hold about ``IVF_PROBED_MATCHES_PER_HIT × k``
        matching rows (at least ``nprobe``, at most every cluster). Clusters hold about
        ``rows / nlist`` rows each whatever the number of segments (each segment has its own
        ``nlist``, and ``nprobe`` applies to each), so that is ``… × k × nlist /
        matching_rows`` clusters. A selective filter would otherwise leave its k hits to be
        found among the few matching rows of the ``nprobe`` nearest clusters: recall@10 0.925
        against 1.00 unfiltered for a reader of 1 % of 200,000 clustered vectors
        (docs/benchmarks.md). A filter letting through few rows gets every cluster probed,
        which scores each matching row: an exact search."""
        if self.index_type == "HNSW":
            floor = max(ef or 0, k * 4, 64)
            if matching_rows is None or not total_rows or matching_rows >= total_rows:
                return {"ef": floor}
            share = max(matching_rows, 1) / total_rows
            return {"ef": max(floor, min(HNSW_MAX_FILTERED_EF, math.ceil(HNSW_EF_PER_HIT_SHARE * k / share)))}
        if matching_rows is None:
            return {"nprobe": self.nprobe}
        if matching_rows <= 0:
            return {"nprobe": self.nlist}
        wanted = math.ceil(IVF_PROBED_MATCHES_PER_HIT * k * self.nlist / matching_rows)
        return {"nprobe": min(self.nlist, max(self.nprobe, wanted))}

    @property
    def probes_every_cluster(self) -> bool:
        """True when a search already looks at every cluster (HNSW has none)."""
        return self.index_type == "HNSW" or self.nprobe >= self.nlist


def schema_problems(description: dict[str, Any], *, dim: int, multi_tenant: bool) -> list[str]:
    """What makes an existing collection (``describe_collection``) unusable with these
    settings; empty when it fits."""
    fields = {f["name"]: f for f in description.get("fields", [])}
    problems = []
    tenant = fields.get(TENANT_FIELD)
    if multi_tenant and tenant is None:
        problems.append("it has no `tenant` field, but multi-tenancy is on (GOVRAG_MULTI_TENANT=true)")
    if tenant is not None and not multi_tenant:
        problems.append(
            "it has a `tenant` field, but multi-tenancy is off (GOVRAG_MULTI_TENANT=false), "
            "so searches would not be limited to the caller's tenant"
        )
    vector = fields.get("vector")
    found_dim = int((vector or {}).get("params", {}).get("dim", 0) or 0)
    if found_dim != dim:
        problems.append(f"its vectors have {found_dim} dimensions, the embedder makes {dim}")
    missing = [name for name in SCALAR_FIELDS if name not in fields]
    if missing:
        problems.append(f"it lacks the fields {', '.join(missing)}")
    return problems
