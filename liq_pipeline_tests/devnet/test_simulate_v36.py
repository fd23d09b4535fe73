"""The living market on V3.6: the competitor chooses each liquidation with risk/liquidation.py (pair and
debtToCover the L2Pool accepts, dust rule included) and sends it through L2Pool's compact liquidationCall."""

from __future__ import annotations

import pytest

from liq_pipeline.devnet import protocols
from liq_pipeline.devnet.accounts import COMPETITOR
from liq_pipeline.devnet.actions import MAX_UINT, l2_liquidation_args, liquidation_events, oracle_prices, set_prices
from liq_pipeline.devnet.dex import deploy_dex, find_dex, read_reserves
from liq_pipeline.devnet.simulate import SimConfig, simulate
from liq_pipeline.devnet.v36.actions import encode_liquidation
from liq_pipeline.risk.amm import price_error, price_ratio

pytestmark = pytest.mark.integration

BORROWERS = 300
# Violent on purpose: 30 blocks must show a crash and the liquidations after it.
CONFIG = SimConfig(blocks=30, seed=3, vol_scale=30.0, shock_probability=0.2, liquidation_delay=1)


def test_compact_liquidation_args_match_the_l2_encoder(chain_v36):
    market, user = chain_v36.market, next(iter(chain_v36.borrowers.values()))
    weth, usdc = market.by_symbol["WETH"], market.by_symbol["USDC"]
    for amount in (MAX_UINT, 1, 12_345 * 10**6):
        local = l2_liquidation_args(weth.reserve_id, usdc.reserve_id, user, amount)
        assert local == encode_liquidation(chain_v36.rpc, chain_v36.deployment, "WETH", "USDC", user, amount)
    with pytest.raises(ValueError, match="uint128"):
        l2_liquidation_args(0, 1, user, 2**128)


@pytest.mark.slow
def test_simulation_on_v36_liquidates_without_reverts(chain_v36):
    rpc, market = chain_v36.rpc, chain_v36.market
    seeded = protocols.seeder(market)(rpc, market, BORROWERS, 11)
    start = int(rpc.call("eth_blockNumber"), 16)
    result = simulate(rpc, market, CONFIG, seeded.users)
    logs = rpc.call("eth_getLogs", {"fromBlock": hex(start + 1), "toBlock": "latest"})
    events = liquidation_events(logs, market.pool)
    assert result.shocks >= 1
    assert len(events) == result.liquidations >= 3, result
    assert {e.liquidator for e in events} == {COMPETITOR}
    # Before: debtToCover = max uint, refused by MustNotLeaveDust and retried every block (reverts >> successes).
    assert result.liquidation_reverts <= 2, result.reverts_by_kind


# --- the DEX in the simulator ----------------------------------------------------------------------------------

DEX_CONFIG = SimConfig(blocks=4, seed=9, vol_scale=30.0, shock_probability=0.5, arrivals_per_block=0.0)


def _pools_at_oracle(rpc, market, dex) -> dict[str, float]:
    """Each pair's relative price error against the AaveOracle now, by pair; asserts it is within what one raw
    unit of input can reach."""
    prices = oracle_prices(rpc, market)
    errors = {}
    for p, (r0, r1) in ((p, read_reserves(rpc, dex)[p.pair]) for p in dex.pairs):
        ratio = price_ratio(prices[p.symbol0], p.decimals0, prices[p.symbol1], p.decimals1)
        errors[p.pair] = abs(price_error(r0, r1, *ratio))
        assert errors[p.pair] <= 3 / min(r0, r1), (p.symbol0, p.symbol1, errors[p.pair])
    return errors


def test_the_simulator_keeps_the_pools_at_the_oracle(chain_v36):
    rpc, market = chain_v36.rpc, chain_v36.market
    assert find_dex(rpc, market) is None  # this chain has no DEX yet
    dex = deploy_dex(rpc, market)
    found = find_dex(rpc, market)  # what simulate(dex="auto") uses
    assert (found.factory, found.pairs, found.block_deployed) == (dex.factory, dex.pairs, dex.block_deployed)
    before = oracle_prices(rpc, market)
    start = int(rpc.call("eth_blockNumber"), 16)

    result = simulate(rpc, market, DEX_CONFIG, list(chain_v36.borrowers.values()))

    after = oracle_prices(rpc, market)
    assert any(after[s] != before[s] for s in after) and result.price_updates > 0
    assert result.arbitrage_swaps > 0 and "arbitrage" not in result.reverts_by_kind
    _pools_at_oracle(rpc, market, dex)
    # the swaps share the price updates' blocks: no block of its own
    assert int(rpc.call("eth_blockNumber"), 16) - start == DEX_CONFIG.blocks


def test_the_simulator_runs_without_a_dex(chain_v36):
    rpc, market = chain_v36.rpc, chain_v36.market
    result = simulate(rpc, market, DEX_CONFIG, list(chain_v36.borrowers.values()))
    assert result.arbitrage_swaps == 0 and result.price_updates > 0
    dex = deploy_dex(rpc, market)
    set_prices(rpc, market, {"WETH": oracle_prices(rpc, market)["WETH"] // 2})
    result = simulate(rpc, market, DEX_CONFIG, list(chain_v36.borrowers.values()), dex=None)  # asked for none
    assert result.arbitrage_swaps == 0
    p, prices = dex.pair_of("WETH", "USDC"), oracle_prices(rpc, market)
    ratio = price_ratio(prices[p.symbol0], p.decimals0, prices[p.symbol1], p.decimals1)
    assert abs(price_error(*read_reserves(rpc, dex)[p.pair], *ratio)) > 0.3  # left where the halving put it
