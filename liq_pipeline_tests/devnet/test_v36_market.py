"""The Aave V3.6 L2Pool market (liq_pipeline/devnet/v36): built from npm sources, deployed, seeded, and read by
the project's chain reader, whose exact path must equal the Pool's getUserAccountData bit for bit."""

from __future__ import annotations

import dataclasses

import pytest

from liq_pipeline.chain.discovery import discover_market, read_market_state
from liq_pipeline.chain.positions import read_positions
from liq_pipeline.devnet.actions import account_data as chain_account_data
from liq_pipeline.devnet.actions import advance_time, set_price
from liq_pipeline.devnet.market import load_market
from liq_pipeline.devnet.v36.actions import liquidate_l2, liquidation_grace_period, set_liquidation_grace_period
from liq_pipeline.devnet.v36.build import build_dir, build_v36
from liq_pipeline.devnet.v36.spec import EMODES, RESERVES
from liq_pipeline.risk.exact import account_data
from liq_pipeline.risk.market import user_positions
from liq_pipeline.risk.versions import rules_for
from liq_pipeline.risk.wadray import RAY, WAD

pytestmark = pytest.mark.integration

RULES = rules_for("3.6")
ZERO = "0x0000000000000000000000000000000000000000"


def engine_view(devnet, rules=RULES):
    """(MarketState, positions by user) at the latest block, read from the addresses provider alone."""
    block = int(devnet.rpc.call("eth_blockNumber"), 16)
    market = discover_market(devnet.rpc, devnet.market.addresses_provider, block, rules)
    state = read_market_state(devnet.rpc, market, block, rules)
    frame = read_positions(devnet.rpc, market, list(devnet.users.values()), block, rules)
    return block, market, state, {p.user: p for p in user_positions(frame, state.reserve_ids)}


def assert_exact_matches_pool(devnet, rules=RULES) -> dict[str, tuple]:
    block, _, state, positions = engine_view(devnet, rules)
    roles = list(devnet.borrowers)
    truth = chain_account_data(devnet.rpc, devnet.market.pool, [devnet.users[r] for r in roles], block)
    out = {}
    for role, onchain in zip(roles, truth, strict=True):
        mine = account_data(positions[devnet.users[role]], state)
        expected = (
            onchain.total_collateral_base,
            onchain.total_debt_base,
            onchain.current_liquidation_threshold,
            onchain.health_factor,
        )
        got = (mine.total_collateral_base, mine.total_debt_base, mine.avg_liquidation_threshold, mine.health_factor)
        assert got == expected, f"{role} at block {block}: engine {got} != Pool {expected}"
        out[role] = expected
    return out


def test_build_is_cached_and_complete(devnet_v36_data_dir, v36_build):
    again = build_v36(devnet_v36_data_dir)
    assert again.from_cache and again.key == v36_build.key and again.seconds < 2
    assert again.path.parent == build_dir(devnet_v36_data_dir)
    assert again.path.parent.name.startswith("aave-v3.6.0-")
    assert v36_build["FlashLoanLogic"].libraries == ["BorrowLogic"]
    assert v36_build["L2PoolInstance"].libraries == [
        "BorrowLogic",
        "FlashLoanLogic",
        "LiquidationLogic",
        "PoolLogic",
        "SupplyLogic",
    ]
    assert v36_build["PoolConfiguratorInstance"].libraries == ["ConfiguratorLogic"]


def test_market_matches_spec_and_reads_from_the_provider(devnet_v36, tmp_path):
    dev = devnet_v36
    market = dev.market
    assert market.protocol_version == "3.6"
    assert dev.pool.functions.POOL_REVISION().call() == 10  # aave-v3-origin 3.6
    assert {r.decimals for r in RESERVES} >= {18, 8, 6} and len(RESERVES) >= 5
    dev.deployment.save(tmp_path)
    assert load_market(tmp_path / "market.json") == market

    _, discovered, state, _ = engine_view(dev)
    assert discovered.pool == market.pool and discovered.oracle == market.oracle
    assert discovered.reserve_extras == ("liquidation_grace_until", "virtual_underlying_balance", "deficit")
    by_symbol = {r.symbol: r for r in discovered.reserves}
    for spec in RESERVES:
        info = market.by_symbol[spec.symbol]
        config = by_symbol[spec.symbol].config
        assert by_symbol[spec.symbol].reserve_id == info.reserve_id
        assert (config.decimals, config.ltv, config.liquidation_threshold, config.liquidation_bonus) == (
            spec.decimals,
            spec.ltv,
            spec.liquidation_threshold,
            spec.liquidation_bonus,
        )
        assert config.liquidation_protocol_fee == spec.liquidation_protocol_fee
        assert info.stable_debt_token == ZERO  # no stable debt since V3.2
        factor = dev.pool.functions.getConfiguration(info.asset).call()[0] >> 64 & 0xFFFF
        assert factor == spec.reserve_factor
        # virtual accounting (always on in 3.6): the Pool's own count of the aToken's underlying
        virtual = dev.pool.functions.getVirtualUnderlyingBalance(info.asset).call()
        held = dev.contract(info.asset, "MintableERC20").functions.balanceOf(info.a_token).call()
        assert virtual == held
        # the chain reader's state carries the same getters, read through one aggregate3
        read = state.by_id[info.reserve_id]
        assert (read.virtual_underlying_balance, read.deficit, read.liquidation_grace_until) == (virtual, 0, 0)
        assert (read.active, read.paused, read.frozen, read.borrowing_enabled) == (True, False, False, spec.borrowable)
        if spec.borrowable:  # seasoned: years of interest stored in the indices, as on Base
            assert read.liquidity_index > RAY * 103 // 100 and read.variable_borrow_index > RAY * 110 // 100, spec
    # e-mode: the reader's categories and the Pool's bitmaps, as declared
    ids = {r.symbol: r.reserve_id for r in market.reserves}
    assert sorted(discovered.emode_categories) == [e.category_id for e in EMODES]
    for emode, deployed in zip(EMODES, dev.deployment.emodes, strict=True):
        collateral = sum(1 << ids[s] for s in emode.collateral)
        borrowable = sum(1 << ids[s] for s in emode.borrowable)
        assert (deployed.collateral_bitmap, deployed.borrowable_bitmap) == (collateral, borrowable)
        assert dev.pool.functions.getEModeCategoryCollateralBitmap(emode.category_id).call() == collateral
        assert dev.pool.functions.getEModeCategoryBorrowableBitmap(emode.category_id).call() == borrowable
        category = discovered.emode_categories[emode.category_id]
        assert (category.ltv, category.liquidation_threshold, category.liquidation_bonus) == (
            emode.ltv,
            emode.liquidation_threshold,
            emode.liquidation_bonus,
        )
        assert (category.collateral_bitmap, category.borrowable_bitmap) == (collateral, borrowable)
        assert category.label == emode.label
    # an e-mode-only collateral: LT 0 on its own, listed as collateral in categories 2 and 3
    assert market.by_symbol["wstETH"].liquidation_threshold == 0
    assert all(discovered.emode_categories[c].collateral_bitmap >> ids["wstETH"] & 1 for c in (2, 3))


def test_exact_path_equals_get_user_account_data(chain_v36):
    dev = chain_v36
    positions = engine_view(dev)[3]
    ids = {r.symbol: r.reserve_id for r in dev.market.reserves}
    lt0 = ids["wstETH"]
    # the cases are what they claim to be
    assert positions[dev.users["emode-lt0-only"]].emode_category == 2
    assert positions[dev.users["emode-lt0-only"]].legs[lt0].collateral_enabled
    assert positions[dev.users["emode-lt0-stables"]].emode_category == 3
    assert positions[dev.users["emode-stable"]].emode_category == 1
    assert positions[dev.users["plain"]].emode_category == 0
    # supplied outside e-mode, the LT-0 asset is not collateral: no bit in the user configuration, no leg read
    holding = positions[dev.users["plain-holding-lt0"]]
    assert holding.emode_category == 0 and lt0 not in holding.legs
    a_token = dev.contract(dev.market.by_symbol["wstETH"].a_token, "ATokenInstance")
    assert a_token.functions.balanceOf(dev.users["plain-holding-lt0"]).call() == 10**18
    assert positions[dev.users["one-wei-debt"]].legs[ids["WETH"]].scaled_variable_debt == 1

    now = assert_exact_matches_pool(dev)
    assert now["one-wei-debt"][1] == 1  # 1 wei of WETH: one unit of base currency, rounded up
    assert now["emode-lt0-only"][0] == 3_600_000_000_000  # the LT-0 collateral counts in 3.6
    # the V3.5 rule (skip LT-0 collateral) would get it wrong: the test can tell the difference
    _, _, state35, positions35 = engine_view(dev, rules_for("3.5"))
    assert account_data(positions35[dev.users["emode-lt0-only"]], state35).total_collateral_base == 0

    advance_time(dev.rpc, 30 * 24 * 3600)  # interest accrues, indices move off their stored values
    later = assert_exact_matches_pool(dev)
    assert later["emode-lt0-only"][3] < now["emode-lt0-only"][3]
    set_price(dev.rpc, dev.market, "wstETH", 3_300 * 10**8)  # price moves (DevnetAggregator -> AaveOracle)
    crashed = assert_exact_matches_pool(dev)
    assert crashed["emode-lt0-only"][3] < WAD <= crashed["emode-mixed"][3]


def test_l2_liquidation_with_grace_period(chain_v36):
    dev = chain_v36
    user = dev.users["emode-lt0-only"]
    set_price(dev.rpc, dev.market, "wstETH", 3_300 * 10**8)
    assert assert_exact_matches_pool(dev)["emode-lt0-only"][3] < WAD

    until = set_liquidation_grace_period(dev.rpc, dev.deployment, "wstETH", 3600)
    now = int(dev.rpc.call("eth_getBlockByNumber", "latest", False)["timestamp"], 16)
    assert until == now + 3600 == liquidation_grace_period(dev.rpc, dev.deployment, "wstETH")
    state = engine_view(dev)[2]  # the reader sees it, with and without a multicall
    plain = read_market_state(dev.rpc, dataclasses.replace(engine_view(dev)[1], multicall=None), state.block, RULES)
    wsteth = dev.market.by_symbol["wstETH"].reserve_id
    assert state.by_id[wsteth].liquidation_grace_until == plain.by_id[wsteth].liquidation_grace_until == until
    refused, events = liquidate_l2(dev.rpc, dev.deployment, user, "wstETH", "WETH", allow_revert=True)
    assert refused.ok[:2] == [True, True] and not refused.ok[-1] and events == []

    advance_time(dev.rpc, 3600)
    before = chain_account_data(dev.rpc, dev.market.pool, [user])[0]
    done, events = liquidate_l2(dev.rpc, dev.deployment, user, "wstETH", "WETH")
    (event,) = events
    reserves = dev.market.by_symbol
    assert (event.collateral_asset, event.debt_asset, event.user) == (
        reserves["wstETH"].asset,
        reserves["WETH"].asset,
        user,
    )
    assert event.debt_to_cover > 0 and event.liquidated_collateral_amount > 0 and not event.receive_a_token
    assert event.block == done.block
    after = chain_account_data(dev.rpc, dev.market.pool, [user])[0]
    assert after.total_debt_base < before.total_debt_base and after.health_factor > before.health_factor
    assert_exact_matches_pool(dev)  # still exact after the liquidation
