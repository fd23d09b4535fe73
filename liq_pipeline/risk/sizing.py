"""Liquidation sizing: what a liquidator could repay, seize and earn (LiquidationLogic, in base currency).

For each candidate: the debt leg and the collateral leg of largest value (what a liquidator picks first).
- Close factor: 50 % of that debt; 100 % when HF <= 0.95 (CLOSE_FACTOR_HF_THRESHOLD). From V3.3 also 100 % when
  the reserve's debt or collateral is worth less than 2,000 base units of USD (MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD).
- Collateral seized = debt covered x liquidation bonus (the user's e-mode bonus when the collateral is in its
  category), capped by the collateral held; when capped, the debt covered shrinks to match.
- Protocol fee = the bonus part of the seized collateral x the reserve's liquidation protocol fee.
- Expected profit = collateral the liquidator receives (seized - fee) - debt covered. Gas is not included.
Values are floats in base-currency units: sizing is an estimate for ranking, not a decision. Computed for the rows
asked for only (the watcher sizes the candidates it writes, not every candidate every block).
"""

from __future__ import annotations

import numpy as np

from .book import EMODE_IDS, PositionBook, emode_table
from .market import MarketState
from .valuation import ScenarioPrices, collateral_weights, debt_values

CLOSE_FACTOR_HF_THRESHOLD = 0.95
DEFAULT_CLOSE_FACTOR = 0.5
MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD_USD = 2_000


def size_liquidations(
    book: PositionBook, market: MarketState, prices: ScenarioPrices, rows: np.ndarray, hf: np.ndarray
) -> dict[str, np.ndarray]:
    """Sizing of the book's `rows` at `prices`; `hf` is their HF in that scenario. Columns: debt_reserve,
    collateral_reserve (the legs of largest value, first on ties), close_factor, debt_to_cover_base,
    collateral_seized_base, protocol_fee_base, expected_profit_base."""
    ids = book.reserve_ids
    count = len(rows)
    if not ids or count == 0:
        empty = np.zeros(count)
        return {
            "debt_reserve": np.full(count, -1, np.int32),
            "collateral_reserve": np.full(count, -1, np.int32),
            "close_factor": empty,
            "debt_to_cover_base": empty,
            "collateral_seized_base": empty,
            "protocol_fee_base": empty,
            "expected_profit_base": empty,
        }
    owed = debt_values(book, market, prices, rows)
    held = book.coll[rows] * collateral_weights(market, prices, ids)
    debt_pick, coll_pick = owed.argmax(axis=1), held.argmax(axis=1)
    picked = np.arange(count)
    debt_base, coll_base = owed[picked, debt_pick], held[picked, coll_pick]
    emode = np.clip(book.emode[rows], 0, EMODE_IDS - 1)
    bonus = emode_table(market, ids, "liquidation_bonus")[emode, coll_pick]
    fee_bps = np.array([float(market.by_id[r].liquidation_protocol_fee) for r in ids])[coll_pick]
    full_close = hf <= CLOSE_FACTOR_HF_THRESHOLD
    if market.rules.small_position_full_close:
        small = MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD_USD * float(market.base_currency_unit)
        full_close = full_close | (debt_base < small) | (coll_base < small)
    close_factor = np.where(full_close, 1.0, DEFAULT_CLOSE_FACTOR)
    wanted_debt = debt_base * close_factor
    wanted_coll = wanted_debt * bonus / 10_000.0
    capped = wanted_coll > coll_base
    seized = np.where(capped, coll_base, wanted_coll)
    with np.errstate(divide="ignore", invalid="ignore"):
        covered = np.where(capped, coll_base * 10_000.0 / bonus, wanted_debt)
        fee = (seized - seized * 10_000.0 / bonus) * fee_bps / 10_000.0
    reserve_ids = np.array(ids, dtype=np.int32)
    return {
        "debt_reserve": reserve_ids[debt_pick],
        "collateral_reserve": reserve_ids[coll_pick],
        "close_factor": close_factor,
        "debt_to_cover_base": covered,
        "collateral_seized_base": seized,
        "protocol_fee_base": fee,
        "expected_profit_base": seized - fee - covered,
    }
