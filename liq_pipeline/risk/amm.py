"""Uniswap V2 constant-product maths, exact in integers (pure: no I/O).

`get_amount_out` / `get_amount_in` round as UniswapV2Library does (0.3 % fee as 997/1000, output floored, input
floored + 1), so an amount computed here is what the pair's `swap` accepts and pays, to the unit.

Prices are ratios of raw reserves: a pool of token0/token1 is at price `num/den` when reserve1/reserve0 = num/den
(raw units of token1 per raw unit of token0). `price_ratio` turns two USD prices and decimals into that ratio.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from math import isqrt

FEE_NUMERATOR = 997  # UniswapV2Library: amountIn * 997 / 1000 counts towards the invariant
FEE_DENOMINATOR = 1000
MAX_RESERVE = 2**112 - 1  # the pair stores reserves as uint112 and reverts with OVERFLOW beyond


class AmmError(ValueError):
    """An amount the pair or the library would refuse; the message is Uniswap's revert reason."""


def get_amount_out(amount_in: int, reserve_in: int, reserve_out: int) -> int:
    """The most `swap` pays for `amount_in` (UniswapV2Library.getAmountOut)."""
    if amount_in <= 0:
        raise AmmError("UniswapV2Library: INSUFFICIENT_INPUT_AMOUNT")
    if reserve_in <= 0 or reserve_out <= 0:
        raise AmmError("UniswapV2Library: INSUFFICIENT_LIQUIDITY")
    with_fee = amount_in * FEE_NUMERATOR
    return with_fee * reserve_out // (reserve_in * FEE_DENOMINATOR + with_fee)


def get_amount_in(amount_out: int, reserve_in: int, reserve_out: int) -> int:
    """The least input that buys `amount_out` (UniswapV2Library.getAmountIn: floored, then + 1)."""
    if amount_out <= 0:
        raise AmmError("UniswapV2Library: INSUFFICIENT_OUTPUT_AMOUNT")
    if reserve_in <= 0 or reserve_out <= 0:
        raise AmmError("UniswapV2Library: INSUFFICIENT_LIQUIDITY")
    if amount_out >= reserve_out:  # the library's SafeMath sub would underflow (or divide by zero)
        raise AmmError("UniswapV2: INSUFFICIENT_LIQUIDITY")
    numerator = reserve_in * amount_out * FEE_DENOMINATOR
    denominator = (reserve_out - amount_out) * FEE_NUMERATOR
    return numerator // denominator + 1


def price_ratio(price0: int, decimals0: int, price1: int, decimals1: int) -> tuple[int, int]:
    """(num, den) with reserve1/reserve0 = num/den when both sides are worth the same at these USD prices."""
    if price0 <= 0 or price1 <= 0:
        raise AmmError(f"prices must be positive: {price0}, {price1}")
    return price0 * 10**decimals1, price1 * 10**decimals0


def matching_amount(amount0: int, num: int, den: int) -> int:
    """The token1 amount worth `amount0` of token0 at reserve1/reserve0 = num/den, rounded half up."""
    return (2 * amount0 * num + den) // (2 * den)


def _ratio_after(amount_in: int, reserve_in: int, reserve_out: int) -> tuple[int, int]:
    out = get_amount_out(amount_in, reserve_in, reserve_out) if amount_in else 0
    return reserve_in + amount_in, reserve_out - out


def amount_in_for_ratio(reserve_in: int, reserve_out: int, num: int, den: int) -> int:
    """The input whose swap leaves reserve_in'/reserve_out' closest to num/den (0: no swap gets closer).

    Continuous solution of (rin + a)(rin + 0.997 a) = T rin rout, T = num/den:
    a = (sqrt(9 den² rin² + 3,988,000 den num rin rout) - 1997 den rin) / (1994 den). The floors of
    getAmountOut move the integer optimum, and the ratio after a swap never falls as the input grows, so a search
    from that estimate finds the smallest `a` reaching the target; `a` or `a - 1` is the answer.
    """
    if reserve_in <= 0 or reserve_out <= 0 or num <= 0 or den <= 0:
        raise AmmError("reserves and the target ratio must be positive")
    if reserve_in * den >= num * reserve_out:
        return 0  # at or above the target: only the other direction can help

    def reaches(a: int) -> bool:
        rin, rout = _ratio_after(a, reserve_in, reserve_out)
        return rin * den >= num * rout

    disc = 9 * den * den * reserve_in * reserve_in + 3_988_000 * den * num * reserve_in * reserve_out
    a = _first_true(reaches, max(1, (isqrt(disc) - 1997 * den * reserve_in) // (1994 * den)))
    target = Fraction(num, den)

    def error(x: int) -> Fraction:
        rin, rout = _ratio_after(x, reserve_in, reserve_out)
        return abs(Fraction(rin, rout) - target)

    best = min((a - 1, a), key=lambda x: (error(x), x))
    if best and get_amount_out(best, reserve_in, reserve_out) == 0:
        return 0  # the pair refuses a swap that pays nothing
    return best


def _first_true(predicate: Callable[[int], bool], start: int) -> int:
    """The least x >= 1 with predicate(x), for a predicate false at 0 and monotone: galloping from `start`,
    then bisection (when one output unit is worth many input units, the estimate can be that many units off)."""
    lo, hi, step = start, start, 1
    if predicate(start):
        while lo > 0 and predicate(lo):
            hi, lo = lo, max(0, lo - step)
            step *= 2
    else:
        while not predicate(hi):
            lo, hi = hi, hi + step
            step *= 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if predicate(mid) else (mid, hi)
    return hi


@dataclass(frozen=True)
class Swap:
    """One swap on a pair: which token goes in, how much, what comes out, the reserves after."""

    zero_for_one: bool  # token0 in, token1 out
    amount_in: int
    amount_out: int
    reserve0_after: int
    reserve1_after: int

    @property
    def amount0_out(self) -> int:
        return 0 if self.zero_for_one else self.amount_out

    @property
    def amount1_out(self) -> int:
        return self.amount_out if self.zero_for_one else 0


def swap_to_price(reserve0: int, reserve1: int, num: int, den: int) -> Swap | None:
    """The swap that moves the pool to reserve1/reserve0 = num/den as closely as integers allow (None: no swap
    gets closer). Token1 goes in when token0 is cheaper in the pool than the target, token0 otherwise."""
    if reserve1 * den < num * reserve0:
        amount = amount_in_for_ratio(reserve1, reserve0, num, den)
        if not amount:
            return None
        out = get_amount_out(amount, reserve1, reserve0)
        return Swap(False, amount, out, reserve0 - out, reserve1 + amount)
    amount = amount_in_for_ratio(reserve0, reserve1, den, num)
    if not amount:
        return None
    out = get_amount_out(amount, reserve0, reserve1)
    return Swap(True, amount, out, reserve0 + amount, reserve1 - out)


def price_error(reserve0: int, reserve1: int, num: int, den: int) -> float:
    """Relative distance of the pool's price reserve1/reserve0 from num/den (0.01 = 1 %)."""
    return float(Fraction(reserve1 * den, reserve0 * num) - 1)
