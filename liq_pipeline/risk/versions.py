"""What changes between Aave V3 protocol versions, as far as the engine's arithmetic is concerned.

The market's version is a setting (`AAVE_PROTOCOL_VERSION`): a node cannot be asked which rounding it runs.
Each rule names the protocol file it comes from (aave-v3-core for 3.0, aave-v3-origin for later versions,
`src/contracts/protocol/libraries/logic/...`); docs/predictive-hf.md §9 has the table with the tests.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ProtocolRules:
    version: str
    # GenericLogic.calculateUserAccountData. V3.0-3.4: avgLT = floor(sum(coll x LT) / coll);
    # HF = coll.percentMul(avgLT).wadDiv(debt). V3.5+: HF = sum(coll x LT).wadDiv(debt) / 1e4, collateral rounds
    # down (rayMulFloor) and debt up (rayMulCeil, mulDivCeil).
    floors_average_threshold: bool
    # EModeLogic / GenericLogic: V3.0-3.1 e-mode categories may carry their own price source; V3.2 removed it
    # (categories list their assets in collateral and borrowable bitmaps instead).
    emode_price_source: bool
    # LiquidationLogic.executeLiquidationCall: V3.3+ closes up to 100 % of a reserve position; 50 % only when both
    # the collateral and the debt reserve are worth >= $2,000 and HF > 0.95.
    small_position_full_close: bool
    # MathUtils.calculateCompoundedInterest: V3.4+ x = rate*dt/year, RAY + x + x.rayMul(x/2 + x.rayMul(x/6));
    # V3.0-3.3 the binomial form with basePowerTwo / basePowerThree (different digits).
    compounding_x_form: bool
    # GenericLogic: stable-rate debt counts in the HF up to V3.1; V3.2 removed stable borrowing.
    counts_stable_debt: bool
    # GenericLogic.calculateUserAccountData: up to V3.5 an enabled collateral whose reserve LT is 0 is skipped; V3.6
    # removed that filter, so it counts in total collateral (and at its e-mode category's LT when the category's
    # collateral bitmap lists it, although its own LT is 0). ValidationLogic.validateLiquidationCall likewise stops
    # refusing to liquidate such collateral.
    counts_zero_threshold_collateral: bool
    # ReserveLogic / Pool.getVirtualUnderlyingBalance: V3.1+ reserves track their cash in a virtual balance (the
    # reader reads it; the HF does not depend on it).
    virtual_accounting: bool
    # The rest is liquidationCall's (risk/liquidation.py).
    # ValidationLogic.validateLiquidationCall: V3.1+ both reserves' liquidation grace period must have passed.
    liquidation_grace_period: bool
    # LiquidationLogic: V3.3+ MustNotLeaveDust (both leftovers >= $1,000 unless debt or collateral is cleared), and
    # with no collateral left the rest of the user's debt is burned into reserve deficits (_burnBadDebt).
    dust_rule_and_deficits: bool
    # helpers/Errors.sol: V3.4+ custom errors instead of numeric codes; ValidationLogic refuses self-liquidation;
    # the debt flag clears when the scaled debt reaches 0 (before: when no debt is outstanding).
    custom_errors: bool
    # helpers/TokenMath.sol: V3.5+ scaled balances floor/ceil, the reserve debt valued rounded up, the capped debt
    # percentDivCeil (the same release as the HF's floors_average_threshold=False).
    token_math: bool
    # LiquidationLogic: up to V3.5 aTokens received with receiveAToken become the liquidator's collateral when it held
    # none before (validateAutomaticUseAsCollateral); V3.6 dropped that (the aTokens arrive disabled).
    liquidated_atokens_auto_collateral: bool
    # ReserveConfiguration / ValidationLogic: up to V3.6 isolation mode (a debt ceiling on a collateral) and siloed
    # borrowing exist; V3.7 removed both (docs/3.7 of aave-v3-origin). They shape what users can hold, not the HF's
    # arithmetic: the reader reads the debt ceiling, and a 3.7 market reports none.
    isolation_and_siloed: bool
    # LiquidationLogic: V3.7 splits seized collateral and fee with percentMulFloor / percentDivFloor /
    # percentMulCeil (docs/3.7/liquidation-rounding.md), "no collateral left" from the scaled amounts consumed.
    split_rounding_floor_ceil: bool

    @property
    def label(self) -> str:
        return f"V{self.version}"


def rules_for(version: str) -> ProtocolRules:
    major, minor = (int(part) for part in version.split(".")[:2])
    if major != 3 or not 0 <= minor <= 7:
        raise ValueError(f"unsupported Aave protocol version {version!r}: expected 3.0 to 3.7")
    return ProtocolRules(
        version=f"{major}.{minor}",
        floors_average_threshold=minor <= 4,
        emode_price_source=minor <= 1,
        small_position_full_close=minor >= 3,
        compounding_x_form=minor >= 4,
        counts_stable_debt=minor <= 1,
        counts_zero_threshold_collateral=minor >= 6,
        virtual_accounting=minor >= 1,
        liquidation_grace_period=minor >= 1,
        dust_rule_and_deficits=minor >= 3,
        custom_errors=minor >= 4,
        token_math=minor >= 5,
        liquidated_atokens_auto_collateral=minor <= 5,
        isolation_and_siloed=minor <= 6,
        split_rounding_floor_ceil=minor >= 7,
    )
