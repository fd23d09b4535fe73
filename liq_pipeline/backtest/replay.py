"""Predictions as they were made: the watcher's Tracker and engine replayed block by block over a past range.

At each block the Tracker reads what a watcher would have read at that block and nothing later: the block's logs,
the market at the block (reserves, indices, prices), and the positions of the users those logs touched, at the
block. Then the engine evaluates every user in every scenario, exactly as in `liq watch` (the screen and the carry
included: they never change a decision). The replay starts a price window's worth of blocks early, so that drift
and volatility are those a watcher running by then would have had; those blocks are evaluated too (the screen and
the carry warm up like a running watcher's) and their candidates kept, for lead times that began before the range.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from ..evaluation.tracker import Tracker
from ..risk.evaluation import CANDIDATE_SCHEMA
from ..risk.params import EngineParams

BLOCK_SCHEMA = {"block": pl.Int64, "block_timestamp": pl.Int64, "users": pl.Int64, "candidates": pl.Int64}
PRICE_SCHEMA = {"block": pl.Int64, "reserve_id": pl.Int32, "price": pl.Int128}


@dataclass(frozen=True)
class Replay:
    predictions: pl.DataFrame  # CANDIDATE_SCHEMA rows of every replayed block
    blocks: pl.DataFrame  # BLOCK_SCHEMA: every replayed block, with or without candidates
    prices: pl.DataFrame  # PRICE_SCHEMA: the oracle price of every reserve at every replayed block
    deferred_users: int  # touched users re-read a block late (PREDICTIVE_MAX_USERS_PER_TICK), as the watcher would


def replay(
    tracker: Tracker,
    params: EngineParams,
    to_block: int,
    progress: Callable[[int], None] | None = None,
) -> Replay:
    """Evaluate `tracker`'s block, then every block up to `to_block`, one at a time."""
    candidates, blocks, prices = [], [], []
    deferred = 0
    block = tracker.block
    while block <= to_block:
        if block > tracker.block:
            deferred += tracker.advance(block).deferred_users
        result, record = tracker.evaluate(params)
        found = result.candidates  # read now: the next advance updates the book in place
        candidates.append(found)
        blocks.append((block, record.block_timestamp, record.users, found.height))
        prices.extend((block, reserve, price) for reserve, price in tracker.market_state().prices.items())
        tracker.after_block()
        if progress:
            progress(block)
        block += 1
    return Replay(
        predictions=pl.concat([pl.DataFrame(schema=CANDIDATE_SCHEMA), *candidates]),
        blocks=pl.DataFrame(blocks, schema=BLOCK_SCHEMA, orient="row"),
        prices=pl.DataFrame(prices, schema=PRICE_SCHEMA, orient="row"),
        deferred_users=deferred,
    )
