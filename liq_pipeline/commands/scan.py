"""`liq scan`: discover borrowers in a block range, read their state at the last block, compute their HF.

Works against any Aave V3 deployment from RPC_URL + AAVE_ADDRESSES_PROVIDER + AAVE_PROTOCOL_VERSION alone.
Reported values (collateral, debt, HF) come from the exact path, i.e. what getUserAccountData would say.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from ..chain.discovery import Market, discover_market, read_market_state
from ..chain.events import borrowers_from_events, fetch_events
from ..chain.positions import read_positions
from ..chain.rpc import RpcClient
from ..config import Settings
from ..risk.exact import account_data
from ..risk.health import health_factors
from ..risk.market import MarketState, user_positions
from ..risk.versions import rules_for

SCAN_SCHEMA = {
    "user": pl.String,
    "hf": pl.Float64,
    "health_factor_wad": pl.String,  # exact uint256, as a decimal string
    "liquidatable": pl.Boolean,
    "total_collateral_base": pl.Float64,
    "total_debt_base": pl.Float64,
    "avg_liquidation_threshold": pl.Int32,
    "emode": pl.Int32,
}


class ScanInputError(ValueError):
    """A setting or option the scan needs is missing or wrong; the message says which."""


@dataclass
class ScanResult:
    market: Market
    state: MarketState
    events: pl.DataFrame
    positions: pl.DataFrame
    rows: pl.DataFrame


def rpc_from_settings(settings: Settings) -> RpcClient:
    if settings.rpc_url is None:
        raise ScanInputError("RPC_URL is not set: expected the http(s):// URL of a node of the chain to scan")
    return RpcClient(settings.rpc_url.get_secret_value())


def check_chain(rpc: RpcClient, settings: Settings) -> int:
    chain_id = int(rpc.call("eth_chainId"), 16)
    if settings.chain_id is not None and settings.chain_id != chain_id:
        raise ScanInputError(f"CHAIN_ID={settings.chain_id} but the node at {rpc.label} is chain {chain_id}")
    return chain_id


def exact_rows(positions: pl.DataFrame, state: MarketState) -> pl.DataFrame:
    """Per user the exact account data, cross-checked against the vectorized engine's decision."""
    decided = health_factors(positions, state)
    by_user = dict(zip(decided["user"].to_list(), decided["liquidatable_baseline"].to_list(), strict=True))
    rows: dict[str, list] = {name: [] for name in SCAN_SCHEMA}
    for position in user_positions(positions, state.reserve_ids):
        data = account_data(position, state)
        if by_user[position.user] != data.liquidatable:  # cannot happen: the engine re-decides near 1 exactly
            raise AssertionError(f"engine and exact path disagree on {position.user}")
        rows["user"].append(position.user)
        rows["hf"].append(data.hf_float)
        rows["health_factor_wad"].append(str(data.health_factor))
        rows["liquidatable"].append(data.liquidatable)
        rows["total_collateral_base"].append(float(data.total_collateral_base))
        rows["total_debt_base"].append(float(data.total_debt_base))
        rows["avg_liquidation_threshold"].append(data.avg_liquidation_threshold)
        rows["emode"].append(position.emode_category)
    return pl.DataFrame(rows, schema=SCAN_SCHEMA).sort("hf")


def scan(
    settings: Settings,
    from_block: int,
    to_block: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> ScanResult:
    say = progress or (lambda _m: None)
    if settings.aave_addresses_provider is None:
        raise ScanInputError("AAVE_ADDRESSES_PROVIDER is not set: expected the market's PoolAddressesProvider")
    rules = rules_for(settings.aave_protocol_version)
    with rpc_from_settings(settings) as rpc:
        check_chain(rpc, settings)
        head = int(rpc.call("eth_blockNumber"), 16)
        last = head if to_block is None else to_block
        if from_block < 0 or from_block > last:
            raise ScanInputError(f"--from-block {from_block} must be between 0 and --to-block {last}")
        if last > head:
            raise ScanInputError(f"--to-block {last} is past the node's latest block {head}")
        say("discovering the market")
        market = discover_market(
            rpc, settings.aave_addresses_provider, last, rules, multicall=settings.multicall_address
        )
        say(f"reading events {from_block}-{last}")
        events = fetch_events(rpc, market, from_block, last)
        borrowers = borrowers_from_events(events)
        say(f"reading {len(borrowers)} borrowers at block {last}")
        state = read_market_state(rpc, market, last, rules, settings.stable_asset_symbols)
        positions = read_positions(rpc, market, borrowers, last, rules)
    return ScanResult(market, state, events, positions, exact_rows(positions, state))
