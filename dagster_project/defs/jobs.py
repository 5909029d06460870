"""Jobs: `ingest` (per source), `sync_permissions` (per source), `purge_expired`,
`right_to_be_forgotten` (subject in run config), `doctor`."""

from typing import Any

import dagster as dg

from dagster_project.defs.assets import expired_purge, ingest_assets, permission_sync
from dagster_project.defs.partitions import sources
from dagster_project.defs.resources import EmbedderResource, GovragStoresResource
from governance import audit
from governance.consistency import check_consistency
from ingest.pipeline.erasure import forget_subject
from ingest.pipeline.run import Ingestor

ingest_job = dg.define_asset_job(
    "ingest",
    selection=dg.AssetSelection.assets(*ingest_assets),
    partitions_def=sources,
    description="Snapshot, ingest and permission-sync one source export (a `sources` partition).",
)

permission_sync_job = dg.define_asset_job(
    "sync_permissions",
    selection=dg.AssetSelection.assets(permission_sync),
    partitions_def=sources,
    description="Re-resolve the access scopes of one source export without re-embedding.",
)

purge_expired_job = dg.define_asset_job(
    "purge_expired",
    selection=dg.AssetSelection.assets(expired_purge),
    description="Delete the vectors and content of every document whose expiry has passed.",
)


@dg.op(out=dg.Out(dg.Nothing))
def run_doctor(context: dg.OpExecutionContext, stores: GovragStoresResource) -> dg.Output:
    """Catalog vs index consistency, secret scan and audit chain; fails on any problem."""
    s = stores.open()
    report = check_consistency(s.catalog, s.index, scan_secrets=True)
    chain = audit.verify(s.catalog)
    metadata: dict[str, Any] = {  # dagster's own name for a raw metadata value is private
        **report.counts(),
        "samples": dg.MetadataValue.json(report.samples()),
        "secret_kinds": dg.MetadataValue.json(sorted({f.kind for f in report.secrets})),
        "audit_chain_problems": len(chain),
    }
    if not report.ok or chain:
        problems = {
            k: v
            for k, v in report.counts().items()
            if v and k not in ("vectors", "catalog_current_chunks", "pending_vectors")
        }
        if chain:
            problems["audit_chain_problems"] = len(chain)
        raise dg.Failure(description=f"govrag doctor found problems: {problems}", metadata=metadata)
    context.log.info(
        f"doctor: {report.vectors} vectors, {report.catalog_current_chunks} current chunks, all consistent"
    )
    return dg.Output(None, metadata=metadata)


@dg.job(
    name="doctor",
    description="Check that catalog and index agree, nothing expired or secret is indexed, "
    "and the audit chain is intact.",
)
def doctor_job() -> None:
    run_doctor()


class ForgetSubjectConfig(dg.Config):
    """Whose words to erase: a principal such as `user:jane@example.com`."""

    subject: str
    dry_run: bool = False


@dg.op(out=dg.Out(dg.Nothing))
def run_forget_subject(
    context: dg.OpExecutionContext,
    config: ForgetSubjectConfig,
    stores: GovragStoresResource,
    embedder: EmbedderResource,
) -> dg.Output:
    """Purge the subject's documents, re-index the ones they contributed to without their
    blocks (`ingest.pipeline.erasure.forget_subject`); legal holds win and are reported."""
    report = forget_subject(
        Ingestor(stores.open(), embedder.factory()),
        config.subject,
        dry_run=config.dry_run,
        actor=f"dagster:{context.run_id}",
    )
    metadata: dict[str, Any] = {
        "dry_run": report.dry_run,
        "documents_purged": len(report.documents),
        "reindexed": len(report.reindexed),
        "held": len(report.held),
        "vectors_deleted": report.vectors_deleted,
        "verified": report.verified,
        "document_ids": dg.MetadataValue.json(report.documents[:50]),
        "reindexed_ids": dg.MetadataValue.json(report.reindexed[:50]),
        "held_by": dg.MetadataValue.json(dict(list(report.held.items())[:50])),
    }
    if not report.verified:
        raise dg.Failure(
            description="vectors of purged documents are still in the index; run it again", metadata=metadata
        )
    return dg.Output(None, metadata=metadata)


@dg.job(
    name="right_to_be_forgotten",
    description="Erase a subject: run config `ops: {run_forget_subject: {config: {subject: user:x@y}}}`.",
)
def right_to_be_forgotten_job() -> None:
    run_forget_subject()
