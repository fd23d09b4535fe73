"""liquidation_candidates: the engine's candidate rows (CANDIDATE_SCHEMA) of every evaluated block.

Two ways in. The watcher (or a Dagster run) evaluates blocks as they come and calls `append_candidates`: the rows
land in the file of their block's range, which is rewritten whole (atomically, under a lock) with every evaluation
of that range so far, deduplicated by (block, user, scenario), the newest evaluation winning. A backfill calls
`build_liquidation_candidates` to evaluate chosen blocks of a finished range from the chain, then writes the range.
A block evaluated with no candidate leaves no row: this dataset says who was flagged, not which blocks were looked at.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import polars as pl

from ...chain.discovery import Market, ReaderError, read_market_state
from ...chain.positions import read_positions
from ...chain.rpc import RpcClient
from ...risk.engine import evaluate
from ...risk.evaluation import CANDIDATE_SCHEMA
from ...risk.params import AssetTrend, EngineParams
from ...risk.versions import ProtocolRules
from ..errors import DatasetError
from ..partitions import BlockRange, range_of
from ..spec import DatasetSpec
from ..store import Lake

NAME = "liquidation_candidates"
SCHEMA = dict(CANDIDATE_SCHEMA)
KEY = ("block", "user", "scenario")
SPEC = DatasetSpec(NAME, SCHEMA, key=KEY, block_column="block")


def build_liquidation_candidates(
    rpc: RpcClient,
    market: Market,
    rules: ProtocolRules,
    start: int,
    end: int,
    *,
    params: EngineParams,
    users: Sequence[str],
    blocks: Iterable[int] | None = None,
    stable_symbols: tuple[str, ...] = (),
    trends: Mapping[int, AssetTrend] | None = None,
) -> pl.DataFrame:
    """Evaluate the engine at `blocks` (default: every block of [start, end]) for `users` (the borrowers known by
    then, e.g. `known_users_before(lake, end + 1)`), reading the market and the positions at each block."""
    chosen = sorted(set(range(start, end + 1) if blocks is None else blocks))
    outside = [b for b in chosen if not start <= b <= end]
    if outside:
        raise ValueError(f"{NAME}: blocks {outside[:5]} are outside [{start}, {end}]")
    parts = [pl.DataFrame(schema=SCHEMA)]
    for block in chosen:
        try:
            state = read_market_state(rpc, market, block, rules, stable_symbols)
            positions = read_positions(rpc, market, users, block, rules)
        except ReaderError as error:
            raise DatasetError.wrap(NAME, error, block=block) from None
        if positions.height:
            parts.append(evaluate(positions, state, params, trends).candidates)
    return pl.concat(parts).select(list(SCHEMA))


def merge_candidates(existing: pl.DataFrame, new: pl.DataFrame) -> pl.DataFrame:
    """Union deduplicated by (block, user, scenario): a row of `new` replaces the same key in `existing`."""
    both = pl.concat([existing.select(list(SCHEMA)), new.select(list(SCHEMA))])
    return both.unique(subset=list(KEY), keep="last", maintain_order=True)


def append_candidates(lake: Lake, candidates: pl.DataFrame) -> list[BlockRange]:
    """Add evaluations to the lake; returns the ranges rewritten. Safe to call again with the same rows."""
    candidates = candidates.cast(SCHEMA, strict=True).select(list(SCHEMA))
    if candidates.height == 0:
        return []
    size = lake.range_size
    touched = candidates.with_columns((pl.col("block") - pl.col("block") % size).alias("_start"))
    written = []
    with lake.lock(NAME):
        for (start,), rows in touched.group_by("_start", maintain_order=True):
            block_range = range_of(int(start), size)
            rows = rows.drop("_start")
            existing = lake.read(NAME, block_range) if lake.exists(NAME, block_range) else pl.DataFrame(schema=SCHEMA)
            lake.write(NAME, block_range, merge_candidates(existing, rows))
            written.append(block_range)
    return sorted(written)
