"""Scheduled backfill: finished block ranges that were never materialized, oldest first."""

# No `from __future__ import annotations` here: Dagster reads these signatures' annotations at load time.

import time

import dagster as dg

from ...chain.rpc import NodeUnavailable, RpcError
from ...lake.partitions import parse_key
from ..partitions import BLOCK_RANGES, first_state_block
from ..resources import ChainResource, LakeResource
from .assets import datasets_of, lake_ranges_job

PER_TICK = 3  # borrower_snapshots needs every earlier range's events: keep ranges in order, a few at a time
RETRY_AFTER_SEC = 600  # a failed range is requested again after this long (run keys are per window)


def missing_ranges(lake, keys, head: int, confirmations: int, state_from: int = 0) -> list[str]:
    """Known partitions whose range is final and lacks a chain dataset it can hold, oldest first (a range that
    ends before the node's first block with state `state_from` holds its logs only: assets.datasets_of)."""
    out = []
    for key in sorted(keys):
        block_range = parse_key(key, lake.range_size)
        if head - block_range.end < confirmations:
            continue
        if not all(lake.exists(d, block_range) for d in datasets_of(block_range.end, state_from)):
            out.append(key)
    return out


@dg.schedule(
    job=lake_ranges_job,
    cron_schedule="* * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every minute: materialize finished block ranges missing from the lake (oldest first).",
)
def backfill_finished_ranges(context: dg.ScheduleEvaluationContext, chain: ChainResource, lake: LakeResource):
    settings = chain.settings()
    try:
        with chain.client() as rpc:
            head = rpc.quantity("eth_blockNumber")
            state_from = first_state_block(rpc, settings, head)
    except (NodeUnavailable, RpcError) as error:
        return dg.SkipReason(f"cannot read the node: {error}")
    keys = context.instance.get_dynamic_partitions(BLOCK_RANGES)
    todo = missing_ranges(lake.lake(), keys, head, settings.confirmations, state_from)[:PER_TICK]
    if not todo:
        return dg.SkipReason("every finished range is in the lake")
    window = int(time.time() // RETRY_AFTER_SEC)
    return [dg.RunRequest(run_key=f"lake-{key}-{window}", partition_key=key) for key in todo]
