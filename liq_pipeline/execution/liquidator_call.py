"""Calls to the project's Liquidator contract (liq_pipeline/contracts/Liquidator.sol), encoded with eth-abi.

`liquidateWithFlashLoan(Order, flashAmount)`: flash-loan the debt asset, liquidationCall (the L2Pool's compact call
when `args1` is set), sell the seized collateral on the Uniswap V2 pair, repay, keep the profit;
`liquidateFromInventory(Order)`: repay with the debt asset the contract holds and keep the collateral (its profit is
the collateral at the Pool's oracle price). Both revert with ProfitTooLow unless the profit (debt-asset units) is
>= `minProfit`, so a lost race costs gas only.
Its `Liquidated` event reports what happened; `liquidated_profit` reads the profit back from a receipt's logs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from eth_abi import decode, encode
from eth_utils import keccak

from ..risk.profit import LiquidationPlan
from .calldata import encode_liquidation_args

ORDER_TYPE = "(address,address,address,uint256,bool,bytes32,bytes32,address,uint256,int256)"
FLASH_SIGNATURE = f"liquidateWithFlashLoan({ORDER_TYPE},uint256)"
FLASH_SELECTOR = keccak(text=FLASH_SIGNATURE)[:4]
INVENTORY_SIGNATURE = f"liquidateFromInventory({ORDER_TYPE})"
INVENTORY_SELECTOR = keccak(text=INVENTORY_SIGNATURE)[:4]
LIQUIDATED_TOPIC = (
    "0x" + keccak(text="Liquidated(address,address,address,uint256,uint256,uint256,uint256,uint256,int256)").hex()
)
ZERO_WORD = bytes(32)
ZERO_ADDRESS = "0x" + "00" * 20


@dataclass(frozen=True)
class Liquidated:
    """The contract's Liquidated event: amounts in asset units, profit in debt-asset units."""

    user: str
    debt_repaid: int
    collateral_received: int
    swap_out: int
    flash_amount: int
    premium: int
    profit: int


def _order(plan: LiquidationPlan, pair: str, min_profit: int, compact: bool) -> tuple:
    args1 = args2 = ZERO_WORD
    if compact:
        args1, args2 = encode_liquidation_args(plan.collateral_id, plan.debt_id, plan.user, plan.debt_to_cover)
    return (
        plan.collateral_asset,
        plan.debt_asset,
        plan.user,
        plan.debt_to_cover,
        False,
        args1,
        args2,
        pair,
        0,  # the contract computes the swap's output from the pair's reserves when it runs
        min_profit,
    )


def flash_calldata(plan: LiquidationPlan, pair: str, min_profit: int, *, compact: bool) -> bytes:
    """liquidateWithFlashLoan for `plan`: its debtToCover as planned (type(uint256).max when "all" was best: the Pool
    takes a different path for "all" than for the same amount given explicitly when the collateral runs out, and
    the explicit amount can then leave dust and revert), and a flash loan of exactly the debt it repays."""
    order = _order(plan, pair, min_profit, compact)
    return FLASH_SELECTOR + encode([ORDER_TYPE, "uint256"], [order, plan.outcome.debt_repaid])


def inventory_calldata(plan: LiquidationPlan, min_profit: int, *, compact: bool) -> bytes:
    """liquidateFromInventory for `plan`: the contract's own debt asset repays, the collateral stays in it."""
    return INVENTORY_SELECTOR + encode([ORDER_TYPE], [_order(plan, ZERO_ADDRESS, min_profit, compact)])


def plan_calldata(plan: LiquidationPlan, pair: str | None, min_profit: int, *, compact: bool) -> bytes:
    """The Liquidator call of the plan's mode."""
    if plan.mode == "inventory":
        return inventory_calldata(plan, min_profit, compact=compact)
    return flash_calldata(plan, pair or ZERO_ADDRESS, min_profit, compact=compact)


def liquidated_events(logs: Iterable[dict], contract: str) -> list[Liquidated]:
    """The Liquidated events `contract` emitted in `logs` (a receipt's or a block's)."""
    out = []
    for log in logs:
        topics = log.get("topics") or []
        if log.get("address", "").lower() != contract.lower() or not topics or topics[0] != LIQUIDATED_TOPIC:
            continue
        values = decode(["uint256"] * 5 + ["int256"], bytes.fromhex(log["data"].removeprefix("0x")))
        out.append(Liquidated("0x" + topics[1][-40:], *values))
    return out
