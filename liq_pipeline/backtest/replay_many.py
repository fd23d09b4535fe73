"""Several engines replayed over one pass of the chain: the sweep's replay.

The Tracker reads each block once (logs, market, touched positions); every parameter set then evaluates that block
with its own screen and its own previous evaluation, as a watcher running that set would (`Tracker.evaluate`, one
set per watcher). The candidates are those of `replay.replay` run once per set (tested), for one chain read instead
of one per set: on the devnet the reads cost more than an evaluation.

Sets not in `full` keep only what the grading reads of their candidates (FLAG_COLUMNS, the user and scenario as
categories): ~32 bytes a row instead of ~170. Measured: a 72-point sweep of 1,001 blocks on 2,500 borrowers held
13.8 GB with every column of every set and was still growing.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

import polars as pl

from ..evaluation.tracker import Tracker
from ..risk.engine import evaluate
from ..risk.evaluation import CANDIDATE_SCHEMA, Evaluation
from ..risk.params import EngineParams
from ..risk.screen import Screen
from .replay import BLOCK_SCHEMA, PRICE_SCHEMA, Replay

# what grading.grade reads of a prediction
FLAG_COLUMNS = ("block", "user", "scenario", "hf_current", "eta_sec")
FLAG_SCHEMA = {
    "block": pl.Int64,
    "user": pl.Categorical,
    "scenario": pl.Categorical,
    "hf_current": pl.Float64,
    "eta_sec": pl.Float64,
}


def flags(candidates: pl.DataFrame) -> pl.DataFrame:
    """Candidate rows reduced to FLAG_SCHEMA."""
    return candidates.select(pl.col(name).cast(kind) for name, kind in FLAG_SCHEMA.items())


def replay_many(
    tracker: Tracker,
    params: Sequence[EngineParams],
    to_block: int,
    progress: Callable[[int], None] | None = None,
    full: Collection[int] | None = None,
) -> list[Replay]:
    """One Replay per parameter set, in order: `tracker`'s block, then every block up to `to_block`. The sets at
    the indices `full` (default: all) keep their candidates whole; the others as `flags` (FLAG_SCHEMA)."""
    whole = set(range(len(params)) if full is None else full)
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
            candidates[at].append(found if at in whole else flags(found))
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
            predictions=pl.concat([pl.DataFrame(schema=CANDIDATE_SCHEMA if at in whole else FLAG_SCHEMA), *found]),
            blocks=base.with_columns(pl.Series("candidates", counts[at], dtype=pl.Int64)),
            prices=price_frame,
            deferred_users=deferred,
        )
        for at, found in enumerate(candidates)
    ]
