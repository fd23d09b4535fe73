"""Carry: on a block where no price moved, users far from every decision keep the previous block's values.

Most blocks carry no price update (on Base a feed publishes on a deviation threshold or a heartbeat). On such a
block a user's numbers move only through its own transactions (those users are re-read and evaluated) and
through time: interest grows collateral and debt by a few 1e-8 per block, reserve rates move when someone
supplies or borrows. Every decision the engine makes is a sign:
- liquidatable now: ln HF < 0;
- candidate in a scenario: f < 0, where f is the lowest point of the projected band path within the horizon,
      f = min over u in [0, sqrt(H)] of  L - z sigma u + g u^2      (L = ln(HF_s / T), see projection.py)
  (the ETA is within the horizon exactly when that path reaches the threshold, i.e. f <= 0).
f moves by at most |dL| + z sqrt(H) |d sigma| + H |dg| (each term of the minimum does). With prices, scenario
prices, trends and parameters unchanged, dL is bounded by the indices' growth since the reference block, and
d sigma and dg by the shift of the users' value weights that growth can cause and by the reserve rates'
changes. Each evaluated user records its headroom: the smallest |ln HF| and |f| over the decisions, less the
relative rounding slack of its float HF (what the exact path could still move; dust users have little). A later
quiet block evaluates only the users whose headroom is within that bound plus CARRY_MARGIN, the users whose
positions changed, and users new to the book; the rest keep their values and, provably, their decisions. Tests
compare every decision with evaluating everyone, on quiet stretches with interest, rate changes and traffic.

Carried values are those of the block they were computed in (at most MAX_CARRY_BLOCKS earlier): an HF or ETA a
few 1e-7 stale, far below what the candidate writer's ETA resolution (1 s or 10 %) would rewrite.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .indices import debt_growth_per_second, income_growth_per_second
from .market import MarketState
from .params import EngineParams
from .valuation import ScenarioPrices

CARRY_MARGIN = 1e-3  # log-HF headroom on top of the bound: covers float error, floored thresholds, rounding
MAX_CARRY_BLOCKS = 30  # quiet blocks in a row before every hot user is evaluated again (1 minute on Base)


@dataclass(frozen=True)
class Carry:
    generation: int  # the book layout the headroom follows
    version: int  # the book's version when the values were complete
    base: MarketState  # the market of the last evaluation that was not carried
    growth_rates: tuple[tuple[tuple[float, float], ...], ...]  # per block since base: per reserve (income, debt) /s
    key: tuple  # prices, e-mode categories, scenario prices, trends and parameters: all must be unchanged
    headroom: np.ndarray  # per book row: min |ln HF|, |f| over the decisions when last evaluated (0: evaluate)
    blocks: int  # quiet blocks carried since base

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

    def bound(
        self,
        market: MarketState,
        sigmas: float,
        horizon_sec: float,
        drift: Mapping[int, float],
        volatility: Mapping[int, float],
    ) -> float:
        """How far any decision value (ln HF or f) of a carried user can have moved since it was computed."""
        ids = market.reserve_ids
        grown = max(
            (
                abs(math.log(index[r] / before[r]))
                for index, before in (
                    (market.income_index, self.base.income_index),
                    (market.debt_index, self.base.debt_index),
                )
                for r in ids
            ),
            default=0.0,
        )
        shift = 4.0 * math.expm1(grown)  # sum over legs of |change of a value weight|, collateral and debt
        now = growth_rates(market)
        rate_change = max(
            (
                max(abs(x[0] - y[0]) for x, y in zip(then, now, strict=True))
                + max(abs(x[1] - y[1]) for x, y in zip(then, now, strict=True))
                for then in self.growth_rates
            ),
            default=0.0,
        )
        sigma_max = max((float(volatility.get(r) or 0.0) for r in ids), default=0.0)
        g_max = max((abs(drift.get(r, 0.0)) + max(now[i]) for i, r in enumerate(ids)), default=0.0)
        return grown + sigmas * horizon_sec**0.5 * sigma_max * shift + horizon_sec * (rate_change + shift * g_max)

    def needed(self, book, bound: float) -> np.ndarray:
        """Per book row: must it be evaluated (headroom within the bound, changed since, or new)?"""
        need = np.ones(book.height, bool)
        need[: self.headroom.size] = self.headroom <= bound + CARRY_MARGIN
        need[book.rows_changed_since(self.version)] = True
        return need


def carry_key(
    market: MarketState,
    shocked: Sequence[ScenarioPrices],
    drift: Mapping[int, float],
    volatility: Mapping[int, float],
    params: EngineParams,
) -> tuple:
    """What must be unchanged for a block to carry the previous one's values: every price (oracle, e-mode,
    scenario), the trends, the parameters."""
    return (
        dict(market.prices),
        dict(market.emode_categories),
        [(p.name, dict(p.collateral), dict(p.debt)) for p in shocked],
        dict(drift),
        dict(volatility),
        params,
    )


def growth_rates(market: MarketState) -> tuple[tuple[float, float], ...]:
    """Per reserve (in reserve id order): growth per second of supplied balances and of variable debt."""
    return tuple(
        (
            income_growth_per_second(market.by_id[r].liquidity_rate),
            debt_growth_per_second(market.by_id[r].variable_borrow_rate),
        )
        for r in market.reserve_ids
    )


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
