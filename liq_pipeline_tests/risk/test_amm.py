"""Uniswap V2 integer maths: hand-checked values, the library's rounding, and swaps to a target price."""

from __future__ import annotations

import random
from fractions import Fraction

import pytest

from liq_pipeline.risk.amm import (
    AmmError,
    amount_in_for_ratio,
    get_amount_in,
    get_amount_out,
    matching_amount,
    price_error,
    price_ratio,
    swap_to_price,
)


def test_get_amount_out_hand_checked():
    # 1000 * 997 * 10000 / (10000 * 1000 + 997000) = 9,970,000,000 / 10,997,000 = 906.61 -> 906
    assert get_amount_out(1000, 10_000, 10_000) == 906
    # 997e18 * 10e18 / (5e21 + 997e18) = 1.6624979156244789e18: the vector UniswapV2Pair's own tests use
    assert get_amount_out(10**18, 5 * 10**18, 10 * 10**18) == 1_662_497_915_624_478_906
    # A deep pool: the fee alone, 997,000e12 / (1e15 + 997,000) = 996.999 -> floored to 996
    assert get_amount_out(1000, 10**12, 10**12) == 996
    # 1 WETH into 100 WETH / 200,000 USDC: 997e18 * 2e11 / (1e23 + 997e18) = 1,974,316,068.79 -> 1974.316068 USDC
    assert get_amount_out(10**18, 100 * 10**18, 200_000 * 10**6) == 1_974_316_068


def test_get_amount_in_hand_checked():
    # 10000 * 906 * 1000 / ((10000 - 906) * 997) = 9,060,000,000 / 9,066,718 = 999.26 -> 999, + 1
    assert get_amount_in(906, 10_000, 10_000) == 1000
    # 10000 * 907 * 1000 / (9093 * 997) = 9,070,000,000 / 9,065,721 = 1000.47 -> 1000, + 1
    assert get_amount_in(907, 10_000, 10_000) == 1001
    # An exact division still gets the + 1: 99,700 * 997 * 1000 / ((1994 - 997) * 997) = 100,000 exactly -> 100,001
    assert get_amount_in(997, 99_700, 1_994) == 100_001


@pytest.mark.parametrize("seed", range(5))
def test_amount_in_is_the_least_input_plus_the_librarys_extra_unit(seed):
    rng = random.Random(seed)
    for _ in range(500):
        reserve_in, reserve_out = rng.randrange(1, 10**30), rng.randrange(2, 10**30)
        amount_out = rng.randrange(1, reserve_out)
        amount_in = get_amount_in(amount_out, reserve_in, reserve_out)
        assert get_amount_out(amount_in, reserve_in, reserve_out) >= amount_out
        if amount_in > 2:
            assert get_amount_out(amount_in - 2, reserve_in, reserve_out) < amount_out
            # One unit less is enough exactly when the library's division was exact (it adds 1 regardless).
            exact = reserve_in * amount_out * 1000 % ((reserve_out - amount_out) * 997) == 0
            assert (get_amount_out(amount_in - 1, reserve_in, reserve_out) >= amount_out) == exact
        # The pair's K check, as UniswapV2Pair.swap does it with the fee on the input side
        balance_in = (reserve_in + amount_in) * 1000 - amount_in * 3
        assert balance_in * (reserve_out - amount_out) * 1000 >= reserve_in * reserve_out * 1000**2


def test_refused_amounts_raise_with_uniswap_reasons():
    with pytest.raises(AmmError, match="INSUFFICIENT_INPUT_AMOUNT"):
        get_amount_out(0, 10, 10)
    with pytest.raises(AmmError, match="INSUFFICIENT_LIQUIDITY"):
        get_amount_out(1, 0, 10)
    with pytest.raises(AmmError, match="INSUFFICIENT_OUTPUT_AMOUNT"):
        get_amount_in(0, 10, 10)
    with pytest.raises(AmmError, match="INSUFFICIENT_LIQUIDITY"):
        get_amount_in(10, 10, 10)


def test_price_ratio_and_matching_amount():
    # WETH (18 dec) at $3,000 against USDC (6 dec) at $1: 3000e-12 raw USDC per raw wei
    num, den = price_ratio(3_000 * 10**8, 18, 1 * 10**8, 6)
    assert Fraction(num, den) == Fraction(3_000, 10**12)
    assert matching_amount(10**18, num, den) == 3_000 * 10**6
    # Half up: 5 * 1/2 = 2.5 -> 3; 5 * 1/3 = 1.67 -> 2; 4 * 1/3 = 1.33 -> 1
    assert (matching_amount(5, 1, 2), matching_amount(5, 1, 3), matching_amount(4, 1, 3)) == (3, 2, 1)
    with pytest.raises(AmmError):
        price_ratio(0, 18, 1, 6)


def test_amount_in_for_ratio_hand_checked():
    # 1000/1000 to 4: the continuous root is 1001.5; integer outs: a=1003 -> 2003/501 = 3.998, a=1004 -> 2004/500
    # = 4.008 (out 500.25 -> 500): 1003 is closest.
    assert amount_in_for_ratio(1_000, 1_000, 4, 1) == 1003
    assert get_amount_out(1003, 1_000, 1_000) == 499
    assert amount_in_for_ratio(1_000, 1_000, 1, 1) == 0  # already there
    assert amount_in_for_ratio(2_000, 1_000, 1, 1) == 0  # above the target: this direction cannot help


def _brute_best(reserve_in: int, reserve_out: int, target: Fraction, limit: int) -> Fraction:
    errors = [abs(Fraction(reserve_in, reserve_out) - target)]
    for a in range(1, limit):
        out = get_amount_out(a, reserve_in, reserve_out)
        if out:
            errors.append(abs(Fraction(reserve_in + a, reserve_out - out) - target))
    return min(errors)


@pytest.mark.parametrize("seed", range(3))
def test_amount_in_for_ratio_is_the_exhaustive_optimum_on_small_pools(seed):
    rng = random.Random(seed)
    for _ in range(25):
        reserve_in, reserve_out = rng.randrange(20, 600), rng.randrange(20, 600)
        target = Fraction(reserve_in, reserve_out) * Fraction(rng.randrange(1_001, 3_000), 1_000)
        a = amount_in_for_ratio(reserve_in, reserve_out, target.numerator, target.denominator)
        got = abs(Fraction(*_after(a, reserve_in, reserve_out)) - target)
        assert got == _brute_best(reserve_in, reserve_out, target, 8 * (reserve_in + reserve_out)), (
            reserve_in,
            reserve_out,
            target,
        )


def _after(a: int, reserve_in: int, reserve_out: int) -> tuple[int, int]:
    out = get_amount_out(a, reserve_in, reserve_out) if a else 0
    return reserve_in + a, reserve_out - out


def test_swap_to_price_moves_a_real_sized_pool_to_the_price_both_ways():
    # WETH/USDC at $3,000 with $2M a side, then WETH goes to $2,400 and to $3,600
    weth, usdc = 2_000_000 * 10**18 // 3_000, 2_000_000 * 10**6
    for new_price in (2_400, 3_600):
        num, den = price_ratio(new_price * 10**8, 18, 10**8, 6)
        swap = swap_to_price(weth, usdc, num, den)
        assert swap is not None
        assert swap.zero_for_one == (new_price < 3_000)  # WETH cheaper: arbitrageurs sell WETH into the pool
        if swap.zero_for_one:
            assert swap.amount_out == get_amount_out(swap.amount_in, weth, usdc)
            assert (swap.amount0_out, swap.amount1_out) == (0, swap.amount_out)
        else:
            assert swap.amount_out == get_amount_out(swap.amount_in, usdc, weth)
            assert (swap.amount0_out, swap.amount1_out) == (swap.amount_out, 0)
        # one USDC unit out of ~2e12 is the rounding left
        assert abs(price_error(swap.reserve0_after, swap.reserve1_after, num, den)) < 2e-12
        assert swap_to_price(swap.reserve0_after, swap.reserve1_after, num, den) is None


def test_swap_to_price_none_when_already_at_price():
    num, den = price_ratio(3_000 * 10**8, 18, 10**8, 6)
    assert swap_to_price(10**18, 3_000 * 10**6, num, den) is None
