"""The drop-folder sensor: each new or changed export becomes a `sources` partition and an
`ingest` run. The cursor maps each key to the signature last requested, so a tick that
finds nothing new requests nothing, and a re-copied export runs again."""

import json

import dagster as dg

from dagster_project.defs.jobs import ingest_job
from dagster_project.defs.partitions import SOURCES, sources
from dagster_project.defs.resources import DropFolderResource
from ingest.pipeline.drop_folder import due_exports, scan_drop_folder


@dg.sensor(job=ingest_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.STOPPED)
def drop_folder_sensor(context: dg.SensorEvaluationContext, drop_folder: DropFolderResource) -> dg.SensorResult:
    """Register new exports in the drop folder (GOVRAG_DROP_DIR) and request their ingest."""
    root = drop_folder.root()
    if not root.is_dir():
        return dg.SensorResult(skip_reason=f"drop folder {root} does not exist (set GOVRAG_DROP_DIR)")
    seen = json.loads(context.cursor) if context.cursor else {}
    due, updated = due_exports(scan_drop_folder(root), seen, drop_folder.settle_seconds)
    known = set(context.instance.get_dynamic_partitions(SOURCES))
    new_keys = [e.key for e in due if e.key not in known]
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=f"{e.key}@{e.signature}", partition_key=e.key) for e in due],
        dynamic_partitions_requests=[sources.build_add_request(new_keys)] if new_keys else [],
        cursor=json.dumps(updated, sort_keys=True),
        skip_reason=None if due else "no new or changed exports",
    )


all_sensors = [drop_folder_sensor]
