"""The drop-folder sensor and the permission-sync schedule, evaluated directly."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from dagster_project.defs.resources import DropFolderResource
from dagster_project.defs.schedules import permission_sync_hourly
from dagster_project.defs.sensors import drop_folder_sensor
from ingest.pipeline.drop_folder import source_key


def _tick(instance: dg.DagsterInstance, drop: Path, cursor: str | None, settle: float = 0) -> dg.SensorResult:
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"drop_folder": DropFolderResource(drop_dir=str(drop), settle_seconds=settle)},
    )
    return drop_folder_sensor(context)


def _export(drop: Path, name: str) -> Path:
    folder = drop / name
    folder.mkdir(parents=True)
    (folder / "report.pdf").write_bytes(b"%PDF-1.4 not parsed by the sensor")
    return folder


def test_new_export_is_registered_and_requested_once(tmp_path):
    drop = tmp_path / "drop"
    _export(drop, "Finance Q3 (final)")
    instance = dg.DagsterInstance.ephemeral()
    key = source_key("Finance Q3 (final)")

    first = _tick(instance, drop, cursor=None)
    assert [r.partition_key for r in first.run_requests] == [key]
    assert first.run_requests[0].run_key
    [add] = first.dynamic_partitions_requests
    assert add.partitions_def_name == "sources" and list(add.partition_keys) == [key]
    assert json.loads(first.cursor).keys() == {key}

    # The daemon applies the partition request; the next tick with the cursor asks nothing.
    instance.add_dynamic_partitions("sources", [key])
    second = _tick(instance, drop, cursor=first.cursor)
    assert second.run_requests == [] and second.dynamic_partitions_requests == []

    # Another export arrives: only it is registered and requested.
    _export(drop, "slack-acme")
    third = _tick(instance, drop, cursor=second.cursor)
    assert [r.partition_key for r in third.run_requests] == ["slack-acme"]
    assert [list(r.partition_keys) for r in third.dynamic_partitions_requests] == [["slack-acme"]]

    # A changed export runs again, but is not registered twice.
    (drop / "slack-acme" / "more.pdf").write_bytes(b"%PDF-1.4 more")
    instance.add_dynamic_partitions("sources", ["slack-acme"])
    fourth = _tick(instance, drop, cursor=third.cursor)
    assert [r.partition_key for r in fourth.run_requests] == ["slack-acme"]
    assert fourth.run_requests[0].run_key != third.run_requests[0].run_key
    assert fourth.dynamic_partitions_requests == []


def test_export_still_being_copied_waits(tmp_path):
    drop = tmp_path / "drop"
    folder = _export(drop, "incoming")
    instance = dg.DagsterInstance.ephemeral()
    assert _tick(instance, drop, cursor=None, settle=3600).run_requests == []
    old = time.time() - 7200
    os.utime(folder / "report.pdf", (old, old))
    os.utime(folder, (old, old))
    assert [r.partition_key for r in _tick(instance, drop, cursor=None, settle=3600).run_requests] == ["incoming"]


def test_missing_drop_folder_skips(tmp_path):
    result = _tick(dg.DagsterInstance.ephemeral(), tmp_path / "nope", cursor=None)
    assert result.run_requests == [] and "does not exist" in str(result.skip_reason)


def test_permission_sync_schedule_requests_every_source():
    with dg.instance_for_test() as instance:  # schedules need an instance with a ref
        tick = datetime(2026, 11, 27, 10, 15, tzinfo=UTC)
        context = dg.build_schedule_context(instance=instance, scheduled_execution_time=tick)
        assert isinstance(permission_sync_hourly(context), dg.SkipReason)
        instance.add_dynamic_partitions("sources", ["a", "b"])
        requests = permission_sync_hourly(dg.build_schedule_context(instance=instance, scheduled_execution_time=tick))
        assert sorted(r.partition_key for r in requests) == ["a", "b"]
        assert len({r.run_key for r in requests}) == 2
