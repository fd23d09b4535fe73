"""Housekeeping: prune old runs (SQLite storage keeps one file per run and nothing cleans it by itself)."""

# No `from __future__ import annotations` here: Dagster reads these signatures' annotations at load time.

import datetime

import dagster as dg

from ..resources import ChainResource


@dg.op(description="Delete runs older than RUN_RETENTION_DAYS from run storage.")
def prune_old_runs(context: dg.OpExecutionContext, chain: ChainResource) -> int:
    days = chain.settings().run_retention_days
    cutoff = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=days)
    records = context.instance.get_run_records(filters=dg.RunsFilter(created_before=cutoff), limit=5_000)
    for record in records:
        if record.dagster_run.run_id != context.run_id:
            context.instance.delete_run(record.dagster_run.run_id)
    context.log.info(f"pruned {len(records)} runs older than {days} days")
    return len(records)


@dg.job(description="Prune old Dagster runs.")
def prune_runs_job() -> None:
    prune_old_runs()


prune_runs_schedule = dg.ScheduleDefinition(
    job=prune_runs_job, cron_schedule="17 3 * * *", default_status=dg.DefaultScheduleStatus.RUNNING
)
