"""Seeded borrowers, checked on chain: debt everywhere, and the variety the seeder promises."""

from __future__ import annotations

import pytest
from eth_utils import keccak, to_checksum_address

from liq_pipeline.devnet.accounts import LIQUIDITY_PROVIDER, borrower_address
from liq_pipeline.devnet.actions import account_data, oracle_prices, user_configurations, user_emodes, user_reserves
from liq_pipeline.devnet.seed import plan_portfolios, seed
from liq_pipeline_tests.fixtures.devnet import TEST_BORROWERS, TEST_SEED

pytestmark = pytest.mark.integration

SUPPLY_TOPIC = "0x" + keccak(text="Supply(address,address,address,uint256,uint16)").hex()


@pytest.fixture(scope="module")
def seeded(devnet):
    users = devnet.users
    return {
        "account": account_data(devnet.rpc, devnet.market.pool, users),
        "emode": user_emodes(devnet.rpc, devnet.market.pool, users),
        "config": user_configurations(devnet.rpc, devnet.market.pool, users),
        "legs": user_reserves(devnet.rpc, devnet.market, users),
    }


def test_borrowers_are_the_seeded_addresses(devnet):
    assert devnet.users == [borrower_address(TEST_SEED, i) for i in range(TEST_BORROWERS)]


def test_every_borrower_has_debt_and_a_health_factor_above_one(seeded):
    hfs = [a.hf for a in seeded["account"]]
    assert all(a.total_debt_base > 0 and a.total_collateral_base > 0 for a in seeded["account"])
    assert min(hfs) > 1.0
    assert min(hfs) < 1.01, "some borrowers sit just above the liquidation line"
    assert sum(h < 1.05 for h in hfs) >= 10
    assert max(hfs) > 2.0, "and some are safe"


def test_sizes_range_from_dust_to_whales(seeded):
    collateral_usd = [a.total_collateral_base / 1e8 for a in seeded["account"]]
    assert min(collateral_usd) < 50
    assert max(collateral_usd) > 1_000_000


def test_emode_users_use_the_emode_threshold(devnet, seeded):
    market = devnet.market
    in_emode = [i for i, e in enumerate(seeded["emode"]) if e == 1]
    assert len(in_emode) >= 15  # ~20 % of 200
    stable_only = [
        i
        for i in in_emode
        if all(
            market.by_symbol[s].emode_category == 1
            for s, leg in seeded["legs"][i].items()
            if leg.a_token_balance and leg.collateral_enabled
        )
    ]
    assert stable_only
    for i in stable_only:
        assert seeded["account"][i].current_liquidation_threshold == 9500
        assert seeded["account"][i].ltv == 9300
    for i in in_emode:  # V3.0: a user in e-mode borrows only assets of its category
        assert all(market.by_symbol[s].emode_category == 1 for s, leg in seeded["legs"][i].items() if leg.variable_debt)


def test_some_supplied_assets_are_not_collateral(devnet, seeded):
    market = devnet.market
    disabled = [
        (i, s)
        for i, legs in enumerate(seeded["legs"])
        for s, leg in legs.items()
        if leg.a_token_balance and not leg.collateral_enabled
    ]
    assert len(disabled) >= 5
    for i, symbol in disabled:  # the bitmap agrees: collateral bit of that reserve off
        assert not seeded["config"][i] >> (2 * market.by_symbol[symbol].reserve_id + 1) & 1


def test_legs_cover_6_8_and_18_decimals_and_the_bitmaps_agree(devnet, seeded):
    market = devnet.market
    collateral_decimals, debt_decimals = set(), set()
    same_asset = 0
    for legs, config in zip(seeded["legs"], seeded["config"], strict=True):
        for symbol, leg in legs.items():
            reserve = market.by_symbol[symbol]
            borrowing = bool(config >> (2 * reserve.reserve_id) & 1)
            collateral = bool(config >> (2 * reserve.reserve_id + 1) & 1)
            assert borrowing == (leg.variable_debt > 0)
            assert collateral == leg.collateral_enabled
            if leg.a_token_balance and leg.collateral_enabled:
                collateral_decimals.add(reserve.decimals)
            if leg.variable_debt:
                debt_decimals.add(reserve.decimals)
            same_asset += bool(leg.variable_debt and leg.a_token_balance and leg.collateral_enabled)
    assert collateral_decimals == {6, 8, 18}
    assert debt_decimals == {6, 8, 18}
    assert same_asset >= 1, "some users borrow an asset they also supply"


def test_some_positions_were_supplied_on_behalf_of_the_user(devnet):
    users = {u.lower() for u in devnet.users}
    logs = devnet.rpc.call(
        "eth_getLogs",
        {"fromBlock": "0x0", "toBlock": "latest", "address": devnet.market.pool, "topics": [SUPPLY_TOPIC]},
    )
    on_behalf = [
        log
        for log in logs
        if ("0x" + log["topics"][2][-40:]) in users
        and to_checksum_address("0x" + log["data"][26:66]) == LIQUIDITY_PROVIDER
    ]
    assert on_behalf


def test_planning_is_deterministic_for_a_seed(devnet):
    prices = {r.symbol: r.initial_price for r in devnet.market.reserves}
    first = plan_portfolios(devnet.market, prices, 50, seed=7)
    assert first == plan_portfolios(devnet.market, prices, 50, seed=7)
    assert first != plan_portfolios(devnet.market, prices, 50, seed=8)
    assert plan_portfolios(devnet.market, prices, 10, seed=7, start_index=50)[0].user == borrower_address(7, 50)


def test_seeding_more_borrowers_on_the_running_chain(chain):
    market = chain.market
    result = seed(chain.rpc, market, 150, seed=TEST_SEED, start_index=TEST_BORROWERS)
    assert result.users == [borrower_address(TEST_SEED, TEST_BORROWERS + i) for i in range(150)]
    assert not set(result.users) & set(chain.users)
    data = account_data(chain.rpc, market.pool, result.users)
    assert all(a.total_debt_base > 0 and a.health_factor > 10**18 for a in data)
    # The seeder raised LTVs to the thresholds while it worked and put them back.
    dp = chain.data_provider
    for reserve in market.reserves:
        assert dp.functions.getReserveConfigurationData(reserve.asset).call()[1] == reserve.ltv
    assert chain.pool.functions.getEModeCategoryData(1).call()[0] == 9300
    assert oracle_prices(chain.rpc, market) == {r.symbol: r.initial_price for r in market.reserves}


def test_batched_account_data_equals_web3_calls(devnet):
    sample = devnet.users[::25]
    block = devnet.w3.eth.block_number
    batched = account_data(devnet.w3, devnet.market.pool, sample, block)  # a Web3 is accepted too
    for user, data in zip(sample, batched, strict=True):
        assert tuple(data) == tuple(devnet.pool.functions.getUserAccountData(user).call(block_identifier=block))
