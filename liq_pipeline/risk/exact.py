"""The exact path: GenericLogic.calculateUserAccountData on Python integers, one user at a time.

This is the reference every faster path is judged against, and the path that re-decides every user whose
vectorized health factor lands too close to 1 to be trusted. Prices may be overridden per reserve (scenario
prices), separately for collateral legs and debt legs: a scenario moves collateral down and debt up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .market import MarketState, UserPosition
from .wadray import (
    PERCENTAGE_FACTOR,
    UINT256_MAX,
    WAD,
    mul_div_ceil,
    percent_mul,
    ray_mul,
    ray_mul_ceil,
    ray_mul_floor,
    wad_div,
)


@dataclass(frozen=True)
class AccountData:
    """What getUserAccountData returns that the engine uses (base-currency units, bps, wad)."""

    total_collateral_base: int
    total_debt_base: int
    avg_liquidation_threshold: int
    health_factor: int  # wad; UINT256_MAX when there is no debt

    @property
    def liquidatable(self) -> bool:
        return self.health_factor < WAD

    @property
    def hf_float(self) -> float:
        return float("inf") if self.health_factor == UINT256_MAX else self.health_factor / WAD


def account_data(
    position: UserPosition,
    market: MarketState,
    collateral_prices: Mapping[int, int] | None = None,
    debt_prices: Mapping[int, int] | None = None,
) -> AccountData:
    rules = market.rules
    category = position.emode_category
    coll_prices = collateral_prices or market.prices
    dbt_prices = debt_prices or market.prices
    if not position.legs:
        return AccountData(0, 0, 0, UINT256_MAX)

    total_collateral = 0
    total_debt = 0
    weighted_threshold = 0  # sum(collateral_base x LT): 8 + 4 decimals
    for reserve_id in sorted(position.legs):
        leg = position.legs[reserve_id]
        reserve = market.by_id[reserve_id]
        unit = reserve.unit
        override = market.emode_price_override(category, reserve_id)

        if leg.collateral_enabled and (reserve.liquidation_threshold != 0 or rules.counts_zero_threshold_collateral):
            price = _override_price(override, coll_prices[reserve_id], reserve.price)
            income = market.income_index[reserve_id]
            if rules.floors_average_threshold:
                balance = ray_mul(leg.scaled_atoken, income)
            else:
                balance = ray_mul_floor(leg.scaled_atoken, income)
            collateral_base = balance * price // unit
            total_collateral += collateral_base
            weighted_threshold += collateral_base * market.effective_threshold(category, reserve_id)

        stable = leg.stable_debt if rules.counts_stable_debt else 0
        if leg.scaled_variable_debt or stable:
            price = _override_price(override, dbt_prices[reserve_id], reserve.price)
            index = market.debt_index[reserve_id]
            if rules.floors_average_threshold:
                debt = ray_mul(leg.scaled_variable_debt, index) if leg.scaled_variable_debt else 0
                debt += stable
                total_debt += price * debt // unit
            else:
                debt = ray_mul_ceil(leg.scaled_variable_debt, index) + stable
                total_debt += mul_div_ceil(debt, price, unit)

    # Both regimes report the average threshold floored; only V3.0-3.4 compute the HF from it.
    avg_threshold = weighted_threshold // total_collateral if total_collateral else 0
    if total_debt == 0:
        health = UINT256_MAX
    elif rules.floors_average_threshold:
        health = wad_div(percent_mul(total_collateral, avg_threshold), total_debt)
    else:
        health = wad_div(weighted_threshold, total_debt) // PERCENTAGE_FACTOR
    return AccountData(total_collateral, total_debt, avg_threshold, health)


def _override_price(override: int, scenario_price: int, oracle_price: int) -> int:
    """An e-mode category price source (V3.0-3.1) replaces the oracle price; a scenario moves it alike."""
    if not override:
        return scenario_price
    if scenario_price == oracle_price:
        return override
    return override * scenario_price // oracle_price
