"""The gas ladder, pure: the minimum profit always holds, replacements clear the node's bump, cancels."""

from __future__ import annotations

import random

import pytest

from liq_pipeline.config import Settings
from liq_pipeline.execution.gas_ladder import (
    BPS,
    CANCEL_GAS,
    MIN_REPLACEMENT_BUMP_BPS,
    Costs,
    Fees,
    LadderConfig,
    Pending,
    initial_fees,
    next_step,
    usd_e8,
    usd_to_wei,
)

GWEI = 10**9
ETH = 10**18
CONFIG = LadderConfig(profit_share_bps=2_000, bump_bps=1_250, bump_after_blocks=2, max_bumps=3)


def _worst_case_charge(fees: Fees, costs: Costs) -> int:
    return fees.max_fee_per_gas * costs.gas_units + costs.l1_fee_wei


def test_usd_conversion_is_exact_and_rounds_costs_up():
    assert usd_e8(1.0) == 100_000_000
    assert usd_e8(0.1) == 10_000_000  # not 10_000_000.000000001
    assert usd_e8("2.5") == 250_000_000
    assert usd_to_wei(usd_e8(3000), 3000 * 10**8) == ETH  # $3000 at $3000/ETH
    assert usd_to_wei(1, 3 * 10**8) == 3_333_333_334  # rounded up
    with pytest.raises(ValueError):
        usd_to_wei(1, 0)


def test_priority_fee_is_the_profit_share_when_affordable():
    costs = Costs(profit_wei=ETH // 100, min_profit_wei=ETH // 3000, gas_units=500_000, l1_fee_wei=10**12)
    decision = initial_fees(CONFIG, costs, base_fee_wei=GWEI // 100)
    assert decision.action == "send"
    assert decision.fees.max_priority_fee_per_gas == ETH // 100 * 2_000 // BPS // 500_000
    assert decision.fees.max_fee_per_gas == 2 * (GWEI // 100) + decision.fees.max_priority_fee_per_gas
    assert _worst_case_charge(decision.fees, costs) + costs.min_profit_wei <= costs.profit_wei


def test_priority_fee_is_capped_by_the_minimum_profit():
    # share 100 %: the whole profit would go to the tip, the cap keeps the minimum
    greedy = LadderConfig(profit_share_bps=BPS)
    costs = Costs(profit_wei=10**15, min_profit_wei=4 * 10**14, gas_units=400_000, l1_fee_wei=5 * 10**13)
    decision = initial_fees(greedy, costs, base_fee_wei=10**7)
    assert decision.action == "send" and decision.reason == "capped by the minimum profit"
    charge = _worst_case_charge(decision.fees, costs)
    assert costs.profit_wei - charge >= costs.min_profit_wei
    # and it uses the room: one more wei per gas would break the minimum
    assert costs.profit_wei - (charge + costs.gas_units) < costs.min_profit_wei


def test_cap_holds_for_many_random_inputs():
    rng = random.Random(13)
    sent = 0
    for _ in range(20_000):
        config = LadderConfig(profit_share_bps=rng.randint(0, BPS), bump_bps=rng.randint(1_000, 5_000))
        costs = Costs(
            profit_wei=rng.randint(0, 10**17),
            min_profit_wei=rng.randint(0, 10**16),
            gas_units=rng.randint(21_000, 2_000_000),
            l1_fee_wei=rng.randint(0, 10**15),
        )
        base_fee = rng.randint(0, 10 * GWEI)
        decision = initial_fees(config, costs, base_fee)
        if decision.action == "skip":
            assert (
                costs.profit_wei - costs.l1_fee_wei - costs.gas_units * base_fee
                < costs.min_profit_wei + costs.gas_units
            )
            continue
        sent += 1
        fees = decision.fees
        assert costs.profit_wei - _worst_case_charge(fees, costs) >= costs.min_profit_wei
        assert base_fee + fees.max_priority_fee_per_gas <= fees.max_fee_per_gas  # includable at today's base fee
        pending = Pending(fees, sent_block=0)
        for bump in range(config.max_bumps + 1):
            step = next_step(
                config, pending, costs, block=pending.sent_block + 5, base_fee_wei=base_fee, opportunity_open=True
            )
            if step.action != "replace":
                break
            assert costs.profit_wei - _worst_case_charge(step.fees, costs) >= costs.min_profit_wei
            pending = Pending(step.fees, pending.sent_block + 5, bump + 1)
    assert sent > 5_000  # the loop did test sends, not only skips


def test_unprofitable_is_skipped():
    costs = Costs(profit_wei=10**14, min_profit_wei=10**14, gas_units=300_000, l1_fee_wei=1)
    assert initial_fees(CONFIG, costs, base_fee_wei=1).action == "skip"


def _sent():
    costs = Costs(profit_wei=ETH // 100, min_profit_wei=ETH // 3000, gas_units=500_000, l1_fee_wei=10**12)
    fees = initial_fees(CONFIG, costs, base_fee_wei=GWEI // 100).fees
    return costs, Pending(fees, sent_block=100)


def test_waits_then_bumps_by_at_least_the_nodes_minimum():
    costs, pending = _sent()
    assert (
        next_step(CONFIG, pending, costs, block=101, base_fee_wei=GWEI // 100, opportunity_open=True).action == "wait"
    )
    step = next_step(CONFIG, pending, costs, block=102, base_fee_wei=GWEI // 100, opportunity_open=True)
    assert step.action == "replace"
    old, new = pending.fees, step.fees
    # geth: new >= old * (100 + 10) / 100 on both fields
    assert new.max_priority_fee_per_gas * 100 >= old.max_priority_fee_per_gas * 110
    assert new.max_fee_per_gas * 100 >= old.max_fee_per_gas * 110
    assert new.max_priority_fee_per_gas * BPS >= old.max_priority_fee_per_gas * (BPS + CONFIG.bump_bps)


def test_bump_follows_a_rising_base_fee():
    costs, pending = _sent()
    step = next_step(CONFIG, pending, costs, block=103, base_fee_wei=GWEI, opportunity_open=True)
    assert step.action == "replace"
    assert step.fees.max_fee_per_gas >= GWEI + step.fees.max_priority_fee_per_gas


def test_stops_bumping_at_the_cap_and_after_max_bumps():
    costs, pending = _sent()
    assert (
        next_step(
            CONFIG, Pending(pending.fees, 100, bumps=3), costs, block=200, base_fee_wei=1, opportunity_open=True
        ).action
        == "wait"
    )
    at_cap = Fees(costs.fee_cap_per_gas, costs.fee_cap_per_gas // 2)
    step = next_step(CONFIG, Pending(at_cap, 100), costs, block=200, base_fee_wei=1, opportunity_open=True)
    assert step.action == "wait" and "minimum profit" in step.reason


def test_cancel_when_the_opportunity_is_gone():
    costs, pending = _sent()
    step = next_step(CONFIG, pending, costs, block=100, base_fee_wei=GWEI // 100, opportunity_open=False)
    assert step.action == "cancel"
    # a cancel replaces our transaction: same bump rules, and includable at the current base fee
    assert step.fees.max_priority_fee_per_gas * 100 >= pending.fees.max_priority_fee_per_gas * 110
    assert step.fees.max_fee_per_gas * 100 >= pending.fees.max_fee_per_gas * 110
    assert step.fees.max_fee_per_gas >= GWEI // 100 + step.fees.max_priority_fee_per_gas
    assert CANCEL_GAS == 21_000


def test_config_refuses_a_bump_under_the_nodes_minimum():
    with pytest.raises(ValueError, match="nodes' minimum"):
        LadderConfig(bump_bps=MIN_REPLACEMENT_BUMP_BPS - 1)


def test_config_from_settings(clean_env):
    config = LadderConfig.from_settings(Settings.model_validate({}))
    assert config == LadderConfig(2_000, 1_250, 2, 3)
