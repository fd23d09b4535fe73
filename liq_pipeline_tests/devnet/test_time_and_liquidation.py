"""Interest accrues with block time; a price shock makes users liquidatable; a real liquidationCall succeeds."""

from __future__ import annotations

import pytest
from web3.logs import DISCARD

from liq_pipeline.devnet.accounts import LIQUIDATOR
from liq_pipeline.devnet.actions import (
    account_data,
    advance_time,
    liquidate,
    mine_blocks,
    oracle_prices,
    set_prices,
    user_reserves,
)
from liq_pipeline.devnet.txs import TxFailed

pytestmark = pytest.mark.integration

THIRTY_DAYS = 30 * 24 * 3600


def test_interest_accrues_across_a_time_jump(chain):
    pool = chain.market.pool
    before_block = chain.w3.eth.get_block("latest")
    before = account_data(chain.rpc, pool, chain.users)

    timestamp = advance_time(chain.rpc, THIRTY_DAYS)

    after_block = chain.w3.eth.get_block("latest")
    assert after_block["number"] == before_block["number"] + 1
    assert timestamp == after_block["timestamp"] == before_block["timestamp"] + THIRTY_DAYS
    after = account_data(chain.rpc, pool, chain.users)
    for old, new in zip(before, after, strict=True):
        if old.total_debt_base > 10**6:  # more than $0.01: interest is visible in 8-decimal USD
            assert new.total_debt_base > old.total_debt_base
    grown = sum(n.total_debt_base for n in after) / sum(o.total_debt_base for o in before) - 1
    assert 0.0005 < grown < 0.05, f"30 days of interest grew the debt by {grown:.4%}"
    # Debt grows faster than supply income, so health factors drift down.
    assert sum(n.health_factor < o.health_factor for o, n in zip(before, after, strict=True)) > len(before) // 2


def test_blocks_are_two_seconds_apart(chain):
    start = chain.w3.eth.get_block("latest")["timestamp"]
    last = mine_blocks(chain.rpc, 5)
    assert chain.w3.eth.get_block(last)["timestamp"] == start + 10


def test_a_price_shock_makes_users_liquidatable_and_a_liquidation_succeeds(chain):
    market, pool = chain.market, chain.market.pool
    prices = oracle_prices(chain.rpc, market)
    healthy = account_data(chain.rpc, pool, chain.users)
    assert all(a.health_factor >= 10**18 for a in healthy)

    shocked = {"WETH": prices["WETH"] * 7 // 10, "WBTC": prices["WBTC"] * 7 // 10, "AERO": prices["AERO"] // 2}
    set_prices(chain.rpc, market, shocked)
    after = account_data(chain.rpc, pool, chain.users)
    unhealthy = [(a.health_factor, u) for u, a in zip(chain.users, after, strict=True) if a.health_factor < 10**18]
    assert len(unhealthy) >= 5

    hf_before, user = min(unhealthy)
    debt_before = after[chain.users.index(user)].total_debt_base
    event = liquidate(chain.rpc, market, user)

    assert event.user == user and event.liquidator == LIQUIDATOR
    assert event.debt_to_cover > 0 and event.liquidated_collateral_amount > 0
    receipt = chain.w3.eth.get_transaction_receipt(event.transaction_hash)
    assert receipt["status"] == 1
    (decoded,) = chain.pool.events.LiquidationCall().process_receipt(receipt, errors=DISCARD)
    assert decoded["args"]["user"] == user and decoded["args"]["debtToCover"] == event.debt_to_cover
    assert decoded["address"] == market.pool  # events come from the Pool proxy

    now = account_data(chain.rpc, pool, [user])[0]
    assert now.total_debt_base < debt_before
    collateral_asset = chain.contract(event.collateral_asset, "MintableERC20")
    assert collateral_asset.functions.balanceOf(LIQUIDATOR).call() == event.liquidated_collateral_amount
    # Close factor (V3.0): the whole debt of that asset when HF <= 0.95, else half; less only when the chosen
    # collateral runs out first.
    debt_symbol = next(r.symbol for r in market.reserves if r.asset == event.debt_asset)
    collateral_symbol = next(r.symbol for r in market.reserves if r.asset == event.collateral_asset)
    owed = user_reserves(chain.rpc, market, [user], event.block - 1)[0][debt_symbol].variable_debt
    cap = owed if hf_before <= 95 * 10**16 else owed // 2
    assert event.debt_to_cover <= cap * 1001 // 1000
    if event.debt_to_cover < cap * 999 // 1000:
        assert user_reserves(chain.rpc, market, [user], event.block)[0][collateral_symbol].a_token_balance == 0


def test_liquidating_a_healthy_user_is_refused(chain):
    data = account_data(chain.rpc, chain.market.pool, chain.users)
    _, user = max((a.health_factor, u) for u, a in zip(chain.users, data, strict=True))
    with pytest.raises(TxFailed, match="reverted"):
        liquidate(chain.rpc, chain.market, user)
