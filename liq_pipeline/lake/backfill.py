"""Materialize the chain-derived datasets of one block range in dependency order, reusing each step's output.

What a Dagster asset does one dataset at a time; here for backfills, benchmarks and tests. Each dataset is built
fully in memory and only then written, so a failing build leaves no file and keeps the previous one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import polars as pl

from ..chain.discovery import Market
from ..chain.rpc import RpcClient
from ..risk.versions import ProtocolRules
from .datasets.borrower_snapshots import build_borrower_snapshots, known_users_before
from .datasets.pool_events import NAME as POOL_EVENTS
from .datasets.pool_events import build_pool_events
from .datasets.price_histories import SCHEMA as PRICE_SCHEMA
from .datasets.price_histories import build_price_histories
from .datasets.reserve_indices import build_reserve_indices
from .partitions import BlockRange
from .store import Lake

CHAIN_DATASETS = ("pool_events", "reserve_indices", "price_histories", "borrower_snapshots")
STATE_DATASETS = ("reserve_indices", "borrower_snapshots")  # read state at the range's last block


@dataclass
class RangeReport:
    block_range: BlockRange
    rows: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # datasets that read state the node does not hold


def materialize_range(
    lake: Lake,
    rpc: RpcClient,
    market: Market,
    rules: ProtocolRules,
    block_range: BlockRange,
    datasets: Sequence[str] = CHAIN_DATASETS,
    first_block: int = 0,
    state_from: int = 0,
) -> RangeReport:
    """Build and write `datasets` for one range. borrower_snapshots needs pool_events of every earlier range
    (from `first_block`) in the lake already: backfill ranges in block order.

    `state_from`: the node's first block with state (`chain.state_history.first_block_with_state`). Prices are
    read from it on; a range that ends before it gets pool_events and an empty price_histories only (what
    reads state at the range's end, reserve_indices and borrower_snapshots, is left out: `RangeReport.skipped`).
    `market` must then have been read at a block with state."""
    unknown = [d for d in datasets if d not in CHAIN_DATASETS]
    if unknown:
        raise ValueError(f"materialize_range builds {CHAIN_DATASETS}, not {unknown}")
    report = RangeReport(block_range)
    start, end = block_range.start, block_range.end
    events = None
    if end < state_from:
        report.skipped = [d for d in datasets if d in STATE_DATASETS]
        datasets = [d for d in datasets if d not in STATE_DATASETS]

    def timed(name: str, build):
        began = time.perf_counter()
        frame = build()
        lake.write(name, block_range, frame)
        report.seconds[name] = time.perf_counter() - began
        report.rows[name] = frame.height
        return frame

    if POOL_EVENTS in datasets or {"reserve_indices", "borrower_snapshots"} & set(datasets):
        if POOL_EVENTS in datasets:
            events = timed(POOL_EVENTS, lambda: build_pool_events(rpc, market, rules, start, end))
        else:
            events = lake.read(POOL_EVENTS, block_range)
    if "reserve_indices" in datasets:
        timed("reserve_indices", lambda: build_reserve_indices(rpc, market, rules, start, end, events=events))
    if "price_histories" in datasets:
        first = max(start, state_from)
        timed(
            "price_histories",
            lambda: (
                build_price_histories(rpc, market, rules, first, end)
                if first <= end
                else pl.DataFrame(schema=PRICE_SCHEMA)
            ),
        )
    if "borrower_snapshots" in datasets:
        timed(
            "borrower_snapshots",
            lambda: build_borrower_snapshots(
                rpc, market, rules, start, end, known_users=known_users_before(lake, start, first_block), events=events
            ),
        )
    return report
