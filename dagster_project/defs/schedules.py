"""Schedules (stopped by default; turn them on in the UI under Automation): the daily
retention sweep, an hourly permission sync of every source, a daily doctor."""

import dagster as dg

from dagster_project.defs.jobs import doctor_job, permission_sync_job, purge_expired_job
from dagster_project.defs.partitions import SOURCES

purge_expired_daily = dg.ScheduleDefinition(
    name="purge_expired_daily",
    job=purge_expired_job,
    cron_schedule="0 3 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)

doctor_daily = dg.ScheduleDefinition(
    name="doctor_daily",
    job=doctor_job,
    cron_schedule="30 3 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)


@dg.schedule(
    job=permission_sync_job,
    cron_schedule="15 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
def permission_sync_hourly(context: dg.ScheduleEvaluationContext):
    """One permission-sync run per registered source."""
    keys = context.instance.get_dynamic_partitions(SOURCES)
    if not keys:
        return dg.SkipReason("no sources registered yet")
    tick = context.scheduled_execution_time.isoformat()
    return [dg.RunRequest(run_key=f"{k}@{tick}", partition_key=k) for k in keys]


all_schedules = [purge_expired_daily, doctor_daily, permission_sync_hourly]
