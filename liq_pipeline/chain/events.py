"""Pool, token and price-feed events over block ranges, decoded, and the borrowers they reveal.

Logs are fetched with eth_getLogs in chunks of blocks (nodes cap the range and the result size; a chunk that is
refused as too large is split in half and retried). Pool events come from the Pool PROXY address. Borrowers are
every address an event names as the position's owner: `onBehalfOf` of Supply and Borrow (a position opened for
another address), `user` of Withdraw, Repay, LiquidationCall, collateral toggles and e-mode changes, and both sides
of aToken BalanceTransfer (collateral can move between users without any Pool event).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import polars as pl

from .abi import Event, events
from .discovery import Market, ReaderError
from .rpc import RpcClient, RpcError

DEFAULT_CHUNK_BLOCKS = 2_000
OWNER_FIELDS = {
    "Supply": ("onBehalfOf",),
    "Borrow": ("onBehalfOf",),
    "Withdraw": ("user",),
    "Repay": ("user",),
    "LiquidationCall": ("user",),
    "ReserveUsedAsCollateralEnabled": ("user",),
    "ReserveUsedAsCollateralDisabled": ("user",),
    "UserEModeSet": ("user",),
    "BalanceTransfer": ("from", "to"),
    "Mint": ("onBehalfOf",),  # aToken / variable debt token minted to the position's owner
    "Burn": ("from",),
}
EVENT_SCHEMA = {
    "block_number": pl.Int64,
    "log_index": pl.Int32,
    "tx_hash": pl.String,
    "address": pl.String,
    "event": pl.String,
    "user": pl.String,  # the position's owner where the event has one
    "reserve": pl.String,  # the reserve (asset) where the event names one
    "args": pl.String,  # every decoded field, JSON (big integers as strings)
}


def topic_map(market: Market) -> dict[str, tuple[Event, set[str] | None]]:
    """topic0 -> (event, addresses allowed to emit it; None = any address of the market)."""
    pool = {market.pool.lower()}
    tokens = {a.lower() for a in market.token_addresses()}
    mapping: dict[str, tuple[Event, set[str] | None]] = {}
    for topic, event in events("Pool").items():
        mapping[topic] = (event, pool)
    for contract in ("AToken", "VariableDebtToken"):
        for topic, event in events(contract).items():
            mapping.setdefault(topic, (event, tokens))
    for topic, event in events("AaveOracle").items():
        mapping[topic] = (event, {market.oracle.lower()})
    for topic, event in events("ChainlinkAggregator").items():
        mapping[topic] = (event, None)
    return mapping


def fetch_logs(
    rpc: RpcClient,
    addresses: list[str],
    topics: list[str],
    from_block: int,
    to_block: int,
    chunk_blocks: int = DEFAULT_CHUNK_BLOCKS,
    progress: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    start = from_block
    span = chunk_blocks
    while start <= to_block:
        end = min(start + span - 1, to_block)
        query = {"fromBlock": hex(start), "toBlock": hex(end), "topics": [topics]}
        if addresses:
            query["address"] = addresses
        try:
            logs = rpc.call("eth_getLogs", query)
        except RpcError as error:
            if span > 1 and ("range" in str(error).lower() or "limit" in str(error).lower() or error.code == -32005):
                span = max(1, span // 2)  # the node refused the size: halve and retry the same start
                continue
            raise ReaderError(f"eth_getLogs {start}-{end} failed: {error}") from None
        out.extend(logs)
        if progress:
            progress(end - start + 1)
        start = end + 1
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value) if abs(value) > 2**53 else value
    return value


def decode_logs(
    market: Market, logs: Iterable[dict[str, Any]], feeds: Iterable[str] = (), with_args: bool = True
) -> pl.DataFrame:
    """Decoded events in EVENT_SCHEMA, in chain order. A log of a known topic that does not decode raises.
    `with_args=False` leaves `args` null (the watcher needs owners and event names; the JSON costs ~10 us a log)."""
    mapping = topic_map(market)
    feed_set = {f.lower() for f in feeds}
    rows: dict[str, list] = {name: [] for name in EVENT_SCHEMA}
    for log in logs:
        if not log.get("topics"):
            continue
        known = mapping.get(log["topics"][0])
        if known is None:
            continue
        event, emitters = known
        address = log["address"].lower()
        if emitters is not None and address not in emitters:
            continue
        if emitters is None and feed_set and address not in feed_set:
            continue
        try:
            fields = event.decode(log)
        except Exception as error:  # eth_abi raises several types; all mean "not this shape"
            raise ReaderError(
                f"{event.name} log {log.get('logIndex')} of tx {log.get('transactionHash')} in block "
                f"{int(log['blockNumber'], 16)} from {log['address']} does not decode: {error}"
            ) from None
        owners = [fields[name] for name in OWNER_FIELDS.get(event.name, ()) if name in fields]
        for owner in owners or [None]:
            rows["block_number"].append(int(log["blockNumber"], 16))
            rows["log_index"].append(int(log["logIndex"], 16))
            rows["tx_hash"].append(log["transactionHash"])
            rows["address"].append(log["address"])
            rows["event"].append(event.name)
            rows["user"].append(owner)
            rows["reserve"].append(fields.get("reserve") or fields.get("collateralAsset"))
            rows["args"].append(json.dumps({k: _jsonable(v) for k, v in fields.items()}) if with_args else None)
    frame = pl.DataFrame(rows, schema=EVENT_SCHEMA)
    return frame.sort("block_number", "log_index")


def fetch_events(
    rpc: RpcClient,
    market: Market,
    from_block: int,
    to_block: int,
    feeds: Iterable[str] = (),
    chunk_blocks: int = DEFAULT_CHUNK_BLOCKS,
    progress: Callable[[int], None] | None = None,
) -> pl.DataFrame:
    """Every Pool, token, oracle and price-feed event in [from_block, to_block]. Feeds default to the oracle's
    sources of the market's assets."""
    feed_list = list(feeds) or list(market.price_sources.values())
    addresses = [market.pool, market.oracle, *market.token_addresses(), *feed_list]
    topics = list(topic_map(market))
    logs = fetch_logs(rpc, addresses, topics, from_block, to_block, chunk_blocks, progress)
    return decode_logs(market, logs, feed_list)


def borrowers_from_events(frame: pl.DataFrame) -> list[str]:
    """Distinct position owners named by the events (zero address excluded), sorted."""
    zero = "0x0000000000000000000000000000000000000000"
    owners = frame.filter(pl.col("user").is_not_null() & (pl.col("user") != zero))["user"].unique()
    return sorted(owners.to_list())
