"""Calls to the project's Liquidator contract (liq_pipeline/contracts/Liquidator.sol) for a LiquidationPlan; the
Order's layout, the encoding and the Liquidated event are in chain.liquidator_abi.

`liquidateWithFlashLoan(Order, flashAmount)`: flash-loan the debt asset, liquidationCall (the L2Pool's compact call
when `args1` is set), sell the seized collateral on the Uniswap V2 pair, repay, keep the profit;
`liquidateFromInventory(Order)`: repay with the debt asset the contract holds and keep the collateral (its profit is
the collateral at the Pool's oracle price). Both revert with ProfitTooLow unless the profit (debt-asset units) is
>= `minProfit`, so a lost race costs gas only.
Its `Liquidated` event (chain.liquidator_abi.liquidated_events) reports what happened.
"""

from __future__ import annotations

from ..chain.liquidator_abi import ZERO_ADDRESS, ZERO_WORD, Order
from ..chain.liquidator_abi import flash_calldata as order_flash_calldata
from ..chain.liquidator_abi import inventory_calldata as order_inventory_calldata
from ..risk.profit import LiquidationPlan
from .calldata import encode_liquidation_args


def _order(plan: LiquidationPlan, pair: str, min_profit: int, compact: bool) -> Order:
    args1 = args2 = ZERO_WORD
    if compact:
        args1, args2 = encode_liquidation_args(plan.collateral_id, plan.debt_id, plan.user, plan.debt_to_cover)
    return Order(
        plan.collateral_asset,
        plan.debt_asset,
        plan.user,
        plan.debt_to_cover,
        args1=args1,
        args2=args2,
        pair=pair,
        amount_out=0,  # the contract computes the swap's output from the pair's reserves when it runs
        min_profit=min_profit,
    )


def flash_calldata(plan: LiquidationPlan, pair: str, min_profit: int, *, compact: bool) -> bytes:
    """liquidateWithFlashLoan for `plan`: its debtToCover as planned (type(uint256).max when "all" was best: the Pool
    takes a different path for "all" than for the same amount given explicitly when the collateral runs out, and
    the explicit amount can then leave dust and revert), and a flash loan of exactly the debt it repays."""
    return order_flash_calldata(_order(plan, pair, min_profit, compact), plan.outcome.debt_repaid)


def inventory_calldata(plan: LiquidationPlan, min_profit: int, *, compact: bool) -> bytes:
    """liquidateFromInventory for `plan`: the contract's own debt asset repays, the collateral stays in it."""
    return order_inventory_calldata(_order(plan, ZERO_ADDRESS, min_profit, compact))


def plan_calldata(plan: LiquidationPlan, pair: str | None, min_profit: int, *, compact: bool) -> bytes:
    """The Liquidator call of the plan's mode."""
    if plan.mode == "inventory":
        return inventory_calldata(plan, min_profit, compact=compact)
    return flash_calldata(plan, pair or ZERO_ADDRESS, min_profit, compact=compact)
