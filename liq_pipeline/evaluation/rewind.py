"""Forget what the platform holds past a block: the chain changed under it (a restarted devnet, a reorg).

The new-block sensor calls `rewind` when the chain no longer holds its cursor's block (ticks.py), with the last
block both chains hold. What the lake and Redis hold about later blocks describes a chain that is gone:
- lake: liquidation_candidates keep their rows up to that block (its rows are per block; the new chain's runs add
  theirs). Every other dataset describes whole ranges, so a file whose range reaches past the block is deleted: the
  scheduled backfill builds the range again from the new chain once it is final. watcher_blocks is the watcher's
  own record of what it saw (each row carries the block hash): kept.
- Redis: the evaluation state (positions, reserves, price windows, candidates, borrower index, dirty users) cannot
  be rolled back: when any of it was written at a later block it is deleted, and the next run bootstraps from the
  chain. Left in place it would also refuse the new chain's writes (they look older: `commit_if_not_older`). KPIs,
  alerts and the watcher's block records stay.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from ..cache import open_market_cache
from ..cache.context import MarketCache
from ..cache.market_state import price_window_blocks
from ..chain.discovery import discover_market
from ..config import Settings
from ..lake.datasets import liquidation_candidates, watcher_blocks
from ..lake.open import open_lake
from ..lake.store import Lake
from ..risk.versions import rules_for

KEPT_DATASETS = (watcher_blocks.NAME,)


@dataclass
class Rewound:
    block: int  # what was held past this block is gone
    lake_trimmed: list[str] = field(default_factory=list)  # "dataset range": rows past the block removed
    lake_deleted: list[str] = field(default_factory=list)  # "dataset range": files deleted
    redis_deleted: list[str] = field(default_factory=list)  # keys


def rewind(settings: Settings, block: int) -> Rewound:
    """Forget the lake's and Redis's blocks after `block`. Raises (NodeUnavailable, RedisError) rather than leave
    the old chain's state behind: the sensor then keeps its cursor and tries again."""
    if settings.rpc_url is None or settings.aave_addresses_provider is None:
        raise ValueError("RPC_URL and AAVE_ADDRESSES_PROVIDER must be set")
    with settings.node_client() as rpc:
        head = rpc.quantity("eth_blockNumber")
        market = discover_market(
            rpc,
            settings.aave_addresses_provider,
            head,
            rules_for(settings.aave_protocol_version),
            symbols=False,
            multicall=settings.multicall_address,
        )
    done = Rewound(block)
    done.redis_deleted = rewind_redis(open_market_cache(settings, market.chain_id, market.pool).cache, block)
    done.lake_trimmed, done.lake_deleted = rewind_lake(open_lake(settings), block)
    return done


def rewind_lake(lake: Lake, block: int) -> tuple[list[str], list[str]]:
    """(trimmed, deleted) ranges, as "dataset range"."""
    trimmed, deleted = [], []
    for dataset in lake.specs:
        if dataset in KEPT_DATASETS:
            continue
        if all(r.end <= block for r in lake.ranges(dataset)):
            continue
        appended = dataset == liquidation_candidates.NAME
        with lake.lock(dataset):  # the candidates appender rewrites files under this lock
            for block_range in (r for r in lake.ranges(dataset) if r.end > block):
                if appended and block_range.start <= block:
                    rows = lake.read(dataset, block_range)
                    kept = rows.filter(pl.col(lake.spec(dataset).block_column) <= block)
                    if kept.height < rows.height:
                        lake.write(dataset, block_range, kept)
                        trimmed.append(f"{dataset} {block_range}")
                    continue
                lake.path(dataset, block_range).unlink(missing_ok=True)
                deleted.append(f"{dataset} {block_range}")
    return trimmed, deleted


def rewind_redis(cache: MarketCache, block: int) -> list[str]:
    """The evaluation state's keys, deleted when any of them was written after `block`; [] when none was."""
    keys = cache.keys
    client = cache.client
    written = [client.hget(key, "block") for key in (keys.positions, keys.reserves, keys.candidates_meta)]
    written.append(client.hget(keys.borrowers_meta, "block"))
    blocks = [int(b) for b in written if b is not None] + list(price_window_blocks(cache).values())
    if not blocks or max(blocks) <= block:
        return []
    state = [
        keys.positions,
        keys.reserves,
        keys.price_windows,
        keys.candidates_zset,
        keys.candidates_details,
        keys.candidates_meta,
        keys.borrowers_index,
        keys.borrowers_meta,
        keys.dirty_stream,
    ]
    present = [key for key in state if client.exists(key)]
    if present:
        client.unlink(*present)
    return present
