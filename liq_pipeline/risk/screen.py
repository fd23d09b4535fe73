"""The screen: users proven far from liquidation at a reference block are skipped until prices move too far.

A full evaluation (every user) proves for each user whether, with a margin, it can neither be liquidatable nor a
candidate in any scenario: its HF, moved by the scenario's worst price ratio and the floored-threshold and
rounding allowances (floors.scenario_floor), stays above the scenario's reach bound times (1 + MARGIN). Those
users are cold. At a later block, every user's HF has moved by at least the price-move floor from the reference
prices (lowest collateral price ratio over highest debt price ratio) times the debt index growth since; while
that factor, together with the change of the scenarios' shocks and reach bounds, stays within the margin, no
cold user can have become liquidatable or a candidate, and only the hot users (and those whose positions changed
since) are evaluated. Past the margin, or after MAX_AGE_BLOCKS, the next evaluation is full again and makes a
new screen. No decision differs from evaluating everyone: tests compare both on random price paths.

Why: at 100k borrowers a full pass costs ~20 ms on this machine, most of it spent on users whose HF is far above
any threshold; a market moves a few bps per block, and the margin (2 %) lasts minutes to hours.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .book import PositionBook
from .floors import price_move_floor
from .indices import debt_growth_per_second
from .market import MarketState
from .valuation import ScenarioPrices

MARGIN = 0.02  # relative HF headroom a cold user keeps over its bounds at the reference block
MAX_AGE_BLOCKS = 300  # a full evaluation at least this often (10 minutes on Base): values stay fresh


@dataclass(frozen=True)
class Screen:
    generation: int  # the book layout it is about
    version: int  # the book's version at the reference evaluation
    block: int
    timestamp: int
    prices: Mapping[int, int]  # oracle prices at the reference block
    shock_floors: Mapping[str, float]  # per scenario: price_move_floor(current -> scenario) at the reference
    bounds: Mapping[str, float]  # per scenario: the HF under which a user may be a candidate, at the reference
    cold: np.ndarray  # per book row at the reference
    hf_current: np.ndarray  # per book row at the reference (the carried value of cold users)

    def hot(self, book: PositionBook) -> np.ndarray:
        """Per book row, whether to evaluate it: not cold at the reference, changed since, or new to the book."""
        hot = np.ones(book.height, bool)
        hot[: self.cold.size] = ~self.cold
        hot[book.rows_changed_since(self.version)] = True
        return hot

    def holds(
        self,
        book: PositionBook,
        market: MarketState,
        shocked: Mapping[str, ScenarioPrices],
        bounds: Mapping[str, float],
    ) -> bool:
        """Is every cold user still provably cold at `market` (see the module docstring)?"""
        if book.generation != self.generation or book.rows_changed_since(self.version) is None:
            return False
        if market.block - self.block >= MAX_AGE_BLOCKS or market.timestamp < self.timestamp:
            return False
        ids = book.reserve_ids
        elapsed = market.timestamp - self.timestamp
        growth = max((debt_growth_per_second(market.by_id[r].variable_borrow_rate) for r in ids), default=0.0)
        moved = price_move_floor(ids, self.prices, market.prices) * math.exp(-max(growth, 0.0) * elapsed * 1.01)
        for name, prices in shocked.items():
            if name not in self.bounds:
                return False
            shock_now = price_move_floor(ids, market.prices, prices)
            needed = bounds[name] / (self.bounds[name] * (1.0 + MARGIN))
            if moved * shock_now / self.shock_floors[name] < needed:
                return False
        return True


def make_screen(
    book: PositionBook,
    market: MarketState,
    shocked: Mapping[str, ScenarioPrices],
    bounds: Mapping[str, float],
    floors: Mapping[str, np.ndarray],
    hf_current: np.ndarray,
) -> Screen:
    """A screen from a full evaluation: `floors` are every user's scenario_floor per scenario."""
    cold = np.ones(book.height, bool)
    for name, floor in floors.items():
        cold &= floor >= bounds[name] * (1.0 + MARGIN)
    return Screen(
        generation=book.generation,
        version=book.version,
        block=market.block,
        timestamp=market.timestamp,
        prices=dict(market.prices),
        shock_floors={name: price_move_floor(book.reserve_ids, market.prices, p) for name, p in shocked.items()},
        bounds=dict(bounds),
        cold=cold,
        hf_current=hf_current.copy(),
    )
