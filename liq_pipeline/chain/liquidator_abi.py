"""The project's Liquidator contract (liq_pipeline/contracts/Liquidator.sol) as the chain sees it: its Order, its two
liquidation calls encoded, its Liquidated event decoded. The devnet deploys and drives the contract, the executor
sends its calls: both read the layout here.

`liquidateWithFlashLoan(Order, flashAmount)`: flash-loan the debt asset, liquidationCall (the L2Pool's compact call
when `args1` is set), sell the seized collateral on the order's Uniswap V2 pair, repay, keep the profit;
`liquidateFromInventory(Order)`: repay with the debt asset the contract holds. Both revert with ProfitTooLow unless
the profit (debt-asset units) is >= `min_profit`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import astuple, dataclass
from typing import Any

from eth_abi import encode
from eth_utils import keccak

from .abi import decoded_logs

ORDER_TYPE = "(address,address,address,uint256,bool,bytes32,bytes32,address,uint256,int256)"
FLASH_SIGNATURE = f"liquidateWithFlashLoan({ORDER_TYPE},uint256)"
FLASH_SELECTOR = keccak(text=FLASH_SIGNATURE)[:4]
INVENTORY_SIGNATURE = f"liquidateFromInventory({ORDER_TYPE})"
INVENTORY_SELECTOR = keccak(text=INVENTORY_SIGNATURE)[:4]
LIQUIDATED_TOPIC = (
    "0x" + keccak(text="Liquidated(address,address,address,uint256,uint256,uint256,uint256,uint256,int256)").hex()
)
LIQUIDATED_DATA = ["uint256"] * 5 + ["int256"]  # debtRepaid, collateralReceived, swapOut, flashAmount, premium, profit
ZERO_WORD = bytes(32)
ZERO_ADDRESS = "0x" + "00" * 20
MAX_UINT = 2**256 - 1  # debtToCover: as much as the Pool lets us


@dataclass(frozen=True)
class Order:
    """Liquidator.Order: what to liquidate and how to sell the collateral."""

    collateral: str  # underlying addresses
    debt: str
    user: str
    debt_to_cover: int = MAX_UINT
    receive_a_token: bool = False
    args1: bytes = ZERO_WORD  # non-zero: L2Pool.liquidationCall(args1, args2)
    args2: bytes = ZERO_WORD
    pair: str = ZERO_ADDRESS  # Uniswap V2 pair (collateral, debt); zero address: no swap
    amount_out: int = 0  # 0: the contract computes the swap's output from getReserves
    min_profit: int = 0  # debt-asset units


def flash_calldata(order: Order, flash_amount: int) -> bytes:
    """liquidateWithFlashLoan(order, flash_amount)."""
    return FLASH_SELECTOR + encode([ORDER_TYPE, "uint256"], [astuple(order), flash_amount])


def inventory_calldata(order: Order) -> bytes:
    """liquidateFromInventory(order)."""
    return INVENTORY_SELECTOR + encode([ORDER_TYPE], [astuple(order)])


@dataclass(frozen=True)
class Liquidated:
    """The contract's Liquidated event: amounts in asset units, profit in debt-asset units."""

    user: str
    collateral: str
    debt: str
    debt_repaid: int
    collateral_received: int
    swap_out: int
    flash_amount: int
    premium: int
    profit: int
    transaction_hash: str


def liquidated_events(logs: Iterable[dict[str, Any]], contract: str) -> list[Liquidated]:
    """The Liquidated events `contract` emitted in `logs` (a receipt's or a block's)."""
    return [
        Liquidated(*addresses, *values, log.get("transactionHash", ""))  # user, collateral, debt; the amounts
        for addresses, values, log in decoded_logs(logs, contract, LIQUIDATED_TOPIC, LIQUIDATED_DATA)
    ]
