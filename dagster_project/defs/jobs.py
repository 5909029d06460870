"""Jobs: ``ingest`` (per source), ``sync_permissions`` (per source), ``purge_expired``, ``doctor``.

A right-to-be-forgotten job is not defined yet: there is no domain function that finds and
erases a subject's documents (issue 4); a job that pretends to would be worse than none.
"""

import dagster as dg

from dagster_project.defs.assets import expired_purge, ingest_assets, permission_sync
from dagster_project.defs.partitions import sources
from dagster_project.defs.resources import GovragStoresResource
from governance import audit
from governance.consistency import check_consistency

ingest_job = dg.define_asset_job(
    "ingest", selection=dg.AssetSelection.assets(*ingest_assets), partitions_def=sources,
    description="Snapshot, ingest and permission-sync one source export (a `sources` partition).",
)

permission_sync_job = dg.define_asset_job(
    "sync_permissions", selection=dg.AssetSelection.assets(permission_sync), partitions_def=sources,
    description="Re-resolve the access scopes of one source export without re-embedding.",
)

purge_expired_job = dg.define_asset_job(
    "purge_expired", selection=dg.AssetSelection.assets(expired_purge),
    description="Delete the vectors and content of every document whose expiry has passed.",
)


@dg.op(out=dg.Out(dg.Nothing))
def run_doctor(context: dg.OpExecutionContext, stores: GovragStoresResource) -> dg.Output:
    """Catalog vs index consistency, secret scan and audit chain; fails on any problem."""
    s = stores.open()
    report = check_consistency(s.catalog, s.index, scan_secrets=True)
    chain = audit.verify(s.catalog)
    metadata = {
        **report.counts(),
        "samples": dg.MetadataValue.json(report.samples()),
        "secret_kinds": dg.MetadataValue.json(sorted({f.kind for f in report.secrets})),
        "audit_chain_problems": len(chain),
    }
    if not report.ok or chain:
        problems = {k: v for k, v in report.counts().items()
                    if v and k not in ("vectors", "catalog_current_chunks", "pending_vectors")}
        if chain:
            problems["audit_chain_problems"] = len(chain)
        raise dg.Failure(description=f"govrag doctor found problems: {problems}", metadata=metadata)
    context.log.info(f"doctor: {report.vectors} vectors, {report.catalog_current_chunks} current chunks, all consistent")
    return dg.Output(None, metadata=metadata)


@dg.job(name="doctor", description="Check that catalog and index agree, nothing expired or secret is indexed, "
                    "and the audit chain is intact.")
def doctor_job() -> None:
    run_doctor()

