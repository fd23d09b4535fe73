"""Prices of a scenario and what one scaled unit of each reserve is worth at them, in base currency.

The health passes, the projection and the sizing all value the book's legs this way: one weight per reserve
(index x price / 10^decimals) times the book's scaled balances.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .book import PositionBook
from .indices import debt_growth_per_second, income_growth_per_second
from .market import MarketState
from .wadray import RAY


@dataclass(frozen=True)
class ScenarioPrices:
    """Integer prices of one scenario: collateral legs and debt legs are valued separately."""

    name: str
    collateral: Mapping[int, int]
    debt: Mapping[int, int]


def baseline_prices(market: MarketState) -> ScenarioPrices:
    return ScenarioPrices("baseline", dict(market.prices), dict(market.prices))


def same_prices(a: ScenarioPrices, b: ScenarioPrices) -> bool:
    """Do both value every leg alike (a zero-shock scenario has the current prices: its HF is the current HF)?"""
    return dict(a.collateral) == dict(b.collateral) and dict(a.debt) == dict(b.debt)


def collateral_weights(market: MarketState, prices: ScenarioPrices, ids: Sequence[int]) -> np.ndarray:
    """Base-currency value of one scaled collateral unit per reserve: income index x price / 10^decimals."""
    return np.array([market.income_index[r] / RAY * prices.collateral[r] / market.by_id[r].unit for r in ids])


def debt_weights(market: MarketState, prices: ScenarioPrices, ids: Sequence[int]) -> np.ndarray:
    """Base-currency value of one scaled debt unit per reserve: debt index x price / 10^decimals."""
    return np.array([market.debt_index[r] / RAY * prices.debt[r] / market.by_id[r].unit for r in ids])


def stable_weights(market: MarketState, prices: ScenarioPrices, ids: Sequence[int]) -> np.ndarray:
    """Base-currency value of one stable debt unit (its balance already includes interest)."""
    return np.array([prices.debt[r] / market.by_id[r].unit for r in ids])


@dataclass(frozen=True)
class GrowthTerms:
    """Per reserve, in `ids` order: what the projection's g and sigma weigh each leg by (projection.py)."""

    collateral: np.ndarray  # collateral_weights
    debt: np.ndarray  # debt_weights
    stable: np.ndarray  # stable_weights
    collateral_growth: np.ndarray  # per second: the price's drift + supply growth
    debt_growth: np.ndarray  # per second: the price's drift + variable debt growth
    volatility: np.ndarray  # sigma_r per square-root second (0.0: the price does not move)


def growth_terms(
    market: MarketState,
    prices: ScenarioPrices,
    ids: Sequence[int],
    drift: Mapping[int, float],
    volatility: Mapping[int, float],
) -> GrowthTerms:
    return GrowthTerms(
        collateral_weights(market, prices, ids),
        debt_weights(market, prices, ids),
        stable_weights(market, prices, ids),
        np.array([drift.get(r, 0.0) + income_growth_per_second(market.by_id[r].liquidity_rate) for r in ids]),
        np.array([drift.get(r, 0.0) + debt_growth_per_second(market.by_id[r].variable_borrow_rate) for r in ids]),
        np.array([float(volatility.get(r) or 0.0) for r in ids]),
    )


def debt_values(book: PositionBook, market: MarketState, prices: ScenarioPrices, rows=slice(None)) -> np.ndarray:
    """Debt legs in base-currency units, users x reserves."""
    ids = book.reserve_ids
    values = book.debt[rows] * debt_weights(market, prices, ids)
    if book.has_stable:
        values = values + book.stable[rows] * stable_weights(market, prices, ids)
    return values
