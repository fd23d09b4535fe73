"""Blocks without price moves carry the previous block's values for users far from every decision: along quiet
stretches where interest runs fast (hours between blocks, so decisions do flip), reserve rates change and
positions change, every decision (liquidatable now, candidate per scenario) must equal those of evaluating every
user, every candidate's ETA must lie within a tenth of the writer's resolution of it at Base's block time (with
hours between blocks a carried ETA is the one computed blocks before), and `users` must give every value as of
the block."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest

from liq_pipeline.risk.book import build_book
from liq_pipeline.risk.carry import MAX_CARRY_BLOCKS, band_minimum
from liq_pipeline.risk.engine import evaluate
from liq_pipeline.risk.market import MarketState
from liq_pipeline.risk.params import AssetTrend, EngineParams
from liq_pipeline.risk.projection import eta_seconds
from liq_pipeline.risk.scenarios import default_specs
from liq_pipeline.risk.synthetic import sample
from liq_pipeline.watch.candidates import ETA_RELATIVE, ETA_RESOLUTION_SEC
from liq_pipeline_tests.risk.factories import baseline_start, traffic


def _later(market: MarketState, seconds: int, rng: random.Random, rate_change: float) -> MarketState:
    """The next block, `seconds` later; with `rate_change`, some reserves' rates move (their indices are then
    written at this block, as the Pool does on every supply or borrow)."""
    timestamp = market.timestamp + seconds
    moved = dataclasses.replace(market, block=market.block + 1, timestamp=timestamp)
    if not rate_change:
        return moved
    reserves = []
    for r in market.reserves:
        if rng.random() < 0.5:
            factor = 1 + rng.uniform(-rate_change, rate_change)
            r = dataclasses.replace(
                r,
                liquidity_index=moved.income_index[r.reserve_id],
                variable_borrow_index=moved.debt_index[r.reserve_id],
                last_update_timestamp=timestamp,
                liquidity_rate=int(r.liquidity_rate * factor),
                variable_borrow_rate=int(r.variable_borrow_rate * factor),
            )
        reserves.append(r)
    return dataclasses.replace(moved, reserves=tuple(reserves))


def _priced(market: MarketState, rng: random.Random) -> MarketState:
    reserves = tuple(
        dataclasses.replace(r, price=max(1, int(r.price * (1 + rng.gauss(0, 0.002))))) if not r.is_stable else r
        for r in market.reserves
    )
    return dataclasses.replace(market, reserves=reserves)


def _fast_interest(market: MarketState) -> MarketState:
    """Borrow rates of 40-80 % a year: hours between blocks then move HFs across decisions."""
    reserves = tuple(
        dataclasses.replace(
            r,
            variable_borrow_rate=int((0.4 + 0.1 * (r.reserve_id % 5)) * 10**27),
            liquidity_rate=int((0.1 + 0.02 * (r.reserve_id % 5)) * 10**27),
        )
        for r in market.reserves
    )
    return dataclasses.replace(market, reserves=reserves)


@pytest.mark.parametrize(("seed", "seconds", "rate_change"), [(1, 2, 0.0), (2, 3_600, 0.0), (3, 7_200, 0.2)])
def test_carried_decisions_equal_evaluating_everyone(seed: int, seconds: int, rate_change: float):
    rng = random.Random(seed)
    market_sample = sample(3_000, seed=seed, near_one_share=0.2)
    market = _fast_interest(market_sample.market)
    trends = {r: AssetTrend(1e-7 * (r - 2), v) for r, v in market_sample.volatility.items()}
    params = EngineParams(default_specs(["baseline", "adverse", "extreme"]))
    book = build_book(market_sample.positions, market)
    spare = build_book(sample(200, seed=seed + 100).positions, market).positions
    previous, carried_blocks, flips = None, 0, 0
    for step in range(45):
        if step % 5 == 2:  # some users' positions change (re-read after their events), one arrives
            traffic(book, spare, market, rng, step)
        screen = previous.screen if previous is not None else None
        carried = evaluate(book, market, params, trends, screen=screen, previous=previous)
        full = evaluate(book, market, params, trends)
        carried_blocks += carried.carried
        np.testing.assert_array_equal(carried.hf_current < 1.0, full.hf_current < 1.0)
        for name in full.candidate_mask:
            np.testing.assert_array_equal(carried.candidate_mask[name], full.candidate_mask[name])
            if seconds <= 2:  # carried ETAs are a few blocks old: within a tenth of the writer's resolution
                mask = full.candidate_mask[name]
                expected = full.eta[name][mask]
                resolution = np.maximum(ETA_RESOLUTION_SEC, ETA_RELATIVE * expected)
                assert np.all(np.abs(carried.eta[name][mask] - expected) <= 0.1 * resolution)
        if previous is not None:
            flips += int(((previous.hf_current < 1.0) != (full.hf_current[: previous.hf_current.size] < 1.0)).sum())
        previous = carried
        market = _later(market, seconds, rng, rate_change)
        if step == 30:
            market = _priced(market, rng)  # a price moves: that block is evaluated in full again
    assert carried_blocks >= 30  # the carry was used on most blocks...
    if seconds > 2:
        assert flips > 0  # ...and interest did move users across a decision it had to catch


def test_a_quiet_block_evaluates_few_users_and_a_price_move_ends_the_carry():
    market_sample = sample(5_000, seed=7, near_one_share=0.01)
    market = market_sample.market
    trends = {r: AssetTrend(0.0, v) for r, v in market_sample.volatility.items()}
    params = EngineParams(default_specs(["baseline", "adverse", "extreme"]))
    book = build_book(market_sample.positions, market)
    first = evaluate(book, market, params, trends)
    quiet = _later(market, 2, random.Random(0), 0.0)
    second = evaluate(book, quiet, params, trends, screen=first.screen, previous=first)
    assert second.carried and second.evaluated < first.evaluated / 20
    moved = _priced(_later(quiet, 2, random.Random(1), 0.0), random.Random(1))
    third = evaluate(book, moved, params, trends, screen=second.screen, previous=second)
    assert not third.carried
    changed_trends = {r: AssetTrend(0.0, 1.01 * t.volatility_per_sqrt_sec) for r, t in trends.items()}
    fourth = evaluate(book, _later(moved, 2, random.Random(2), 0.0), params, changed_trends, previous=third)
    assert not fourth.carried


def test_the_carry_ends_after_max_blocks():
    market, params, book, previous = baseline_start(500, seed=8)
    kinds = []
    for _ in range(MAX_CARRY_BLOCKS + 2):
        market = _later(market, 2, random.Random(0), 0.0)
        previous = evaluate(book, market, params, screen=previous.screen, previous=previous)
        kinds.append(previous.carried)
    assert kinds[:MAX_CARRY_BLOCKS] == [True] * MAX_CARRY_BLOCKS and kinds[MAX_CARRY_BLOCKS] is False


def test_users_shows_every_value_as_of_the_block_even_when_carried():
    market_sample = sample(1_000, seed=5)
    market = _fast_interest(market_sample.market)
    params = EngineParams(default_specs(["baseline", "adverse"]))
    book = build_book(market_sample.positions, market)
    first = evaluate(book, market, params)
    later = _later(market, 600, random.Random(0), 0.0)
    carried = evaluate(book, later, params, screen=first.screen, previous=first)
    assert carried.carried and carried.stale.size > 0
    full = evaluate(book, later, params)
    for column in full.users.columns[1:]:
        np.testing.assert_allclose(carried.users[column].to_numpy(), full.users[column].to_numpy(), rtol=1e-9)


def test_band_minimum_is_negative_exactly_when_the_eta_is_within_the_horizon():
    rng = np.random.default_rng(3)
    hf = np.exp(rng.uniform(-0.05, 0.3, 20_000))
    g = rng.normal(0, 3e-4, hf.size)
    sigma = np.abs(rng.normal(0, 5e-3, hf.size)) * (rng.random(hf.size) < 0.8)
    for sigmas in (0.0, 1.0, 2.0):
        f = band_minimum(hf, g, sigma, sigmas, 1.004, 180.0)
        eta = eta_seconds(hf, g, sigma, sigmas, 1.004)
        clear = np.abs(f) > 1e-9  # at the tangent point itself both are a rounding away from the other side
        np.testing.assert_array_equal((f <= 0)[clear], (eta <= 180.0)[clear])


def _twelve_blocks(seed: int, newcomers: int = 0) -> tuple[dict[bool, list], int]:
    """Twelve blocks evaluated twice, copying the carried arrays and taking them over (reuse_previous); with
    `newcomers`, that many users appended to the book at each block from the third on (200 in all). Returns, per
    mode, each block's (carried, hf_current, eta), and how many blocks grew a taken-over array in place."""
    market_sample = sample(2_000, seed=seed, near_one_share=0.05)
    params = EngineParams(default_specs(["baseline", "adverse", "extreme"]))
    trends = {r: AssetTrend(0.0, v) for r, v in market_sample.volatility.items()}
    arriving = 10 * newcomers
    first, later = market_sample.positions.head(2_000 - arriving), market_sample.positions.tail(arriving)
    results, grown_in_place = {}, 0
    for reuse in (False, True):
        market = _fast_interest(market_sample.market)
        book = build_book(first, market)
        previous, seen = None, []
        for step in range(12):
            if newcomers and step >= 2:
                book.update(later.slice(newcomers * (step - 2), newcomers), market)
            current = evaluate(
                book, market, params, trends, screen=previous and previous.screen, previous=previous,
                reuse_previous=reuse,
            )  # fmt: skip
            seen.append((current.carried, current.hf_current.copy(), {k: v.copy() for k, v in current.eta.items()}))
            if reuse and previous is not None and current.carried:
                now, then = current.eta["adverse"], previous.eta["adverse"]
                grown_in_place += bool(now.size > then.size and np.shares_memory(now, then))
                with pytest.raises(RuntimeError, match="stale: the next block's evaluation took over"):
                    _ = previous.users
            previous = current
            market = _later(market, 60, random.Random(step), 0.0)
        assert book.height == 2_000
        results[reuse] = seen
    for (c1, hf1, eta1), (c2, hf2, eta2) in zip(results[False], results[True], strict=True):
        assert c1 == c2
        np.testing.assert_array_equal(hf1, hf2)
        for name in eta1:
            np.testing.assert_array_equal(eta1[name], eta2[name])
    return results, grown_in_place


def test_taking_over_the_previous_arrays_gives_the_same_evaluations():
    results, _grown = _twelve_blocks(seed=9)
    assert sum(carried for carried, _, _ in results[True]) >= 8


def test_taking_over_the_previous_arrays_as_users_arrive_gives_the_same_evaluations():
    """Newcomers appended to the book between quiet blocks: with reuse_previous the carried arrays grow in place
    (the spare rows of risk/row_arrays.py), and every value equals the evaluations that copy them."""
    _results, grown_in_place = _twelve_blocks(seed=11, newcomers=20)
    assert grown_in_place >= 5
