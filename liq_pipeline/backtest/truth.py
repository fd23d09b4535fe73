"""The chain's own verdict, which no part of the engine computes: Pool.getUserAccountData of every known borrower
at every block of a range, and the crossings it implies.

A user is read at a block once the events named them at or before it (`first_seen`). Blocks are read a few at a
time in one JSON-RPC batch of Multicall3 aggregate3 calls (one EVM call per 500 users instead of one eth_call each:
~3x faster on anvil); where the aggregate is unusable, that block is read with `chain.ground_truth`'s plain batch.
Either way each answer is the Pool's `getUserAccountData` at that block.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Sequence

import polars as pl

from ..chain.abi import function
from ..chain.discovery import ReaderError
from ..chain.ground_truth import user_account_data
from ..chain.multicall import CALLS_PER_AGGREGATE, aggregate_request, split_aggregate
from ..chain.rpc import RpcClient, RpcError
from ..lake.blocks import block_timestamps

NAME = "account_health"
SCHEMA = {
    "block": pl.Int64,
    "block_timestamp": pl.Int64,
    "user": pl.String,
    "health_factor": pl.Float64,  # inf: no debt (the Pool's type(uint256).max)
    "liquidatable": pl.Boolean,  # health_factor < 1e18 exactly, as the Pool decides
    "total_collateral_base": pl.Int128,
    "total_debt_base": pl.Int128,
}
WAD = 10**18
NO_DEBT = 2**255  # above this the Pool's HF is type(uint256).max: no debt
BLOCKS_PER_BATCH = 8  # blocks per HTTP request: fewer round trips, answers still small


def first_seen(events: pl.DataFrame) -> pl.DataFrame:
    """user -> the first block whose events name them (pool_events / fetch_events rows)."""
    zero = "0x0000000000000000000000000000000000000000"
    return (
        events.filter(pl.col("user").is_not_null() & (pl.col("user") != zero))
        .group_by("user")
        .agg(pl.col("block_number").min().alias("first_block"))
        .sort("user")
    )


def read_truth(
    rpc: RpcClient,
    pool: str,
    seen: pl.DataFrame,
    blocks: Sequence[int],
    multicall: str | None,
    progress: Callable[[int], None] | None = None,
) -> pl.DataFrame:
    """SCHEMA rows for every (block, user first seen at or before it). `progress(blocks_done)` after each batch."""
    ordered = sorted(set(blocks))
    order = seen.sort("first_block", "user")
    users, firsts = order["user"].to_list(), order["first_block"].to_list()
    parts = [pl.DataFrame(schema=SCHEMA)]
    done = 0
    for at in range(0, len(ordered), BLOCKS_PER_BATCH):
        group = ordered[at : at + BLOCKS_PER_BATCH]
        times = block_timestamps(rpc, group, NAME)
        known = {block: users[: bisect_right(firsts, block)] for block in group}
        answers = _read_blocks(rpc, pool, known, multicall)
        for block in group:
            parts.append(_rows(block, times[block], known[block], answers[block]))
        done += len(group)
        if progress:
            progress(done)
    return pl.concat(parts)


def _read_blocks(
    rpc: RpcClient, pool: str, known: dict[int, list[str]], multicall: str | None
) -> dict[int, list[tuple[int, ...]]]:
    """Per block, getUserAccountData of its users (in order), the blocks sent together."""
    fn = function("Pool", "getUserAccountData")
    if multicall is None:
        return {block: _plain(rpc, pool, users, block) for block, users in known.items()}
    requests, shape = [], []
    for block, users in known.items():
        for at in range(0, len(users), CALLS_PER_AGGREGATE):
            chunk = users[at : at + CALLS_PER_AGGREGATE]
            requests.append(aggregate_request(multicall, [fn.request(pool, user, block=block) for user in chunk]))
            shape.append((block, chunk))
    answers = rpc.batch(requests, raise_on_error=False) if requests else []
    out: dict[int, list] = {block: [] for block in known}
    unusable: set[int] = set()
    for (block, chunk), answer in zip(shape, answers, strict=True):
        try:
            parts = split_aggregate(answer, len(chunk))
        except ValueError:
            unusable.add(block)  # no Multicall3 at that block, or a refused call: the plain batch below
            continue
        for user, part in zip(chunk, parts, strict=True):
            if isinstance(part, RpcError):
                raise ReaderError(f"Pool.getUserAccountData({user}) failed at block {block}: {part}")
            out[block].append(fn.decode(part))
    for block in unusable:  # read whole again: its usable chunks' answers are dropped with the rest
        out[block] = _plain(rpc, pool, known[block], block)
    return out


def _plain(rpc: RpcClient, pool: str, users: list[str], block: int) -> list[tuple[int, ...]]:
    data = user_account_data(rpc, pool, users, block) if users else {}
    return [
        (
            d.total_collateral_base,
            d.total_debt_base,
            d.available_borrows_base,
            d.current_liquidation_threshold,
            d.ltv,
            d.health_factor,
        )
        for d in (data[user] for user in users)
    ]


def _rows(block: int, timestamp: int, users: list[str], answers: list[tuple[int, ...]]) -> pl.DataFrame:
    # decided on the Python integers: a no-debt HF is type(uint256).max, past every polars integer type
    hf = [a[5] for a in answers]
    return pl.DataFrame(
        {
            "block": [block] * len(users),
            "block_timestamp": [timestamp] * len(users),
            "user": users,
            "health_factor": [float("inf") if h >= NO_DEBT else h / WAD for h in hf],
            "liquidatable": [h < WAD for h in hf],
            "total_collateral_base": [a[0] for a in answers],
            "total_debt_base": [a[1] for a in answers],
        },
        schema=SCHEMA,
    )


def crossings(truth: pl.DataFrame) -> pl.DataFrame:
    """(user, block, block_timestamp) where the Pool says HF < 1 and said >= 1 at the block just before. A user
    first read below 1 (no block before it in `truth`) has no crossing there: nothing says it was ever above."""
    return (
        truth.sort("user", "block")
        .with_columns(
            pl.col("block").shift(1).over("user").alias("_previous_block"),
            pl.col("liquidatable").shift(1).over("user").alias("_was"),
        )
        .filter(pl.col("liquidatable") & (pl.col("_previous_block") == pl.col("block") - 1) & ~pl.col("_was"))
        .select("user", "block", "block_timestamp")
        .sort("block", "user")
    )
