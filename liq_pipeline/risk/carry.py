"""Carry: users far from every decision keep the previous block's values; only the others are evaluated.

Per block a user's numbers move through its own transactions (those users are re-read and evaluated), through
time (interest grows collateral and debt by a few 1e-8 per block, reserve rates move when someone supplies or
borrows) and through prices (a feed publishes on a deviation threshold: a few bps). Every decision the engine
makes is a sign:
- liquidatable now: ln HF < 0;
- candidate in a scenario: f < 0, where f is the lowest point of the projected band path within the horizon,
      f = min over u in [0, sqrt(H)] of  L - z sigma u + g u^2      (L = ln(HF_s / T), see projection.py)
  (the ETA is within the horizon exactly when that path reaches the threshold, i.e. f <= 0);
- an ETA of 0: L < 0 (the user is at or under the threshold in that scenario already).
f moves by at most |dL| + z sqrt(H) |d sigma| + H |dg| (each term of the minimum does). Since the reference
block, each collateral leg's value moved by at most a (its scenario price ratio and the income index), each debt
leg's by at most b: L moves by at most a + b, the value weights by expm1(2a) + expm1(2b) in sum, which bounds
d sigma and dg together with the reserve rates' changes (Carry.bound). Each evaluated user records its headroom:
the smallest |ln HF|, |f| and |L| over the decisions, less the relative rounding slack of its float HF (what the
exact path could still move; dust users have little). A later block evaluates only the users whose headroom is
within the bound plus CARRY_MARGIN, candidates with an ETA above 0 (their ETA moves with any price), the users
whose positions changed and users new to the book; the rest keep their values and, provably, their decisions,
and their ETA (0, or not a candidate). Trends, parameters or e-mode categories that change, a move beyond
MAX_CARRY_BOUND (a crash) or MAX_CARRY_BLOCKS carried blocks in a row end the carry: every hot user is evaluated.
Tests compare every decision with evaluating everyone, on stretches with price ticks, interest, rate changes and
traffic.

Carried values (HF, sums, projected HF) are those of the block they were computed in; the candidate writer
writes details only for users evaluated anew, so what Redis holds for a candidate is always as of its `block`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .health import ScenarioPrices
from .indices import debt_growth_per_second, income_growth_per_second
from .market import MarketState

CARRY_MARGIN = 1e-3  # log-HF headroom on top of the bound: covers float error, floored thresholds, rounding
MAX_CARRY_BLOCKS = 30  # carried blocks in a row before every hot user is evaluated again (1 minute on Base)
MAX_CARRY_BOUND = 0.02  # a larger move (a crash) evaluates every hot user: most would be near a bound anyway


@dataclass(frozen=True)
class Carry:
    generation: int  # the book layout the headroom follows
    version: int  # the book's version when the values were complete
    base: MarketState  # the market of the last evaluation that was not carried
    base_prices: Mapping[str, ScenarioPrices]  # per scenario (and the current prices) at base
    growth_rates: tuple[tuple[tuple[float, float], ...], ...]  # per block since base: per reserve (income, debt) /s
    key: tuple  # e-mode categories, trends and parameters: all must be unchanged
    headroom: np.ndarray  # per book row: min |ln HF|, |f| over the decisions when last evaluated (0: evaluate)
    timed: np.ndarray  # per book row: a candidate with an ETA above 0 in some scenario (its ETA moves: evaluate)
    blocks: int  # blocks carried since base

    def applies(self, book, market: MarketState, key: tuple) -> bool:
        """May the next evaluation carry values from this one?"""
        return (
            self.blocks < MAX_CARRY_BLOCKS
            and book.generation == self.generation
            and book.rows_changed_since(self.version) is not None
            and market.timestamp >= self.base.timestamp
            and market.reserve_ids == self.base.reserve_ids
            and key == self.key
        )

    def bound(self, market: MarketState, prices: Mapping[str, ScenarioPrices], sigmas: float, horizon_sec: float,
              drift: Mapping[int, float], volatility: Mapping[int, float]) -> float:  # fmt: skip
        """How far any decision value (ln HF or f) of a carried user can have moved since it was computed:
        each collateral leg's value moved by at most a (its price ratio and the income index), each debt leg's
        by at most b, so ln HF by a + b and the value weights by expm1(2a) + expm1(2b) in sum."""
        ids = market.reserve_ids
        income = _largest_log_ratio(market.income_index, self.base.income_index, ids)
        debt = _largest_log_ratio(market.debt_index, self.base.debt_index, ids)
        now = growth_rates(market)
        rate_change = max(
            (max(abs(x[0] - y[0]) for x, y in zip(then, now, strict=True))
             + max(abs(x[1] - y[1]) for x, y in zip(then, now, strict=True))
             for then in self.growth_rates),
            default=0.0,
        )  # fmt: skip
        sigma_max = max((float(volatility.get(r) or 0.0) for r in ids), default=0.0)
        g_max = max((abs(drift.get(r, 0.0)) + max(now[i]) for i, r in enumerate(ids)), default=0.0)
        worst = 0.0
        for name, before in self.base_prices.items():
            a = _largest_log_ratio(prices[name].collateral, before.collateral, ids) + income
            b = _largest_log_ratio(prices[name].debt, before.debt, ids) + debt
            shift = math.expm1(2.0 * a) + math.expm1(2.0 * b)
            moved = a + b + sigmas * horizon_sec**0.5 * sigma_max * shift + horizon_sec * (rate_change + shift * g_max)
            worst = max(worst, moved)
        return worst

    def needed(self, book, bound: float) -> np.ndarray:
        """Per book row: must it be evaluated (headroom within the bound, an ETA above 0, changed since, new)?"""
        need = np.ones(book.height, bool)
        need[: self.headroom.size] = (self.headroom <= bound + CARRY_MARGIN) | self.timed
        need[book.rows_changed_since(self.version)] = True
        return need


def _largest_log_ratio(now: Mapping[int, int], before: Mapping[int, int], ids) -> float:
    return max((abs(math.log(now[r] / before[r])) for r in ids), default=0.0)


def growth_rates(market: MarketState) -> tuple[tuple[float, float], ...]:
    """Per reserve (in reserve id order): growth per second of supplied balances and of variable debt."""
    return tuple(
        (income_growth_per_second(market.by_id[r].liquidity_rate),
         debt_growth_per_second(market.by_id[r].variable_borrow_rate))
        for r in market.reserve_ids
    )  # fmt: skip


def band_minimum(
    hf: np.ndarray, g: np.ndarray, sigma: np.ndarray, sigmas: float, threshold: float, horizon_sec: float
) -> np.ndarray:
    """f: the lowest point, within the horizon, of ln(HF/T) along the band path (negative: a candidate)."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        distance = np.log(hf / threshold)
        band = sigmas * sigma
        root = np.sqrt(horizon_sec)
        at_end = distance - band * root + g * horizon_sec
        # a convex path (g > 0) may bottom out inside the horizon, at u = z sigma / 2g
        turn = np.where(g > 0, band / (2.0 * g), np.inf)
        inside = np.where(turn < root, distance - band * band / (4.0 * g), np.inf)
        low = np.minimum(np.minimum(distance, at_end), inside)
    return np.where(np.isinf(hf), np.inf, low)
