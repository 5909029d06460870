"""Asset checks. ERROR + blocking where publishing bad data would be harmful: a failed check
on `indexed_chunks` stops `permission_sync` in the same run and marks the partition red.

These checks look at the whole index (orphans and secrets are global), one pass over it.
"""

from datetime import UTC, datetime

import dagster as dg

from dagster_project.defs.assets import expired_purge, indexed_chunks
from dagster_project.defs.resources import GovragStoresResource
from governance import purge
from governance.consistency import ConsistencyReport, check_consistency
from governance.vector_index import expired_filter

SCOPED = "chunks_have_scope_and_expiry"
AGREE = "catalog_and_index_agree"
SECRETS = "no_unredacted_secrets_in_index"
NO_EXPIRED = "no_expired_chunks_after_sweep"
SAMPLE = 20


def _problem_metadata(report: ConsistencyReport, *names: str) -> dict:
    return {
        **{name: getattr(report, name).count for name in names},
        "sample_chunk_ids": dg.MetadataValue.json(
            {n: getattr(report, n).sample for n in names if getattr(report, n).count}
        ),
        "vectors": report.vectors,
        "catalog_current_chunks": report.catalog_current_chunks,
    }


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec(
            SCOPED,
            asset=indexed_chunks,
            blocking=True,
            description="Every indexed chunk has a scope the catalog knows and an expiry",
        ),
        dg.AssetCheckSpec(
            AGREE,
            asset=indexed_chunks,
            blocking=True,
            description="No orphan vectors, no missing vectors, same scope and expiry in both",
        ),
        dg.AssetCheckSpec(
            SECRETS,
            asset=indexed_chunks,
            blocking=True,
            description="No private key, AWS key, Slack token, JWT or GitHub token in indexed text",
        ),
    ],
)
def index_checks(context: dg.AssetCheckExecutionContext, stores: GovragStoresResource):
    """One pass over the index and the catalog (`governance.consistency`)."""
    s = stores.open()
    report = check_consistency(s.catalog, s.index, scan_secrets=True)
    error = dg.AssetCheckSeverity.ERROR
    yield dg.AssetCheckResult(
        check_name=SCOPED,
        asset_key=indexed_chunks.key,
        passed=report.scoped_and_expiring,
        severity=error,
        metadata=_problem_metadata(report, "unscoped", "no_expiry"),
    )
    yield dg.AssetCheckResult(
        check_name=AGREE,
        asset_key=indexed_chunks.key,
        passed=report.agrees,
        severity=error,
        metadata={
            **_problem_metadata(report, "orphan_vectors", "missing_vectors", "stale_access"),
            "pending_vectors": report.pending_vectors.count,
        },
    )
    findings = report.secrets[:SAMPLE]
    yield dg.AssetCheckResult(
        check_name=SECRETS,
        asset_key=indexed_chunks.key,
        passed=report.no_secrets,
        severity=error,
        metadata={
            "findings": len(report.secrets),
            "kinds": dg.MetadataValue.json(sorted({f.kind for f in report.secrets})),
            "sample": dg.MetadataValue.json(
                [{"chunk_id": f.ref, "kind": f.kind, "preview": f.preview} for f in findings]
            ),
        },
    )


def _swept_at(context: dg.AssetCheckExecutionContext) -> datetime:
    """The time the last sweep used (a document expiring after it is not its miss)."""
    event = context.instance.get_latest_materialization_event(expired_purge.key)
    mat = event.asset_materialization if event else None
    value = mat.metadata.get("swept_at") if mat else None
    if value is not None:
        return datetime.fromtimestamp(int(value.value), tz=UTC)
    return datetime.now(UTC)


@dg.asset_check(
    asset=expired_purge,
    blocking=True,
    description="After the sweep no vector has an expiry before the sweep and no expired "
    "document is left, except those under legal hold",
)
def no_expired_chunks_after_sweep(
    context: dg.AssetCheckExecutionContext, stores: GovragStoresResource
) -> dg.AssetCheckResult:
    s = stores.open()
    at = _swept_at(context)
    documents = purge.select(s.catalog, expired=True, now=at)
    rows = s.index.query(expired_filter(int(at.timestamp())), ["id", "document_id"], limit=10_000)
    held = s.catalog.holds.held(sorted({*documents, *(str(r["document_id"]) for r in rows)}))
    documents = [d for d in documents if d not in held]
    vectors = [int(r["id"]) for r in rows if str(r["document_id"]) not in held]
    return dg.AssetCheckResult(
        passed=not vectors and not documents,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "swept_at": at.isoformat(),
            "expired_vectors": len(vectors),
            "expired_documents": len(documents),
            "held_documents": len(held),
            "sample_chunk_ids": dg.MetadataValue.json(vectors[:SAMPLE]),
            "sample_document_ids": dg.MetadataValue.json(documents[:SAMPLE]),
        },
    )


all_checks = [index_checks, no_expired_chunks_after_sweep]
