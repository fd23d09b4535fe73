"""The exact re-decision of a pass's banded (user, scenario) pairs: exact.account_data's integers, per user once.

exact.account_data computes one user in one scenario; a banded user is usually banded in several scenarios, and
only the prices differ between them. Here each leg's scenario-independent part (the balance: scaled balance x
index, rounded as the version rounds it; the effective threshold; the e-mode price source) is computed once per
user, then each banded scenario only prices the legs. Every integer operation is exact.account_data's, with
the same wadray functions in the same order (so the same results and the same overflow checks); a test
(liq_pipeline_tests/risk/test_fused.py) compares both on random positions of every protocol version's rules.
Measured at 1M users (661 banded pairs, V3.7): 20 ms with account_data per pair, see docs/performance.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .book import PositionBook
from .exact import AccountData, _override_price
from .health import decision_preserving_float
from .market import MarketState, UserPosition
from .valuation import ScenarioPrices
from .wadray import (
    PERCENTAGE_FACTOR,
    UINT256_MAX,
    mul_div_ceil,
    percent_mul,
    ray_mul,
    ray_mul_ceil,
    ray_mul_floor,
    wad_div,
)


def account_data_many(
    position: UserPosition,
    market: MarketState,
    scenarios: Sequence[ScenarioPrices],
    tables: dict | None = None,
) -> list[AccountData]:
    """exact.account_data(position, market, s.collateral, s.debt) for each scenario `s`, the legs' balances
    computed once. `tables`: a dict kept across the users of one market (per reserve and e-mode category, the
    constants account_data looks up), filled on first use."""
    if not position.legs:
        return [AccountData(0, 0, 0, UINT256_MAX) for _ in scenarios]
    rules = market.rules
    floors = rules.floors_average_threshold
    counts_stable = rules.counts_stable_debt
    category = position.emode_category
    tables = {} if tables is None else tables
    collateral_legs = []  # (reserve id, balance, unit, threshold, override, oracle price)
    debt_legs = []  # (reserve id, debt amount, unit, override, oracle price)
    for reserve_id in sorted(position.legs):
        leg = position.legs[reserve_id]
        constants = tables.get((category, reserve_id))
        if constants is None:
            constants = tables[(category, reserve_id)] = _constants(market, category, reserve_id)
        counted, unit, threshold, override, oracle, income, index = constants
        if leg.collateral_enabled and counted:
            balance = ray_mul(leg.scaled_atoken, income) if floors else ray_mul_floor(leg.scaled_atoken, income)
            collateral_legs.append((reserve_id, balance, unit, threshold, override, oracle))
        stable = leg.stable_debt if counts_stable else 0
        if leg.scaled_variable_debt or stable:
            if floors:
                amount = ray_mul(leg.scaled_variable_debt, index) if leg.scaled_variable_debt else 0
                amount += stable
            else:
                amount = ray_mul_ceil(leg.scaled_variable_debt, index) + stable
            debt_legs.append((reserve_id, amount, unit, override, oracle))
    out = []
    for s in scenarios:
        coll_prices, debt_prices = s.collateral or market.prices, s.debt or market.prices
        total_collateral = 0
        weighted_threshold = 0
        for reserve_id, balance, unit, threshold, override, oracle in collateral_legs:
            price = _override_price(override, coll_prices[reserve_id], oracle) if override else coll_prices[reserve_id]
            collateral_base = balance * price // unit
            total_collateral += collateral_base
            weighted_threshold += collateral_base * threshold
        total_debt = 0
        for reserve_id, amount, unit, override, oracle in debt_legs:
            price = _override_price(override, debt_prices[reserve_id], oracle) if override else debt_prices[reserve_id]
            total_debt += price * amount // unit if floors else mul_div_ceil(amount, price, unit)
        avg_threshold = weighted_threshold // total_collateral if total_collateral else 0
        if total_debt == 0:
            health = UINT256_MAX
        elif floors:
            health = wad_div(percent_mul(total_collateral, avg_threshold), total_debt)
        else:
            health = wad_div(weighted_threshold, total_debt) // PERCENTAGE_FACTOR
        out.append(AccountData(total_collateral, total_debt, avg_threshold, health))
    return out


def _constants(market: MarketState, category: int, reserve_id: int) -> tuple:
    """What account_data looks up for one leg: (counted as collateral, unit, effective threshold, e-mode price
    override, oracle price, income index, debt index)."""
    reserve = market.by_id[reserve_id]
    return (
        reserve.liquidation_threshold != 0 or market.rules.counts_zero_threshold_collateral,
        reserve.unit,
        market.effective_threshold(category, reserve_id),
        market.emode_price_override(category, reserve_id),
        reserve.price,
        market.income_index[reserve_id],
        market.debt_index[reserve_id],
    )


def redecide_banded(
    hf: np.ndarray,
    band: np.ndarray,
    book: PositionBook,
    market: MarketState,
    scenarios: Sequence[ScenarioPrices],
    rows: np.ndarray | None = None,
    columns: Sequence[int] | None = None,
    banded: np.ndarray | None = None,
) -> int:
    """health.redecide_exactly, each banded user's legs valued once: replace, in place, the float HF of every
    banded (row, scenario) by the exact one. `hf` and `band` hold the book's `rows` (default: every user);
    `columns` (optional): only these scenario columns are re-decided; `banded` (optional): the positions with a
    banded scenario, if known (the fused pass lists them: band.any(axis=1) costs ~14 ms at 1M x 3). Returns how
    many pairs."""
    if banded is None:
        banded = np.flatnonzero(band.any(axis=1))
    if banded.size == 0:
        return 0
    allowed = range(band.shape[1]) if columns is None else set(columns)
    work = []  # (position, wanted columns)
    for position, flags in zip(banded.tolist(), band[banded].tolist(), strict=True):
        wanted = [column for column, flag in enumerate(flags) if flag and column in allowed]
        if wanted:
            work.append((position, wanted))
    if not work:
        return 0
    picked = np.array([position for position, _wanted in work], dtype=np.int64)
    positions = book.exact_positions(picked if rows is None else rows[picked])
    tables: dict = {}
    count = 0
    for (row, wanted), position in zip(work, positions, strict=True):
        results = account_data_many(position, market, [scenarios[c] for c in wanted], tables)
        for column, data in zip(wanted, results, strict=True):
            hf[row, column] = decision_preserving_float(data)
        count += len(wanted)
    return count


__all__ = ["account_data_many", "redecide_banded"]
