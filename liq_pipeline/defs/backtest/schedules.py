"""Scheduled: backtest finished block ranges that have no report yet, oldest first.

Stopped by default: a backtest reads every borrower at every block of its range (docs/backtest.md, Limits) and
replays the engine there, far heavier than the lake's datasets. Turn it on in the UI (Automation) where the node
and the machine can afford it; the UI's partition backfill of `backtest_ranges` does ranges on demand.
"""

# No `from __future__ import annotations` here: Dagster reads these signatures' annotations at load time.

from pathlib import Path

import dagster as dg

from ..partitions import every_minute, final_ranges, head_and_state_from, request_ranges
from ..resources import ChainResource, LakeResource
from .assets import backtest_ranges_job
from .store import RangeFiles


def ranges_to_backtest(lake, keys, head: int, confirmations: int, state_from: int, settings) -> list[str]:
    """Known partitions whose range is final, ends at or after the node's first block with state, and has no
    report, oldest first."""

    def lacks(block_range) -> bool:
        report: Path = RangeFiles(settings, block_range.key).report_path
        return block_range.end >= state_from and not report.is_file()

    return final_ranges(lake, keys, head, confirmations, lacks)


@every_minute(
    backtest_ranges_job,
    dg.DefaultScheduleStatus.STOPPED,
    "Every minute: backtest finished block ranges that have no report yet (oldest first).",
)
def backtest_finished_ranges(context: dg.ScheduleEvaluationContext, chain: ChainResource, lake: LakeResource):
    settings = chain.settings()
    return request_ranges(
        context,
        lambda: head_and_state_from(chain),
        lambda keys, node: ranges_to_backtest(lake.lake(), keys, node[0], settings.confirmations, node[1], settings),
        "backtest",
        "every finished range has a backtest report",
    )
