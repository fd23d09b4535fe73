"""Lower bounds of a user's HF under a price move: what lets the engine skip users far from a decision.

`price_move_floor` bounds every user's HF change between two sets of prices (the screen's test that its cold users
stay cold); `scenario_floor` bounds each user's HF in a scenario from its current pass, so the scenario pass
evaluates only the users whose floor is under the scenario's reach bound.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .book import PositionBook, take_rows
from .health import HealthPass
from .market import MarketState
from .valuation import ScenarioPrices

SCREEN_MARGIN = 1e-6  # relative headroom of scenario_floor over float and rounding error


def price_move_floor(ids: Sequence[int], before: Mapping[int, int], after: Mapping[int, int] | ScenarioPrices) -> float:
    """The least factor by which any user's HF can move from prices `before` to `after` (or to a scenario's
    collateral and debt prices): the lowest collateral price ratio over the highest debt price ratio."""
    if not ids:
        return 1.0
    collateral = after.collateral if isinstance(after, ScenarioPrices) else after
    debt = after.debt if isinstance(after, ScenarioPrices) else after
    return min(collateral[r] / before[r] for r in ids) / max(debt[r] / before[r] for r in ids)


def rounding_noise(now: HealthPass, slack: tuple[np.ndarray, np.ndarray], rows: np.ndarray | None) -> np.ndarray:
    """The relative rounding error of each current HF of `now` (over the book's `rows`): how far (relative) the exact
    value may lie from the float. inf/NaN where a total is zero."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return take_rows(slack[0], rows) / now.collateral[:, 0] + take_rows(slack[1], rows) / now.debt[:, 0]


def scenario_floor(
    book: PositionBook,
    market: MarketState,
    now: HealthPass,
    slack: tuple[np.ndarray, np.ndarray],
    prices: ScenarioPrices,
    rows: np.ndarray | None = None,
    noise: np.ndarray | None = None,
) -> np.ndarray:
    """A lower bound of each user's exact HF in a scenario, from the current pass (`now`, over the book's `rows`,
    default every user): each leg's value moves by the ratio of scenario to current price, so the totals' ratio
    moves by at least min collateral ratio / max debt ratio; the floored average threshold costs at most one
    bps of the lowest threshold; and the float's own error. Users whose rounding slack is not negligible (dust)
    or whose HF the float cannot give get 0 (always evaluated)."""
    hf_current = now.hf[:, 0]
    if not book.reserve_ids:
        return np.zeros_like(hf_current)
    factor = price_move_floor(book.reserve_ids, market.prices, prices)
    noise = rounding_noise(now, slack, rows) if noise is None else noise
    with np.errstate(divide="ignore", invalid="ignore"):
        floor = hf_current * factor * (1.0 - 1.0 / take_rows(book.lt_min, rows) - 4.0 * SCREEN_MARGIN)
    usable = (noise <= SCREEN_MARGIN) & ~take_rows(book.exact_only, rows) & np.isfinite(floor)
    return np.where(usable, floor, np.where(np.isinf(hf_current), np.inf, 0.0))
