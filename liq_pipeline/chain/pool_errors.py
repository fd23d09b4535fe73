"""The Pool's liquidation reverts (V3.4+ custom errors), by 4-byte selector: `risk.liquidation`'s names for them.
Up to 3.3 the Pool reverts with Error(string) codes instead (`ERROR_STRING` + the code)."""

from __future__ import annotations

from eth_utils import keccak

from ..risk import liquidation as L

ERROR_STRING = "0x08c379a0"  # Error(string)


def selector(signature: str) -> str:
    """`0x` + the first 4 bytes of keccak(signature): how a revert's data starts."""
    return "0x" + keccak(text=signature).hex()[:8]


POOL_ERRORS = {
    selector(name + "()"): name
    for name in (
        L.SELF_LIQUIDATION,
        L.RESERVE_INACTIVE,
        L.RESERVE_PAUSED,
        L.GRACE_PERIOD,
        L.HF_NOT_BELOW_THRESHOLD,
        L.COLLATERAL_CANNOT_BE_LIQUIDATED,
        L.NOT_BORROWED,
        L.MUST_NOT_LEAVE_DUST,
        L.INVALID_BURN_AMOUNT,
    )
}
