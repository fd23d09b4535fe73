"""Exact liquidation outcomes: what one `Pool.liquidationCall` does, on Python integers, per protocol version.

For a user, a collateral reserve, a debt reserve and a `debtToCover` (UINT256_MAX = "as much as allowed"), the
debt the liquidator repays, the collateral it receives (the LiquidationCall event's two amounts), the protocol
fee, the deficit created, the user's flags and scaled balances after, or the revert the Pool would raise. The
executor builds its transactions from this, so it follows the contracts operation by operation:

- 3.0: aave-v3-core 1.19.3 `LiquidationLogic.executeLiquidationCall`, `ValidationLogic.validateLiquidationCall`
  (node_modules/@aave/core-v3); 3.1 and 3.2 (aave-v3-origin tags v3.1.0, v3.2.0) keep its maths and add the
  liquidation grace period (3.1) and drop stable debt (3.2).
- 3.3-3.7: aave-v3-origin tags v3.3.0 ... v3.6.0 and main after `feat: v3.7.0`,
  `src/contracts/protocol/libraries/logic/LiquidationLogic.sol` and `ValidationLogic.sol`, `helpers/TokenMath.sol`.

Version differences used here (fields of `market.rules`, risk/versions.py):
- close factor: 3.0-3.2 `percentMul(reserveDebt, 50 % if HF > 0.95 else 100 %)`; 3.3+ the whole reserve debt
  unless the reserve's collateral and debt are both >= $2,000 and HF > 0.95, then half the user's TOTAL debt;
- 3.3+: `MustNotLeaveDust` (both leftovers >= $1,000 unless debt or collateral is cleared) and deficits (no
  collateral left: the liquidated reserve's rest and every other debt are burned into `deficit`);
- 3.4+: no self-liquidation; custom errors (names) instead of numeric codes;
- 3.5+: balances floor/ceil (TokenMath), reserve debt valued rounded up, capped debt `percentDivCeil`;
- 3.6+: a collateral with LT 0 can be liquidated (only the user's collateral bit is checked);
- 3.7: `percentMulFloor` / `percentDivFloor` / `percentMulCeil` in the seized-collateral split
  (docs/3.7/liquidation-rounding.md) and "no collateral left" from the scaled amounts actually consumed.
Not modelled: the price-oracle sentinel (assumed absent), GHO's virtual-accounting special case (3.3), the
liquidator's own collateral flag, the Pool's cash for `receiveAToken=false`, the liquidator's balance/allowance.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

from .exact import AccountData, account_data
from .market import Leg, MarketState, UserPosition
from .wadray import (
    UINT256_MAX,
    WAD,
    mul_div_ceil,
    percent_div,
    percent_div_ceil,
    percent_div_floor,
    percent_mul,
    percent_mul_ceil,
    percent_mul_floor,
    ray_div,
    ray_div_ceil,
    ray_div_floor,
    ray_mul,
    ray_mul_ceil,
    ray_mul_floor,
)

CLOSE_FACTOR_HF_THRESHOLD = 95 * 10**16
DEFAULT_LIQUIDATION_CLOSE_FACTOR = 5_000
MAX_LIQUIDATION_CLOSE_FACTOR = 10_000
MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD = 2_000 * 10**8  # a contract constant: assumes an 8-decimal USD base
MIN_LEFTOVER_BASE = MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD // 2

# Revert reasons: the name is the custom error of 3.4+; up to 3.3 the Pool reverts with Errors.sol's code string.
SELF_LIQUIDATION = "SelfLiquidation"
RESERVE_INACTIVE = "ReserveInactive"
RESERVE_PAUSED = "ReservePaused"
GRACE_PERIOD = "LiquidationGraceSentinelCheckFailed"
HF_NOT_BELOW_THRESHOLD = "HealthFactorNotBelowThreshold"
COLLATERAL_CANNOT_BE_LIQUIDATED = "CollateralCannotBeLiquidated"
NOT_BORROWED = "SpecifiedCurrencyNotBorrowedByUser"
MUST_NOT_LEAVE_DUST = "MustNotLeaveDust"
INVALID_BURN_AMOUNT = "InvalidBurnAmount"

ERROR_CODES = {  # aave-v3-core / aave-v3-origin (<= 3.3) helpers/Errors.sol
    RESERVE_INACTIVE: "27",
    RESERVE_PAUSED: "29",
    HF_NOT_BELOW_THRESHOLD: "45",
    COLLATERAL_CANNOT_BE_LIQUIDATED: "46",
    NOT_BORROWED: "47",
    INVALID_BURN_AMOUNT: "25",
    GRACE_PERIOD: "97",
    MUST_NOT_LEAVE_DUST: "103",
}


@dataclass(frozen=True)
class LiquidationOutcome:
    """One liquidationCall, predicted. Amounts in asset units (wei of the token), scaled amounts in the token's
    scaled units. When `revert` is set the amounts are what was computed up to the failing check."""

    version: str
    revert: str | None  # what the Pool reverts with: Errors.sol code up to 3.3 ('45'), error name from 3.4
    reason: str | None  # the same, version-independent (the 3.4+ error name)
    health_factor: int  # wad, before
    liquidation_bonus: int = 0  # bps (10500 = 5 %)
    user_collateral_balance: int = 0  # aToken balance before
    user_reserve_debt: int = 0  # debt in the debt reserve before (3.0-3.1: variable + stable)
    max_liquidatable_debt: int = 0  # the close factor's cap
    debt_repaid: int = 0  # LiquidationCall.debtToCover: what the liquidator pays
    collateral_seized: int = 0  # LiquidationCall.liquidatedCollateralAmount: to the liquidator, after the fee
    protocol_fee: int = 0  # aTokens to the treasury (after the 1-wei cap)
    collateral_scaled: int = 0  # scaled aTokens taken from the user for the liquidator (moved or burned)
    fee_scaled: int = 0  # scaled aTokens moved to the treasury
    debt_scaled_burned: int = 0  # scaled variable debt burned in the debt reserve (deficit included)
    deficit: Mapping[int, int] = field(default_factory=dict)  # reserve id -> deficit created (3.3+)
    collateral_flag_cleared: bool = False
    debt_flag_cleared: bool = False
    no_collateral_left: bool = False  # 3.3+: the liquidation burns the user's remaining debts as deficit
    position_after: UserPosition | None = None
    # receiveAToken with the liquidator's position given: its collateral flag for the seized reserve after
    # (up to 3.5 a first aToken balance turns it on when the reserve may be auto-enabled; 3.6+ never)
    liquidator_collateral_enabled: bool | None = None

    @property
    def ok(self) -> bool:
        return self.revert is None


def revert_for(reason: str, market: MarketState) -> str:
    """The revert string/name the Pool of `market`'s version raises for `reason`."""
    return reason if market.rules.custom_errors else ERROR_CODES[reason]


def liquidation_outcome(
    position: UserPosition,
    market: MarketState,
    collateral_id: int,
    debt_id: int,
    debt_to_cover: int,
    receive_a_token: bool = False,
    liquidator: str | None = None,
    timestamp: int | None = None,
    liquidator_position: UserPosition | None = None,
    account: AccountData | None = None,
    with_position_after: bool = True,
) -> LiquidationOutcome:
    """Predict `liquidationCall(collateral, debt, user, debtToCover, receiveAToken)` sent by `liquidator` in a block
    at `timestamp` (default: `market.timestamp`), from the position and reserve state before that block.

    The reserves' flags (active, paused) and grace periods (3.1+) come from `market` (chain/discovery reads them
    with the reserves' data). `liquidator_position` (its exact scaled aToken balance in the collateral reserve and
    its collateral flags) lets the outcome say whether received aTokens count as the liquidator's collateral.
    `account`: the position's `account_data` in `market` when the caller has it (a sizing search evaluates hundreds
    of amounts of one position; the account data does not depend on the amount). `with_position_after=False`: the
    outcome without `position_after` (a sizing search does not read it; its copies were a fifth of an evaluation's
    time, cProfile on random V3.6 whales)."""
    if debt_to_cover < 0 or debt_to_cover > UINT256_MAX:
        raise ValueError("debt_to_cover must be a uint256")
    rules = market.rules
    if timestamp is not None and timestamp != market.timestamp:
        market = dataclasses.replace(market, timestamp=timestamp)
    now = market.timestamp
    collateral, debt = market.by_id[collateral_id], market.by_id[debt_id]
    coll_leg = position.legs.get(collateral_id, Leg())
    debt_leg = position.legs.get(debt_id, Leg())
    income, debt_index = market.income_index[collateral_id], market.debt_index[debt_id]
    if account is None:
        account = account_data(position, market)
    hf = account.health_factor
    version = market.rules.version

    if rules.token_math:
        coll_balance = ray_mul_floor(coll_leg.scaled_atoken, income)
        variable_debt = ray_mul_ceil(debt_leg.scaled_variable_debt, debt_index)
    else:
        coll_balance = ray_mul(coll_leg.scaled_atoken, income)
        variable_debt = ray_mul(debt_leg.scaled_variable_debt, debt_index)
    stable_debt = debt_leg.stable_debt if rules.counts_stable_debt else 0
    reserve_debt = variable_debt + stable_debt

    progress: dict = {
        "version": version,
        "health_factor": hf,
        "user_collateral_balance": coll_balance,
        "user_reserve_debt": reserve_debt,
    }

    def fail(reason: str, **more) -> LiquidationOutcome:
        code = reason if rules.custom_errors else ERROR_CODES[reason]
        return LiquidationOutcome(revert=code, reason=reason, **{**progress, **more})

    # ValidationLogic.validateLiquidationCall, in its order.
    user = position.user.lower()
    if rules.custom_errors and liquidator is not None and liquidator.lower() == user:
        return fail(SELF_LIQUIDATION)
    if not (collateral.active and debt.active):
        return fail(RESERVE_INACTIVE)
    if collateral.paused or debt.paused:
        return fail(RESERVE_PAUSED)
    if rules.liquidation_grace_period and not (
        collateral.liquidation_grace_until < now and debt.liquidation_grace_until < now
    ):
        return fail(GRACE_PERIOD)
    if hf >= WAD:
        return fail(HF_NOT_BELOW_THRESHOLD)
    enabled = coll_leg.collateral_enabled and (
        collateral.liquidation_threshold != 0 or rules.counts_zero_threshold_collateral
    )
    if not enabled:
        return fail(COLLATERAL_CANNOT_BE_LIQUIDATED)
    if reserve_debt == 0:
        return fail(NOT_BORROWED)

    category = position.emode_category
    bonus = market.effective_bonus(category, collateral_id)
    coll_price, debt_price = collateral.price, debt.price
    if market.rules.emode_price_source and category:  # 3.0-3.1 _getConfigurationData
        emode = market.emode_categories.get(category)
        if emode is not None and emode.price:
            debt_price = emode.price  # "when in eMode, debt will always be in the same eMode category"
            if market.in_emode(category, collateral_id):
                coll_price = emode.price
    coll_unit, debt_unit = collateral.unit, debt.unit

    # The close factor.
    if not rules.small_position_full_close:
        close = DEFAULT_LIQUIDATION_CLOSE_FACTOR if hf > CLOSE_FACTOR_HF_THRESHOLD else MAX_LIQUIDATION_CLOSE_FACTOR
        max_debt = percent_mul(reserve_debt, close)
    else:
        if rules.token_math:
            debt_base = mul_div_ceil(reserve_debt, debt_price, debt_unit)
        else:
            debt_base = reserve_debt * debt_price // debt_unit
        coll_base = coll_balance * coll_price // coll_unit
        max_debt = reserve_debt
        if (
            coll_base >= MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD
            and debt_base >= MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD
            and hf > CLOSE_FACTOR_HF_THRESHOLD
        ):
            half = percent_mul(account.total_debt_base, DEFAULT_LIQUIDATION_CLOSE_FACTOR)
            if debt_base > half:
                max_debt = half * debt_unit // debt_price
    actual_debt = min(debt_to_cover, max_debt)
    progress.update(liquidation_bonus=bonus, max_liquidatable_debt=max_debt)

    # _calculateAvailableCollateralToLiquidate.
    base_collateral = debt_price * actual_debt * coll_unit // (coll_price * debt_unit)
    if rules.split_rounding_floor_ceil:
        max_collateral = percent_mul_floor(base_collateral, bonus)
    else:
        max_collateral = percent_mul(base_collateral, bonus)
    if max_collateral > coll_balance:
        coll_amount = coll_balance
        worth = coll_price * coll_amount * debt_unit // (debt_price * coll_unit)
        actual_debt = percent_div_ceil(worth, bonus) if rules.token_math else percent_div(worth, bonus)
    else:
        coll_amount = max_collateral
    coll_amount_base = coll_amount * coll_price // coll_unit  # before the fee (3.3-3.6 "no collateral left")
    fee = 0
    fee_pct = collateral.liquidation_protocol_fee
    if fee_pct:
        if rules.split_rounding_floor_ceil:
            bonus_part = coll_amount - percent_div_floor(coll_amount, bonus)
            fee = percent_mul_ceil(bonus_part, fee_pct)
        else:
            bonus_part = coll_amount - percent_div(coll_amount, bonus)
            fee = percent_mul(bonus_part, fee_pct)
        coll_amount -= fee
    progress.update(debt_repaid=actual_debt, collateral_seized=coll_amount, protocol_fee=fee)

    # The dust rule (3.3+).
    if rules.dust_rule_and_deficits and actual_debt < reserve_debt and coll_amount + fee < coll_balance:
        left = reserve_debt - actual_debt
        if rules.token_math:
            debt_left_base = mul_div_ceil(left, debt_price, debt_unit)
        else:
            debt_left_base = left * debt_price // debt_unit
        coll_left_base = (coll_balance - coll_amount - fee) * coll_price // coll_unit
        if not (debt_left_base >= MIN_LEFTOVER_BASE and coll_left_base >= MIN_LEFTOVER_BASE):
            return fail(MUST_NOT_LEAVE_DUST)

    # Collateral flag and "no collateral left".
    scaled_coll = coll_leg.scaled_atoken
    no_collateral_left = False
    if rules.split_rounding_floor_ceil:
        consumed = ray_div_ceil(coll_amount, income) + ray_div_ceil(fee, income)
        consumed = min(consumed, scaled_coll)
        fully = consumed == scaled_coll
        consumed_base = ray_mul_floor(consumed, income) * coll_price // coll_unit
        no_collateral_left = consumed_base == account.total_collateral_base
        collateral_flag_cleared = fully or no_collateral_left
    else:
        collateral_flag_cleared = coll_amount + fee == coll_balance
        if rules.dust_rule_and_deficits:
            no_collateral_left = account.total_collateral_base == coll_amount_base

    legs = dict(position.legs) if with_position_after else position.legs
    deficit: dict[int, int] = {}

    # _burnDebtTokens.
    scaled_debt = debt_leg.scaled_variable_debt
    new_stable = debt_leg.stable_debt
    if not rules.dust_rule_and_deficits:
        if variable_debt >= actual_debt:
            burned = ray_div(actual_debt, debt_index)
            if burned == 0:
                return fail(INVALID_BURN_AMOUNT)
        else:
            burned = ray_div(variable_debt, debt_index) if variable_debt else 0
            if variable_debt and burned == 0:
                return fail(INVALID_BURN_AMOUNT)
            new_stable = debt_leg.stable_debt - (actual_debt - variable_debt)
        debt_flag_cleared = reserve_debt == actual_debt
    else:
        burn_amount = reserve_debt if no_collateral_left else actual_debt
        burned = ray_div_floor(burn_amount, debt_index) if rules.token_math else ray_div(burn_amount, debt_index)
        if burned == 0:
            return fail(INVALID_BURN_AMOUNT)
        outstanding = reserve_debt - actual_debt
        if no_collateral_left and outstanding:
            deficit[debt_id] = outstanding
            outstanding = 0
        # 3.4+: the vToken's burn reports a zero scaled balance; 3.3: no outstanding debt
        debt_flag_cleared = scaled_debt - burned == 0 if rules.custom_errors else outstanding == 0
    scaled_debt -= burned
    debt_scaled_burned = burned
    if with_position_after:
        legs[debt_id] = dataclasses.replace(debt_leg, scaled_variable_debt=scaled_debt, stable_debt=new_stable)

    # The collateral: moved to the liquidator or burned, then the protocol fee to the treasury.
    coll_leg = legs.get(collateral_id, Leg())
    moved = ray_div_ceil(coll_amount, income) if rules.token_math else ray_div(coll_amount, income)
    if not receive_a_token and moved == 0:
        return fail(INVALID_BURN_AMOUNT)
    remaining = scaled_coll - moved
    if receive_a_token and liquidator is not None and liquidator.lower() == user:
        remaining += moved  # self-liquidation (up to 3.3) hands the aTokens back
    fee_scaled = 0
    if fee:
        if rules.token_math:
            fee_scaled = ray_div_ceil(fee, income)
            if fee_scaled > remaining:
                fee_scaled = remaining
                fee = ray_mul_floor(remaining, income)
        else:
            if ray_div(fee, income) > remaining:
                fee = ray_mul(remaining, income)
            fee_scaled = ray_div(fee, income)
        remaining -= fee_scaled
    if with_position_after:
        legs[collateral_id] = dataclasses.replace(
            coll_leg,
            scaled_atoken=remaining,
            collateral_enabled=coll_leg.collateral_enabled and not collateral_flag_cleared,
        )

    # _burnBadDebt (3.3+): every other debt of a user left without collateral becomes deficit.
    if no_collateral_left:
        for reserve_id in sorted(legs):
            leg = legs[reserve_id]
            if reserve_id == debt_id or not leg.scaled_variable_debt or not market.by_id[reserve_id].active:
                continue
            index = market.debt_index[reserve_id]
            owed = (
                ray_mul_ceil(leg.scaled_variable_debt, index)
                if rules.token_math
                else ray_mul(leg.scaled_variable_debt, index)
            )
            deficit[reserve_id] = deficit.get(reserve_id, 0) + owed
            if with_position_after:
                legs[reserve_id] = dataclasses.replace(leg, scaled_variable_debt=0)

    return LiquidationOutcome(
        revert=None,
        reason=None,
        **{**progress, "protocol_fee": fee},
        collateral_scaled=moved,
        fee_scaled=fee_scaled,
        debt_scaled_burned=debt_scaled_burned,
        deficit=deficit,
        collateral_flag_cleared=collateral_flag_cleared,
        debt_flag_cleared=debt_flag_cleared,
        no_collateral_left=no_collateral_left,
        position_after=UserPosition(position.user, position.emode_category, legs) if with_position_after else None,
        liquidator_collateral_enabled=(
            _liquidator_flag_after(liquidator_position, market, collateral_id)
            if receive_a_token and liquidator_position is not None
            else None
        ),
    )


def _liquidator_flag_after(liquidator: UserPosition, market: MarketState, collateral_id: int) -> bool:
    """Up to 3.5 (LiquidationLogic `liquidatorPreviousATokenBalance == 0` -> ValidationLogic
    `validateAutomaticUseAsCollateral`): a liquidator without aTokens of the reserve gets it enabled when its LTV is not
    0, it has no debt ceiling (the role that may bypass that is not modelled: an executor does not hold it), and
    the liquidator has no collateral yet or is not in isolation mode. 3.6 removed the automatic enabling."""
    own = liquidator.legs.get(collateral_id, Leg())
    if own.collateral_enabled or not market.rules.liquidated_atokens_auto_collateral or own.scaled_atoken:
        return own.collateral_enabled
    reserve = market.by_id[collateral_id]
    if reserve.debt_ceiling or reserve.ltv == 0:
        return False
    enabled = [rid for rid, leg in liquidator.legs.items() if leg.collateral_enabled]
    isolated = len(enabled) == 1 and market.by_id[enabled[0]].debt_ceiling != 0
    return not enabled or not isolated
