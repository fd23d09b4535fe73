"""Block-range partitions: Dagster has no integer-range partitions and refuses custom definitions, so ranges are
dynamic partitions with zero-padded keys (`000000012000-000000012999`, see lake/partitions.py) added by the sensor."""

from __future__ import annotations

import dagster as dg

from ..chain.state_history import first_block_with_state
from ..config import Settings, load_settings
from ..lake.partitions import parse_key

BLOCK_RANGES = "block_ranges"
block_ranges = dg.DynamicPartitionsDefinition(name=BLOCK_RANGES)


def block_range_of(context) -> tuple[int, int]:
    """The partition's blocks; a key that is not a block range fails the run with the lake's clear message."""
    try:
        parsed = parse_key(context.partition_key, _range_size())
    except ValueError as error:
        raise dg.Failure(str(error)) from None
    return parsed.start, parsed.end


def _range_size() -> int:
    return load_settings().lake_range_blocks


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
