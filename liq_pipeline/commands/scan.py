"""`liq scan`: discover borrowers in a block range, read their state at the last block, compute their HF.

Works against any Aave V3 deployment from RPC_URL + AAVE_ADDRESSES_PROVIDER + AAVE_PROTOCOL_VERSION alone (both
empty: the running devnet of DATA_DIR). Reported values (collateral, debt, HF) come from the exact path, i.e. what
getUserAccountData would say. The options are checked before the node is asked anything.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from rich.console import Console

from ..chain.discovery import Market, discover_market, read_market_state
from ..chain.events import borrowers_from_events, fetch_events
from ..chain.positions import read_positions
from ..config import Settings
from ..lake.files import write_parquet_atomic
from ..risk.blas import use_one_blas_thread
from ..risk.exact import account_data
from ..risk.health import health_factors
from ..risk.market import MarketState, user_positions
from ..risk.versions import rules_for
from . import runtime
from .runtime import CommandError

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


@dataclass
class ScanResult:
    market: Market
    state: MarketState
    events: pl.DataFrame
    positions: pl.DataFrame
    rows: pl.DataFrame


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
    """`settings` name the node and the market (runtime.node_settings)."""
    say = progress or (lambda _m: None)
    check_range(from_block, to_block)
    rules = rules_for(settings.aave_protocol_version)
    with runtime.connect(settings) as rpc:
        head = rpc.quantity("eth_blockNumber")
        last = head if to_block is None else to_block
        if from_block > last:
            raise CommandError(f"--from-block {from_block} is past the node's latest block {head}")
        if last > head:
            raise CommandError(f"--to-block {last} is past the node's latest block {head}")
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


def check_range(from_block: int, to_block: int | None) -> None:
    if to_block is not None and to_block < from_block:
        raise CommandError(f"--to-block {to_block} is before --from-block {from_block}")


def main(from_block: int, to_block: int | None, as_json: bool, out_path: str | None) -> None:
    check_range(from_block, to_block)
    if out_path is not None and not out_path.endswith(".parquet"):
        raise CommandError(f"--out {out_path!r} is not valid: expected a file name ending in .parquet")
    settings = runtime.node_settings(runtime.settings())
    use_one_blas_thread()
    err, out = Console(stderr=True), Console(highlight=False)
    if as_json:
        result = scan(settings, from_block, to_block)
    else:
        with err.status("scanning") as status:
            result = scan(settings, from_block, to_block, status.update)
    rows = result.rows
    if out_path is not None:
        write_parquet_atomic(rows, Path(out_path))
        runtime.note(f"wrote {rows.height} users to {out_path}")
    if as_json:
        for row in rows.iter_rows(named=True):
            if row["hf"] == float("inf"):  # no debt: JSON has no Infinity (health_factor_wad keeps uint256 max)
                row["hf"] = None
            print(json.dumps(row, allow_nan=False))
    elif out_path is None:
        out.print(
            f"{rows.height} borrowers at block {result.state.block}; {int(rows['liquidatable'].sum())} liquidatable"
        )
        out.print(rows.head(20))
