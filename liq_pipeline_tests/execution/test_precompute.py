"""execution.precompute against a real redis-server: built once, kept while nothing changes, rebuilt when a price
of the plan's reserves or the position changes, dropped when the user leaves the top K."""

from __future__ import annotations

import dataclasses

import pytest

from liq_pipeline.execution.calldata import compact_calldata, standard_calldata
from liq_pipeline.execution.precompute import PrecomputeCalldata, PrecomputeCandidate, at_crossing_prices
from liq_pipeline.risk.exact import account_data
from liq_pipeline.risk.profit import CostInputs, plan_at, plan_liquidation
from liq_pipeline_tests.risk.factories import coll, debt, user
from liq_pipeline_tests.risk.test_liquidation import _market

pytestmark = pytest.mark.integration

E18, E6 = 10**18, 10**6
POOLS = {(0, 1): (10_000 * E18, 20_000_000 * E6), (2, 1): (10**7 * E18, 10**7 * E6)}
COSTS = CostInputs(5, 600_000, 10**7, 2 * 10**11, 2_000 * 10**8)


def _users(n: int, debt_usdc: int = 1_700):
    return [user(f"0x{i + 1:040x}", {0: coll(E18), 1: debt((debt_usdc + i) * E6)}) for i in range(n)]


def _candidates(positions, etas=None):
    return [
        PrecomputeCandidate(p, eta=(etas or {}).get(p.user, float(i)), profit_estimate=1.0)
        for i, p in enumerate(positions)
    ]


def _with_price(market, reserve_id, price):
    reserves = tuple(dataclasses.replace(r, price=price) if r.reserve_id == reserve_id else r for r in market.reserves)
    return dataclasses.replace(market, reserves=reserves)


def test_built_once_then_kept_while_nothing_changes(client, keys):
    market = _market("3.6")
    positions = _users(3)
    pre = PrecomputeCalldata(client, keys, top_k=2, compact=True)
    first = pre.refresh(100, market, _candidates(positions), POOLS, COSTS)
    assert first.built == [positions[0].user, positions[1].user] and not first.kept and not first.dropped
    entry = pre.get(positions[0].user)
    plan = plan_liquidation(positions[0], market, POOLS, COSTS)
    assert entry.block == 100 and entry.compact and entry.to == keys.pool
    assert entry.calldata == compact_calldata(0, 1, positions[0].user, plan.debt_to_cover)
    assert entry.plan["debt_to_cover"] == plan.debt_to_cover and entry.plan["profit"] == plan.profit
    assert entry.fingerprint.startswith("0:1:")
    assert client.hkeys(keys.key("execution:precomputed")) and pre.users() == {p.user for p in positions[:2]}

    second = pre.refresh(101, market, _candidates(positions), POOLS, COSTS)
    assert second.kept == [positions[0].user, positions[1].user] and not second.built
    assert pre.get(positions[0].user).block == 100  # untouched: still the block it was built at


def test_rebuilt_when_a_price_of_its_pair_or_the_position_changes(client, keys):
    market = _market("3.6")
    positions = _users(2)
    pre = PrecomputeCalldata(client, keys, top_k=5, compact=False)
    pre.refresh(100, market, _candidates(positions), POOLS, COSTS)
    # A reserve the plan does not use: nothing rebuilt.
    assert pre.refresh(101, _with_price(market, 2, 101_000_000), _candidates(positions), POOLS, COSTS).built == []
    # The collateral's price: every plan on WETH is rebuilt.
    cheaper = _with_price(market, 0, 1_990 * 10**8)
    report = pre.refresh(102, cheaper, _candidates(positions), POOLS, COSTS)
    assert report.built == [p.user for p in positions] and pre.get(positions[0].user).block == 102
    plan = plan_liquidation(positions[0], cheaper, POOLS, COSTS)
    assert pre.get(positions[0].user).calldata == standard_calldata(
        plan.collateral_asset, plan.debt_asset, positions[0].user, plan.debt_to_cover
    )
    # One user's position: only that user is rebuilt.
    moved = [user(positions[0].user, {0: coll(E18), 1: debt(1_750 * E6)}), positions[1]]
    report = pre.refresh(103, cheaper, _candidates(moved), POOLS, COSTS)
    assert report.built == [positions[0].user] and report.kept == [positions[1].user]
    assert pre.get(positions[0].user).plan["debt_repaid"] == 1_750 * E6


def test_dropped_when_the_user_leaves_the_top_k(client, keys):
    market = _market("3.6")
    positions = _users(3)
    pre = PrecomputeCalldata(client, keys, top_k=2, compact=True)
    pre.refresh(100, market, _candidates(positions), POOLS, COSTS)
    # The third user's ETA is now the soonest: it enters, the second leaves.
    etas = {positions[0].user: 5.0, positions[1].user: 9.0, positions[2].user: 0.0}
    report = pre.refresh(101, market, _candidates(positions, etas), POOLS, COSTS)
    assert report.built == [positions[2].user] and report.kept == [positions[0].user]
    assert report.dropped == [positions[1].user]
    assert pre.users() == {positions[0].user, positions[2].user} and pre.get(positions[1].user) is None
    # Ties on ETA go to the larger estimated profit.
    ranked = pre.top([PrecomputeCandidate(p, 1.0, profit_estimate=float(i)) for i, p in enumerate(positions)])
    assert [c.position.user for c in ranked] == [positions[2].user, positions[1].user]
    # K = 0 drops everything.
    assert sorted(
        PrecomputeCalldata(client, keys, top_k=0, compact=True).refresh(102, market, [], POOLS, COSTS).dropped
    ) == sorted([positions[0].user, positions[2].user])


def test_a_candidate_without_a_plan_is_remembered_until_a_price_moves(client, keys):
    market = _market("3.6")
    # WETH collateral, DAI debt: no WETH/DAI pair to sell on, no inventory: no plan, even where it would cross
    stranded = user("0x" + "77" * 20, {0: coll(E18), 2: debt(1_500 * E18)})
    pre = PrecomputeCalldata(client, keys, top_k=3, compact=True)
    assert pre.refresh(100, market, _candidates([stranded]), POOLS, COSTS).built == [stranded.user]
    entry = pre.get(stranded.user)
    assert entry.plan is None and entry.calldata is None and entry.fingerprint.startswith("-:-:")
    assert pre.hint(stranded) is None
    assert pre.refresh(101, market, _candidates([stranded]), POOLS, COSTS).kept == [stranded.user]
    assert pre.refresh(102, _with_price(market, 1, 10**8 + 1), _candidates([stranded]), POOLS, COSTS).kept
    moved = _with_price(market, 0, 1_800 * 10**8)  # a price of one of its reserves: planned again
    assert pre.refresh(103, moved, _candidates([stranded]), POOLS, COSTS).built == [stranded.user]


def test_a_user_not_liquidatable_yet_is_planned_where_it_would_cross_and_hinted_until_its_position_changes(
    client, keys
):
    market = _market("3.6")
    healthy = user("0x" + "78" * 20, {0: coll(E18), 1: debt(1_500 * E6)})  # HF 1.07 at 2,000
    pre = PrecomputeCalldata(client, keys, top_k=3, compact=True)
    assert pre.refresh(100, market, [PrecomputeCandidate(healthy, eta=30.0)], POOLS, COSTS).built == [healthy.user]
    entry = pre.get(healthy.user)
    # planned as the Pool would liquidate it with WETH priced where its HF is 0.995
    health = account_data(healthy, market).health_factor
    crossing = at_crossing_prices(market, healthy, health)
    assert 0.994 < account_data(healthy, crossing).health_factor / 10**18 < 0.996
    assert crossing.by_id[1].price == market.by_id[1].price  # the debt is not repriced
    expected = plan_liquidation(healthy, crossing, POOLS, COSTS)
    assert expected is not None and entry.plan["debt_to_cover"] == expected.debt_to_cover
    assert entry.plan["profit"] == expected.profit
    assert entry.fingerprint.startswith("0:1:")
    # the executor's hint holds whatever the prices, while the position is the same
    assert pre.hint(healthy)["debt_to_cover"] == expected.debt_to_cover
    crossed = _with_price(market, 0, 1_790 * 10**8)
    assert pre.hint(user(healthy.user, {0: coll(E18), 1: debt(1_600 * E6)})) is None  # another position
    # at the prices it crossed at, the hint evaluated exactly at the real state is a plan, one evaluation
    record = pre.hint(healthy)
    pair = record["collateral_id"], record["debt_id"]
    plan = plan_at(healthy, crossed, POOLS, COSTS, *pair, record["debt_to_cover"], record["mode"])
    assert plan is not None and plan.profit > 0
    # a user liquidatable now is planned at the current prices
    pre.refresh(101, crossed, [PrecomputeCandidate(healthy, eta=0.0)], POOLS, COSTS)
    assert pre.get(healthy.user).plan["debt_to_cover"] == plan_liquidation(healthy, crossed, POOLS, COSTS).debt_to_cover
