"""price_histories: the AaveOracle price of every reserve at EVERY block of the range (what the Pool used), plus
the price-feed updates (Chainlink AnswerUpdated) in the range.

Oracle rows come from one getAssetsPrices eth_call per block, sent in JSON-RPC batches: the oracle price is what
liquidations are decided on, and a feed answer alone is not (adapters, fallbacks, CAPO caps sit in between).
Feed rows tell when and why a price moved. The feeds are the oracle's sources (getSourceOfAsset at the range's
last block) and, where a source is a Chainlink proxy, the aggregator behind it, which is what emits AnswerUpdated;
pass `feeds` to name them yourself (adapters that wrap several feeds, sources replaced mid-range).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import polars as pl
from eth_utils import keccak, to_checksum_address

from ...chain.abi import event_topic, events, function
from ...chain.discovery import Market, ReaderError, ReserveInfo
from ...chain.events import fetch_logs
from ...chain.multicall import eth_calls
from ...chain.rpc import RpcClient, RpcError
from ...risk.versions import ProtocolRules
from ..blocks import block_timestamps
from ..errors import DatasetError
from ..spec import DatasetSpec
from ._decode import decode_call

NAME = "price_histories"
SCHEMA = {
    "block_number": pl.Int64,
    "block_timestamp": pl.Int64,
    "source": pl.String,  # "oracle" (AaveOracle at the block) | "feed" (AnswerUpdated of a price feed)
    "reserve_id": pl.Int32,
    "asset": pl.String,
    "symbol": pl.String,
    "price": pl.Int128,  # oracle: base-currency units; feed: the feed's answer in its own decimals (int256)
    "feed": pl.String,  # feed rows: the emitting aggregator
    "round_id": pl.Int128,  # feed rows (uint80 on proxies: phase << 64 | round)
    "updated_at": pl.Int64,  # feed rows: the answer's timestamp
    "log_index": pl.Int32,  # feed rows
    "tx_hash": pl.String,  # feed rows
}
SPEC = DatasetSpec(NAME, SCHEMA, key=("block_number", "source", "reserve_id", "log_index"))
ORACLE, FEED = "oracle", "feed"
_AGGREGATOR_CALL = "0x" + keccak(text="aggregator()")[:4].hex()


def build_price_histories(
    rpc: RpcClient,
    market: Market,
    rules: ProtocolRules,
    start: int,
    end: int,
    *,
    feeds: Mapping[str, str | Sequence[str]] | None = None,
) -> pl.DataFrame:
    """`feeds`: {feed address: asset or assets} to watch for AnswerUpdated; default: the oracle's sources."""
    blocks = list(range(start, end + 1))
    timestamps = block_timestamps(rpc, blocks, NAME)
    oracle = _oracle_rows(rpc, market, blocks, timestamps)
    if feeds is None:
        feed_map = _oracle_feeds(rpc, market, end)
    else:
        feed_map = {f: (a,) if isinstance(a, str) else tuple(a) for f, a in feeds.items()}
    return pl.concat([oracle, _feed_rows(rpc, market, feed_map, start, end, timestamps)]).select(list(SCHEMA))


def _oracle_rows(rpc: RpcClient, market: Market, blocks: list[int], timestamps: dict[int, int]) -> pl.DataFrame:
    prices_fn = function("AaveOracle", "getAssetsPrices")
    reserves = market.reserves
    assets = [r.asset for r in reserves]
    answers = rpc.batch([prices_fn.request(market.oracle, assets, block=b) for b in blocks], raise_on_error=False)
    prices: list[int] = []
    for block, answer in zip(blocks, answers, strict=True):
        what = "AaveOracle.getAssetsPrices"
        (row,) = decode_call(prices_fn, answer, dataset=NAME, block=block, address=market.oracle, what=what)
        if len(row) != len(reserves):
            detail = f"{what} returned {len(row)} prices for {len(reserves)} assets"
            raise DatasetError(NAME, detail, block=block, address=market.oracle)
        prices.extend(int(p) for p in row)
    n, k = len(blocks), len(reserves)
    return pl.DataFrame(
        {
            "block_number": [b for b in blocks for _ in range(k)],
            "block_timestamp": [timestamps[b] for b in blocks for _ in range(k)],
            "source": [ORACLE] * (n * k),
            "reserve_id": [r.reserve_id for r in reserves] * n,
            "asset": assets * n,
            "symbol": [r.symbol for r in reserves] * n,
            "price": prices,
        },
        schema={
            c: SCHEMA[c]
            for c in ("block_number", "block_timestamp", "source", "reserve_id", "asset", "symbol", "price")
        },
    ).with_columns(pl.lit(None, SCHEMA[c]).alias(c) for c in ("feed", "round_id", "updated_at", "log_index", "tx_hash"))


def _oracle_feeds(rpc: RpcClient, market: Market, block: int) -> dict[str, tuple[str, ...]]:
    """{feed: assets}: each asset's oracle source and, when the source answers aggregator(), its aggregator."""
    source_fn = function("AaveOracle", "getSourceOfAsset")
    assets = [r.asset for r in market.reserves]
    # through the multicall: the node loads the block's state once, not once per call (docs/deployment.md)
    answers = eth_calls(rpc, [source_fn.request(market.oracle, a, block=block) for a in assets], market.multicall)
    sources: dict[str, tuple[str, ...]] = {}
    for asset, answer in zip(assets, answers, strict=True):
        what = f"AaveOracle.getSourceOfAsset({asset})"
        (source,) = decode_call(source_fn, answer, dataset=NAME, block=block, address=market.oracle, what=what)
        if int(source, 16):
            key = to_checksum_address(source)
            sources[key] = (*sources.get(key, ()), asset)
    # Chainlink proxies emit nothing: their aggregator does. Sources without aggregator() (plain aggregators,
    # adapters) answer with a revert or nothing, which is expected here and not an error.
    probes = eth_calls(
        rpc, [("eth_call", [{"to": s, "data": _AGGREGATOR_CALL}, hex(block)]) for s in sources], market.multicall
    )
    feeds = dict(sources)
    for assets_of_source, probe in zip(sources.values(), probes, strict=True):
        if isinstance(probe, str) and len(probe) == 66 and int(probe, 16):
            aggregator = to_checksum_address("0x" + probe[-40:])
            feeds[aggregator] = tuple(dict.fromkeys((*feeds.get(aggregator, ()), *assets_of_source)))
    return feeds


def _feed_rows(
    rpc: RpcClient,
    market: Market,
    feeds: Mapping[str, tuple[str, ...]],
    start: int,
    end: int,
    timestamps: dict[int, int],
) -> pl.DataFrame:
    if not feeds:
        return pl.DataFrame(schema=SCHEMA)
    topic = event_topic("ChainlinkAggregator", "AnswerUpdated")
    event = events("ChainlinkAggregator")[topic]
    try:
        logs = fetch_logs(rpc, list(feeds), [topic], start, end)
    except (ReaderError, RpcError) as error:
        raise DatasetError.wrap(NAME, error, block=start) from None
    by_asset = market.by_asset
    by_feed = {f.lower(): assets for f, assets in feeds.items()}
    rows: dict[str, list] = {name: [] for name in SCHEMA}
    for log in logs:
        block = int(log["blockNumber"], 16)
        try:
            fields = event.decode(log)
        except Exception as error:  # eth_abi raises several types; all mean "not an AnswerUpdated"
            detail = (
                f"AnswerUpdated log {log.get('logIndex')} of tx {log.get('transactionHash')} does not decode: {error}"
            )
            raise DatasetError(NAME, detail, block=block, address=log["address"]) from None
        for asset in by_feed.get(log["address"].lower(), ()):
            info = by_asset.get(to_checksum_address(asset))
            if info is None:
                raise DatasetError(NAME, f"feed given for {asset}, not a reserve of the market", address=asset)
            _append_feed_row(rows, info, log, fields, timestamps[block])
    return pl.DataFrame(rows, schema=SCHEMA)


def _append_feed_row(rows: dict[str, list], info: ReserveInfo, log: dict, fields: dict, timestamp: int) -> None:
    block = int(log["blockNumber"], 16)
    values = {
        "block_number": block,
        "block_timestamp": timestamp,
        "source": FEED,
        "reserve_id": info.reserve_id,
        "asset": info.asset,
        "symbol": info.symbol,
        "price": int(fields["current"]),
        "feed": to_checksum_address(log["address"]),
        "round_id": int(fields["roundId"]),
        "updated_at": int(fields["updatedAt"]),
        "log_index": int(log["logIndex"], 16),
        "tx_hash": log["transactionHash"],
    }
    for name, value in values.items():
        rows[name].append(value)
