"""Scheduled: the executor's records of finished block ranges moved from Redis to the lake, oldest first.

Stopped by default (the executor is being built off the default path, issue #13): turn it on in the UI (Automation)
or flip `default_status` once the executor runs by default.
"""

# No `from __future__ import annotations` here: Dagster reads these signatures' annotations at load time.

import dagster as dg

from ...lake.datasets.liquidation_executions import NAME
from ..partitions import every_minute, final_ranges, request_ranges
from ..resources import ChainResource, LakeResource
from .assets import execution_records_job


def ranges_to_record(lake, keys, head: int, confirmations: int) -> list[str]:
    """Known partitions whose range is final and not yet in the lake's liquidation_executions, oldest first."""
    return final_ranges(lake, keys, head, confirmations, lambda block_range: not lake.exists(NAME, block_range))


@every_minute(
    execution_records_job,
    dg.DefaultScheduleStatus.STOPPED,
    "Every minute: the executor's records of finished block ranges, from Redis to the lake.",
)
def record_finished_executions(context: dg.ScheduleEvaluationContext, chain: ChainResource, lake: LakeResource):
    confirmations = chain.settings().confirmations
    return request_ranges(
        context,
        chain.head,
        lambda keys, head: ranges_to_record(lake.lake(), keys, head, confirmations),
        "executions",
        "every finished range's executions are in the lake",
    )
