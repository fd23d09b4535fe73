"""Reserve state (one msgpack value per market) and price windows (one msgpack value per asset), as of a block.

Reserve state changes as a whole every block (indices, rates, prices), so it is one value; a price window grows by
one observation per asset, so each asset is a hash field written alone. Ray-scaled integers (~1e27) survive exactly
(see codec.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

from .batching import chunked, commit_if_not_older, send_chunks
from .codec import pack, unpack
from .context import MarketCache

OBSERVATION_SCHEMA = {"asset": pl.String, "timestamp": pl.Int64, "price": pl.Float64}


@dataclass(frozen=True)
class ReserveSnapshot:
    block: int
    reserves: Any  # what the writer stored: a mapping asset -> fields, a list of dicts, ...
    updated_at: float


def put_reserves(cache: MarketCache, block: int, reserves: Any) -> bool:
    """Store the reserve state of `block` (anything msgpack can hold; dataclasses via dataclasses.asdict)."""
    key = cache.keys.reserves
    value = pack({"block": block, "updated_at": cache.clock(), "reserves": reserves})
    # The block lives inside the msgpack value; a small hash field beside it lets the not-older check read it.
    commands = [("HSET", key, "value", value, "block", block)]
    return commit_if_not_older(cache, key, block, commands)


def get_reserves(cache: MarketCache) -> ReserveSnapshot | None:
    value = cache.client.hget(cache.keys.reserves, "value")
    if value is None:
        return None
    data = unpack(value)
    return ReserveSnapshot(int(data["block"]), data["reserves"], float(data["updated_at"]))


def put_price_windows(cache: MarketCache, block: int, observations: pl.DataFrame) -> None:
    """Store each asset's window from observations (columns asset, timestamp, price: price_window's input).

    The caller passes the window it keeps (the last PREDICTIVE_PRICE_WINDOW + 1 points per asset): the stored
    window of an asset is replaced, assets not in `observations` keep theirs.
    """
    frame = observations.select(OBSERVATION_SCHEMA.keys()).cast(OBSERVATION_SCHEMA).sort("asset", "timestamp")
    now = cache.clock()
    fields: list[Any] = []
    for (asset,), part in frame.group_by("asset", maintain_order=True):
        window = {
            "block": block,
            "updated_at": now,
            "timestamps": part["timestamp"].to_list(),
            "prices": part["price"].to_list(),
        }
        fields += [asset, pack(window)]
    key = cache.keys.price_windows
    pairs = list(chunked(fields, 2 * cache.options.max_pipeline))
    send_chunks(cache, ([("HSET", key, *part)] for part in pairs))


def get_price_windows(cache: MarketCache, assets: Iterable[str] | None = None) -> pl.DataFrame:
    """The stored windows as observations (asset, timestamp, price), ready for price_window_stats()."""
    key = cache.keys.price_windows
    if assets is None:
        stored: Mapping[bytes, bytes] = cache.client.hgetall(key)
        items = [(name.decode(), value) for name, value in stored.items()]
    else:
        names = list(assets)
        items = list(zip(names, cache.client.hmget(key, names) if names else [], strict=True))
    assets_out, timestamps, prices = [], [], []
    for asset, value in sorted(items):
        if value is None:
            continue
        window = unpack(value)
        assets_out += [asset] * len(window["timestamps"])
        timestamps += window["timestamps"]
        prices += window["prices"]
    return pl.DataFrame({"asset": assets_out, "timestamp": timestamps, "price": prices}, schema=OBSERVATION_SCHEMA)


def price_window_blocks(cache: MarketCache) -> dict[str, int]:
    """Per asset, the block its stored window was written at (to spot a feed that stopped updating)."""
    stored = cache.client.hgetall(cache.keys.price_windows)
    return {name.decode(): int(unpack(value)["block"]) for name, value in stored.items()}
