"""The govrag code location: assembles definitions from `defs/`; nothing else lives here."""

import dagster as dg

from dagster_project.defs.assets import all_assets
from dagster_project.defs.checks import all_checks
from dagster_project.defs.jobs import (
    doctor_job,
    ingest_job,
    permission_sync_job,
    purge_expired_job,
    right_to_be_forgotten_job,
)
from dagster_project.defs.resources import DropFolderResource, EmbedderResource, GovragStoresResource
from dagster_project.defs.schedules import all_schedules
from dagster_project.defs.sensors import all_sensors


def resources() -> dict[str, dg.ConfigurableResource]:
    """Default resources: everything from the `GOVRAG_*` environment."""
    return {"stores": GovragStoresResource(), "embedder": EmbedderResource(), "drop_folder": DropFolderResource()}


defs = dg.Definitions(
    assets=all_assets,
    asset_checks=all_checks,
    jobs=[ingest_job, permission_sync_job, purge_expired_job, right_to_be_forgotten_job, doctor_job],
    schedules=all_schedules,
    sensors=all_sensors,
    resources=resources(),
)
