"""Scheduled backfill: finished block ranges that were never materialized, oldest first."""

# No `from __future__ import annotations` here: Dagster reads these signatures' annotations at load time.

import time

import dagster as dg

from ...chain.rpc import NodeUnavailable
from ...lake.partitions import parse_key
from ..partitions import BLOCK_RANGES
from ..resources import ChainResource, LakeResource
from .assets import CHAIN_ASSETS, lake_ranges_job

PER_TICK = 3  # borrower_snapshots needs every earlier range's events: keep ranges in order, a few at a time
RETRY_AFTER_SEC = 600  # a failed range is requested again after this long (run keys are per window)


def missing_ranges(lake, keys, head: int, confirmations: int) -> list[str]:
    """Known partitions whose range is final and lacks any chain dataset, oldest first."""
    datasets = [a.key.to_user_string() for a in CHAIN_ASSETS]
    out = []
    for key in sorted(keys):
        block_range = parse_key(key, lake.range_size)
        if head - block_range.end < confirmations:
            continue
        if not all(lake.exists(d, block_range) for d in datasets):
            out.append(key)
    return out


@dg.schedule(
    job=lake_ranges_job,
    cron_schedule="* * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every minute: materialize finished block ranges missing from the lake (oldest first).",
)
def backfill_finished_ranges(context: dg.ScheduleEvaluationContext, chain: ChainResource, lake: LakeResource):
    try:
        head = chain.head()
    except NodeUnavailable as error:
        return dg.SkipReason(f"node unavailable: {error}")
    keys = context.instance.get_dynamic_partitions(BLOCK_RANGES)
    todo = missing_ranges(lake.lake(), keys, head, chain.settings().confirmations)[:PER_TICK]
    if not todo:
        return dg.SkipReason("every finished range is in the lake")
    window = int(time.time() // RETRY_AFTER_SEC)
    return [dg.RunRequest(run_key=f"lake-{key}-{window}", partition_key=key) for key in todo]
