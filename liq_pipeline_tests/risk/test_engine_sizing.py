"""The engine end to end on hand-made users: candidates, ETA, sizing, the per-tick cap."""

from __future__ import annotations

import polars as pl
import pytest

from liq_pipeline.risk.engine import evaluate
from liq_pipeline.risk.market import positions_frame
from liq_pipeline.risk.params import AssetTrend, EngineParams
from liq_pipeline.risk.scenarios import default_specs
from liq_pipeline_tests.risk.factories import both, coll, debt, market, reserve, user

WETH = reserve(0, "WETH", 18, 2_000 * 10**8, 8000, bonus=10500, fee=1000)
USDC = reserve(1, "USDC", 6, 10**8, 7800, stable=True)
ALL = ["baseline", "adverse", "extreme"]


def _run(users, version="3.0", trends=None, scenarios=ALL, **params):
    m = market([WETH, USDC], version)
    frame = positions_frame(users, m.reserve_ids)
    return evaluate(frame, m, EngineParams(default_specs(scenarios), **params), trends)


def _row(result, address, scenario):
    rows = result.candidates.filter((pl.col("user") == address) & (pl.col("scenario") == scenario))
    return rows.row(0, named=True) if rows.height else None


def test_sizing_half_close_factor_with_bonus_and_fee():
    # 1.2125 WETH ($2425, LT 80 % -> $1940) against $2000 USDC: HF 0.97 -> 50 % close factor.
    result = _run([user("0xa", {0: coll(12125 * 10**14), 1: debt(2_000 * 10**6)})])
    row = _row(result, "0xa", "baseline")
    assert row["hf_current"] == pytest.approx(0.97)
    assert row["liquidatable_now"] and row["eta_sec"] == 0.0
    assert (row["debt_reserve"], row["collateral_reserve"], row["close_factor"]) == (1, 0, 0.5)
    usd = 10**8
    assert row["debt_to_cover_base"] == pytest.approx(1_000 * usd)
    assert row["collateral_seized_base"] == pytest.approx(1_050 * usd)  # 5 % bonus
    assert row["protocol_fee_base"] == pytest.approx(5 * usd)  # 10 % of the $50 bonus
    assert row["expected_profit_base"] == pytest.approx(45 * usd)


def test_sizing_full_close_below_095_and_capped_by_collateral():
    # $1000 WETH collateral, $900 USDC debt: HF 0.889 -> close factor 100 %, but only $1000 of collateral:
    # seized $1000, debt covered 1000 / 1.05.
    result = _run([user("0xb", {0: coll(5 * 10**17), 1: debt(900 * 10**6)})])
    row = _row(result, "0xb", "baseline")
    assert row["close_factor"] == 1.0
    usd = 10**8
    assert row["collateral_seized_base"] == pytest.approx(945 * usd)  # 900 x 1.05 fits under $1000
    result = _run([user("0xc", {0: coll(4 * 10**17), 1: debt(900 * 10**6)})])
    row = _row(result, "0xc", "baseline")
    assert row["collateral_seized_base"] == pytest.approx(800 * usd)
    assert row["debt_to_cover_base"] == pytest.approx(800 / 1.05 * usd)
    assert row["protocol_fee_base"] == pytest.approx((800 - 800 / 1.05) * 0.1 * usd)


def test_v33_small_positions_close_in_full():
    small = user("0xs", {0: coll(6 * 10**17), 1: debt(1_000 * 10**6)})  # $1200 collateral, HF 0.96
    assert _row(_run([small], "3.0"), "0xs", "baseline")["close_factor"] == 0.5
    assert _row(_run([small], "3.3"), "0xs", "baseline")["close_factor"] == 1.0


def test_scenarios_catch_users_the_baseline_misses():
    # HF 1.008 today: above 1 + 40 bps, flat prices: not a baseline candidate; a 1 % adverse shock crosses it.
    safe_ish = user("0xd", {0: coll(1_260 * 10**15), 1: debt(2_000 * 10**6)})
    result = _run([safe_ish])
    assert _row(result, "0xd", "baseline") is None
    adverse = _row(result, "0xd", "adverse")
    assert adverse is not None and adverse["hf_scenario"] < 1.004 and adverse["eta_sec"] == 0.0


def test_a_weth_borrower_is_hurt_by_weth_rising():
    # USDC collateral, WETH debt: the adverse scenario must move WETH debt UP.
    borrower = user("0xe", {1: coll(2_600 * 10**6), 0: debt(1 * 10**18)})  # 2600 x 0.78 / 2000 = 1.014
    result = _run([borrower])
    users = result.users.row(0, named=True)
    assert users["hf_adverse"] < users["hf_current"]
    assert users["hf_extreme"] < users["hf_adverse"]


def test_trend_drives_eta_within_horizon():
    user_a = user("0xf", {0: coll(1_275 * 10**15), 1: debt(2_000 * 10**6)})  # HF 1.02
    falling = {0: AssetTrend(drift_per_sec=-2e-4, volatility_per_sqrt_sec=None)}
    result = _run([user_a], trends=falling, scenarios=["baseline"])
    row = _row(result, "0xf", "baseline")
    assert row is not None and 0 < row["eta_sec"] <= 180
    flat = _run([user_a], scenarios=["baseline"])
    assert _row(flat, "0xf", "baseline") is None


def test_interest_alone_moves_the_projection():
    usdc = reserve(1, "USDC", 6, 10**8, 8000, stable=True, borrow_rate=10**27 * 50, liquidity_rate=0)
    m = market([WETH, usdc])
    frame = positions_frame([user("0xg", {1: both(1_000 * 10**6, 799 * 10**6)})], m.reserve_ids)
    result = evaluate(frame, m, EngineParams(default_specs(["baseline"])))
    row = result.users.row(0, named=True)
    assert row["hf_projected_baseline"] < row["hf_baseline"]
    assert row["eta_baseline"] < 180


def test_users_without_debt_are_never_candidates():
    result = _run([user("0xh", {0: coll(10**18)})])
    assert result.candidates.height == 0
    assert result.users["hf_current"].to_list() == [float("inf")]
