"""reserve_indices: every reserve's state at the range's last block (indices, rates, last update, configuration,
e-mode membership), plus one row per ReserveDataUpdated event in the range, so the index history is complete.

`source` tells the two kinds apart: "state" rows come from Pool.getReserveData at the last block; "event" rows
from the events, whose indices and rates are the ones stored by that transaction (last_update_timestamp is then
the block's timestamp, as updateState writes it). Configuration columns are null on event rows: events carry none.
"""

from __future__ import annotations

import polars as pl

from ...chain.abi import function
from ...chain.discovery import Market, ReserveConfig
from ...chain.multicall import eth_calls
from ...chain.rpc import RpcClient
from ...risk.versions import ProtocolRules
from ..blocks import block_timestamps
from ..errors import DatasetError
from ..spec import DatasetSpec
from ._decode import as_int, decode_call, event_args
from .pool_events import build_pool_events

NAME = "reserve_indices"
SCHEMA = {
    "block_number": pl.Int64,
    "block_timestamp": pl.Int64,
    "source": pl.String,  # "state" (getReserveData at the range's last block) | "event" (ReserveDataUpdated)
    "log_index": pl.Int32,  # events only
    "tx_hash": pl.String,  # events only
    "reserve_id": pl.Int32,
    "asset": pl.String,
    "symbol": pl.String,
    "liquidity_index": pl.Int128,  # ray
    "variable_borrow_index": pl.Int128,  # ray
    "liquidity_rate": pl.Int128,  # ray per year
    "variable_borrow_rate": pl.Int128,
    "stable_borrow_rate": pl.Int128,
    "last_update_timestamp": pl.Int64,
    "accrued_to_treasury": pl.Int128,  # state only, scaled
    "unbacked": pl.Int128,  # state only
    "isolation_mode_total_debt": pl.Int128,  # state only
    "ltv": pl.Int32,  # bps, state only
    "liquidation_threshold": pl.Int32,
    "liquidation_bonus": pl.Int32,
    "decimals": pl.Int32,
    "reserve_factor": pl.Int32,
    "liquidation_protocol_fee": pl.Int32,
    "active": pl.Boolean,
    "frozen": pl.Boolean,
    "borrowing_enabled": pl.Boolean,
    "paused": pl.Boolean,
    # V3.0-3.1: the category in the reserve's configuration; V3.2+ (bits unused): 0
    "emode_category": pl.Int32,
    # categories in which this reserve's collateral counts at the e-mode threshold, read at the block
    "emode_categories": pl.List(pl.Int32),
}
SPEC = DatasetSpec(NAME, SCHEMA, key=("block_number", "source", "reserve_id", "log_index"))
STATE, EVENT = "state", "event"


def build_reserve_indices(
    rpc: RpcClient,
    market: Market,
    rules: ProtocolRules,
    start: int,
    end: int,
    *,
    events: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """`events`: this range's pool_events if already built (saves the eth_getLogs); fetched otherwise."""
    if events is None:
        events = build_pool_events(rpc, market, rules, start, end)
    state = _state_rows(rpc, market, rules, end)
    return pl.concat([_event_rows(market, events, start, end), state]).select(list(SCHEMA))


def _state_rows(rpc: RpcClient, market: Market, rules: ProtocolRules, block: int) -> pl.DataFrame:
    timestamp = block_timestamps(rpc, [block], NAME)[block]
    reserve_data = function("Pool", "getReserveData")
    requests = [reserve_data.request(market.pool, r.asset, block=block) for r in market.reserves]
    bitmap_fn = function("PoolV32", "getEModeCategoryCollateralBitmap")
    category_ids = sorted(market.emode_categories) if not rules.emode_price_source else []
    requests += [bitmap_fn.request(market.pool, c, block=block) for c in category_ids]
    answers = eth_calls(rpc, requests, market.multicall)  # one state read of the block, not one per call
    bitmaps = {}
    for category, answer in zip(category_ids, answers[len(market.reserves) :], strict=True):
        what = f"Pool.getEModeCategoryCollateralBitmap({category})"
        (bitmaps[category],) = decode_call(bitmap_fn, answer, dataset=NAME, block=block, address=market.pool, what=what)
    rows: dict[str, list] = {name: [] for name in SCHEMA}
    for info, answer in zip(market.reserves, answers[: len(market.reserves)], strict=True):
        what = f"Pool.getReserveData({info.asset})"
        (data,) = decode_call(reserve_data, answer, dataset=NAME, block=block, address=market.pool, what=what)
        config = ReserveConfig.decode(int(data[0][0]))
        if rules.emode_price_source:
            categories = [config.emode_category] if config.emode_category else []
        else:
            categories = [c for c, bits in bitmaps.items() if int(bits) >> info.reserve_id & 1]
        values = {
            "block_number": block,
            "block_timestamp": timestamp,
            "source": STATE,
            "log_index": None,
            "tx_hash": None,
            "reserve_id": info.reserve_id,
            "asset": info.asset,
            "symbol": info.symbol,
            "liquidity_index": int(data[1]),
            "variable_borrow_index": int(data[3]),
            "liquidity_rate": int(data[2]),
            "variable_borrow_rate": int(data[4]),
            "stable_borrow_rate": int(data[5]),
            "last_update_timestamp": int(data[6]),
            "accrued_to_treasury": int(data[12]),
            "unbacked": int(data[13]),
            "isolation_mode_total_debt": int(data[14]),
            "ltv": config.ltv,
            "liquidation_threshold": config.liquidation_threshold,
            "liquidation_bonus": config.liquidation_bonus,
            "decimals": config.decimals,
            "reserve_factor": config.reserve_factor,
            "liquidation_protocol_fee": config.liquidation_protocol_fee,
            "active": config.active,
            "frozen": config.frozen,
            "borrowing_enabled": config.borrowing_enabled,
            "paused": config.paused,
            "emode_category": config.emode_category if rules.emode_price_source else 0,
            "emode_categories": categories,
        }
        for name, value in values.items():
            rows[name].append(value)
    return pl.DataFrame(rows, schema=SCHEMA)


def _event_rows(market: Market, events: pl.DataFrame, start: int, end: int) -> pl.DataFrame:
    updates = events.filter(
        (pl.col("event") == "ReserveDataUpdated")
        & (pl.col("address").str.to_lowercase() == market.pool.lower())
        & pl.col("block_number").is_between(start, end)
    )
    by_asset = market.by_asset
    rows: dict[str, list] = {name: [] for name in SCHEMA}
    for event in updates.iter_rows(named=True):
        info = by_asset.get(event["reserve"])
        if info is None:  # a reserve listed after the market was discovered: rediscover the market
            raise DatasetError(
                NAME,
                f"ReserveDataUpdated for {event['reserve']}, which is not a reserve of the market as discovered; "
                f"rediscover the market at block {end}",
                block=event["block_number"],
                address=event["reserve"],
            )
        args = event_args(event["args"])
        values = {
            "block_number": event["block_number"],
            "block_timestamp": event["block_timestamp"],
            "source": EVENT,
            "log_index": event["log_index"],
            "tx_hash": event["tx_hash"],
            "reserve_id": info.reserve_id,
            "asset": info.asset,
            "symbol": info.symbol,
            "liquidity_index": as_int(args["liquidityIndex"]),
            "variable_borrow_index": as_int(args["variableBorrowIndex"]),
            "liquidity_rate": as_int(args["liquidityRate"]),
            "variable_borrow_rate": as_int(args["variableBorrowRate"]),
            "stable_borrow_rate": as_int(args["stableBorrowRate"]),
            "last_update_timestamp": event["block_timestamp"],
        }
        for name in SCHEMA:
            rows[name].append(values.get(name))
    return pl.DataFrame(rows, schema=SCHEMA)
