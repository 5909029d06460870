"""Assets: each reads its partition, calls one domain function through the resources and
returns metadata. Documents, chunks and vectors live in the catalog and the index; nothing
large goes through an IO manager."""

from datetime import UTC, datetime
from typing import Any

import dagster as dg
from pydantic import Field

from dagster_project.defs.partitions import sources
from dagster_project.defs.resources import DropFolderResource, EmbedderResource, GovragStoresResource
from governance import purge
from ingest.pipeline.permission_sync import sync_permissions
from ingest.pipeline.run import Ingestor
from ingest.pipeline.snapshot import load_manifest, save_manifest, take_snapshot
from ingest.pipeline.summary import IngestSummary
from ingest.sources import open_source


class ExportConfig(dg.Config):
    """Run config of the ingest assets (all optional; the policy's `sources` rules give the
    same per export path, for runs the sensor starts)."""

    prune: bool = Field(
        default=False,
        description="This export is a full export: tombstone documents of its "
        "workspace / space that it no longer holds (like govrag ingest --prune).",
    )
    site: str | None = Field(
        default=None,
        description="Confluence site (host) or Slack team id, for exports "
        "that do not state it (Confluence HTML exports never do).",
    )
    workers: int | None = Field(
        default=None,
        ge=0,
        description="Processes that parse this export's documents (like govrag ingest --workers; "
        "default GOVRAG_INGEST_WORKERS, else one per core; 0: in the step's own process).",
    )


INGEST = "ingest"
RETENTION = "retention"
QUARANTINE_CHECK = "no_quarantined_documents"


def _quarantine_table(summary: IngestSummary, limit: int = 20) -> dg.MetadataValue:
    rows = ["| path | reason |", "|---|---|"]
    rows += [f"| `{q.path.replace('|', '/')}` | {q.reason} |" for q in summary.quarantine[:limit]]
    if len(summary.quarantine) > limit:
        rows.append(f"| … {len(summary.quarantine) - limit} more | |")
    return dg.MetadataValue.md("\n".join(rows))


def ingest_metadata(summary: IngestSummary) -> dict[str, Any]:
    """Every count of the ingest summary (new fields show up without touching this)."""
    meta: dict[str, Any] = {}
    for name, value in summary.model_dump(exclude={"quarantine", "run_id"}).items():
        meta[name] = dg.MetadataValue.json(value) if isinstance(value, dict) else value
    meta.update(
        govrag_run_id=summary.run_id or 0,
        chunks_per_second=round(summary.chunks_per_second, 2),
        embed_seconds=round(summary.embed_seconds, 3),
        parse_seconds=round(summary.parse_seconds, 3),
        write_seconds=round(summary.write_seconds, 3),
        quarantine=_quarantine_table(summary),
    )
    rates = summary.stage_rates()
    if rates:  # chunks/s of each stage while it works: the lowest is the run's wall
        meta["stage_chunks_per_second"] = dg.MetadataValue.json(rates)
        meta["slowest_stage"] = min(rates, key=lambda stage: rates[stage])
    return meta


@dg.asset(partitions_def=sources, group_name=INGEST, kinds={"python"})
def source_snapshot(
    context: dg.AssetExecutionContext,
    config: ExportConfig,
    stores: GovragStoresResource,
    drop_folder: DropFolderResource,
) -> dg.MaterializeResult:
    """What is new, changed, deleted or unchanged in this export since its last ingest
    (fingerprints against the catalog; nothing is parsed)."""
    key = context.partition_key
    path = drop_folder.resolve(key)
    s = stores.open()
    with open_source(path, policy=s.policy, site=config.site) as export:
        snap = take_snapshot(s.catalog, export.items, load_manifest(s.settings.resolved_home, key))
    if snap.deleted:
        context.log.warning(f"{len(snap.deleted)} documents disappeared from {path} since its last ingest")
    return dg.MaterializeResult(
        metadata={"path": str(path), **snap.counts(), "preview": dg.MetadataValue.json(snap.preview())}
    )


@dg.asset(
    partitions_def=sources,
    group_name=INGEST,
    deps=[source_snapshot],
    kinds={"milvus"},
    check_specs=[
        dg.AssetCheckSpec(
            QUARANTINE_CHECK, asset="indexed_chunks", description="WARN when the ingest quarantined documents"
        )
    ],
)
def indexed_chunks(
    context: dg.AssetExecutionContext,
    config: ExportConfig,
    stores: GovragStoresResource,
    embedder: EmbedderResource,
    drop_folder: DropFolderResource,
) -> dg.MaterializeResult:
    """Parsed, cleaned, chunked, embedded and indexed documents of this export (catalog +
    Milvus), after its permission state; unchanged documents are skipped, bad ones
    quarantined; with `prune` (or `full_export` in the policy) documents the export no
    longer holds are tombstoned."""
    key = context.partition_key
    path = drop_folder.resolve(key)
    s = stores.open()
    ingestor = Ingestor(s, embedder.factory(), site=config.site, workers=config.workers)
    with ingestor.open(path) as export:
        summary = ingestor.ingest_exports([export], prune=config.prune)
    save_manifest(s.settings.resolved_home, key, [i.document_id for i in export.items])
    context.log.info(
        f"{key}: {summary.new} new, {summary.changed} changed, {summary.unchanged} unchanged, "
        f"{summary.quarantined} quarantined, {summary.chunks_written} chunks"
    )
    check = dg.AssetCheckResult(
        check_name=QUARANTINE_CHECK,
        passed=summary.quarantined == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "quarantined": summary.quarantined,
            "reasons": dg.MetadataValue.json(sorted({q.reason for q in summary.quarantine})),
        },
    )
    return dg.MaterializeResult(metadata={"path": str(path), **ingest_metadata(summary)}, check_results=[check])


@dg.asset(partitions_def=sources, group_name=INGEST, deps=[indexed_chunks], kinds={"python"})
def permission_sync(
    context: dg.AssetExecutionContext,
    config: ExportConfig,
    stores: GovragStoresResource,
    embedder: EmbedderResource,
    drop_folder: DropFolderResource,
) -> dg.MaterializeResult:
    """Access scopes of this export re-resolved: changed scopes take effect at the next
    search; unchanged documents get their scope/expiry updated without re-embedding. An
    export older than one already applied changes nothing (the schedule re-syncs every
    partition, in any order)."""
    key = context.partition_key
    path = drop_folder.resolve(key)
    ingestor = Ingestor(stores.open(), embedder.factory(), site=config.site)
    with ingestor.open(path) as export:
        summary = sync_permissions(ingestor, [export], actor=f"dagster:{context.run_id}")
    if summary.scopes_stale or summary.stale_documents:
        context.log.info(
            f"{key} is older than an export applied before: {summary.scopes_stale} scope statements and "
            f"{summary.stale_documents} documents left as the newer export stated them"
        )
    if summary.uncovered_active:
        context.log.warning(
            f"{len(summary.uncovered_active)} documents lost their access rule and were "
            f"taken out of search ({summary.tombstoned} tombstoned)"
        )
    return dg.MaterializeResult(
        metadata={
            **summary.model_dump(exclude={"changed_scope_keys", "uncovered_active"}),
            "changed_scope_keys": dg.MetadataValue.json(summary.changed_scope_keys[:50]),
            "uncovered_active": dg.MetadataValue.json(summary.uncovered_active[:50]),
        }
    )


@dg.asset(group_name=RETENTION, kinds={"milvus"})
def expired_purge(context: dg.AssetExecutionContext, stores: GovragStoresResource) -> dg.MaterializeResult:
    """The retention sweep (`governance.purge`): documents whose expiry passed lose their
    vectors, chunks and text and keep a tombstone; documents under legal hold are kept."""
    s = stores.open()
    now = datetime.now(UTC)
    report = purge.purge_documents(
        s.catalog,
        s.index,
        purge.select(s.catalog, expired=True, now=now),
        reason="expired",
        selector={"expired": now.isoformat()},
        actor=f"dagster:{context.run_id}",
    )
    purge.expire_quarantine(s.catalog, report, keep_days=s.settings.quarantine_keep_days, now=now)
    return dg.MaterializeResult(
        metadata={
            "quarantine_records_deleted": report.quarantine_records_deleted,
            "swept_at": int(now.timestamp()),
            "documents_purged": len(report.documents),
            "vectors_deleted": report.vectors_deleted,
            "held": len(report.held),
            "verified": report.verified,
            "compaction_requested": report.compaction_requested,
            "document_ids": dg.MetadataValue.json(report.documents[:50]),
            "held_by": dg.MetadataValue.json(dict(list(report.held.items())[:50])),
        }
    )


ingest_assets = [source_snapshot, indexed_chunks, permission_sync]
all_assets = [*ingest_assets, expired_purge]
