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
    chunks_parsed: int = Field(0, description="chunks of the documents read (parsed), written or not")
    parse_workers: int = Field(0, description="processes that parsed (0: the run's own process)")
    parse_seconds: float = Field(0.0, description="time spent reading documents, summed over the parse processes")
    embed_seconds: float = 0.0
    write_seconds: float = Field(0.0, description="time spent upserting vectors and publishing versions")
    seconds: float = 0.0
    quarantine: list[QuarantineEntry] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list, description="what the run did that its user should know")

    def note_outcome(self, *, policy_set: bool) -> None:
        """Add the warnings a user must not miss: no policy at all, documents past retention."""
        if not policy_set:
            self.warnings.append(
                "no policy file (GOVRAG_POLICY or --policy): documents without permissions of their own are "
                "quarantined and nothing gets an expiry (docs/policy.md)"
            )
        if self.expired_skipped:
            landed = self.new + self.changed + self.unchanged
            what = (
                f"all {self.expired_skipped} documents were" if not landed else f"{self.expired_skipped} documents were"
            )
            self.warnings.append(
                f"{what} past their retention and not indexed; to count retention from the ingest instead of "
                "the document's own time, set `from: ingested` on the matching retention rule (docs/policy.md)"
            )

    @property
    def chunks_per_second(self) -> float:
        return self.chunks_written / self.seconds if self.seconds else 0.0

    def stage_rates(self) -> dict[str, float]:
        """Chunks per second each stage can do while it works (parse: over all its processes),
        so the lowest names the run's wall. A stage that did nothing is left out."""
        rates: dict[str, float] = {}
        if self.parse_seconds and self.chunks_parsed:
            rates["parse"] = self.chunks_parsed / self.parse_seconds * max(1, self.parse_workers)
        if self.embed_seconds and self.chunks_written:
            rates["embed"] = self.chunks_written / self.embed_seconds
        if self.write_seconds and self.chunks_written:
            rates["write"] = self.chunks_written / self.write_seconds
        return {stage: round(rate, 1) for stage, rate in rates.items()}
