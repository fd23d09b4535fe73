"""`liq devnet verify`: the engine against the real Aave V3 contracts' getUserAccountData, user by user.

On a fresh devnet (or the running one): seed N borrowers, move the non-stable prices down so that a share of them
fall below HF = 1, mine, then at that block discover the borrowers from events, read their positions with the chain
reader, and compare with the contract:
- `max_rel_err`: the engine's reported HF (its exact path, what `liq scan` prints) against the contract;
- `vectorized_max_rel_err`: the fast float path's HF values (informative: its decisions are what count);
- `flips`: users whose HF<1 decision from the vectorized engine differs from the contract's. Must be 0.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl
from rich.console import Console

from ..chain.discovery import discover_market, read_market_state
from ..chain.events import borrowers_from_events, fetch_events
from ..chain.ground_truth import user_account_data
from ..chain.positions import read_positions
from ..chain.rpc import RpcClient
from ..devnet import actions, lifecycle, protocols
from ..devnet.errors import DevnetError
from ..devnet.rpc import Rpc
from ..risk.blas import use_one_blas_thread
from ..risk.exact import account_data
from ..risk.health import health_factors
from ..risk.market import user_positions
from ..risk.versions import rules_for
from . import runtime

DEFAULT_SHOCK = 0.12  # non-stable prices fall 12 %: enough to push a share of the seeded users below 1


def compare_at_block(
    rpc: RpcClient,
    addresses_provider: str,
    version: str,
    from_block: int,
    block: int,
    stable_symbols: tuple[str, ...],
) -> dict:
    rules = rules_for(version)
    market = discover_market(rpc, addresses_provider, block, rules)
    events = fetch_events(rpc, market, from_block, block)
    borrowers = borrowers_from_events(events)
    state = read_market_state(rpc, market, block, rules, stable_symbols)
    positions = read_positions(rpc, market, borrowers, block, rules)
    decided = health_factors(positions, state)
    truth = user_account_data(rpc, market.pool, decided["user"].to_list(), block)

    exact = {p.user: account_data(p, state) for p in user_positions(positions, state.reserve_ids)}
    flips = 0
    max_rel = 0.0
    vector_rel = 0.0
    bit_exact = 0
    liquidatable_chain = liquidatable_engine = 0
    for user, hf_float, liquidatable in decided.select("user", "hf_baseline", "liquidatable_baseline").iter_rows():
        chain = truth[user]
        mine = exact[user]
        liquidatable_chain += chain.health_factor < 10**18
        liquidatable_engine += liquidatable
        flips += liquidatable != (chain.health_factor < 10**18)
        bit_exact += mine.health_factor == chain.health_factor
        if 0 < chain.health_factor < 2**255:
            reference = chain.health_factor / 1e18
            max_rel = max(max_rel, abs(mine.health_factor - chain.health_factor) / chain.health_factor)
            vector_rel = max(vector_rel, abs(hf_float / reference - 1.0))
    emode_users = int((positions["emode"] > 0).sum()) if positions.height else 0
    decimals_held = sorted(
        {
            state.by_id[r].decimals
            for r in state.reserve_ids
            if f"coll_{r}" in positions.columns
            and positions.select((pl.col(f"coll_{r}") > 0) | (pl.col(f"debt_{r}") > 0)).to_series().any()
        }
    )
    return {
        "borrowers": len(borrowers),
        "compared": len(truth),
        "block": block,
        "max_rel_err": max_rel,
        "hf_bit_exact": bit_exact,
        "vectorized_max_rel_err": float(f"{vector_rel:.3e}"),
        "flips": flips,
        "liquidatable_chain": liquidatable_chain,
        "liquidatable_engine": liquidatable_engine,
        "emode_users": emode_users,
        "decimals_held": decimals_held,
        "protocol_version": version,
    }


def run_verify(
    data_dir: Path,
    borrowers: int,
    seed: int = 0,
    shock: float = DEFAULT_SHOCK,
    use_running: bool = False,
    stable_symbols: tuple[str, ...] = ("USDC", "DAI", "USDT", "USDBC", "GHO", "EURC"),
    progress: Callable[[str], None] | None = None,
    protocol: str = protocols.DEFAULT_PROTOCOL,
) -> dict:
    """protocol: the market of a fresh devnet (the running one's is in its market.json)."""
    say = progress or (lambda _m: None)
    started = time.perf_counter()
    owned = None
    if use_running:
        devnet_rpc, market = lifecycle.attach(data_dir)
        say(f"seeding {borrowers} borrowers into the running devnet (Aave V{market.protocol_version})")
        protocols.seeder(market)(devnet_rpc, market, borrowers, seed, start_index=10_000_000 + seed * 100_000)
    else:
        say(f"starting a fresh Aave V{protocol} devnet with {borrowers} borrowers")
        owned = lifecycle.up(data_dir / "verify", borrowers=borrowers, seed=seed, protocol=protocol)
        market = owned.market
        devnet_rpc = Rpc(owned.node.url)
    try:
        prices = actions.oracle_prices(devnet_rpc, market)
        stable = {s.upper() for s in stable_symbols}
        moved = {s: int(p * (1 - shock)) for s, p in prices.items() if s.upper() not in stable}
        say(f"moving prices down {shock:.0%}: {', '.join(sorted(moved))}")
        actions.set_prices(devnet_rpc, market, moved)
        url = devnet_rpc.url
        devnet_rpc.close()
        with RpcClient(url) as rpc:
            block = int(rpc.call("eth_blockNumber"), 16)
            say(f"comparing with getUserAccountData at block {block}")
            result = compare_at_block(
                rpc, market.addresses_provider, market.protocol_version, market.block_deployed, block, stable_symbols
            )
    finally:
        if owned is not None:
            lifecycle.down(data_dir / "verify")
    result["seconds"] = round(time.perf_counter() - started, 2)
    return result


def main(borrowers: int, seed: int, shock: float, running: bool, as_json: bool, protocol: str | None = None) -> int:
    """Exit code 0, or 1 when a decision differs from the contract's."""
    settings = runtime.settings()
    data_dir = Path(settings.data_dir)
    if running and protocol is not None:
        raise DevnetError("--protocol picks a fresh devnet's market: with --running the running one's is used")
    version = protocols.check_protocol(protocol if protocol is not None else settings.devnet_protocol_version)
    use_one_blas_thread()
    if as_json:
        result = run_verify(data_dir, borrowers, seed, shock, use_running=running, protocol=version)
        print(json.dumps(result))
    else:
        with Console(stderr=True).status("verifying") as status:
            result = run_verify(
                data_dir, borrowers, seed, shock, use_running=running, progress=status.update, protocol=version
            )
        out = Console(highlight=False)
        for key, value in result.items():
            out.print(f"{key:>24}  {value}")
    return runtime.EXIT_UNHEALTHY if result["flips"] else 0
