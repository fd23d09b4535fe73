"""Price window statistics: exactly N returns, drift and volatility per second, irregular spacing."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from liq_pipeline.risk.price_window import price_window_stats


def _frame(rows):
    return pl.DataFrame(rows, schema={"asset": pl.String, "timestamp": pl.Int64, "price": pl.Float64}, orient="row")


def test_window_of_n_uses_n_returns():
    rows = [("ETH", 2 * k, 3000.0 + k) for k in range(100)]
    stats = price_window_stats(_frame(rows), window=20, ema_span=5)
    assert stats["returns"].to_list() == [20]
    expected_drift = math.log(3099.0 / 3079.0) / 40
    assert stats["drift_per_sec"][0] == pytest.approx(expected_drift)


def test_volatility_per_sqrt_second_of_a_known_walk():
    rng = np.random.default_rng(1)
    sigma, dt = 0.001, 2.0
    steps = rng.normal(0.0, sigma * math.sqrt(dt), 20_000)
    prices = 3000.0 * np.exp(np.cumsum(steps))
    rows = [("ETH", int(dt * k), float(p)) for k, p in enumerate(prices)]
    stats = price_window_stats(_frame(rows), window=19_999, ema_span=20)
    assert stats["volatility_per_sqrt_sec"][0] == pytest.approx(sigma, rel=0.03)


def test_irregular_spacing_and_duplicate_timestamps():
    rows = [("BTC", 0, 100.0), ("BTC", 10, 110.0), ("BTC", 10, 121.0), ("BTC", 30, 121.0), ("USDC", 5, 1.0)]
    stats = price_window_stats(_frame(rows), window=10, ema_span=3).sort("asset")
    btc = stats.row(0, named=True)
    assert btc["returns"] == 2  # the duplicate timestamp keeps its last price
    assert btc["drift_per_sec"] == pytest.approx(math.log(1.21) / 30)
    assert btc["last_price"] == 121.0
    usdc = stats.row(1, named=True)
    assert usdc["returns"] == 0 and usdc["volatility_per_sqrt_sec"] is None  # unknown, not zero


def test_ema_follows_prices():
    rows = [("ETH", k, 100.0) for k in range(10)] + [("ETH", 10, 200.0)]
    stats = price_window_stats(_frame(rows), window=10, ema_span=3)
    assert stats["ema"][0] == pytest.approx(150.0)  # alpha = 2 / (3 + 1) = 0.5
