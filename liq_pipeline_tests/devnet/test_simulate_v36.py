"""The living market on V3.6: the competitor chooses each liquidation with risk/liquidation.py (pair and
debtToCover the L2Pool accepts, dust rule included) and sends it through L2Pool's compact liquidationCall."""

from __future__ import annotations

import pytest

from liq_pipeline.devnet import protocols
from liq_pipeline.devnet.accounts import COMPETITOR
from liq_pipeline.devnet.actions import MAX_UINT, l2_liquidation_args, liquidation_events
from liq_pipeline.devnet.simulate import SimConfig, simulate
from liq_pipeline.devnet.v36.actions import encode_liquidation

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
