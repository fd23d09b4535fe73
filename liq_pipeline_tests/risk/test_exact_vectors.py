"""The exact path against health factors worked out by hand, for each rounding regime."""

from __future__ import annotations

import pytest

from liq_pipeline.risk.exact import account_data
from liq_pipeline.risk.health import health_factors
from liq_pipeline.risk.market import EModeCategory, Leg, positions_frame
from liq_pipeline.risk.wadray import RAY, UINT256_MAX
from liq_pipeline_tests.risk.factories import T0, both, coll, debt, market, reserve, user

WETH = reserve(0, "WETH", 18, 2_000 * 10**8, 8250, income=105 * RAY // 100)
USDC = reserve(1, "USDC", 6, 10**8, 7800, debt_index=110 * RAY // 100, stable=True)


def _hand_user():
    # 1.0 scaled aWETH at income 1.05 -> 1.05 WETH -> 2100e8 base; 1000 aUSDC -> 1000e8 base;
    # 2000 scaled USDC debt at index 1.1 -> 2200 USDC -> 2200e8 base.
    return user("0xhand", {0: coll(10**18), 1: both(1_000 * 10**6, 2_000 * 10**6)})


def test_v30_floors_the_average_threshold():
    data = account_data(_hand_user(), market([WETH, USDC], "3.0"))
    assert data.total_collateral_base == 3_100 * 10**8
    assert data.total_debt_base == 2_200 * 10**8
    # (2100e8 x 8250 + 1000e8 x 7800) / 3100e8 = 8104.84 -> 8104 bps
    assert data.avg_liquidation_threshold == 8104
    # percentMul(3100e8, 8104) = 2512.24e8; wadDiv by 2200e8 = 1.14192727...e18, half up
    assert data.health_factor == 1_141_927_272_727_272_727


def test_v35_keeps_the_threshold_exact():
    data = account_data(_hand_user(), market([WETH, USDC], "3.5"))
    # sum(coll x LT) = 2.5125e15; wadDiv(2.5125e15, 2200e8) / 1e4 = 1.14204545...e18
    assert data.health_factor == 1_142_045_454_545_454_545
    assert data.avg_liquidation_threshold == 8104  # reported floored, not used for the HF


def test_v35_rounds_collateral_down_and_debt_up():
    # scaled 3 at index 1.5: aToken 4.5 -> 4 (floor), debt 4.5 -> 5 (ceil); V3.0 rounds both half up to 5.
    token = reserve(0, "TKN", 0, 10**8, 10_000, income=15 * RAY // 10, debt_index=15 * RAY // 10)
    position = user("0xr", {0: both(3, 3)})
    v35 = account_data(position, market([token], "3.5"))
    v30 = account_data(position, market([token], "3.0"))
    assert (v35.total_collateral_base, v35.total_debt_base) == (4 * 10**8, 5 * 10**8)
    assert (v30.total_collateral_base, v30.total_debt_base) == (5 * 10**8, 5 * 10**8)


STABLE_A = reserve(0, "USDA", 6, 10**8, 8300, stable=True)
STABLE_B = reserve(1, "USDB", 6, 10**8, 8200, stable=True)
DEBT8 = reserve(2, "USD8", 8, 10**8, 8000, stable=True)


def test_average_threshold_floors_across_a_bps_boundary():
    # 1e12 USDA (LT 8300, 1e14 base) and 1 wei of USDB (LT 8200, 100 base):
    # avgLT = 8300 - 1e4 / (1e14 + 100) = 8299.9999999999 -> floors to 8299 under V3.0.
    # Debt is set so that an unfloored 8300 would give HF exactly 1.0: the floor makes the user liquidatable.
    collateral_base = 10**14 + 100
    debt_base = (collateral_base * 8300 + 5_000) // 10_000  # percentMul(C, 8300) = 83000000000083
    position = user("0xedge", {0: coll(10**12), 1: coll(1), 2: debt(debt_base)})
    m = market([STABLE_A, STABLE_B, DEBT8], "3.0")
    data = account_data(position, m)
    assert data.avg_liquidation_threshold == 8299
    # percentMul(C, 8299) = 82990000000083; / 83000000000083 = 1 - 1e10 / 83000000000083 = 0.99987951807228927...
    assert data.health_factor == 999_879_518_072_289_277
    assert data.liquidatable
    # The vectorized path must reach the same decision (the float ratio sits 1e-10 under a whole bps).
    frame = positions_frame([position], m.reserve_ids)
    result = health_factors(frame, m)
    assert result["liquidatable_baseline"].to_list() == [True]
    assert result["exact_baseline"].to_list() == [True]


def test_same_user_is_safe_with_an_exact_threshold():
    collateral_base = 10**14 + 100
    debt_base = (collateral_base * 8300 + 5_000) // 10_000
    position = user("0xedge", {0: coll(10**12), 1: coll(1), 2: debt(debt_base)})
    data = account_data(position, market([STABLE_A, STABLE_B, DEBT8], "3.5"))
    # sum = 8.3e17 + 820000; wadDiv(sum, 83000000000083) / 1e4 = 0.99999999999988... -> just under 1
    assert data.health_factor == (((10**14 * 8300 + 100 * 8200) * 10**18 + debt_base // 2) // debt_base) // 10_000


def test_disabled_collateral_and_zero_threshold_do_not_count():
    gho = reserve(2, "GHO", 18, 10**8, 0, stable=True)
    m = market([WETH, USDC, gho])
    position = user("0xd", {0: coll(10**18, enabled=False), 2: coll(10**21), 1: debt(10**6)})
    data = account_data(position, m)
    assert data.total_collateral_base == 0
    assert data.health_factor == 0
    assert data.liquidatable


def test_no_debt_is_infinite():
    data = account_data(user("0xz", {0: coll(10**18)}), market([WETH, USDC]))
    assert data.health_factor == UINT256_MAX
    assert not data.liquidatable
    assert data.hf_float == float("inf")
    empty = account_data(user("0xe", {}), market([WETH, USDC]))
    assert empty.health_factor == UINT256_MAX


@pytest.mark.parametrize("version", ["3.0", "3.2", "3.5"])
def test_emode_threshold_applies_to_category_collateral_only(version):
    usdc = reserve(0, "USDC", 6, 10**8, 7800, emode=1, stable=True)
    dai = reserve(1, "DAI", 18, 10**8, 7700, emode=1, stable=True)
    weth = reserve(2, "WETH", 18, 3_000 * 10**8, 8250)
    stables = EModeCategory(1, 9300, 9500, 10100)
    m = market([usdc, dai, weth], version, emode=[stables])
    legs = {0: coll(1_000_000 * 10**6), 2: coll(10**18), 1: debt(900_000 * 10**18)}
    in_emode = account_data(user("0xe", legs, emode=1), m)
    outside = account_data(user("0xo", legs, emode=0), m)
    # 1,000,000 USDC at 9500 and 1 WETH ($3000) at its own 8250; debt $900,000.
    expected_sum = 1_000_000 * 10**8 * 9500 + 3_000 * 10**8 * 8250
    if version == "3.5":
        assert in_emode.health_factor == ((expected_sum * 10**18 + 450_000 * 10**8) // (900_000 * 10**8)) // 10_000
    assert in_emode.avg_liquidation_threshold == expected_sum // (1_003_000 * 10**8)
    assert outside.avg_liquidation_threshold == (1_000_000 * 7800 + 3_000 * 8250) // 1_003_000
    assert in_emode.health_factor > outside.health_factor


def test_devnet_style_emode_user():
    # From the devnet facts: $1M USDC in e-mode (LT 9500) borrowing $900k DAI reads back HF 1.0556.
    usdc = reserve(0, "USDC", 6, 10**8, 7800, emode=1, stable=True)
    dai = reserve(1, "DAI", 18, 10**8, 7700, emode=1, stable=True)
    m = market([usdc, dai], "3.0", emode=[EModeCategory(1, 9300, 9500, 10100)])
    data = account_data(user("0xd", {0: coll(10**12), 1: debt(900_000 * 10**18)}, emode=1), m)
    assert data.avg_liquidation_threshold == 9500
    assert round(data.hf_float, 4) == 1.0556


def test_decimals_6_8_18_value_the_same_dollar_alike():
    usdc = reserve(0, "USDC", 6, 10**8, 8000)
    wbtc = reserve(1, "WBTC", 8, 50_000 * 10**8, 8000)
    weth = reserve(2, "WETH", 18, 2_500 * 10**8, 8000)
    dai = reserve(3, "DAI", 18, 10**8, 8000)
    m = market([usdc, wbtc, weth, dai])
    for rid, amount in [(0, 5_000 * 10**6), (1, 10**7), (2, 2 * 10**18)]:  # $5,000 each
        data = account_data(user("0x", {rid: coll(amount), 3: debt(4_000 * 10**18)}), m)
        assert data.total_collateral_base == 5_000 * 10**8
        assert data.health_factor == 10**18  # 5000 x 0.8 / 4000


def test_interest_accrues_into_the_hf():
    usdc = reserve(0, "USDC", 6, 10**8, 8000, borrow_rate=10 * RAY // 100, liquidity_rate=0, last_update=T0)
    position = user("0xi", {0: both(1_000 * 10**6, 800 * 10**6)})
    now = account_data(position, market([usdc], timestamp=T0))
    later = account_data(position, market([usdc], timestamp=T0 + 86_400))
    assert now.health_factor == 10**18
    assert later.total_debt_base > now.total_debt_base
    assert later.liquidatable


def test_stable_debt_counts_up_to_v31_only():
    usdc = reserve(0, "USDC", 6, 10**8, 8000)
    position = user("0xs", {0: Leg(scaled_atoken=1_000 * 10**6, stable_debt=900 * 10**6, collateral_enabled=True)})
    assert account_data(position, market([usdc], "3.0")).liquidatable
    assert not account_data(position, market([usdc], "3.2")).liquidatable


@pytest.mark.parametrize("version", ["3.5", "3.6", "3.7"])
def test_zero_threshold_collateral_counts_from_v36(version):
    # An e-mode-only collateral: its own LT is 0, its category (LT 9000) lists it in the collateral bitmap.
    usdc = reserve(0, "USDC", 6, 10**8, 7800, emode=1, stable=True)
    susde = reserve(1, "sUSDe", 18, 10**8, 0, emode=1, stable=True)
    weth = reserve(2, "WETH", 18, 3_000 * 10**8, 8250)
    m = market([usdc, susde, weth], version, emode=[EModeCategory(1, 8800, 9000, 10300)])
    in_emode = user("0xe", {1: coll(10_000 * 10**18), 0: debt(8_000 * 10**6)}, emode=1)
    outside = user("0xo", {1: coll(10_000 * 10**18), 2: coll(10**18), 0: debt(2_000 * 10**6)})
    counted = version != "3.5"
    e, o = account_data(in_emode, m), account_data(outside, m)
    # in e-mode: $10,000 at the category's 9000 against $8,000 of debt -> HF 1.125 from V3.6, 0 before
    assert e.total_collateral_base == (10_000 * 10**8 if counted else 0)
    assert e.health_factor == (
        (10_000 * 10**8 * 9000 * 10**18 + 4_000 * 10**8) // (8_000 * 10**8) // 10_000 if counted else 0
    )
    # outside e-mode the LT-0 asset adds to total collateral (and the average LT's denominator), not to the HF
    assert o.total_collateral_base == 3_000 * 10**8 + (10_000 * 10**8 if counted else 0)
    assert o.avg_liquidation_threshold == 3_000 * 8250 // (13_000 if counted else 3_000)
    assert o.health_factor == (3_000 * 10**8 * 8250 * 10**18 + 1_000 * 10**8) // (2_000 * 10**8) // 10_000
    # the vectorized path decides alike and lands within its float tolerance of the exact HF
    frame = health_factors(positions_frame([in_emode, outside], m.reserve_ids), m)
    assert frame["liquidatable_baseline"].to_list() == [e.liquidatable, o.liquidatable]
    assert frame["hf_baseline"].to_list() == pytest.approx([e.hf_float, o.hf_float], rel=1e-9)
