"""Process-wide settings, read from ``GOVRAG_*`` environment variables.

These are the only global state govrag keeps. Every public name here is a user contract:
extend, never rename.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    policy: Path | None = Field(default=None, description="Policy YAML path.")
    embedder: Literal["local", "triton"] = "local"
    triton_url: str = "127.0.0.1:8001"
    collection: str = "govrag_chunks"
    drop_dir: Path | None = Field(default=None, description="Drop folder the Dagster sensor watches.")
    embed_batch_size: int = Field(default=64, ge=1, le=4096)
    chunk_max_characters: int = Field(default=1000, ge=100)
    debug: bool = False

    @property
    def resolved_home(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.resolved_home / 'catalog.sqlite3'}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process (read once; tests call ``get_settings.cache_clear()``)."""
    return Settings()
