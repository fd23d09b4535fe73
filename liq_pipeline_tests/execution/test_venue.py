"""`venue_from_chain` on real devnets: the pairs a Uniswap V2 factory holds for the market's reserves (keyed by
token0), the Pool's flash premium, an L2Pool told apart from a Pool by asking it, the WETH reserve; one clear line
when the factory or the Liquidator is not there."""

from __future__ import annotations

import pytest

from liq_pipeline.chain.discovery import discover_market
from liq_pipeline.chain.rpc import RpcClient
from liq_pipeline.devnet.accounts import OPERATOR
from liq_pipeline.devnet.dex import deploy_dex, find_dex
from liq_pipeline.devnet.liquidator import deploy_liquidator, set_flash_premium
from liq_pipeline.execution.venue import VenueError, is_l2_pool, venue_from_chain
from liq_pipeline.risk.versions import rules_for

pytestmark = pytest.mark.integration


@pytest.fixture(params=["3.6", "3.0"])
def net(request):
    return request.getfixturevalue("chain_v36" if request.param == "3.6" else "chain")


def test_the_venue_is_read_from_the_chain(net):
    dex = find_dex(net.rpc, net.market) or deploy_dex(net.rpc, net.market)
    set_flash_premium(net.rpc, net.market, 5)
    deployed = deploy_liquidator(net.rpc, net.market, net.data_dir, OPERATOR)
    with RpcClient(net.node.url) as rpc:
        head = rpc.quantity("eth_blockNumber")
        market = discover_market(rpc, net.market.addresses_provider, head, rules_for(net.market.protocol_version))
        venue = venue_from_chain(rpc, market, deployed.address, OPERATOR, dex.factory, inventory=True)
        ids = {r.asset.lower(): r.reserve_id for r in market.reserves}
        assert venue.pairs == {(ids[p.token0.lower()], ids[p.token1.lower()]): p.pair for p in dex.pairs}
        assert venue.flash_premium_bps == 5
        assert venue.compact is (net.market.protocol_version != "3.0")  # V3.6 deploys an L2Pool, V3.0 a Pool
        assert is_l2_pool(rpc, market.pool) is venue.compact
        assert venue.eth_reserve_id == ids[net.market.by_symbol["WETH"].asset.lower()]
        assert venue.inventory and venue.operator == OPERATOR and venue.liquidator == deployed.address
        forced = venue_from_chain(
            rpc, market, deployed.address, OPERATOR, dex.factory, inventory=False, compact="false"
        )
        assert forced.compact is False
        with pytest.raises(VenueError, match=r"EXECUTION_DEX_FACTORY=.*no contract"):
            venue_from_chain(rpc, market, deployed.address, OPERATOR, "0x" + "12" * 20, inventory=False)
        with pytest.raises(VenueError, match=r"EXECUTOR_LIQUIDATOR=.*no contract"):
            venue_from_chain(rpc, market, "0x" + "12" * 20, OPERATOR, dex.factory, inventory=False)
        with pytest.raises(VenueError, match="no pair"):  # a contract that is no factory: the Pool
            venue_from_chain(rpc, market, deployed.address, OPERATOR, market.pool, inventory=False)
