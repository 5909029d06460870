"""The result of an ingest run, printed by the CLI and attached to Dagster materializations."""

from __future__ import annotations

from pydantic import BaseModel, Field


class QuarantineEntry(BaseModel):
    path: str
    reason: str
    message: str


class IngestSummary(BaseModel):
    run_id: int | None = None
    documents_seen: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    access_updated: int = 0
    quarantined: int = 0
    redactions: dict[str, int] = Field(default_factory=dict, description="values redacted, by kind")
    tagged: int = 0
    tombstoned: int = 0
    expired_skipped: int = 0
    forgotten_skipped: int = 0
    stale_skipped: int = Field(0, description="documents a newer export already stated (left as they are)")
    scopes_changed: int = Field(0, description="scope rows the exports' permission state changed")
    scopes_stale: int = Field(0, description="scope statements ignored: a newer export already spoke")
    chunks_written: int = 0
    vectors_deleted: int = 0
    embed_seconds: float = 0.0
    parse_seconds: float = 0.0
    seconds: float = 0.0
    quarantine: list[QuarantineEntry] = Field(default_factory=list)

    @property
    def chunks_per_second(self) -> float:
        return self.chunks_written / self.seconds if self.seconds else 0.0
