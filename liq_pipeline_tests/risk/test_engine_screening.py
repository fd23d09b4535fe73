"""The engine evaluates shocked scenarios only for users whose HF in them could fall under the reach bound, and
projects only users whose ETA can fall within the horizon: the candidates must be exactly those of evaluating and
projecting every user, and `users` must show every user's values."""

from __future__ import annotations

import numpy as np
import pytest

from liq_pipeline.risk.book import build_book
from liq_pipeline.risk.engine import evaluate
from liq_pipeline.risk.health import health_factors
from liq_pipeline.risk.params import AssetTrend, EngineParams
from liq_pipeline.risk.projection import eta_seconds, growth_and_sigma, projected_hf
from liq_pipeline.risk.scenarios import default_specs
from liq_pipeline.risk.synthetic import sample
from liq_pipeline.risk.valuation import collateral_weights, debt_weights


@pytest.mark.parametrize(("seed", "drift", "vol_scale"), [(1, 0.0, 1.0), (2, -2e-4, 5.0), (3, 3e-4, 20.0)])
def test_screened_projection_equals_projecting_everyone(seed: int, drift: float, vol_scale: float):
    market_sample = sample(4_000, seed=seed, near_one_share=0.05)
    market = market_sample.market
    trends = {r: AssetTrend(drift * (1 if r % 2 else -1), v * vol_scale) for r, v in market_sample.volatility.items()}
    params = EngineParams(default_specs(["baseline", "adverse", "extreme"]), horizon_sec=600.0)
    book = build_book(market_sample.positions, market)
    result = evaluate(book, market, params, trends)
    drifts = {r: t.drift_per_sec for r, t in trends.items()}
    volatility = {r: t.volatility_per_sqrt_sec for r, t in trends.items()}
    skipped = sum(int(np.isnan(result.projected[s.name]).sum()) for s in params.scenarios)
    assert skipped > 0  # the screen did skip users (else this test proves nothing)
    screened = sum(int(np.isnan(result.hf[s.name]).sum()) for s in params.scenarios)
    assert screened > 0
    masks = {name: mask.copy() for name, mask in result.candidate_mask.items()}
    for spec in params.scenarios:
        prices = result.scenario_prices[spec.name]
        reference = health_factors(book, market, [prices])  # every user, no screening
        hf = reference[f"hf_{spec.name}"].to_numpy()
        weighted = book.weighted @ _weights(market, prices, book)[0]
        debt = book.debt @ _weights(market, prices, book)[1]
        g, sigma = growth_and_sigma(market, prices, book, drifts, volatility, weighted, debt)
        eta = eta_seconds(hf, g, sigma, spec.sigmas, params.threshold)
        # the same candidates, with the same ETAs, as projecting every user
        np.testing.assert_array_equal(masks[spec.name], eta <= params.horizon_sec)
        within = eta <= params.horizon_sec
        np.testing.assert_allclose(result.eta[spec.name][within], eta[within], rtol=1e-9)
        users = result.users
        np.testing.assert_array_equal(users[f"hf_{spec.name}"].to_numpy() < 1.0, hf < 1.0)
        np.testing.assert_allclose(users[f"hf_{spec.name}"].to_numpy(), hf, rtol=1e-9)
        np.testing.assert_allclose(users[f"eta_{spec.name}"].to_numpy(), eta, rtol=1e-6)
        expected = projected_hf(hf, g, sigma, spec.sigmas, params.horizon_sec)
        np.testing.assert_allclose(users[f"hf_projected_{spec.name}"].to_numpy(), expected, rtol=1e-6)


def _weights(market, prices, book):
    return collateral_weights(market, prices, book.reserve_ids), debt_weights(market, prices, book.reserve_ids)
