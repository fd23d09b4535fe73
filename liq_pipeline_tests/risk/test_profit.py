"""risk.profit: the chosen liquidation earns the most net of premium, swap and gas, every amount evaluated exactly.

The markets are test_liquidation.py's: WETH $2,000 (10 % protocol fee on the bonus), USDC $1, DAI $1; 5 % bonus.
"""

from __future__ import annotations

import dataclasses
import random

import pytest

from liq_pipeline.risk.amm import get_amount_out
from liq_pipeline.risk.exact import account_data
from liq_pipeline.risk.liquidation import liquidation_outcome
from liq_pipeline.risk.profit import (
    CostInputs,
    _largest_accepted,
    _Pair,
    flash_premium,
    gas_in_debt,
    golden_max,
    plan_at,
    plan_liquidation,
    pool_reserves,
)
from liq_pipeline.risk.wadray import RAY, UINT256_MAX
from liq_pipeline_tests.risk.factories import coll, debt, reserve, user
from liq_pipeline_tests.risk.factories import market as build_market
from liq_pipeline_tests.risk.test_liquidation import _market, _with

E18, E6 = 10**18, 10**6
WETH_ID, USDC_ID, DAI_ID = 0, 1, 2
DEEP = {(WETH_ID, USDC_ID): (10_000 * E18, 20_000_000 * E6)}  # $40M at the oracle price
COSTS = CostInputs(
    flash_premium_bps=5, gas_units=600_000, gas_price_wei=10**7, l1_fee_wei=2 * 10**11, eth_price=2_000 * 10**8
)


def _profit(position, market, collateral_id, debt_id, amount, pools, costs=COSTS):
    """The profit of one amount, worked out independently of the module's search."""
    out = liquidation_outcome(position, market, collateral_id, debt_id, amount)
    if not out.ok or out.collateral_seized == 0:
        return None
    reserves = pool_reserves(pools, collateral_id, debt_id)
    bought = out.collateral_seized if collateral_id == debt_id else get_amount_out(out.collateral_seized, *reserves)
    debt_reserve = market.by_id[debt_id]
    gas = gas_in_debt(costs.gas_wei, costs.eth_price, debt_reserve.price, debt_reserve.unit)
    return bought - out.debt_repaid - flash_premium(out.debt_repaid, costs.flash_premium_bps, market.rules) - gas


def _grid(position, market, collateral_id, debt_id, pools, points=120, costs=COSTS):
    top = liquidation_outcome(position, market, collateral_id, debt_id, UINT256_MAX).max_liquidatable_debt
    amounts = {max(1, top * i // points) for i in range(points + 1)} | {UINT256_MAX}
    found = {a: _profit(position, market, collateral_id, debt_id, a, pools, costs) for a in amounts}
    return {a: p for a, p in found.items() if p is not None}


@pytest.mark.parametrize("version", ["3.0", "3.3", "3.6"])
def test_the_plan_beats_every_amount_of_a_grid(version):
    # 1 WETH against 1,700 USDC: HF 0.94, all of it may be repaid.
    position = user("0xdeep", {WETH_ID: coll(E18), USDC_ID: debt(1_700 * E6)})
    market = _market(version)
    plan = plan_liquidation(position, market, DEEP, COSTS)
    assert plan is not None and (plan.collateral_id, plan.debt_id) == (WETH_ID, USDC_ID)
    grid = _grid(position, market, WETH_ID, USDC_ID, DEEP)
    assert plan.profit >= max(grid.values())
    # The plan's figures are what an independent evaluation of its amount gives.
    assert plan.profit == _profit(position, market, WETH_ID, USDC_ID, plan.debt_to_cover, DEEP)
    out = plan.outcome
    assert plan.costs.swap_in == out.collateral_seized
    assert plan.costs.swap_out == get_amount_out(out.collateral_seized, 10_000 * E18, 20_000_000 * E6)
    assert plan.profit == plan.costs.swap_out - out.debt_repaid - plan.costs.total
    assert plan.costs.l1_fee_wei == 2 * 10**11 and plan.costs.l2_gas_wei == 6 * 10**12
    assert plan.profit_base == plan.profit * 10**8 // E6 and 0 < plan.profit_usd < 100
    # A deep pool: repaying everything is best.
    assert out.debt_repaid == 1_700 * E6


def test_a_whale_in_a_shallow_pool_repays_less_than_allowed():
    # 100 WETH against 170,000 USDC (HF 0.94: all of it may be repaid), but the pool holds only 60 WETH.
    position = user("0xwhale", {WETH_ID: coll(100 * E18), USDC_ID: debt(170_000 * E6)})
    market = _market("3.0")
    shallow = {(USDC_ID, WETH_ID): (120_000 * E6, 60 * E18)}  # the other order: the lookup flips it
    plan = plan_liquidation(position, market, shallow, COSTS)
    assert plan is not None
    at_max = _profit(position, market, WETH_ID, USDC_ID, UINT256_MAX, shallow)
    assert plan.profit > at_max  # slippage: the maximum is worse than a smaller amount
    assert 0 < plan.outcome.debt_repaid < plan.outcome.max_liquidatable_debt
    grid = _grid(position, market, WETH_ID, USDC_ID, shallow, points=200)
    assert plan.profit >= max(grid.values())
    # The optimum is interior, and the integers next to it are not better (local exactness). Farther away, the
    # integer floors make a plateau: here every amount within ~1,000 units earns the same to one unit (1e-6 USDC),
    # which the planner does not search for the luckiest floor.
    for delta, slack in ((-1, 0), (1, 0), (-1000, 1), (1000, 1), (-(10**6), 1), (10**6, 1)):
        neighbour = _profit(position, market, WETH_ID, USDC_ID, plan.debt_to_cover + delta, shallow)
        assert neighbour is None or neighbour <= plan.profit + slack


def test_the_pair_that_earns_most_is_chosen_across_collaterals():
    # WETH and DAI collateral against USDC debt; DAI has no pool with USDC, so only WETH can be sold.
    position = user("0xtwo", {WETH_ID: coll(E18), DAI_ID: coll(200 * E18), USDC_ID: debt(1_900 * E6)})
    market = _market("3.0")
    plan = plan_liquidation(position, market, DEEP, COSTS)
    assert plan is not None and plan.collateral_id == WETH_ID
    # With a deep DAI/USDC pool too, each pair is compared in USD and the best one wins.
    pools = {**DEEP, (DAI_ID, USDC_ID): (10**7 * E18, 10**7 * E6)}
    both = plan_liquidation(position, market, pools, COSTS)
    profits = {c: max(_grid(position, market, c, USDC_ID, pools).values()) * 10**8 // E6 for c in (WETH_ID, DAI_ID)}
    assert both.profit_base >= max(profits.values())


def test_collateral_and_debt_in_one_asset_needs_no_pool():
    position = user("0xsame", {USDC_ID: dataclasses.replace(coll(1_000 * E6), scaled_variable_debt=900 * E6)})
    plan = plan_liquidation(position, _market("3.0"), {}, COSTS)
    assert plan is not None and plan.collateral_id == plan.debt_id == USDC_ID
    assert plan.costs.swap_in == 0 and plan.costs.swap_out == plan.outcome.collateral_seized


def test_no_pool_no_plan():
    position = user("0xdeep", {WETH_ID: coll(E18), USDC_ID: debt(1_700 * E6)})
    assert plan_liquidation(position, _market("3.0"), {}, COSTS) is None


@pytest.mark.parametrize("empty", [(0, 10**7 * E6), (5_000 * E18, 0), (0, 0)])
def test_an_unfunded_pool_is_skipped_and_the_other_pairs_still_plan(empty):
    # a venue pair created but not funded (a zero reserve on either side) is no venue (`pool_reserves`): planning
    # does not fail on it (it divided by the empty side), and the user's other collateral is still planned
    position = user("0xunfunded", {WETH_ID: coll(E18), DAI_ID: coll(200 * E18), USDC_ID: debt(1_900 * E6)})
    market = _market("3.0")
    assert plan_liquidation(position, market, {(WETH_ID, USDC_ID): empty}, COSTS) is None
    pools = {(WETH_ID, USDC_ID): empty, (DAI_ID, USDC_ID): (10**7 * E18, 10**7 * E6)}
    plan = plan_liquidation(position, market, pools, COSTS)
    assert plan is not None and plan.collateral_id == DAI_ID


@pytest.mark.parametrize("case", ["healthy", "grace", "paused"])
def test_a_liquidation_the_pool_would_revert_gives_no_plan(case):
    market = _market("3.6")
    position = user("0xdeep", {WETH_ID: coll(E18), USDC_ID: debt(1_700 * E6)})
    if case == "healthy":
        position = user("0xok", {WETH_ID: coll(E18), USDC_ID: debt(1_000 * E6)})
    elif case == "grace":
        market = _with(market, USDC_ID, liquidation_grace_until=market.timestamp)
    else:
        market = _with(market, WETH_ID, paused=True)
    assert not liquidation_outcome(position, market, WETH_ID, USDC_ID, UINT256_MAX).ok
    assert plan_liquidation(position, market, DEEP, COSTS) is None


def test_a_premium_that_eats_the_profit_gives_no_plan():
    position = user("0xdeep", {WETH_ID: coll(E18), USDC_ID: debt(1_700 * E6)})
    market = _market("3.0")
    assert plan_liquidation(position, market, DEEP, COSTS) is not None
    # 5 % bonus - 10 % of it to the protocol - 0.3 % swap fee leaves ~4.2 %; a 4.5 % premium takes all of it.
    assert plan_liquidation(position, market, DEEP, dataclasses.replace(COSTS, flash_premium_bps=450)) is None
    # So does gas worth more than the bonus ($100 of ETH for an $85 bonus).
    assert plan_liquidation(position, market, DEEP, dataclasses.replace(COSTS, l1_fee_wei=5 * 10**16)) is None


def test_v33_dust_rule_keeps_the_search_below_the_boundary():
    # 3 WETH ($6,000) against 3,000 USDC + 2,000 DAI: HF 0.96, the 50 % cap is 2,500 USDC and would leave $500 of
    # USDC debt: MustNotLeaveDust. The plan repays at most what leaves $1,000.
    position = user("0xdust", {WETH_ID: coll(3 * E18), USDC_ID: debt(3_000 * E6), DAI_ID: debt(2_000 * E18)})
    market = _market("3.3")
    assert liquidation_outcome(position, market, WETH_ID, USDC_ID, UINT256_MAX).reason == "MustNotLeaveDust"
    plan = plan_liquidation(position, market, DEEP, COSTS)
    assert plan is not None and plan.outcome.ok and plan.debt_id == USDC_ID
    assert plan.outcome.debt_repaid == 2_000 * E6  # the largest amount leaving >= $1,000 (the boundary)
    assert not liquidation_outcome(position, market, WETH_ID, USDC_ID, 2_000 * E6 + 1).ok


def test_min_profit_in_base_currency():
    position = user("0xdeep", {WETH_ID: coll(E18), USDC_ID: debt(1_700 * E6)})
    plan = plan_liquidation(position, _market("3.0"), DEEP, COSTS)
    assert plan_liquidation(position, _market("3.0"), DEEP, COSTS, min_profit_base=plan.profit_base) == plan
    assert plan_liquidation(position, _market("3.0"), DEEP, COSTS, min_profit_base=plan.profit_base + 1) is None


def test_the_boundary_search_is_exact_from_any_guess_and_cheap_from_a_close_one():
    for boundary in (1, 2, 999, 10**6 + 7, 10**24 + 3):
        for guess in (None, boundary, boundary - 3, boundary + 5, boundary // 2, boundary * 3, 10**30, 0):
            calls = []

            def accepted(x, b=boundary, calls=calls):
                calls.append(x)
                return x <= b

            assert _largest_accepted(accepted, 1, 10**30, guess) == boundary
            if guess is not None and guess > 1 and abs(guess - boundary) <= 5:
                assert len(calls) <= 8  # a few units off: a handful of evaluations, not a bisection of 10^30
    # a plateau of noise: a plan amount is a local maximum of the integer profit
    noisy = {x: -((x - 500) ** 2) // 10_000 + (x % 3 == 0) for x in range(1, 2_001)}
    best = golden_max(noisy.__getitem__, 1, 2_000, window=2)
    assert noisy[best] >= max(noisy[best - 1], noisy[best + 1])
    # a sawtooth (an 18-decimal debt against a collateral of fewer decimals: the same seizure over 1e10 amounts,
    # profit one unit lower at each) ends in a bounded number of evaluations
    calls = []

    def sawtooth(x):
        calls.append(x)
        return -((x // 10**10 - 3 * 10**9) ** 2) - x % 10**10

    golden_max(sawtooth, 1, 10**22, window=4)
    assert len(calls) < 400


def test_golden_max_finds_the_integer_maximum_of_a_concave_function():
    for peak in (1, 7, 12_345, 10**18 + 3):
        assert golden_max(lambda x, p=peak: -((x - p) ** 2), 1, 10**20) == peak


def test_a_shallow_pool_on_a_seasoned_market_still_finds_the_profitable_slice():
    # Indices far from 1 (as on Base): liquidating 1 wei of debt burns 0 scaled units and reverts
    # (InvalidBurnAmount), and the whole debt swapped through a $200k pool loses more than the 5 % bonus. The
    # search must start from the smallest amount the Pool accepts, not from 1, to find the amounts in between.
    seasoned = _with(
        _with(_market("3.6"), WETH_ID, liquidity_index=RAY * 112 // 100),
        USDC_ID,
        variable_borrow_index=RAY * 118 // 100,
    )
    position = user("0xedge", {WETH_ID: coll(100 * E18), USDC_ID: debt(170_000 * E6)})
    shallow = {(WETH_ID, USDC_ID): (50 * E18, 100_000 * E6)}
    assert not liquidation_outcome(position, seasoned, WETH_ID, USDC_ID, 1).ok
    assert _profit(position, seasoned, WETH_ID, USDC_ID, UINT256_MAX, shallow) < 0
    plan = plan_liquidation(position, seasoned, shallow, COSTS)
    assert plan is not None and plan.profit > 0 and plan.debt_to_cover < plan.outcome.max_liquidatable_debt


def test_inventory_mode_keeps_the_collateral_at_the_oracle_price():
    # The same position with no pool at all: only the debt asset held lets it be liquidated.
    position = user("0xinv", {WETH_ID: coll(E18), USDC_ID: debt(1_700 * E6)})
    market = _market("3.6")
    assert plan_liquidation(position, market, {}, COSTS) is None
    plan = plan_liquidation(position, market, {}, COSTS, inventory={USDC_ID: 10_000 * E6})
    assert plan is not None and plan.mode == "inventory" and plan.costs.flash_premium == 0
    seized, repaid = plan.outcome.collateral_seized, plan.outcome.debt_repaid
    weth, usdc = market.by_id[WETH_ID], market.by_id[USDC_ID]
    value = seized * weth.price * usdc.unit // (usdc.price * weth.unit)  # as the Liquidator values it
    assert plan.profit == value - repaid - plan.costs.gas
    small = plan_liquidation(position, market, {}, COSTS, inventory={USDC_ID: 100 * E6})
    assert small is not None and small.outcome.debt_repaid <= 100 * E6  # never more than held


@pytest.mark.parametrize("version", ["3.0", "3.6"])
def test_the_fast_search_matches_a_full_search_on_random_positions_and_pools(version):
    # The planner searches only the pair whose profit bound is best and only near the swap's analytic optimum; a
    # full golden-section search over every amount of every pair (the reference) must not find more than a few
    # units better (the integer roundings' noise), on positions and pools drawn at random (whales in shallow pools
    # among them).
    rng = random.Random(f"profit-{version}")
    market = _market(version)
    checked = 0
    for k in range(60):
        weth = rng.randint(1, 200) * E18 // rng.choice((1, 10))
        usdc = int(weth * 2_000 // E18 * E6 * rng.uniform(0.80, 0.95) / 0.86)  # HF ~0.9-1.0
        position = user(f"0xr{k}", {WETH_ID: coll(weth), USDC_ID: debt(usdc)})
        depth = rng.choice((20, 100, 1_000, 100_000))
        pools = {(WETH_ID, USDC_ID): (depth * E18, depth * 2_000 * E6 * rng.randint(97, 103) // 100)}
        plan = plan_liquidation(position, market, pools, COSTS)
        top = liquidation_outcome(position, market, WETH_ID, USDC_ID, UINT256_MAX)
        if not top.ok and top.reason != "MustNotLeaveDust":
            assert plan is None
            continue

        def reference(x, position=position, pools=pools):
            value = _profit(position, market, WETH_ID, USDC_ID, x, pools)
            return float("-inf") if value is None else value

        high = top.max_liquidatable_debt
        best = max(reference(golden_max(reference, 1, high)), reference(UINT256_MAX), reference(high))
        if best <= 0:
            assert plan is None or plan.profit > 0
            continue
        checked += 1
        assert plan is not None and plan.profit >= best - 4, (k, plan and plan.profit, best)
    assert checked >= 30


def test_plan_at_reproduces_a_plan_from_its_pair_amount_and_mode_and_refuses_what_no_longer_holds():
    position = user("0xwhale", {WETH_ID: coll(100 * E18), USDC_ID: debt(170_000 * E6)})
    market = _market("3.6")
    shallow = {(USDC_ID, WETH_ID): (120_000 * E6, 60 * E18)}
    plan = plan_liquidation(position, market, shallow, COSTS, timestamp=market.timestamp + 2)
    again = plan_at(
        position,
        market,
        shallow,
        COSTS,
        plan.collateral_id,
        plan.debt_id,
        plan.debt_to_cover,
        plan.mode,
        timestamp=market.timestamp + 2,
    )
    assert dataclasses.replace(again, evaluated=plan.evaluated) == plan
    # the pool drained since: the same amount now loses money
    drained = {(USDC_ID, WETH_ID): (12_000 * E6, 60 * E18)}
    assert plan_at(position, market, drained, COSTS, WETH_ID, USDC_ID, plan.debt_to_cover, "flash") is None
    # inventory mode without inventory, and a pair the user does not hold
    assert plan_at(position, market, shallow, COSTS, WETH_ID, USDC_ID, 1_000 * E6, "inventory") is None
    assert plan_at(position, market, shallow, COSTS, DAI_ID, USDC_ID, 1_000 * E6, "flash") is None


@pytest.mark.parametrize("version", ["3.0", "3.3", "3.5", "3.7"])
def test_the_slippage_bound_is_above_every_amounts_profit(version, monkeypatch):
    # The planner skips a pair whose slippage bound cannot reach the minimum profit or the best pair found: the
    # bound must never be under what some amount earns. Random collateral / debt assets of 6, 8 and 18 decimals,
    # indices above 1, bonuses and protocol fees, premiums, gas, pools from a few dollars deep to far deeper than
    # the position and priced off the oracle; the reference is the best of a full golden-section search, a grid and
    # the ends, each amount evaluated independently (`_profit`).
    rng = random.Random(f"slippage-{version}")
    checked = tight = same_plans = 0
    for k in range(80):
        decimals = rng.sample((6, 8, 18), 2)
        prices = [rng.choice((10**8, 2_000 * 10**8, 60_000 * 10**8)) for _ in decimals]
        collateral_reserve = reserve(
            0, "C", decimals[0], prices[0], 8000, bonus=rng.choice((10_200, 10_500, 11_000)), fee=rng.choice((0, 1000))
        )
        collateral_reserve = dataclasses.replace(collateral_reserve, liquidity_index=RAY + rng.randint(0, RAY // 5))
        debt_reserve = dataclasses.replace(
            reserve(1, "D", decimals[1], prices[1], 8000), variable_borrow_index=RAY + rng.randint(0, RAY // 5)
        )
        market = build_market([collateral_reserve, debt_reserve], version)
        c_unit, d_unit = 10 ** decimals[0], 10 ** decimals[1]
        collateral_usd = rng.choice((2_000, 50_000, 3_000_000))
        held = collateral_usd * c_unit * 10**8 // prices[0]
        owed = int(collateral_usd * rng.uniform(0.81, 1.2) * d_unit * 10**8 // prices[1])  # HF ~0.67-0.99
        position = user(f"0xs{k}", {0: coll(held), 1: debt(owed)})
        depth_usd = rng.choice((5, 1_000, 100_000, 10_000_000))
        offset = rng.uniform(0.9, 1.1)
        pools = {
            (0, 1): (depth_usd * c_unit * 10**8 // prices[0], int(depth_usd * offset * d_unit * 10**8 // prices[1]))
        }
        costs = dataclasses.replace(COSTS, flash_premium_bps=rng.choice((0, 5, 9, 100)))
        gas = gas_in_debt(costs.gas_wei, costs.eth_price, prices[1], d_unit)
        at_max = liquidation_outcome(position, market, 0, 1, UINT256_MAX)
        if not at_max.ok and at_max.reason != "MustNotLeaveDust":
            continue
        pair = _Pair(
            position, market, 0, 1, pools[0, 1], costs.flash_premium_bps, gas, None, account_data(position, market)
        )
        bound = pair.slippage_bound(at_max)
        assert bound is not None

        def reference(x, position=position, market=market, pools=pools, costs=costs):
            value = _profit(position, market, 0, 1, x, pools, costs)
            return float("-inf") if value is None else value

        high = at_max.max_liquidatable_debt
        amounts = {golden_max(reference, 1, high), UINT256_MAX, high} | {max(1, high * i // 200) for i in range(201)}
        best = max(reference(x) for x in amounts)
        if best == float("-inf"):
            continue
        checked += 1
        assert bound >= best, (k, bound, best)
        tight += bound < pair.upper_bound(at_max)
        # and the plan is the one planned without it, at minimum profits around what the pair earns
        for floor_usd in (1, 50, 5_000):
            with monkeypatch.context() as without:
                without.setattr(_Pair, "slippage_bound", lambda self, at: None)
                unpruned = plan_liquidation(position, market, pools, costs, min_profit_base=floor_usd * 10**8)
            plan = plan_liquidation(position, market, pools, costs, min_profit_base=floor_usd * 10**8)
            assert (plan and (plan.debt_to_cover, plan.profit)) == (
                unpruned and (unpruned.debt_to_cover, unpruned.profit)
            )
            same_plans += 1
    assert checked >= 50 and tight >= 10 and same_plans >= 150, (checked, tight, same_plans)


@pytest.mark.parametrize(
    "version, collateral, debt_reserve, held, owed, pool, premium, amount",
    [
        # a 555 % bonus: the price conversion's floor, lost before the bonus multiplies it, is worth 7.5 collateral
        # units at that bonus (a review's counterexample to a fixed rounding allowance)
        (
            "3.7",
            reserve(0, "C", 6, 10**17, 1000, bonus=65535, fee=0),
            reserve(1, "D", 6, 10**11, 8000),
            658,
            100_999_999,
            (65304, 10303088783),
            0,
            98_000_000,
        ),
        # a 3-unit collateral that loses at the largest amount and gains at a smaller one: a bound taken at the
        # largest amount alone was negative (-103) where 418 earns 19
        (
            "3.1",
            reserve(0, "C", 6, 156852990451, 8000, bonus=12674, fee=8876),
            reserve(1, "D", 6, 751133079, 8000),
            3,
            543,
            (972, 214628),
            37,
            418,
        ),
    ],
)
def test_the_bounds_hold_where_rounding_is_coarse(version, collateral, debt_reserve, held, owed, pool, premium, amount):
    market = build_market([collateral, debt_reserve], version)
    position = user("0xcoarse", {0: coll(held), 1: debt(owed)})
    costs = CostInputs(flash_premium_bps=premium, gas_units=0, gas_price_wei=0, l1_fee_wei=0, eth_price=2_000 * 10**8)
    earned = _profit(position, market, 0, 1, amount, {(0, 1): pool}, costs)
    assert earned is not None and earned > 0
    at_max = liquidation_outcome(position, market, 0, 1, UINT256_MAX)
    pair = _Pair(position, market, 0, 1, pool, premium, 0, None, account_data(position, market))
    assert pair.upper_bound(at_max) >= earned
    assert pair.slippage_bound(at_max) >= earned
