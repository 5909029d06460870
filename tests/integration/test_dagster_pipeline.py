"""The Dagster graph in-process on the sample corpus: materialize, search, checks, purge."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import pytest

from dagster_project import defs
from dagster_project.defs.assets import all_assets, expired_purge, indexed_chunks
from dagster_project.defs.checks import AGREE, NO_EXPIRED, SCOPED, SECRETS, all_checks
from dagster_project.defs.resources import DropFolderResource, EmbedderResource, GovragStoresResource
from governance.catalog.models import Document
from governance.settings import Settings
from governance.stores import Stores
from governance.vector_index import ROW_FIELDS, VectorRow, all_rows_filter, document_filter
from testsupport.store_settings import embedded_settings

GRAPH = [*all_assets, *all_checks]
KEY = "sample"


def _settings(root: Path) -> Settings:
    return embedded_settings(root, collection="dagster_chunks")


def _resources(root: Path, settings: Settings) -> dict:
    return {
        "stores": GovragStoresResource(
            home=str(settings.home),
            database_url=settings.database_url,
            milvus_uri=settings.milvus_uri,
            policy=str(settings.policy),
            collection=settings.collection,
        ),
        "embedder": EmbedderResource(kind="local", batch_size=64),
        "drop_folder": DropFolderResource(drop_dir=str(root / "drop"), settle_seconds=0),
    }


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {c.check_name: c for c in result.get_asset_check_evaluations()}


def _metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == asset]
    return {k: v.value for k, v in event.materialization.metadata.items()}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory):
    """The whole graph materialized once for the ``sample`` partition."""
    from govrag.sample_corpus import write_sample_corpus

    root = tmp_path_factory.mktemp("dagster")
    write_sample_corpus(root / "drop" / KEY)
    settings = _settings(root)
    resources = _resources(root, settings)
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("sources", [KEY])
    # Two parse processes asked for by run config, whatever the machine's cores.
    config = {"ops": {"indexed_chunks": {"config": {"workers": 2}}}}
    first = dg.materialize(GRAPH, resources=resources, partition_key=KEY, instance=instance, run_config=config)
    return SimpleNamespace(root=root, settings=settings, resources=resources, instance=instance, first=first)


def _run(p, selection=None, raise_on_error=False, partition_key: str | None = KEY) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        GRAPH,
        resources=p.resources,
        partition_key=partition_key,
        instance=p.instance,
        selection=selection,
        raise_on_error=raise_on_error,
    )


def test_definitions_load_with_every_job_schedule_and_sensor():
    repo = defs.get_repository_def()
    assert {j.name for j in repo.get_all_jobs()} >= {
        "ingest",
        "sync_permissions",
        "purge_expired",
        "right_to_be_forgotten",
        "doctor",
    }
    assert {s.name for s in repo.schedule_defs} == {"purge_expired_daily", "doctor_daily", "permission_sync_hourly"}
    assert {s.name for s in repo.sensor_defs} == {"drop_folder_sensor"}
    keys = {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()}
    assert keys == {"source_snapshot", "indexed_chunks", "permission_sync", "expired_purge"}


def test_materialize_whole_graph_then_search(pipeline, embedder, make_retriever):
    result = pipeline.first
    assert result.success
    snap = _metadata(result, "source_snapshot")
    assert (snap["new"], snap["changed"], snap["unchanged"], snap["deleted"]) == (9, 0, 0, 0)
    ingest = _metadata(result, "indexed_chunks")
    # 11 chunks: each sample PDF's bold headings start a section (pdfium blocks, titles by font)
    assert (ingest["new"], ingest["quarantined"], ingest["chunks_written"]) == (5, 4, 11)
    assert ingest["chunks_per_second"] > 0 and ingest["embed_seconds"] > 0 and ingest["parse_seconds"] > 0
    assert ingest["parse_workers"] == 2
    assert set(ingest["stage_chunks_per_second"]) == {"parse", "embed", "write"}
    assert ingest["slowest_stage"] in ingest["stage_chunks_per_second"]
    checks = _checks(result)
    assert all(checks[name].passed for name in (SCOPED, AGREE, SECRETS, NO_EXPIRED))
    assert not checks["no_quarantined_documents"].passed
    assert checks["no_quarantined_documents"].severity == dg.AssetCheckSeverity.WARN
    assert _metadata(result, "permission_sync")["scopes_resolved"] == 3

    stores = Stores.open(pipeline.settings)
    try:
        retriever = make_retriever(stores, embedder)
        finance = retriever.search(
            {"sub": "f", "email": "f@x.com", "groups": ["finance"]}, "third quarter revenue", k=3
        )
        assert finance and finance[0].document_id == "pdf:finance/q3-revenue-report.pdf"
        eng = retriever.search({"sub": "e", "email": "e@x.com", "groups": ["eng"]}, "third quarter revenue", k=10)
        assert eng and all(not h.document_id.startswith("pdf:finance/") for h in eng)
    finally:
        stores.close()


def test_rematerialize_embeds_nothing(pipeline):
    result = _run(pipeline, raise_on_error=True)
    snap = _metadata(result, "source_snapshot")
    assert (snap["unchanged"], snap["changed"]) == (5, 0)  # the 4 quarantined inputs stay "new"
    ingest = _metadata(result, "indexed_chunks")
    assert (ingest["unchanged"], ingest["chunks_written"], ingest["embed_seconds"]) == (5, 0, 0.0)


def _plant_row(stores: Stores, **changes) -> int:
    [cid] = [r["id"] for r in stores.index.query(all_rows_filter(), ["id"], limit=1)]
    row = {**stores.index.get([cid], ROW_FIELDS)[0], **changes}
    stores.index.upsert([VectorRow(**row)])
    return int(row["id"])


def test_index_checks_fail_on_a_planted_orphan_vector(pipeline):
    stores = Stores.open(pipeline.settings)
    try:
        orphan = _plant_row(stores, id=4242, text="leaked AKIAIOSFODNN7EXAMPLE in a chunk")
    finally:
        stores.close()
    result = _run(pipeline, selection=dg.AssetSelection.assets(indexed_chunks))
    checks = _checks(result)
    assert not checks[AGREE].passed and checks[AGREE].severity == dg.AssetCheckSeverity.ERROR
    assert checks[AGREE].metadata["orphan_vectors"].value == 1
    assert checks[AGREE].metadata["sample_chunk_ids"].value == {"orphan_vectors": [orphan]}
    assert not checks[SECRETS].passed
    assert "AKIAIOSFODNN7EXAMPLE" not in str(checks[SECRETS].metadata)
    assert checks[SCOPED].passed

    stores = Stores.open(pipeline.settings)
    try:
        stores.index.delete_ids([orphan])
    finally:
        stores.close()
    assert _checks(_run(pipeline, selection=dg.AssetSelection.assets(indexed_chunks)))[AGREE].passed


def test_blocking_check_stops_downstream_permission_sync(pipeline):
    stores = Stores.open(pipeline.settings)
    try:
        orphan = _plant_row(stores, id=4343)
    finally:
        stores.close()
    try:
        result = _run(pipeline)
        assert not result.success
        done = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
        assert "indexed_chunks" in done and "permission_sync" not in done
    finally:
        stores = Stores.open(pipeline.settings)
        stores.index.delete_ids([orphan])
        stores.close()


def test_sweep_check_fails_on_a_planted_expired_chunk_and_purge_removes_expired(pipeline):
    past = datetime.now(UTC) - timedelta(days=1)
    stores = Stores.open(pipeline.settings)
    try:
        # An expired vector the catalog does not know: the sweep cannot see it, the check must.
        planted = _plant_row(stores, id=5151, expires_at=int(past.timestamp()))
    finally:
        stores.close()
    result = _run(pipeline, selection=dg.AssetSelection.assets(expired_purge), partition_key=None)
    check = _checks(result)[NO_EXPIRED]
    assert not check.passed and check.metadata["sample_chunk_ids"].value == [planted]

    stores = Stores.open(pipeline.settings)
    try:
        stores.index.delete_ids([planted])
        # Two catalog documents whose retention ran out; one is under legal hold.
        doc_id, held_id = "pdf:handbook/holidays-and-leave.pdf", "pdf:engineering/deploy-runbook.pdf"
        with stores.catalog.session() as s:
            s.get(Document, doc_id).expires_at = past
            s.get(Document, held_id).expires_at = past
        stores.catalog.holds.add_hold("document", held_id, "litigation", "test")
    finally:
        stores.close()
    result = _run(pipeline, selection=dg.AssetSelection.assets(expired_purge), raise_on_error=True, partition_key=None)
    meta = _metadata(result, "expired_purge")
    assert meta["documents_purged"] == 1 and meta["vectors_deleted"] >= 1 and meta["document_ids"] == [doc_id]
    assert meta["held"] == 1 and list(meta["held_by"]) == [held_id]
    check = _checks(result)[NO_EXPIRED]
    assert check.passed and check.metadata["held_documents"].value == 1

    stores = Stores.open(pipeline.settings)
    try:
        with stores.catalog.session() as s:
            assert s.get(Document, doc_id).status == "purged"
        assert stores.index.query(document_filter(doc_id), ["id"]) == []
    finally:
        stores.close()
    # The purged document stays consistent with the index.
    assert _checks(_run(pipeline, selection=dg.AssetSelection.assets(indexed_chunks)))[AGREE].passed


def test_doctor_job_reports_consistency(pipeline):
    job = defs.get_job_def("doctor")
    ok = job.execute_in_process(resources={"stores": pipeline.resources["stores"]}, instance=pipeline.instance)
    assert ok.success
    stores = Stores.open(pipeline.settings)
    try:
        orphan = _plant_row(stores, id=6161)
    finally:
        stores.close()
    try:
        bad = job.execute_in_process(
            resources={"stores": pipeline.resources["stores"]}, instance=pipeline.instance, raise_on_error=False
        )
        assert not bad.success
        failure = [e for e in bad.all_events if e.event_type_value == "STEP_FAILURE"][0]
        assert "orphan_vectors" in failure.event_specific_data.error.message
    finally:
        stores = Stores.open(pipeline.settings)
        stores.index.delete_ids([orphan])
        stores.close()


def test_right_to_be_forgotten_job_takes_the_subject_from_run_config(pipeline):
    subject = "user:jane@example.com"
    stores = Stores.open(pipeline.settings)
    try:
        doc_id = "pdf:engineering/incidents/2026-10-database-outage.pdf"
        with stores.catalog.session() as s:
            s.get(Document, doc_id).author = subject
    finally:
        stores.close()
    job = defs.get_job_def("right_to_be_forgotten")
    config = {"ops": {"run_forget_subject": {"config": {"subject": subject, "dry_run": True}}}}
    dry = job.execute_in_process(run_config=config, resources=pipeline.resources, instance=pipeline.instance)
    [mat] = [e for e in dry.all_events if e.event_type_value == "STEP_OUTPUT"]
    assert mat.event_specific_data.metadata["document_ids"].value == [doc_id]
    assert mat.event_specific_data.metadata["documents_purged"].value == 1

    config["ops"]["run_forget_subject"]["config"]["dry_run"] = False
    done = job.execute_in_process(run_config=config, resources=pipeline.resources, instance=pipeline.instance)
    assert done.success
    stores = Stores.open(pipeline.settings)
    try:
        with stores.catalog.session() as s:
            assert s.get(Document, doc_id).status == "purged"
        assert stores.index.query(document_filter(doc_id), ["id"]) == []
    finally:
        stores.close()
    assert _checks(_run(pipeline, selection=dg.AssetSelection.assets(indexed_chunks)))[AGREE].passed
