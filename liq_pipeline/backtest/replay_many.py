"""Several engines replayed over one pass of the chain: the sweep's replay.

The Tracker reads each block once (logs, market, touched positions); every parameter set then evaluates that block
with its own screen and its own previous evaluation, as a watcher running that set would (`Tracker.evaluate`, one
set per watcher). The candidates are those of `replay.replay` run once per set (tested), for one chain read instead
of one per set: on the devnet the reads cost more than an evaluation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import polars as pl

from ..evaluation.tracker import Tracker
from ..risk.engine import evaluate
from ..risk.evaluation import CANDIDATE_SCHEMA, Evaluation
from ..risk.params import EngineParams
from ..risk.screen import Screen
from .replay import BLOCK_SCHEMA, PRICE_SCHEMA, Replay


def replay_many(
    tracker: Tracker,
    params: Sequence[EngineParams],
    to_block: int,
    progress: Callable[[int], None] | None = None,
) -> list[Replay]:
    """One Replay per parameter set, in order: `tracker`'s block, then every block up to `to_block`."""
    screens: list[Screen | None] = [None] * len(params)
    previous: list[Evaluation | None] = [None] * len(params)
    candidates: list[list[pl.DataFrame]] = [[] for _ in params]
    counts: list[list[int]] = [[] for _ in params]
    blocks, prices = [], []
    deferred = 0
    block = tracker.block
    while block <= to_block:
        if block > tracker.block:
            deferred += tracker.advance(block).deferred_users
        state = tracker.market_state()
        book, trends = tracker.book(state), tracker.trends()
        for at, engine in enumerate(params):
            # each set keeps its own screen and carried evaluation: they depend on the parameters
            result = evaluate(
                book, state, engine, trends, screen=screens[at], previous=previous[at], reuse_previous=True
            )
            screens[at], previous[at] = result.screen, result
            found = result.candidates  # read now: the next advance updates the book in place
            candidates[at].append(found)
            counts[at].append(found.height)
        blocks.append((block, state.timestamp, tracker.users))
        prices.extend((block, reserve, price) for reserve, price in state.prices.items())
        tracker.after_block()
        if progress:
            progress(block)
        block += 1
    price_frame = pl.DataFrame(prices, schema=PRICE_SCHEMA, orient="row")
    columns = {name: BLOCK_SCHEMA[name] for name in ("block", "block_timestamp", "users")}
    base = pl.DataFrame(blocks, schema=columns, orient="row")
    return [
        Replay(
            predictions=pl.concat([pl.DataFrame(schema=CANDIDATE_SCHEMA), *found]),
            blocks=base.with_columns(pl.Series("candidates", counts[at], dtype=pl.Int64)),
            prices=price_frame,
            deferred_users=deferred,
        )
        for at, found in enumerate(candidates)
    ]
