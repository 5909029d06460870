"""Prometheus metrics, defined once.

prometheus_client keeps its collectors in a process-wide registry by design (a scrape reads
them all); that registry is the one piece of shared state besides settings. Everything
here is write-only for the code that records: nothing reads a metric to decide anything.
Labels are low-cardinality enums only — never user ids, queries, paths or document ids.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
COUNT_BUCKETS = (0, 1, 10, 100, 1_000, 10_000, 100_000, 1_000_000)
BATCH_BUCKETS = (1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)

SEARCH_SECONDS = Histogram(
    "govrag_search_seconds", "End-to-end retrieval.search latency.", ["outcome"], buckets=LATENCY_BUCKETS
)
SEARCH_EXCLUDED = Histogram(
    "govrag_search_candidates_excluded",
    "Live chunks the ACL/expiry filter kept out of one search.",
    buckets=COUNT_BUCKETS,
)
SEARCH_POSTCHECK_DROPPED = Counter(
    "govrag_search_postcheck_dropped_total",
    "Hits Milvus returned that the catalog post-check dropped (should stay 0; non-zero means the "
    "index and the catalog disagree — run `govrag doctor`).",
)
SEARCH_PLANS = Counter(
    "govrag_search_plans_total",
    "Searches by the plan that answered them: filtered (scope list in the filter), complement "
    "(the scopes the caller may not read), broad (no list; candidates checked in memory).",
    ["plan"],
)
SEARCH_HITS = Counter("govrag_search_hits_total", "Hits returned to callers.")
EMBED_SECONDS = Histogram("govrag_embed_seconds", "Time to embed one batch.", ["embedder"], buckets=LATENCY_BUCKETS)
EMBED_BATCH_SIZE = Histogram(
    "govrag_embed_batch_size", "Texts per embedding batch.", ["embedder"], buckets=BATCH_BUCKETS
)
INGEST_DOCUMENTS = Counter("govrag_ingest_documents_total", "Documents seen by ingest runs, by outcome.", ["outcome"])
INGEST_CHUNKS = Counter("govrag_ingest_chunks_total", "Chunks embedded and written by ingest runs.")
QUARANTINED = Counter("govrag_quarantined_total", "Inputs quarantined, by reason.", ["reason"])
PURGED_DOCUMENTS = Counter("govrag_purged_documents_total", "Documents purged, by reason.", ["reason"])
PURGED_VECTORS = Counter("govrag_purged_vectors_total", "Vectors deleted by purges and tombstones.")


def exposition(registry: CollectorRegistry = REGISTRY) -> bytes:
    """The text format a Prometheus scrape expects."""
    return generate_latest(registry)


# -- retrieval HTTP service (retrieval/service) -------------------------------------------
# ``route`` is the matched route template or "unmatched", never the raw path.
HTTP_REQUESTS = Counter(
    "govrag_http_requests_total", "HTTP requests answered by the retrieval service.", ["route", "method", "status"]
)
HTTP_SECONDS = Histogram(
    "govrag_http_request_seconds", "HTTP request latency in the retrieval service.", ["route"], buckets=LATENCY_BUCKETS
)
HTTP_AUTH_FAILURES = Counter(
    "govrag_http_auth_failures_total",
    "Requests refused by the service's token check, by reason (missing, expired, invalid, claims, keys).",
    ["reason"],
)
HTTP_RATE_LIMITED = Counter("govrag_http_rate_limited_total", "Requests refused with 429 by the per-subject limit.")
