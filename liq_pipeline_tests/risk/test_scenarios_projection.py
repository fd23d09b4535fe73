"""Scenarios move every user's prices alike; projections and ETA follow their closed form."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from liq_pipeline.risk.market import Leg, UserPosition, positions_frame
from liq_pipeline.risk.projection import eta_seconds, projected_hf
from liq_pipeline.risk.scenarios import ScenarioSpec, default_specs, scenario_prices, shock_ppm
from liq_pipeline_tests.risk.factories import market, reserve

WETH = reserve(0, "WETH", 18, 3_000 * 10**8, 8300)
USDC = reserve(1, "USDC", 6, 10**8, 7800, stable=True)
AERO = reserve(2, "AERO", 18, 125_000_000, 6500)


def test_collateral_moves_down_and_non_stable_debt_moves_up():
    m = market([WETH, USDC, AERO])
    prices = scenario_prices(ScenarioSpec("adverse", 100, 1.0), m)
    assert prices.collateral == {0: 2_970 * 10**8, 1: 99_000_000, 2: 123_750_000}
    assert prices.debt[0] == 3_030 * 10**8  # a WETH borrower is hurt by WETH going up
    assert prices.debt[1] == 10**8  # stable debt does not move
    assert prices.debt[2] == 126_250_000


def test_baseline_is_the_oracle():
    m = market([WETH, USDC])
    prices = scenario_prices(ScenarioSpec("baseline", 0, 0.0), m)
    assert prices.collateral == prices.debt == m.prices


def test_debt_only_assets_move_and_no_debt_shrinks_for_collateral_of_the_same_asset():
    # A user holding and owing
    # WETH sees collateral valued lower and debt higher, never a smaller debt.
    m = market([WETH, USDC])
    prices = scenario_prices(ScenarioSpec("extreme", 200, 2.0), m)
    assert prices.debt[0] > m.prices[0] > prices.collateral[0]


def test_volatility_scaling_moves_wild_assets_more():
    m = market([WETH, USDC, AERO])
    shocks = shock_ppm(ScenarioSpec("adverse", 100, 1.0), m, {0: 0.0006, 1: 0.00002, 2: 0.0018})
    # reference = median of non-stable volatilities (0.0006, 0.0018) = 0.0012
    assert shocks[0] == 5_000 and shocks[2] == 15_000
    assert shocks[1] == 2_500  # clamped at a quarter of the configured shock


def test_unknown_scenario_is_refused():
    with pytest.raises(ValueError, match="panic"):
        default_specs(["baseline", "panic"])


def _eval(hf, g, sigma, sigmas=1.0, threshold=1.004, horizon=180.0):
    h, gg, s = (np.asarray(v, dtype=np.float64) for v in (hf, g, sigma))
    return pl.DataFrame(
        {"eta": eta_seconds(h, gg, s, sigmas, threshold), "projected": projected_hf(h, gg, s, sigmas, horizon)}
    )


def test_eta_is_zero_below_threshold_even_for_liquidatable_users():
    # A liquidatable user's ETA is 0, never the full horizon.
    out = _eval([0.95, 1.002], [0.0, 0.0], [0.0, 0.0])
    assert out["eta"].to_list() == [0.0, 0.0]


def test_eta_closed_form_matches_the_path():
    rng = np.random.default_rng(5)
    hf = rng.uniform(1.01, 1.2, 200)
    g = rng.uniform(-2e-4, 2e-4, 200)
    sigma = rng.uniform(0, 3e-3, 200)
    out = _eval(hf.tolist(), g.tolist(), sigma.tolist(), sigmas=2.0)
    for h, gg, s, eta in zip(hf, g, sigma, out["eta"].to_list(), strict=True):
        path = lambda t, h=h, gg=gg, s=s: math.log(h) + gg * t - 2.0 * s * math.sqrt(t) - math.log(1.004)  # noqa: E731
        if math.isinf(eta):
            ts = np.linspace(0, 1e7, 20001)
            assert min(path(t) for t in ts) > -1e-9  # never crosses
        else:
            assert abs(path(eta)) < 1e-9
            assert all(path(t) > 0 for t in np.linspace(0, eta, 50)[:-1])  # and it is the first crossing


def test_no_drift_no_volatility_never_crosses():
    out = _eval([1.1], [0.0], [0.0])
    assert out["eta"].to_list() == [math.inf]
    assert out["projected"].to_list() == [pytest.approx(1.1)]


def test_negative_drift_crosses_at_log_distance_over_drift():
    out = _eval([1.1], [-1e-4], [0.0])
    assert out["eta"][0] == pytest.approx(math.log(1.1 / 1.004) / 1e-4)


def test_projected_hf_follows_drift_and_band():
    out = _eval([1.2], [-1e-4], [1e-3], sigmas=2.0, horizon=100.0)
    assert out["projected"][0] == pytest.approx(1.2 * math.exp(-1e-4 * 100 - 2.0 * 1e-3 * 10))


def test_frame_positions_roundtrip_through_the_wide_layout():
    m = market([WETH, USDC])
    frame = positions_frame([UserPosition("0x1", 0, {0: Leg(5, 0, 0, True), 1: Leg(0, 7, 0, False)})], m.reserve_ids)
    assert frame.row(0, named=True) == {
        "user": "0x1",
        "emode": 0,
        "coll_0": 5,
        "debt_0": 0,
        "on_0": True,
        "coll_1": 0,
        "debt_1": 7,
        "on_1": False,
    }
