"""risk.liquidation against outcomes worked out by hand from LiquidationLogic / ValidationLogic, per version.

Prices: WETH $2,000, USDC and DAI $1 (8-decimal base). Indices are 1 (RAY) unless a test says otherwise, so an
amount and its scaled balance are the same number. WETH and DAI pay a 10 % protocol fee on the bonus, USDC none.
"""

from __future__ import annotations

import dataclasses

import pytest

from liq_pipeline.risk.liquidation import liquidation_outcome, revert_for
from liq_pipeline.risk.market import EModeCategory, Leg
from liq_pipeline.risk.wadray import RAY, UINT256_MAX
from liq_pipeline_tests.risk.factories import T0, both, coll, debt, market, reserve, user

MAX = UINT256_MAX
E18, E6 = 10**18, 10**6
WETH = reserve(0, "WETH", 18, 2_000 * 10**8, 8000, fee=1000)
USDC = reserve(1, "USDC", 6, 10**8, 8000, fee=0, emode=1)
DAI = reserve(2, "DAI", 18, 10**8, 8000, fee=1000, emode=1)
ZERO_LT = reserve(3, "ZLT", 18, 10**8, 0, fee=0)
RESERVES = [WETH, USDC, DAI, ZERO_LT]
STABLE_EMODE = EModeCategory(1, 9000, 9300, 10100, label="stables")
ALL = ("3.0", "3.1", "3.2", "3.3", "3.4", "3.5", "3.6", "3.7")


def _market(version: str, reserves=RESERVES):
    return market(reserves, version, emode=[STABLE_EMODE])


def _with(m, reserve_id: int, **fields):
    """`m` with one reserve's fields changed (flags, grace period), as the reader would have read them."""
    reserves = tuple(dataclasses.replace(r, **fields) if r.reserve_id == reserve_id else r for r in m.reserves)
    return dataclasses.replace(m, reserves=reserves)


def _near_one():
    # 1 WETH ($2,000, 80 % LT -> $1,600) against 1,650 USDC: HF 0.9697, above 0.95.
    return user("0xnear", {0: coll(E18), 1: debt(1_650 * E6)})


def _small_collateral():
    # 0.1 WETH ($200) against 500 USDC: HF 0.32; the collateral runs out before the debt.
    return user("0xsmall", {0: coll(E18 // 10), 1: debt(500 * E6)})


# --- close factor ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["3.0", "3.1", "3.2"])
def test_v30_closes_half_of_the_reserve_debt_above_hf_095(version):
    out = liquidation_outcome(_near_one(), _market(version), 0, 1, MAX)
    assert out.ok and out.health_factor == 969_696_969_696_969_697  # 1600/1650, half up
    assert out.max_liquidatable_debt == out.debt_repaid == 825 * E6  # percentMul(1650e6, 5000)
    # 825 USDC / $2,000 = 0.4125 WETH; x 1.05 = 0.433125; bonus part 0.433125 - 0.4125 = 0.020625; fee 10 % of it.
    assert out.protocol_fee == 2_062_500_000_000_000
    assert out.collateral_seized == 433_125_000_000_000_000 - 2_062_500_000_000_000
    after = out.position_after.legs
    assert after[0].scaled_atoken == E18 - 433_125_000_000_000_000
    assert after[1].scaled_variable_debt == 825 * E6
    assert not out.collateral_flag_cleared and not out.debt_flag_cleared and not out.deficit


@pytest.mark.parametrize("version", ["3.0", "3.3", "3.6"])
def test_full_close_at_or_below_hf_095(version):
    # 1 WETH against 1,700 USDC: HF 1600/1700 = 0.941 <= 0.95: all 1,700 may be repaid.
    out = liquidation_outcome(user("0xdeep", {0: coll(E18), 1: debt(1_700 * E6)}), _market(version), 0, 1, MAX)
    assert out.max_liquidatable_debt == out.debt_repaid == 1_700 * E6
    assert out.debt_flag_cleared
    # 1700/2000 x 1.05 = 0.8925 WETH; fee 10 % of 0.0425
    assert out.collateral_seized + out.protocol_fee == 892_500_000_000_000_000
    assert out.protocol_fee == 4_250_000_000_000_000


@pytest.mark.parametrize("version", ["3.3", "3.4", "3.5", "3.6", "3.7"])
def test_v33_closes_in_full_when_the_reserve_debt_is_under_2000(version):
    # The same user as the V3.0 half close: collateral $2,000 (>= threshold) but debt $1,650 < $2,000.
    out = liquidation_outcome(_near_one(), _market(version), 0, 1, MAX)
    assert out.max_liquidatable_debt == out.debt_repaid == 1_650 * E6
    assert out.debt_flag_cleared and out.position_after.legs[1].scaled_variable_debt == 0


def test_v33_threshold_applies_to_the_collateral_reserve_too():
    # 0.99 WETH ($1,980 < $2,000) against 1,300 USDC + 360 DAI ($1,660): HF 1584/1660 = 0.954.
    position = user("0xc", {0: coll(99 * E18 // 100), 1: debt(1_300 * E6), 2: debt(360 * E18)})
    out = liquidation_outcome(position, _market("3.3"), 0, 1, MAX)
    assert 0.95 < out.health_factor / E18 < 1
    assert out.max_liquidatable_debt == 1_300 * E6  # collateral under $2,000: no 50 % cap


def test_v33_half_is_measured_against_the_users_total_debt():
    # 3 WETH ($6,000 -> $4,800 at LT) against 3,000 USDC + 2,000 DAI ($5,000): HF 0.96.
    position = user("0xtotal", {0: coll(3 * E18), 1: debt(3_000 * E6), 2: debt(2_000 * E18)})
    v33 = liquidation_outcome(position, _market("3.3"), 0, 1, MAX)
    v30 = liquidation_outcome(position, _market("3.0"), 0, 1, MAX)
    # V3.3: USDC debt $3,000 > half of $5,000 -> cap $2,500 -> 2,500 USDC; V3.0: half of the USDC debt.
    assert v33.max_liquidatable_debt == v33.debt_repaid == 2_500 * E6
    assert v30.max_liquidatable_debt == v30.debt_repaid == 1_500 * E6
    # DAI debt $2,000 is not above $2,500: no cap, all of it.
    assert liquidation_outcome(position, _market("3.3"), 0, 2, MAX).max_liquidatable_debt == 2_000 * E18


def test_debt_to_cover_below_the_cap_is_taken_as_is():
    out = liquidation_outcome(_near_one(), _market("3.0"), 0, 1, 100 * E6)
    assert out.debt_repaid == 100 * E6
    assert out.collateral_seized + out.protocol_fee == 52_500_000_000_000_000  # 100/2000 x 1.05


# --- capped collateral, protocol fee and its rounding ----------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "repaid", "seized", "fee"),
    [
        # debt = percentDiv(200 USDC, 10500) = 190.476190476 -> half up 190476190
        ("3.0", 190_476_190, 99_523_809_523_809_524, 476_190_476_190_476),
        ("3.3", 190_476_190, 99_523_809_523_809_524, 476_190_476_190_476),
        # 3.5+: percentDivCeil -> 190476191
        ("3.5", 190_476_191, 99_523_809_523_809_524, 476_190_476_190_476),
        ("3.6", 190_476_191, 99_523_809_523_809_524, 476_190_476_190_476),
        # 3.7: bonus part 1e17 - floor(1e21/10500) = 4761904761904762; fee percentMulCeil -> ...477
        ("3.7", 190_476_191, 99_523_809_523_809_523, 476_190_476_190_477),
    ],
)
def test_collateral_runs_out_first(version, repaid, seized, fee):
    out = liquidation_outcome(_small_collateral(), _market(version), 0, 1, MAX)
    assert out.ok
    assert (out.debt_repaid, out.collateral_seized, out.protocol_fee) == (repaid, seized, fee)
    assert out.collateral_seized + out.protocol_fee == E18 // 10  # the whole 0.1 WETH
    assert out.collateral_flag_cleared
    assert out.position_after.legs[0].scaled_atoken == 0 and not out.position_after.legs[0].collateral_enabled


def test_no_protocol_fee_when_the_reserve_has_none():
    # USDC collateral (fee 0): 1,000 USDC against 900 DAI, HF 0.889.
    position = user("0xnofee", {1: coll(1_000 * E6), 2: debt(900 * E18)})
    out = liquidation_outcome(position, _market("3.0"), 1, 2, MAX)
    assert out.protocol_fee == 0 and out.fee_scaled == 0
    assert out.collateral_seized == 945 * E6  # 900 x 1.05


def test_v37_seized_collateral_is_floored():
    # 10 DAI-wei at $1 buy 10 x 1.05 = 10.5 wei of an 18-decimal $1 collateral (no fee): percentMul half up 11,
    # 3.7's percentMulFloor 10.
    usdc_18 = dataclasses.replace(USDC, decimals=18)
    reserves = [WETH, usdc_18, DAI, ZERO_LT]
    position = user("0xw", {1: coll(1_000 * E18), 2: debt(900 * E18)})
    v36 = liquidation_outcome(position, _market("3.6", reserves), 1, 2, 10)
    v37 = liquidation_outcome(position, _market("3.7", reserves), 1, 2, 10)
    assert (v36.collateral_seized, v37.collateral_seized) == (11, 10)


# --- e-mode bonus ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["3.0", "3.3", "3.6"])
def test_emode_bonus_for_collateral_in_the_users_category(version):
    # In the stables category (LT 93 %): 1,000 DAI against 950 USDC, HF 0.979.
    position = user("0xemode", {2: coll(1_000 * E18), 1: debt(950 * E6)}, emode=1)
    out = liquidation_outcome(position, _market(version), 2, 1, 100 * E6)
    assert out.liquidation_bonus == 10100
    # 100 USDC x 1.01 = 101 DAI, fee 10 % of the 1 DAI bonus
    assert out.collateral_seized + out.protocol_fee == 101 * E18
    assert out.protocol_fee == E18 // 10


def test_reserve_bonus_for_collateral_outside_the_category():
    position = user("0xemode2", {0: coll(E18), 2: coll(10 * E18), 1: debt(1_700 * E6)}, emode=1)
    out = liquidation_outcome(position, _market("3.3"), 0, 1, 100 * E6)
    assert out.liquidation_bonus == 10500


# --- dust rule (3.3+) and deficit ------------------------------------------------------------------------------


def _dusty():
    # 1.2 WETH ($2,400) against 2,200 USDC: HF 0.873, full close allowed.
    return user("0xdust", {0: coll(12 * E18 // 10), 1: debt(2_200 * E6)})


@pytest.mark.parametrize(
    ("version", "code"), [("3.3", "103"), ("3.4", "MustNotLeaveDust"), ("3.6", "MustNotLeaveDust")]
)
def test_leaving_under_1000_of_debt_reverts(version, code):
    out = liquidation_outcome(_dusty(), _market(version), 0, 1, 1_500 * E6)  # $700 of debt would be left
    assert out.revert == code and out.reason == "MustNotLeaveDust"


def test_no_dust_rule_before_v33():
    assert liquidation_outcome(_dusty(), _market("3.2"), 0, 1, 1_500 * E6).ok


def test_clearing_the_debt_may_leave_collateral_dust():
    out = liquidation_outcome(_dusty(), _market("3.3"), 0, 1, MAX)
    assert out.ok and out.debt_repaid == 2_200 * E6
    # 2200/2000 x 1.05 = 1.155 WETH; 0.045 WETH ($90) stays, as collateral
    assert out.position_after.legs[0].scaled_atoken == 45 * E18 // 1000
    assert out.position_after.legs[0].collateral_enabled and not out.deficit


def test_leftovers_of_1000_each_pass():
    # 2 WETH ($4,000) against 3,300 USDC (HF 0.97): repay 1,500 -> $1,800 debt and 1.2125 WETH ($2,425) left.
    position = user("0xboth", {0: coll(2 * E18), 1: debt(3_300 * E6)})
    assert liquidation_outcome(position, _market("3.3"), 0, 1, 1_500 * E6).ok
    # 1.25 WETH ($2,500 -> $2,000 at LT) against 2,150 DAI (HF 0.93): repaying 1,150 DAI + 1 wei leaves
    # 1,000 DAI - 1 wei = $999.99999999...: floored to 99,999,999,999 (< 1000e8) before 3.5, ceiled to 1000e8 from it.
    # The collateral left, 1.25 - 0.60375 WETH = $1,292.5, passes either way.
    edge = user("0xedge", {0: coll(125 * E18 // 100), 2: debt(2_150 * E18)})
    assert liquidation_outcome(edge, _market("3.3"), 0, 2, 1_150 * E18 + 1).revert == "103"
    assert liquidation_outcome(edge, _market("3.4"), 0, 2, 1_150 * E18 + 1).revert == "MustNotLeaveDust"
    assert liquidation_outcome(edge, _market("3.5"), 0, 2, 1_150 * E18 + 1).ok
    assert liquidation_outcome(edge, _market("3.5"), 0, 2, 1_150 * E18 + 10**10).revert == "MustNotLeaveDust"


@pytest.mark.parametrize(("version", "deficit"), [("3.3", 309_523_810), ("3.5", 309_523_809), ("3.7", 309_523_809)])
def test_no_collateral_left_burns_the_rest_as_deficit(version, deficit):
    position = user("0xbad", {0: coll(E18 // 10), 1: debt(500 * E6), 2: debt(10 * E18)})
    out = liquidation_outcome(position, _market(version), 0, 1, MAX)
    assert out.no_collateral_left
    assert out.deficit == {1: deficit, 2: 10 * E18}  # the other debt reserve is burned in full
    assert out.debt_repaid + out.deficit[1] == 500 * E6
    legs = out.position_after.legs
    assert legs[1].scaled_variable_debt == 0 and legs[2].scaled_variable_debt == 0 and out.debt_flag_cleared


def test_no_deficit_before_v33():
    position = user("0xbad", {0: coll(E18 // 10), 1: debt(500 * E6)})
    out = liquidation_outcome(position, _market("3.2"), 0, 1, MAX)
    assert not out.deficit and out.position_after.legs[1].scaled_variable_debt == 500 * E6 - 190_476_190


def test_collateral_elsewhere_means_no_deficit():
    position = user("0xok", {0: coll(E18 // 10), 2: coll(10 * E18), 1: debt(500 * E6)})
    out = liquidation_outcome(position, _market("3.6"), 0, 1, MAX)
    assert not out.no_collateral_left and not out.deficit


# --- reverts ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("version", "code"), [("3.0", "45"), ("3.3", "45"), ("3.4", "HealthFactorNotBelowThreshold")])
def test_healthy_user(version, code):
    position = user("0xfine", {0: coll(E18), 1: debt(1_000 * E6)})
    out = liquidation_outcome(position, _market(version), 0, 1, MAX)
    assert out.revert == code and out.reason == "HealthFactorNotBelowThreshold" and out.debt_repaid == 0


@pytest.mark.parametrize(("version", "ok"), [("3.3", True), ("3.4", False), ("3.7", False)])
def test_self_liquidation_is_refused_from_v34(version, ok):
    out = liquidation_outcome(_near_one(), _market(version), 0, 1, 100 * E6, liquidator="0xNEAR")
    assert out.ok is ok
    if not ok:
        assert out.revert == "SelfLiquidation"


@pytest.mark.parametrize(
    ("version", "code"), [("3.1", "97"), ("3.3", "97"), ("3.5", "LiquidationGraceSentinelCheckFailed")]
)
def test_grace_period_must_be_strictly_past(version, code):
    m = _market(version)
    for until in (T0, T0 + 100):  # until == now still reverts
        assert liquidation_outcome(_near_one(), _with(m, 1, liquidation_grace_until=until), 0, 1, MAX).revert == code
        assert liquidation_outcome(_near_one(), _with(m, 0, liquidation_grace_until=until), 0, 1, MAX).revert == code
    assert liquidation_outcome(_near_one(), _with(m, 1, liquidation_grace_until=T0 - 1), 0, 1, MAX).ok


def test_no_grace_period_in_v30():
    assert liquidation_outcome(_near_one(), _with(_market("3.0"), 1, liquidation_grace_until=T0 + 100), 0, 1, MAX).ok


@pytest.mark.parametrize(("version", "code"), [("3.0", "46"), ("3.6", "CollateralCannotBeLiquidated")])
def test_collateral_not_enabled(version, code):
    position = user("0xoff", {0: coll(E18), 2: coll(100 * E18, enabled=False), 1: debt(1_700 * E6)})
    assert liquidation_outcome(position, _market(version), 2, 1, MAX).revert == code


@pytest.mark.parametrize(("version", "ok"), [("3.0", False), ("3.5", False), ("3.6", True), ("3.7", True)])
def test_zero_threshold_collateral_is_liquidatable_from_v36(version, ok):
    position = user("0xzero", {0: coll(E18), 3: coll(100 * E18), 1: debt(1_700 * E6)})
    out = liquidation_outcome(position, _market(version), 3, 1, MAX)  # takes all 100 ZLT: no dust rule
    assert out.ok is ok
    if not ok:
        assert out.reason == "CollateralCannotBeLiquidated"


@pytest.mark.parametrize(("version", "code"), [("3.0", "47"), ("3.5", "SpecifiedCurrencyNotBorrowedByUser")])
def test_debt_not_borrowed(version, code):
    assert liquidation_outcome(_near_one(), _market(version), 0, 2, MAX).revert == code


@pytest.mark.parametrize(("version", "code"), [("3.0", "25"), ("3.3", "25"), ("3.6", "InvalidBurnAmount")])
def test_zero_debt_to_cover_burns_nothing_and_reverts(version, code):
    position = user("0xbig", {0: coll(10 * E18), 1: debt(17_000 * E6)})  # large: no dust revert first
    assert liquidation_outcome(position, _market(version), 0, 1, 0).revert == code


def test_inactive_and_paused_reserves():
    assert liquidation_outcome(_near_one(), _with(_market("3.0"), 1, active=False), 0, 1, MAX).revert == "27"
    assert liquidation_outcome(_near_one(), _with(_market("3.4"), 0, paused=True), 0, 1, MAX).revert == "ReservePaused"
    assert liquidation_outcome(_near_one(), _with(_market("3.4"), 0, frozen=True), 0, 1, MAX).ok  # frozen: allowed


def test_revert_for_names_the_versions_error():
    assert revert_for("MustNotLeaveDust", _market("3.3")) == "103"
    assert revert_for("MustNotLeaveDust", _market("3.4")) == "MustNotLeaveDust"


# --- balances: rounding of the token operations ----------------------------------------------------------------


def test_scaled_balances_round_half_up_before_v35_and_floor_ceil_after():
    # Indices 1.5: a 3-wei repayment burns rayDiv(3, 1.5) = 2 scaled either way; a 4-wei one 2.67 -> 3 half up, 2 floor.
    weth = dataclasses.replace(WETH, liquidity_index=15 * RAY // 10, liquidation_protocol_fee=0)
    usdc = dataclasses.replace(USDC, variable_borrow_index=15 * RAY // 10)
    reserves = [weth, usdc, DAI, ZERO_LT]
    position = user("0xidx", {0: coll(E18), 1: debt(3_000 * E6)})
    v30 = liquidation_outcome(position, _market("3.0", reserves), 0, 1, 4, receive_a_token=True)
    v35 = liquidation_outcome(position, _market("3.5", reserves), 0, 1, 4, receive_a_token=True)
    assert v30.debt_scaled_burned == 3 and v35.debt_scaled_burned == 2
    # 4 USDC-wei buy 4e-6/2000 x 1.05 WETH = 2.1e9 wei; scaled 1.4e9 exactly either way
    assert v30.collateral_seized == v35.collateral_seized == 2_100_000_000
    assert v30.collateral_scaled == v35.collateral_scaled == 1_400_000_000
    assert v35.position_after.legs[1].scaled_variable_debt == 3_000 * E6 - 2


def test_timestamp_moves_the_indices():
    # 10 % a year on USDC debt, a year later: 1,650 USDC become 1,815 (linear rate x compounding) -> deeper HF.
    usdc = dataclasses.replace(USDC, variable_borrow_rate=RAY // 10)
    reserves = [WETH, usdc, DAI, ZERO_LT]
    now = liquidation_outcome(_near_one(), _market("3.0", reserves), 0, 1, MAX)
    later = liquidation_outcome(_near_one(), _market("3.0", reserves), 0, 1, MAX, timestamp=T0 + 365 * 24 * 3600)
    assert now.user_reserve_debt == 1_650 * E6
    assert later.user_reserve_debt > 1_820 * E6  # compounded: 1650 x e^0.1 ~ 1823.5
    assert later.health_factor < now.health_factor


@pytest.mark.parametrize("version", ALL)
def test_every_version_runs_and_conserves_collateral(version):
    position = user("0xall", {0: coll(2 * E18), 1: debt(3_300 * E6), 2: both(0, 10 * E18)})
    out = liquidation_outcome(position, _market(version), 0, 1, 1_000 * E6)
    assert out.ok and out.debt_repaid == 1_000 * E6
    moved = out.collateral_scaled + out.fee_scaled
    assert out.position_after.legs[0].scaled_atoken == 2 * E18 - moved
    assert out.position_after.legs.get(2, Leg()).scaled_variable_debt == 10 * E18


@pytest.mark.parametrize(("version", "scaled"), [("3.0", 3), ("3.4", 3), ("3.5", 4), ("3.7", 4)])
def test_collateral_moved_to_the_liquidator_rounds_up_from_v35(version, scaled):
    # An 18-decimal $1 collateral at income 1.5, no fee: 5 DAI-wei buy percentMul(5, 10500) = 5 wei, i.e. 3.33
    # scaled: rayDiv half up 3 (3.0-3.4), rayDivCeil 4 (3.5+). The liquidator gets them as aTokens.
    usdc_18 = dataclasses.replace(USDC, decimals=18, liquidity_index=15 * RAY // 10)
    position = user("0xmove", {1: coll(1_000 * E18), 2: debt(1_300 * E18)})
    out = liquidation_outcome(position, _market(version, [WETH, usdc_18, DAI, ZERO_LT]), 1, 2, 5, True, "0xliq")
    assert out.ok and out.collateral_seized == 5
    assert out.collateral_scaled == scaled
    assert out.position_after.legs[1].scaled_atoken == 1_000 * E18 - scaled


def test_v30_repays_variable_debt_first_then_stable():
    # 1 WETH against 1,000 USDC variable + 700 USDC stable: $1,700, HF 0.941, full close.
    position = user("0xstable", {0: coll(E18), 1: Leg(scaled_variable_debt=1_000 * E6, stable_debt=700 * E6)})
    part = liquidation_outcome(position, _market("3.0"), 0, 1, 1_200 * E6)
    assert part.user_reserve_debt == 1_700 * E6 and part.debt_repaid == 1_200 * E6
    assert part.debt_scaled_burned == 1_000 * E6
    after = part.position_after.legs[1]
    assert (after.scaled_variable_debt, after.stable_debt) == (0, 500 * E6) and not part.debt_flag_cleared
    full = liquidation_outcome(position, _market("3.1"), 0, 1, MAX)
    assert full.debt_repaid == 1_700 * E6 and full.debt_flag_cleared
    # 3.2 has no stable debt: only the 1,000 variable count, and the user is healthy.
    assert liquidation_outcome(position, _market("3.2"), 0, 1, MAX).revert == "45"


# --- the liquidator's collateral flag (receiveAToken) -------------------------------------------------------------


@pytest.mark.parametrize(("version", "enabled"), [("3.0", True), ("3.3", True), ("3.5", True), ("3.6", False)])
def test_received_atokens_become_collateral_up_to_v35(version, enabled):
    liquidator = user("0xliq", {})
    out = liquidation_outcome(_near_one(), _market(version), 0, 1, MAX, True, "0xliq", liquidator_position=liquidator)
    assert out.ok and out.liquidator_collateral_enabled is enabled
    unasked = liquidation_outcome(
        _near_one(), _market(version), 0, 1, MAX, False, "0xliq", liquidator_position=liquidator
    )
    assert unasked.liquidator_collateral_enabled is None  # underlying received: no aTokens, no flag


def test_no_automatic_collateral_when_the_validation_would_refuse():
    m = _market("3.0")
    holding = user("0xliq", {0: coll(5, enabled=False)})  # aTokens already held, turned off: stays off
    assert not liquidation_outcome(
        _near_one(), m, 0, 1, MAX, True, "0xliq", liquidator_position=holding
    ).liquidator_collateral_enabled
    on = user("0xliq", {0: coll(5)})
    assert liquidation_outcome(
        _near_one(), m, 0, 1, MAX, True, "0xliq", liquidator_position=on
    ).liquidator_collateral_enabled
    empty = user("0xliq", {})
    ceiling = _with(m, 0, debt_ceiling=1_000_00)  # an isolated asset: only ISOLATED_COLLATERAL_SUPPLIER may
    assert not liquidation_outcome(
        _near_one(), ceiling, 0, 1, MAX, True, "0xliq", liquidator_position=empty
    ).liquidator_collateral_enabled
    ltv0 = _with(m, 0, ltv=0)
    assert not liquidation_outcome(
        _near_one(), ltv0, 0, 1, MAX, True, "0xliq", liquidator_position=empty
    ).liquidator_collateral_enabled
    isolated = _with(m, 2, debt_ceiling=1_000_00)  # the liquidator's only collateral is isolated: isolation mode
    in_isolation = user("0xliq", {2: coll(E18)})
    assert not liquidation_outcome(
        _near_one(), isolated, 0, 1, MAX, True, "0xliq", liquidator_position=in_isolation
    ).liquidator_collateral_enabled
    other = user("0xliq", {1: coll(E6)})  # another, plain collateral: allowed
    assert liquidation_outcome(
        _near_one(), m, 0, 1, MAX, True, "0xliq", liquidator_position=other
    ).liquidator_collateral_enabled
