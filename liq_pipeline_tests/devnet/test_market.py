"""The deployed market, read back through Aave's own contracts: reserves, risk parameters, e-mode, oracle."""

from __future__ import annotations

import pytest
from eth_utils import to_checksum_address

from liq_pipeline.devnet.actions import ANSWER_UPDATED_TOPIC, set_price, set_prices
from liq_pipeline.devnet.solc import compile_contract
from liq_pipeline.devnet.spec import EMODES, RESERVES

pytestmark = pytest.mark.integration

ZERO = "0x0000000000000000000000000000000000000000"


def test_reserves_match_the_spec(devnet):
    dp, market = devnet.data_provider, devnet.market
    listed = dict(dp.functions.getAllReservesTokens().call())
    assert list(listed) == [spec.symbol for spec in RESERVES]
    assert {spec.decimals for spec in RESERVES} >= {18, 8, 6}
    reserves_list = devnet.pool.functions.getReservesList().call()
    for spec in RESERVES:
        info = market.by_symbol[spec.symbol]
        assert listed[spec.symbol] == info.asset
        assert reserves_list[info.reserve_id] == info.asset
        (decimals, ltv, lt, bonus, factor, collateral, borrowing, stable, active, frozen) = (
            dp.functions.getReserveConfigurationData(info.asset).call()
        )
        # LTVs are back at their configured values after seeding (it raises them while it works).
        assert (decimals, ltv, lt, bonus, factor) == (
            spec.decimals,
            spec.ltv,
            spec.liquidation_threshold,
            spec.liquidation_bonus,
            spec.reserve_factor,
        )
        assert collateral and borrowing and active and not frozen and not stable
        assert dp.functions.getLiquidationProtocolFee(info.asset).call() == spec.liquidation_protocol_fee
        assert dp.functions.getReserveEModeCategory(info.asset).call() == spec.emode_category
        a_token, stable_debt, variable_debt = dp.functions.getReserveTokensAddresses(info.asset).call()
        assert (a_token, stable_debt, variable_debt) == (info.a_token, info.stable_debt_token, info.variable_debt_token)
        assert devnet.contract(a_token, "AToken").functions.decimals().call() == spec.decimals
        assert devnet.contract(info.asset, "MintableERC20").functions.decimals().call() == spec.decimals
        assert devnet.oracle.functions.getSourceOfAsset(info.asset).call() == info.aggregator


def test_emode_category_and_wiring(devnet):
    market, pool = devnet.market, devnet.pool
    for emode in EMODES:
        ltv, lt, bonus, source, label = pool.functions.getEModeCategoryData(emode.category_id).call()
        assert (ltv, lt, bonus, source, label) == (
            emode.ltv,
            emode.liquidation_threshold,
            emode.liquidation_bonus,
            ZERO,
            emode.label,
        )
    assert pool.functions.getEModeCategoryData(1).call()[:3] == (9300, 9500, 10100)
    provider = devnet.contract(market.addresses_provider, "PoolAddressesProvider")
    assert provider.functions.getPool().call() == market.pool
    assert provider.functions.getPoolConfigurator().call() == market.pool_configurator
    assert provider.functions.getPriceOracle().call() == market.oracle
    assert provider.functions.getPoolDataProvider().call() == market.data_provider
    assert pool.functions.ADDRESSES_PROVIDER().call() == market.addresses_provider
    assert devnet.oracle.functions.BASE_CURRENCY_UNIT().call() == 10**8
    assert market.chain_id == devnet.w3.eth.chain_id == 31337
    assert market.protocol_version == "3.0"
    assert market.packages["@aave/core-v3"] == "1.19.3"


def test_price_change_emits_answer_updated_and_moves_the_oracle(chain):
    market = chain.market
    weth = market.by_symbol["WETH"]
    feed = chain.w3.eth.contract(address=weth.aggregator, abi=compile_contract("DevnetAggregator", chain.data_dir).abi)
    before_price = chain.oracle.functions.getAssetPrice(weth.asset).call()
    before_round = feed.functions.latestRound().call()
    new_price = before_price * 7 // 10

    done = set_price(chain.rpc, market, "WETH", new_price)

    updates = [log for log in done.logs if log["topics"][0] == ANSWER_UPDATED_TOPIC]
    assert len(updates) == 1
    log = updates[0]
    assert to_checksum_address(log["address"]) == weth.aggregator
    assert int(log["topics"][1], 16) == new_price  # indexed current
    assert int(log["topics"][2], 16) == before_round + 1  # indexed roundId
    block = chain.w3.eth.get_block(done.block)
    assert int(log["data"], 16) == block["timestamp"]  # updatedAt
    assert chain.oracle.functions.getAssetPrice(weth.asset).call() == new_price
    assert chain.oracle.functions.getAssetPrice(weth.asset).call(block_identifier=done.block - 1) == before_price
    round_id, answer, _, updated_at, _ = feed.functions.latestRoundData().call()
    assert (round_id, answer, updated_at) == (before_round + 1, new_price, block["timestamp"])
    assert feed.functions.decimals().call() == 8


def test_several_prices_in_one_block(chain):
    market = chain.market
    wanted = {"WBTC": 60_000 * 10**8, "AERO": 50_000_000, "DAI": 99_000_000}
    done = set_prices(chain.rpc, market, wanted)
    assert sum(log["topics"][0] == ANSWER_UPDATED_TOPIC for log in done.logs) == 3
    assets = [market.by_symbol[s].asset for s in wanted]
    assert chain.oracle.functions.getAssetsPrices(assets).call() == list(wanted.values())
