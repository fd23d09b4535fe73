"""Fixed-point helpers and reserve indices against values worked out by hand (and Aave's own test figures)."""

from __future__ import annotations

import pytest

from liq_pipeline.risk.indices import compounded_interest, linear_interest, normalized_debt, normalized_income
from liq_pipeline.risk.versions import rules_for
from liq_pipeline.risk.wadray import (
    RAY,
    SECONDS_PER_YEAR,
    WAD,
    mul_div_ceil,
    percent_div,
    percent_mul,
    ray_mul,
    ray_mul_ceil,
    ray_mul_floor,
    wad_div,
)


def test_rounding_directions():
    assert ray_mul(3, RAY // 2) == 2  # 1.5 rounds half up
    assert ray_mul(1, RAY // 2 - 1) == 0
    assert ray_mul_floor(3, RAY // 2) == 1
    assert ray_mul_ceil(3, RAY // 2) == 2
    assert ray_mul_ceil(4, RAY // 2) == 2  # exact: no extra unit
    assert wad_div(1, 3) == 333333333333333333
    assert wad_div(2, 3) == 666666666666666667
    assert percent_mul(10_001, 5_000) == 5001  # 5000.5 rounds up
    assert percent_mul(9_999, 5_000) == 5000  # 4999.5 rounds up
    assert percent_div(100, 10_500) == 95  # 95.238 rounds to 95
    assert mul_div_ceil(7, 3, 2) == 11
    assert mul_div_ceil(6, 3, 2) == 9


def test_uint256_overflow_is_reported_not_wrapped():
    with pytest.raises(OverflowError):
        ray_mul(2**200, 2**100)


def test_linear_interest_one_day_at_five_percent():
    rate = 5 * RAY // 100
    # rate * 86400 / 31536000, floored: 0.05 / 365 = 1.36986301369863013698...e-4
    assert linear_interest(rate, 0, 86_400) == RAY + 136986301369863013698630
    index = 105 * RAY // 100
    assert normalized_income(index, rate, 0, 86_400) == ray_mul(RAY + 136986301369863013698630, index)
    assert normalized_income(index, rate, 50, 50) == index  # same block: the stored index


def test_compounded_interest_matches_aave_figures_for_8pct_over_7_years():
    # Figures from Aave's own tests: 8 % a year for 7 years gives 1.745486...e27 with the V3.0 binomial and
    # 1.746069...e27 with the V3.4+ form.
    rate, seconds = 8 * RAY // 100, 7 * SECONDS_PER_YEAR
    old = compounded_interest(rate, 0, seconds, rules_for("3.0"))
    new = compounded_interest(rate, 0, seconds, rules_for("3.4"))
    assert str(old).startswith("1745486")
    assert str(new).startswith("1746069")
    assert compounded_interest(rate, 10, 10, rules_for("3.0")) == RAY


def test_debt_accrues_by_timestamps_not_block_counts():
    rate = 10 * RAY // 100
    rules = rules_for("3.0")
    # 30 Base blocks of 2 s are 60 s of interest, not 360 s (Ethereum's 12 s blocks).
    sixty = normalized_debt(RAY, rate, 1_000, 1_060, rules)
    assert sixty == ray_mul(compounded_interest(rate, 1_000, 1_060, rules), RAY)
    assert sixty - RAY == pytest.approx(RAY * 0.10 * 60 / SECONDS_PER_YEAR, rel=1e-6)


def test_timestamps_before_last_update_are_refused():
    with pytest.raises(ValueError, match="before the reserve's last update"):
        linear_interest(RAY, 100, 99)


def test_wad_constant():
    assert WAD == 10**18
