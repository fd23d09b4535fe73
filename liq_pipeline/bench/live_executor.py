"""The FastPathExecutor the benchmarks run live on a devnet (`liq arena`, `liq bench-watch --execute`): the
project's Liquidator deployed for the devnet's operator key, optionally holding debt-asset inventory, selling on
the devnet's Uniswap V2 pairs; claims and the nonce lock in the bench's own Redis."""

from __future__ import annotations

from pathlib import Path

from ..cache.keys import MarketKeys
from ..config import Settings
from ..devnet.accounts import OPERATOR, OPERATOR_KEY
from ..devnet.dex import Dex, find_dex
from ..devnet.liquidator import deploy_liquidator, flash_premium_bps, fund_inventory
from ..execution.executor import ExecutorConfig, FastPathExecutor, Venue
from ..execution.gas_ladder import LadderConfig
from ..execution.idempotency import AttemptGuard, NonceLock, execution_client
from ..execution.precompute import PrecomputeCalldata
from ..execution.signer import Signer
from .services import LiveDevnet


def live_executor(
    net: LiveDevnet, data_dir: Path, redis_url: str, settings: Settings, inventory_usd: float, owner: str
) -> tuple[FastPathExecutor, Dex]:
    """A live executor on `net` (its Liquidator deployed under `data_dir`, funded with `inventory_usd` of each debt
    asset when > 0), and the devnet's DEX it sells on (the simulator arbitrages it)."""
    market = net.market
    deployed = deploy_liquidator(net.devnet, market, data_dir, OPERATOR)
    if inventory_usd:
        fund_inventory(net.devnet, market, deployed.address, inventory_usd)
    dex = find_dex(net.devnet, market)
    if dex is None:
        raise RuntimeError(f"the devnet has no DEX: its state cache predates it (delete {data_dir})")
    ids = {r.asset.lower(): r.reserve_id for r in market.reserves}
    venue = Venue(
        liquidator=deployed.address,
        operator=OPERATOR,
        pairs={(ids[p.token0.lower()], ids[p.token1.lower()]): p.pair for p in dex.pairs},
        compact=market.protocol_version != "3.0",
        flash_premium_bps=flash_premium_bps(net.devnet, market),
        eth_reserve_id=market.by_symbol["WETH"].reserve_id,
        inventory=inventory_usd > 0,
    )
    client = execution_client(redis_url, timeout=0.5)
    executor = FastPathExecutor(
        net.rpc,
        MarketKeys.for_market(market.chain_id, market.pool),
        venue,
        AttemptGuard(client, settings.execution_attempt_ttl_sec, owner=owner),
        ExecutorConfig(
            live=True,
            min_profit_usd=settings.execution_min_profit_usd,
            ladder=LadderConfig.from_settings(settings),
            max_per_block=settings.execution_max_per_block,
        ),
        signer=Signer.from_private_key(OPERATOR_KEY, market.chain_id, variable="the devnet operator key"),
        nonce_lock=NonceLock(client, market.chain_id, OPERATOR),
    )
    return executor, dex


def precompute_for(executor: FastPathExecutor, settings: Settings) -> PrecomputeCalldata:
    """PrecomputeCalldata in the executor's Redis, PRECOMPUTE_TOP_K candidates, for its venue."""
    venue = executor.venue
    return PrecomputeCalldata(
        executor.guard.client,
        executor.market,
        top_k=settings.precompute_top_k,
        compact=venue.compact,
        liquidator=venue.liquidator,
    )
