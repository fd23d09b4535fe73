"""Scheduled: the executor's records of finished block ranges moved from Redis to the lake, oldest first.

Stopped by default (the executor is being built off the default path, issue #13): turn it on in the UI (Automation)
or flip `default_status` once the executor runs by default.
"""

# No `from __future__ import annotations` here: Dagster reads these signatures' annotations at load time.

import time

import dagster as dg

from ...chain.rpc import NodeUnavailable, RpcError
from ...lake.datasets.liquidation_executions import NAME
from ...lake.partitions import parse_key
from ..partitions import BLOCK_RANGES
from ..resources import ChainResource, LakeResource
from .assets import execution_records_job

PER_TICK = 3
RETRY_AFTER_SEC = 600  # a failed range is requested again after this long (run keys are per window)


def ranges_to_record(lake, keys, head: int, confirmations: int) -> list[str]:
    """Known partitions whose range is final and not yet in the lake's liquidation_executions, oldest first."""
    out = []
    for key in sorted(keys):
        block_range = parse_key(key, lake.range_size)
        if head - block_range.end >= confirmations and not lake.exists(NAME, block_range):
            out.append(key)
    return out


@dg.schedule(
    job=execution_records_job,
    cron_schedule="* * * * *",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Every minute: the executor's records of finished block ranges, from Redis to the lake.",
)
def record_finished_executions(context: dg.ScheduleEvaluationContext, chain: ChainResource, lake: LakeResource):
    settings = chain.settings()
    try:
        head = chain.head()
    except (NodeUnavailable, RpcError) as error:
        return dg.SkipReason(f"cannot read the node: {error}")
    keys = context.instance.get_dynamic_partitions(BLOCK_RANGES)
    todo = ranges_to_record(lake.lake(), keys, head, settings.confirmations)[:PER_TICK]
    if not todo:
        return dg.SkipReason("every finished range's executions are in the lake")
    window = int(time.time() // RETRY_AFTER_SEC)
    return [dg.RunRequest(run_key=f"executions-{key}-{window}", partition_key=key) for key in todo]
