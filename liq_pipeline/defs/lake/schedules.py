"""Scheduled backfill: finished block ranges that were never materialized, oldest first."""

# No `from __future__ import annotations` here: Dagster reads these signatures' annotations at load time.

import dagster as dg

from ..partitions import every_minute, final_ranges, head_and_state_from, request_ranges
from ..resources import ChainResource, LakeResource
from .assets import datasets_of, lake_ranges_job


def missing_ranges(lake, keys, head: int, confirmations: int, state_from: int = 0) -> list[str]:
    """Known partitions whose range is final and lacks a chain dataset it can hold, oldest first (a range that
    ends before the node's first block with state `state_from` holds its logs only: assets.datasets_of)."""

    def lacks(block_range) -> bool:
        return not all(lake.exists(d, block_range) for d in datasets_of(block_range.end, state_from))

    return final_ranges(lake, keys, head, confirmations, lacks)


@every_minute(
    lake_ranges_job,
    dg.DefaultScheduleStatus.RUNNING,
    "Every minute: materialize finished block ranges missing from the lake (oldest first).",
)
def backfill_finished_ranges(context: dg.ScheduleEvaluationContext, chain: ChainResource, lake: LakeResource):
    settings = chain.settings()
    return request_ranges(
        context,
        lambda: head_and_state_from(chain),
        lambda keys, node: missing_ranges(lake.lake(), keys, node[0], settings.confirmations, node[1]),
        "lake",
        "every finished range is in the lake",
    )
