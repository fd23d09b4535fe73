"""What the new-block sensor does on one tick, decided without Dagster (so it is testable as a plain function).

The daemon ticks a sensor about every 5 s whatever its interval says (measured), and Base makes a block every
2 s: each tick sees 2-3 new blocks. One evaluation run covers every block since the cursor for the NEWEST block
(run key per block, so a retried tick never launches the same block twice). While an evaluation is still
running, the tick launches nothing and keeps its cursor: the next run then covers all the blocks that arrived
meanwhile (coalesced), instead of a queue of stale runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..lake.partitions import BlockRange, finished_ranges, range_of


@dataclass(frozen=True)
class TickPlan:
    cursor: int  # last block handled after this tick
    evaluate_block: int | None  # newest block to evaluate, None = nothing to launch
    from_block: int | None  # first block the run must cover
    run_key: str | None
    new_partitions: list[str] = field(default_factory=list)
    skipped_reason: str = ""


def plan_tick(
    cursor: int | None,
    head: int,
    known_partitions: set[str],
    evaluation_in_flight: bool,
    range_size: int,
    confirmations: int,
    start_block: int = 0,
) -> TickPlan:
    """cursor: last block a launched run covered (None on the first tick); head: the chain's latest block."""
    wanted = [r.key for r in finished_ranges(head, confirmations, range_size, start_block)]
    current: BlockRange = range_of(head, range_size)
    wanted.append(current.key)  # the open range holds this block's candidates
    new_partitions = sorted(k for k in dict.fromkeys(wanted) if k not in known_partitions)
    last = head - 1 if cursor is None else cursor
    if head <= last:
        return TickPlan(last, None, None, None, new_partitions, "no new block")
    if evaluation_in_flight:
        return TickPlan(last, None, None, None, new_partitions, "an evaluation is running: coalescing")
    return TickPlan(head, head, last + 1, f"evaluate-{head}", new_partitions)
