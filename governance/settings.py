"""Process-wide settings, read from ``GOVRAG_*`` environment variables.

These are the only global state govrag keeps. Every public name here is a user contract:
extend, never rename.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from governance.errors import ConfigError
from governance.tenancy import tenant_database_url, tenant_policy_path


class Settings(BaseSettings):
    """govrag configuration (env prefix ``GOVRAG_``)."""

    model_config = SettingsConfigDict(env_prefix="GOVRAG_", extra="ignore")

    home: Path = Field(default=Path("./.govrag"), description="Holds the embedded stores.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL of the catalog; default SQLite under HOME."
    )
    milvus_uri: str | None = Field(
        default=None,
        description=(
            "Milvus URI. Unset: a local milvus-lite server under HOME, shared by every "
            "process. A path ending in .db: Milvus Lite opened in-process (one process "
            "only). http(s)://host:port: a Milvus server."
        ),
    )
    milvus_token: str | None = None
    milvus_index: Literal["HNSW", "IVF_FLAT", "IVF_SQ8"] = Field(
        default="HNSW",
        description=(
            "Vector index type, fixed when the collection is made. HNSW: best latency and recall. "
            "IVF_FLAT / IVF_SQ8 (Milvus server only): much faster to build for millions of chunks "
            "(docs/milvus.md)."
        ),
    )
    milvus_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description=(
            "Seconds one Milvus read or search call may wait for its answer (its gRPC deadline). "
            "A hung Milvus fails a search with a one-line error after this; the retries of one "
            "call stop at twice this plus 5 s (docs/faults.md)."
        ),
    )
    milvus_write_timeout_s: float = Field(
        default=300.0,
        gt=0,
        le=86400,
        description=(
            "Seconds one Milvus write may wait: insert, upsert, delete, flush, load, compaction, "
            "creating the collection and its indexes (a flush or load of a large collection takes minutes)."
        ),
    )
    search_fanout: int = Field(
        default=4,
        ge=1,
        le=32,
        description=(
            "Most concurrent searches one retrieval splits a long allowed-scope list into "
            "(a share holds at least 500 scope ids). Milvus 2.3 parses a filter on one core at "
            "~8.5 us per id; 1 turns the split off (docs/milvus.md)."
        ),
    )
    multi_tenant: bool = Field(
        default=False,
        description=(
            "Multi-tenancy: every tenant has a catalog and (with `{tenant}` in GOVRAG_POLICY) a policy "
            "of its own; vectors carry a `tenant` (a Milvus partition key on a server) and every search "
            "and purge is limited to one tenant. Fixed when the collection is made (docs/governance.md)."
        ),
    )
    tenant: str = Field(
        default="",
        max_length=256,
        description="With multi_tenant: the tenant a command works on (its catalog, policy and vectors).",
    )
    quarantine_keep_days: int = Field(
        default=90,
        ge=1,
        le=36500,
        description="Quarantine records (they name files and repeat parser messages) older than this are deleted "
        "by `govrag purge --expired` and the Dagster retention sweep.",
    )
    policy: Path | None = Field(
        default=None, description="Policy YAML path; `{tenant}` in it names one policy per tenant (multi-tenancy)."
    )
    embedder: Literal["local", "triton"] = "local"
    triton_url: str = "127.0.0.1:8001"
    triton_tokenize: Literal["client", "server"] = Field(
        default="client",
        description=(
            "Where text becomes token ids for GOVRAG_EMBEDDER=triton. `client` (default): the model's own "
            "tokenizer in the govrag process (ingest workers tokenize their chunks), INT64 ids are sent. "
            "`server`: raw TEXT is sent and the Triton model tokenizes (needs numpy<2 in the server's "
            "environment)."
        ),
    )
    collection: str = "govrag_chunks"
    drop_dir: Path | None = Field(default=None, description="Drop folder the Dagster sensor watches.")
    embed_batch_size: int = Field(default=64, ge=1, le=4096)
    chunk_max_characters: int = Field(default=1000, ge=100)
    ingest_workers: int | None = Field(
        default=None,
        ge=0,
        le=256,
        description=(
            "Processes that parse documents during an ingest (`--workers`). Unset: one per core. "
            "0: parse in the run's own process (one core; a debugger or a patched parser sees it)."
        ),
    )
    parse_timeout_s: float = Field(
        default=600.0,
        gt=0,
        description=(
            "Most seconds an ingest worker may spend on one document whose parser sets no limit of "
            "its own (PDFs and Confluence pages set theirs by size); past it the worker is stopped "
            "and the document quarantined (reason `timeout`)."
        ),
    )
    parse_niceness: int = Field(
        default=10,
        ge=0,
        le=19,
        description=(
            "CPU priority the ingest's parse workers give up (Unix `nice`, 0-19): when the embedder "
            "runs on the same cores it is the slowest stage, and workers that yield to it keep it at "
            "full speed while they fill the idle time. 0: workers run at the run's own priority."
        ),
    )
    torch_threads: int | None = Field(
        default=None,
        ge=1,
        le=256,
        description=(
            "CPU threads of the local embedder (torch). Unset: torch's default, one per "
            "core. 1 suits searcher processes on a busy machine: measured 10-20x faster "
            "single-query embeddings on 2 oversubscribed cores (docs/benchmarks.md)."
        ),
    )
    debug: bool = False
    log_format: Literal["text", "json"] = Field(
        default="text", description="`json`: one JSON object per log line (run ids, no document text)."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"
    metrics_port: int = Field(default=9464, ge=1, le=65535, description="Port of `govrag metrics serve`.")

    # -- retrieval HTTP service (``govrag api serve``; docs/service.md) -------------------
    api_host: str = Field(default="127.0.0.1", description="Address `govrag api serve` binds.")
    api_port: int = Field(default=8080, ge=1, le=65535, description="Port `govrag api serve` binds.")
    api_max_body_bytes: int = Field(
        default=65_536,
        ge=1_024,
        le=16_777_216,
        description="Largest request body accepted; larger ones get 413 before they are parsed.",
    )
    api_rate_limit: int = Field(
        default=120,
        ge=0,
        description="Searches per minute per token subject (token bucket, bursts up to this many); 0 = off.",
    )
    api_rate_limit_max_subjects: int = Field(
        default=10_000, ge=1, description="Rate-limit buckets kept in memory (least recently used are dropped)."
    )
    rate_limit_storage: str | None = Field(
        default=None,
        description="Where the rate limit is kept: unset or `memory://` = per process (token bucket); a shared "
        "storage URI such as `redis://host:6379` = one limit across replicas (60 s moving window).",
    )
    jwks_file: Path | None = Field(
        default=None, description="JWKS (JSON) file with the public keys that verify RS*/PS*/ES* tokens."
    )
    jwks_url: str | None = Field(
        default=None, description="http(s) URL of the identity provider's JWKS; fetched with a timeout, cached."
    )
    jwks_cache_seconds: int = Field(default=300, ge=0, description="How long a fetched JWKS is reused.")
    jwks_timeout_seconds: float = Field(
        default=5.0, gt=0, le=60, description="Timeout of one socket operation of a JWKS fetch."
    )
    jwks_deadline_seconds: float = Field(
        default=10.0, gt=0, le=120, description="Deadline of a whole JWKS fetch (connect, headers, body)."
    )
    jwks_max_stale_seconds: float = Field(
        default=3600.0,
        ge=0,
        le=86400,
        description="How long past GOVRAG_JWKS_CACHE_SECONDS cached keys are served while refreshes fail (then 503).",
    )
    jwt_algorithms: str = Field(
        default="RS256,ES256",
        description="Comma-separated JWT algorithms accepted with JWKS keys; `none` is always refused.",
    )
    jwt_hs256_secret: SecretStr | None = Field(
        default=None, description="Development only: also accept HS256 tokens signed with this secret (>= 32 chars)."
    )
    jwt_issuer: str | None = Field(default=None, description="When set, tokens must carry exactly this `iss`.")
    jwt_audience: str | None = Field(default=None, description="When set, tokens must list this `aud`.")
    require_email_verified: bool = Field(
        default=False,
        description="Count a token's email as a principal only when email_verified is true "
        "(for identity providers that always send it). email_verified: false never counts, whatever this says.",
    )
    jwt_leeway_seconds: int = Field(default=30, ge=0, le=300, description="Clock skew allowed on exp/nbf/iat.")

    @property
    def resolved_home(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def resolved_database_url(self) -> str:
        """The deployment's base catalog URL (with multi-tenancy each tenant's catalog is
        derived from it: :attr:`catalog_url`)."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.resolved_home / 'catalog.sqlite3'}"

    @property
    def parse_workers(self) -> int:
        """The ingest's parse processes: ``ingest_workers``, or one per core the process may use."""
        if self.ingest_workers is not None:
            return self.ingest_workers
        import os

        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1

    def catalog_url_for(self, tenant: str | None) -> str:
        """The catalog of ``tenant`` (its own with multi-tenancy; the one catalog otherwise)."""
        if not self.multi_tenant or tenant is None:
            return self.resolved_database_url
        return tenant_database_url(self.resolved_database_url, tenant)

    @property
    def catalog_url(self) -> str:
        """The catalog this process's commands work on: with multi-tenancy, GOVRAG_TENANT's."""
        if self.multi_tenant and not self.tenant:
            raise ConfigError(
                "GOVRAG_MULTI_TENANT is on, but GOVRAG_TENANT is empty: every tenant has a catalog of its own",
                hint="set GOVRAG_TENANT to the tenant this command works on",
            )
        return self.catalog_url_for(self.tenant or None)

    def policy_for(self, tenant: str | None) -> Path | None:
        """The policy file of ``tenant`` (GOVRAG_POLICY with ``{tenant}`` filled in, or as is)."""
        return tenant_policy_path(self.policy, tenant)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process (read once; tests call ``get_settings.cache_clear()``)."""
    return Settings()
