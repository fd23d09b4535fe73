"""The latest borrower state: the whole wide positions frame as ONE Arrow IPC value, with its block.

One value rather than a key per user: 100k rows (32 columns) are written in ~45 ms as one lz4 Arrow value, most of
it encoding, against ~0.9-1.2 s as per-user keys (cache/bench.py), and readers (the watcher, the Dagster assets)
want the whole frame anyway. Value and block are fields of one hash,
written by one HSET, so they never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from .batching import commit_if_not_older
from .codec import CODEC_VERSION, frame_to_ipc, ipc_to_frame
from .context import MarketCache


@dataclass(frozen=True)
class PositionsSnapshot:
    block: int
    frame: pl.DataFrame
    updated_at: float
    block_hash: str | None = None  # the chain the positions were read from (a restarted devnet is another chain)


def put_positions(cache: MarketCache, block: int, frame: pl.DataFrame, block_hash: str | None = None) -> bool:
    """Store `frame` as the positions at `block`; False (nothing written) when a newer block is stored."""
    data = frame_to_ipc(frame, cache.options.ipc_compression)
    key = cache.keys.positions
    command = ("HSET", key, "ipc", data, "block", block, "rows", frame.height, "codec", CODEC_VERSION)
    stamped = (*command, "updated_at", f"{cache.clock():.3f}", "hash", block_hash or "")
    return commit_if_not_older(cache, key, block, [stamped])


def get_positions(cache: MarketCache) -> PositionsSnapshot | None:
    fields = ["ipc", "block", "updated_at", "hash"]
    data, block, updated_at, block_hash = cache.client.hmget(cache.keys.positions, fields)
    if data is None or block is None:
        return None
    stored_hash = block_hash.decode() if block_hash else ""
    return PositionsSnapshot(int(block), ipc_to_frame(data), float(updated_at or 0.0), stored_hash or None)


def positions_block(cache: MarketCache) -> int | None:
    """The stored positions' block, without transferring the frame."""
    block = cache.client.hget(cache.keys.positions, "block")
    return None if block is None else int(block)
