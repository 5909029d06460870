"""The Dagster path keeps the same permission promises as the CLI: a full export prunes when
its run config (or the policy's ``sources`` rule) says so, and the permission sync of an
older partition, run after a newer one, changes nothing."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from dagster_project.defs.assets import indexed_chunks, permission_sync, source_snapshot
from dagster_project.defs.resources import DropFolderResource, EmbedderResource, GovragStoresResource
from governance.identity import User
from governance.settings import Settings
from governance.stores import Stores
from retrieval.search import Retriever
from testsupport.permission_exports import DAY, GENERAL, POLICY, SECRET, conv, slack_export
from testsupport.store_settings import embedded_settings

CAROL = User(id="carol", email="carol@corp.example")
ASSETS = [source_snapshot, indexed_chunks, permission_sync]


@pytest.fixture
def drop(tmp_path: Path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    settings = embedded_settings(tmp_path, policy=policy, collection="dagster_perm")
    resources = {
        "stores": GovragStoresResource(
            home=str(settings.home),
            database_url=settings.database_url,
            milvus_uri=settings.milvus_uri,
            policy=str(policy),
            collection=settings.collection,
        ),
        "embedder": EmbedderResource(kind="local", batch_size=64),
        "drop_folder": DropFolderResource(drop_dir=str(tmp_path / "drop"), settle_seconds=0),
    }
    instance = dg.DagsterInstance.ephemeral()
    return tmp_path, settings, resources, instance


def _materialize(drop, key: str, selection: list, config: dict | None = None) -> dg.ExecuteInProcessResult:
    _, _, resources, instance = drop
    instance.add_dynamic_partitions("sources", [key])
    run_config = {"ops": {a.key.to_user_string(): {"config": config} for a in selection}} if config else None
    return dg.materialize(
        ASSETS, resources=resources, partition_key=key, instance=instance, selection=selection, run_config=run_config
    )


def _reads(settings: Settings, embedder, user: User, phrase: str) -> set[str]:
    stores = Stores.open(settings)
    try:
        return {
            h.document_id for h in Retriever(stores, lambda: embedder).search(user, phrase, k=10) if phrase in h.text
        }
    finally:
        stores.close()


def test_dagster_prunes_a_full_export_when_its_run_config_says_so(drop, embedder) -> None:
    root, settings, _, _ = drop
    slack_export(
        root / "drop" / "acme-nov",
        [conv("C1", "general", "public", ["U1", "U3"], GENERAL), conv("C2", "random", "public", ["U1", "U3"], SECRET)],
        at=0,
    )
    _materialize(drop, "acme-nov", [indexed_chunks])
    assert _reads(settings, embedder, CAROL, SECRET)
    slack_export(root / "drop" / "acme-dec", [conv("C1", "general", "public", ["U1", "U3"], GENERAL)], at=DAY)
    plain = _materialize(drop, "acme-dec", [indexed_chunks])
    assert plain.asset_materializations_for_node("indexed_chunks")[0].metadata["tombstoned"].value == 0
    assert _reads(settings, embedder, CAROL, SECRET)  # without prune nothing is tombstoned
    pruned = _materialize(drop, "acme-dec", [indexed_chunks], {"prune": True})
    assert pruned.asset_materializations_for_node("indexed_chunks")[0].metadata["tombstoned"].value == 1
    assert not _reads(settings, embedder, CAROL, SECRET) and _reads(settings, embedder, CAROL, GENERAL)


def test_dagster_permission_sync_of_an_older_partition_changes_nothing(drop, embedder) -> None:
    root, settings, _, _ = drop
    slack_export(root / "drop" / "acme-nov", [conv("G1", "secret", "private", ["U1", "U3"], SECRET)], at=0)
    slack_export(root / "drop" / "acme-dec", [conv("G1", "secret", "private", ["U1"])], at=DAY)
    _materialize(drop, "acme-nov", [indexed_chunks])
    assert _reads(settings, embedder, CAROL, SECRET)
    _materialize(drop, "acme-dec", [permission_sync])
    assert not _reads(settings, embedder, CAROL, SECRET)  # dropped in December, no messages needed
    older = _materialize(drop, "acme-nov", [permission_sync])  # the hourly schedule, any order
    assert older.asset_materializations_for_node("permission_sync")[0].metadata["scopes_stale"].value >= 1
    assert not _reads(settings, embedder, CAROL, SECRET)


def test_policy_sources_rule_marks_exports_full_for_the_sensor_runs(drop, embedder) -> None:
    root, settings, _, _ = drop
    Path(settings.policy).write_text(POLICY + 'sources:\n  - match: {path: "**/acme-*"}\n    full_export: true\n')
    slack_export(
        root / "drop" / "acme-nov",
        [conv("C1", "general", "public", ["U1", "U3"], GENERAL), conv("C2", "random", "public", ["U1", "U3"], SECRET)],
        at=0,
    )
    _materialize(drop, "acme-nov", [indexed_chunks])
    slack_export(root / "drop" / "acme-dec", [conv("C1", "general", "public", ["U1", "U3"], GENERAL)], at=DAY)
    _materialize(drop, "acme-dec", [indexed_chunks])  # no run config: the policy says it is full
    assert not _reads(settings, embedder, CAROL, SECRET) and _reads(settings, embedder, CAROL, GENERAL)
