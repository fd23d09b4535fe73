"""Block-range partitions: Dagster has no integer-range partitions and refuses custom definitions, so ranges are
dynamic partitions with zero-padded keys (`000000012000-000000012999`, see lake/partitions.py) added by the sensor."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import dagster as dg

from ..chain.rpc import NodeUnavailable, RpcError
from ..chain.state_history import first_block_with_state
from ..config import Settings, current_settings
from ..lake.partitions import BlockRange, parse_key
from .market import MARKET_NAME

T = TypeVar("T")

# per market: partition keys are global to an instance, and two chains' ranges are not the same partitions
BLOCK_RANGES = f"{MARKET_NAME}__block_ranges" if MARKET_NAME else "block_ranges"
block_ranges = dg.DynamicPartitionsDefinition(name=BLOCK_RANGES)
RANGES_PER_TICK = 3  # borrower_snapshots needs every earlier range's events: keep ranges in order, a few at a time
RETRY_AFTER_SEC = 600  # a failed range is requested again after this long (run keys are per window)


def block_range_of(context) -> tuple[int, int]:
    """The partition's blocks; a key that is not a block range fails the run with the lake's clear message."""
    try:
        parsed = parse_key(context.partition_key, _range_size())
    except ValueError as error:
        raise dg.Failure(str(error)) from None
    return parsed.start, parsed.end


IN_FLIGHT = (
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
)


def planned_in_flight(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str) -> bool:
    """Whether the latest run that planned to materialize asset `key`'s `partition` (Dagster records the plan when
    it creates the run) is still queued or running."""
    planned = instance.get_latest_planned_materialization_info(key, partition)
    if planned is None:
        return False
    run = instance.get_run_by_id(planned.run_id)
    return run is not None and run.status in IN_FLIGHT


def _range_size() -> int:
    return current_settings().lake_range_blocks  # 7 times a range: parsed once


def first_state_block(rpc, settings: Settings, head: int | None = None) -> int:
    """The first block whose state the node serves, from STATE_HISTORY_FROM_BLOCK on (one eth_getCode when the
    node holds it; a bisection otherwise: a pruned node, or the devnet loaded from its state cache). Ranges that end
    before it keep their logs (pool_events) and nothing that reads state."""
    if settings.aave_addresses_provider is None:
        raise dg.Failure("AAVE_ADDRESSES_PROVIDER is not set")
    provider, low = settings.aave_addresses_provider, settings.state_history_from_block
    # a run's assets (a backfill's ranges) ask again: the last answer is checked in two calls, not re-bisected
    where = (rpc.url, provider, low)
    found = first_block_with_state(rpc, provider, low=low, head=head, guess=_first_state_seen.get(where))
    _first_state_seen[where] = found
    return found


_first_state_seen: dict[tuple[str, str, int], int] = {}  # (node, address, floor) -> the last answer


def head_and_state_from(chain) -> tuple[int, int]:
    """The node's head and its first block with state, on one connection of the `chain` resource (a schedule's
    `read_node`)."""
    with chain.client() as rpc:
        head = rpc.quantity("eth_blockNumber")
        return head, first_state_block(rpc, chain.settings(), head)


def final_ranges(lake, keys, head: int, confirmations: int, lacks: Callable[[BlockRange], bool]) -> list[str]:
    """Known partitions whose range is final (`confirmations` blocks behind `head`) and `lacks` something, oldest
    first."""
    out = []
    for key in sorted(keys):
        block_range = parse_key(key, lake.range_size)
        if head - block_range.end >= confirmations and lacks(block_range):
            out.append(key)
    return out


def every_minute(job, default_status: dg.DefaultScheduleStatus, description: str):
    """The decorator of a schedule that asks for block ranges every minute (its tick: `request_ranges`)."""
    return dg.schedule(job=job, cron_schedule="* * * * *", default_status=default_status, description=description)


def request_ranges(
    context: dg.ScheduleEvaluationContext,
    read_node: Callable[[], T],
    select: Callable[[list[str], T], list[str]],
    run_key: str,
    nothing_left: str,
) -> dg.SkipReason | list[dg.RunRequest]:
    """A schedule's tick: what the node says (`read_node()`: a node that cannot be read skips the tick), then runs
    for the first RANGES_PER_TICK of the known partitions `select(keys, said)` keeps (run keys
    `<run_key>-<key>-<window>`: a failed range is asked for again RETRY_AFTER_SEC later), or
    SkipReason(nothing_left)."""
    try:
        said = read_node()
    except (NodeUnavailable, RpcError) as error:
        return dg.SkipReason(f"cannot read the node: {error}")
    todo = select(context.instance.get_dynamic_partitions(BLOCK_RANGES), said)[:RANGES_PER_TICK]
    if not todo:
        return dg.SkipReason(nothing_left)
    window = int(time.time() // RETRY_AFTER_SEC)
    return [dg.RunRequest(run_key=f"{run_key}-{key}-{window}", partition_key=key) for key in todo]
