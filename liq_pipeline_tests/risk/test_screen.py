"""The screen skips users proven far from liquidation: along random price paths (with positions changing on the
way), every decision (liquidatable now, candidate per scenario) and every candidate's ETA must equal those of
evaluating every user."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest

from liq_pipeline.risk.book import build_book
from liq_pipeline.risk.engine import evaluate
from liq_pipeline.risk.market import MarketState
from liq_pipeline.risk.params import AssetTrend, EngineParams
from liq_pipeline.risk.scenarios import default_specs
from liq_pipeline.risk.screen import MAX_AGE_BLOCKS
from liq_pipeline.risk.synthetic import sample
from liq_pipeline_tests.risk.factories import baseline_start, traffic


def _moved(market: MarketState, rng: random.Random, step_bps: float, seconds: int) -> MarketState:
    reserves = tuple(
        dataclasses.replace(r, price=max(1, int(r.price * (1 + rng.gauss(0, step_bps / 10_000)))))
        if not r.is_stable
        else r
        for r in market.reserves
    )
    return dataclasses.replace(market, reserves=reserves, block=market.block + 1, timestamp=market.timestamp + seconds)


@pytest.mark.parametrize(("seed", "step_bps"), [(1, 5.0), (2, 30.0), (3, 120.0)])
def test_screened_decisions_equal_evaluating_everyone(seed: int, step_bps: float):
    rng = random.Random(seed)
    market_sample = sample(3_000, seed=seed, near_one_share=0.05)
    market = market_sample.market
    trends = {r: AssetTrend(0.0, v) for r, v in market_sample.volatility.items()}
    params = EngineParams(default_specs(["baseline", "adverse", "extreme"]))
    book = build_book(market_sample.positions, market)
    spare = build_book(sample(200, seed=seed + 100).positions, market).positions  # positions to move users to
    screen, skipped_blocks, full_blocks = None, 0, 0
    for step in range(40):
        if step % 7 == 3:  # some users' positions change (re-read after their events), one arrives
            traffic(book, spare, market, rng, step)
        screened = evaluate(book, market, params, trends, screen=screen)
        full = evaluate(book, market, params, trends)
        if screened.stale is not None:
            skipped_blocks += 1
        else:
            full_blocks += 1
        np.testing.assert_array_equal(screened.hf_current < 1.0, full.hf_current < 1.0)
        for name in full.candidate_mask:
            np.testing.assert_array_equal(screened.candidate_mask[name], full.candidate_mask[name])
            mask = full.candidate_mask[name]
            np.testing.assert_allclose(screened.eta[name][mask], full.eta[name][mask], rtol=1e-9)
        assert screened.candidates.equals(full.candidates)
        screen = screened.screen
        market = _moved(market, rng, step_bps, 2)
    assert skipped_blocks > 0  # the screen was used...
    assert full_blocks >= 1  # ...and renewed when needed (the first block at least)


def test_a_screen_expires_with_age():
    market, params, book, first = baseline_start(500, seed=4)
    later = dataclasses.replace(market, block=market.block + MAX_AGE_BLOCKS, timestamp=market.timestamp + 600)
    assert evaluate(book, later, params, screen=first.screen).stale is None  # evaluated everyone again
    soon = dataclasses.replace(market, block=market.block + 1, timestamp=market.timestamp + 2)
    assert evaluate(book, soon, params, screen=first.screen).stale is not None


def test_users_shows_every_value_even_when_screened():
    market_sample = sample(1_000, seed=5)
    market = market_sample.market
    params = EngineParams(default_specs(["baseline", "adverse"]))
    book = build_book(market_sample.positions, market)
    first = evaluate(book, market, params)
    soon = dataclasses.replace(market, block=market.block + 1, timestamp=market.timestamp + 2)
    screened = evaluate(book, soon, params, screen=first.screen)
    assert screened.stale is not None and screened.stale.size > 0
    full = evaluate(book, soon, params)
    for column in full.users.columns[1:]:
        np.testing.assert_allclose(screened.users[column].to_numpy(), full.users[column].to_numpy(), rtol=1e-9)
