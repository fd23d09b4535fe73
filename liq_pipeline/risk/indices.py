"""Reserve indices at any timestamp, exactly as the Pool computes them (ReserveLogic + MathUtils).

Interest follows block TIMESTAMPS, never block counts: Base makes a block every 2 s, and a bot that assumed
Ethereum's 12 s accrued 6x wrong. Rates are per year in ray; `SECONDS_PER_YEAR` ignores leap years as Aave does.
"""

from __future__ import annotations

import math

from .versions import ProtocolRules
from .wadray import RAY, SECONDS_PER_YEAR, ray_mul


def linear_interest(rate_ray: int, last_update: int, timestamp: int) -> int:
    """MathUtils.calculateLinearInterest: RAY + rate*dt/year (floored)."""
    elapsed = timestamp - last_update
    if elapsed < 0:
        raise ValueError(f"timestamp {timestamp} is before the reserve's last update {last_update}")
    return RAY + rate_ray * elapsed // SECONDS_PER_YEAR


def compounded_interest(rate_ray: int, last_update: int, timestamp: int, rules: ProtocolRules) -> int:
    """MathUtils.calculateCompoundedInterest: the protocol's own truncated binomial expansion."""
    exp = timestamp - last_update
    if exp < 0:
        raise ValueError(f"timestamp {timestamp} is before the reserve's last update {last_update}")
    if exp == 0:
        return RAY
    if rules.compounding_x_form:
        x = rate_ray * exp // SECONDS_PER_YEAR
        return RAY + x + ray_mul(x, x // 2 + ray_mul(x, x // 6))
    exp_minus_one = exp - 1
    exp_minus_two = exp - 2 if exp > 2 else 0
    base_power_two = ray_mul(rate_ray, rate_ray) // (SECONDS_PER_YEAR * SECONDS_PER_YEAR)
    base_power_three = ray_mul(base_power_two, rate_ray) // SECONDS_PER_YEAR
    second_term = exp * exp_minus_one * base_power_two // 2
    third_term = exp * exp_minus_one * exp_minus_two * base_power_three // 6
    return RAY + rate_ray * exp // SECONDS_PER_YEAR + second_term + third_term


def normalized_income(liquidity_index: int, liquidity_rate: int, last_update: int, timestamp: int) -> int:
    """ReserveLogic.getNormalizedIncome: the liquidity index grown linearly to `timestamp`."""
    if timestamp == last_update:
        return liquidity_index
    return ray_mul(linear_interest(liquidity_rate, last_update, timestamp), liquidity_index)


def normalized_debt(
    variable_borrow_index: int,
    variable_borrow_rate: int,
    last_update: int,
    timestamp: int,
    rules: ProtocolRules,
) -> int:
    """ReserveLogic.getNormalizedDebt: the variable borrow index compounded to `timestamp`."""
    if timestamp == last_update:
        return variable_borrow_index
    return ray_mul(compounded_interest(variable_borrow_rate, last_update, timestamp, rules), variable_borrow_index)


def income_growth_per_second(liquidity_rate: int) -> float:
    """Continuous growth rate of supplied balances, per second (for projections, not for exact values)."""
    return liquidity_rate / RAY / SECONDS_PER_YEAR


def debt_growth_per_second(variable_borrow_rate: int) -> float:
    """Continuous growth rate of variable debt, per second: log of the per-second compounding factor."""
    return math.log1p(variable_borrow_rate / RAY / SECONDS_PER_YEAR)
